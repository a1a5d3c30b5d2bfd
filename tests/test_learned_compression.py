"""Real bitstreams for the rate-trained bottlenecks (tasks/compression/learned.py): exact round trips, any image
size, the payload matching the model's rate estimate, damaged files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aekit
from aekit.tasks.compression import compress_learned, decompress_learned, pack_container, rate_bits, unpack_container
from aekit.tasks.compression.codec import Codec, decompress
from aekit.tasks.compression.quantize import UniformQuantizer
from aekit.tasks.compression.learned import LearnedCodec

RANGE_OVERHEAD_BITS = 64  # a range coder's stream ends with up to two 32-bit words of state


def _model(bottleneck="entropy", channels=3, activation="gdn", seed=0):
    return aekit.build(input_shape=(channels, 16, 16), latent_dim=4, bottleneck=bottleneck, seed=seed,
                       backbone={"conv": {"channels": [8, 8], "activation": activation, "fully_convolutional": True}})


def _images(n, c, h, w, seed=0):
    """Smooth images in [0, 1] (a few random sinusoids): something an autoencoder can learn in a few steps."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    f = torch.rand(n, c, 2, generator=g) * 0.5
    ph = torch.rand(n, c, 1, 1, generator=g) * 6
    return 0.5 + 0.4 * torch.sin(f[..., 0, None, None] * xx + f[..., 1, None, None] * yy + ph)


def _train(model, x, steps=40):
    """The two optimizer groups of a rate-trained model: the weights on the loss, the quantiles on aux_loss."""
    aux = model.bottleneck.aux_parameters()
    main = [p for p in model.parameters() if all(p is not a for a in aux)]
    opt, aux_opt = torch.optim.Adam(main, lr=3e-3), torch.optim.Adam(aux, lr=0.3)
    torch.manual_seed(0)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(x).loss.backward()
        opt.step()
        aux_opt.zero_grad()
        model.bottleneck.aux_loss().backward()
        aux_opt.step()
    model.eval()
    return model


@pytest.mark.parametrize("bottleneck", ["entropy", "hyperprior"])
def test_encode_then_decode_is_bit_exact(bottleneck):
    model = _model(bottleneck)
    x = _images(3, 3, 16, 16)
    blob = compress_learned(model, x)
    x_hat, header = decompress_learned(model, blob)
    assert header["coder"] == bottleneck and header["count"] == 3
    with torch.no_grad():
        assert torch.equal(x_hat, model.reconstruct(x))  # exactly the model's own eval reconstruction
    assert compress_learned(model, x) == blob  # deterministic


@pytest.mark.parametrize("bottleneck", ["entropy", "hyperprior"])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_image_size_round_trips(bottleneck, channels):
    model = _model(bottleneck, channels=channels)
    x = _images(1, channels, 33, 47, seed=1)
    blob = compress_learned(model, x)
    x_hat, header = decompress_learned(model, blob)
    assert x_hat.shape == (1, channels, 33, 47) and header["shape"] == [channels, 33, 47]
    # the same image decoded alone from its code: what the model reconstructs at this size
    b = model.bottleneck
    with torch.no_grad():
        y = b.analysis(model.encoder(x)[0])
        y_hat = b.dequantize(b.symbols(y)) if bottleneck == "entropy" else torch.round(y)
        assert torch.equal(x_hat, model.decoder(y_hat, (), output_size=(33, 47)))


def test_a_vector_code_round_trips():
    model = aekit.build(input_shape=(12,), latent_dim=3, bottleneck="entropy", seed=0)
    x = torch.randn(7, 12, generator=torch.Generator().manual_seed(0))
    x_hat, _ = decompress_learned(model, compress_learned(model, x))
    with torch.no_grad():
        assert torch.equal(x_hat, model.reconstruct(x))


def test_values_outside_the_tables_escape_and_still_round_trip():
    model = _model("entropy")
    with torch.no_grad():
        model.bottleneck.linear.weight.mul_(3000.0)  # codes far beyond the density's quantiles
    x = _images(2, 3, 16, 16)
    y = model.bottleneck.analysis(model.encoder(x)[0])
    assert y.abs().max() > 200
    x_hat, _ = decompress_learned(model, compress_learned(model, x))
    with torch.no_grad():
        assert torch.equal(x_hat, model.reconstruct(x))


@pytest.mark.parametrize("bottleneck", ["entropy", "hyperprior"])
def test_the_payload_matches_the_estimated_rate_after_training(bottleneck):
    x = _images(16, 1, 16, 16, seed=3)
    model = _train(_model(bottleneck, channels=1, activation="relu"), x)
    estimate = rate_bits(model, x)
    with torch.no_grad():
        out = model(x)  # eval: the logged rate terms are the same estimate
    assert sum(float(out.terms[k]) for k in model.bottleneck.rate_terms) * 16 == pytest.approx(estimate, rel=1e-5)
    blob = compress_learned(model, x)
    header_bits = 8 * (len(blob) - decompress_learned(model, blob)[1]["payload_bytes"])
    payload = 8 * len(blob) - header_bits
    assert abs(payload - estimate) <= 0.02 * estimate + RANGE_OVERHEAD_BITS, (payload, estimate)


def test_damaged_files_are_refused_with_one_line_errors():
    model = _model("hyperprior")
    blob = compress_learned(model, _images(2, 3, 16, 16))
    body = len(blob) - decompress_learned(model, blob)[1]["payload_bytes"]
    cases = {"truncated": blob[:-3], "extended": blob + b"\0\0\0\0",
             "flipped": blob[:body + 2] + bytes([blob[body + 2] ^ 1]) + blob[body + 3:], "empty": b"",
             "foreign": b"PK\x03\x04" + blob[4:]}
    for name, data in cases.items():
        with pytest.raises(aekit.DataError) as info:
            decompress_learned(model, data)
        assert "\n" not in str(info.value), name
    # a forged payload with a consistent checksum: refused by the decoder itself
    header, _ = unpack_container(blob, versions=(2,))
    for key in ("payload_bytes", "payload_sha256"):
        header.pop(key)
    forged = pack_container(header, blob[body:-4] + bytes([blob[-4] ^ 0x5A]) + blob[-3:], version=2)
    with pytest.raises(aekit.DataError, match="corrupted") as info:
        decompress_learned(model, forged)
    assert "\n" not in str(info.value)
    # another model's file, and a learned file given to the quantizer codec
    with pytest.raises(aekit.CheckpointError, match="different model"):
        decompress_learned(_model("hyperprior", seed=1), blob)
    codec = Codec(quantizer=UniformQuantizer(lo=np.zeros(4), hi=np.ones(4), bits=2), counts=np.zeros((4, 4), np.int64))
    with pytest.raises(aekit.DataError, match="decompress_learned"):
        decompress(model, blob, codec)


def test_the_tables_are_deterministic_and_hashed():
    model = _model("hyperprior")
    a, b = LearnedCodec(model), LearnedCodec(model)
    assert a.hash == b.hash
    for t in a.z_tables + a.y_tables:
        assert t.freqs.sum() == 2 ** 16 and t.freqs.min() >= 1
    with torch.no_grad():
        model.bottleneck.hyper_density.quantiles.add_(0.5)
    assert LearnedCodec(model).hash != a.hash


def test_models_without_a_rate_trained_bottleneck_are_refused():
    model = aekit.build(input_shape=(4,), latent_dim=2, seed=0)
    with pytest.raises(aekit.ConfigError, match="entropy"):
        compress_learned(model, torch.zeros(1, 4))
    with pytest.raises(aekit.ShapeError, match="channel"):
        compress_learned(_model("entropy"), torch.zeros(1, 1, 8, 8))


def test_a_header_declaring_more_images_than_the_payload_holds_is_refused_before_decoding():
    model = _model("entropy")
    blob = compress_learned(model, _images(1, 3, 16, 16))
    header, payload = unpack_container(blob, versions=(2,))
    for key in ("payload_bytes", "payload_sha256"):
        header.pop(key)
    header["count"] = 10 ** 6
    with pytest.raises(aekit.DataError, match="cannot hold"):
        decompress_learned(model, pack_container(header, payload, version=2))


def test_the_version_2_header_is_compact_and_keeps_scale_and_offset():
    model = _model("entropy", channels=1)
    x = _images(2, 1, 9, 13)
    blob = compress_learned(model, x)
    header, payload = unpack_container(blob, versions=(2,))
    assert len(blob) - len(payload) == 10 + 48 + 4  # prefix, binary header, CRC-32
    assert header["shape"] == [1, 9, 13] and header["count"] == 2 and header["coder"] == "entropy"
    scaled = compress_learned(model, x, scale=255.0, offset=-0.5)
    x_hat, header = decompress_learned(model, scaled)
    assert header["scale"] == 255.0 and header["offset"] == -0.5 and x_hat.shape == (2, 1, 9, 13)
    damaged = bytearray(blob)
    damaged[12] ^= 0xFF  # a header byte: the CRC refuses it
    with pytest.raises(aekit.DataError, match="CRC"):
        decompress_learned(model, bytes(damaged))


def test_the_trainer_fits_the_entropy_models_quantiles_in_their_own_group(tmp_path):
    """optimizer_groups(): 'main' without the quantiles, 'entropy_aux' with them alone (constant-lr Adam)."""
    from aekit.training.trainer import TrainConfig, Trainer

    model = aekit.build(input_shape=(12,), latent_dim=3, bottleneck="entropy", seed=0)
    groups = model.optimizer_groups()
    assert [g.name for g in groups] == ["main", "entropy_aux"]
    aux_ids = {id(p) for p in model.bottleneck.aux_parameters()}
    assert {id(p) for p in groups[1].params} == aux_ids and not aux_ids & {id(p) for p in groups[0].params}
    before = model.bottleneck.density.quantiles.detach().clone()
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model, TrainConfig(epochs=2, batch_size=16, progress=False, checkpoint_every=None),
                      out_dir=tmp_path / "run")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(x)
    assert not torch.equal(model.bottleneck.density.quantiles.detach(), before)  # the aux group stepped
    assert {"train_entropy_aux_aux", "lr_entropy_aux"} <= set(trainer.history[-1])  # logged as its own group
