"""Compression: quantizer bound, entropy coder exactness and rate, container validation, CLI."""

from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np
import pytest
import torch

import aekit
from aekit.axes.bottlenecks import quantization_noise
from aekit.tasks.compression import (Codec, UniformQuantizer, compress, decode_symbols, decompress, encode_symbols,
                               fit_codec, fit_counts, ideal_bits, model_hash, pack_container, read_container,
                               unpack_container)
from aekit.tasks.compression.container import MAGIC, MAX_SYMBOLS
from aekit.errors import CheckpointError, ConfigError, DataError
from cli_helpers import cli

pytest.importorskip("constriction")

METHODS = ("range", "lzma", "zlib")


# ---------------------------------------------------------------- quantizer
def test_quantizer_error_is_at_most_half_a_step():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 6)) * np.array([1, 10, 0.01, 3, 1, 1])
    for bits in (1, 3, 8, 12):
        q = UniformQuantizer.fit(z, bits=bits)
        sym = q.quantize(z)
        assert sym.min() >= 0 and sym.max() <= 2 ** bits - 1
        err = np.abs(z - q.dequantize(sym).astype(np.float64))
        assert np.all(err <= q.step / 2 * (1 + 1e-5) + 1e-6), bits
        # the extremes of the fitted range are levels (ends included)
        assert np.allclose(q.dequantize(q.quantize(z.min(0, keepdims=True))), z.min(0), atol=1e-5 * np.abs(z).max())


def test_quantizer_clips_out_of_range_and_handles_constant_dimensions():
    z = np.array([[0.0, 5.0], [1.0, 5.0]])
    q = UniformQuantizer.fit(z, bits=2)  # levels 0, 1/3, 2/3, 1 on dim 0; dim 1 constant
    assert np.allclose(q.step, [1 / 3, 1.0])
    sym = q.quantize(np.array([[-3.0, 7.0], [0.4, 5.0], [9.0, -1.0]]))
    assert sym.tolist() == [[0, 0], [1, 0], [3, 0]]
    assert np.allclose(q.dequantize(sym), [[0, 5], [1 / 3, 5], [1, 5]])
    with pytest.raises(ConfigError, match="bits"):
        UniformQuantizer.fit(z, bits=0)
    with pytest.raises(DataError):
        UniformQuantizer.fit(np.array([[np.nan, 1.0]]), bits=4)


# ---------------------------------------------------------------- entropy coder
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,d,levels", [(0, 3, 16), (1, 1, 2), (1, 4, 256), (37, 5, 4), (300, 3, 256), (20, 2, 65536)])
def test_coder_round_trip_is_exact(method, n, d, levels):
    rng = np.random.default_rng(n * 31 + d)
    train = rng.integers(0, levels, size=(200, d))
    counts = fit_counts(train, levels=levels)
    symbols = rng.integers(0, levels, size=(n, d))
    payload = encode_symbols(symbols, levels=levels, method=method, counts=counts)
    back = decode_symbols(payload, n=n, d=d, levels=levels, method=method, counts=counts)
    assert back.shape == (n, d) and np.array_equal(back, symbols)


@pytest.mark.parametrize("method", METHODS)
def test_coder_round_trip_constant_and_unseen_symbols(method):
    counts = fit_counts(np.zeros((50, 2), dtype=np.int64), levels=8)  # training saw only symbol 0
    for symbols in (np.zeros((400, 2), dtype=np.int64), np.full((3, 2), 7)):  # seen / never seen (Laplace)
        payload = encode_symbols(symbols, levels=8, method=method, counts=counts)
        assert np.array_equal(decode_symbols(payload, n=symbols.shape[0], d=2, levels=8, method=method, counts=counts),
                              symbols)


def test_range_coder_reaches_the_shannon_bound_on_a_skewed_source():
    p = np.array([0.80, 0.10, 0.05, 0.03, 0.02])
    entropy = float(-(p * np.log2(p)).sum())  # 1.0245 bits per symbol
    rng = np.random.default_rng(1)
    n = 40_000
    symbols = rng.choice(5, size=(n, 1), p=p)
    counts = np.round(p * 1e6).astype(np.int64)[None, :]  # the true model, as counts
    bits = 8 * len(encode_symbols(symbols, levels=5, method="range", counts=counts))
    empirical = ideal_bits(symbols, counts)
    assert bits >= empirical - 1  # nothing beats the model's code length
    assert bits <= empirical + 64  # a range coder is within a couple of 32-bit words of it
    assert abs(empirical / n - entropy) < 0.02  # and the code length is the source entropy
    # the general-purpose fallback is further from the bound
    lz = 8 * len(encode_symbols(symbols, levels=5, method="lzma"))
    assert lz > bits


def test_fitted_histogram_counts_each_dimension():
    sym = np.array([[0, 1], [0, 2], [1, 2]])
    assert fit_counts(sym, levels=3).tolist() == [[2, 1, 0], [0, 1, 2]]
    # Laplace smoothing: p = (c + 1) / (n + L)
    counts = fit_counts(sym, levels=3)
    assert ideal_bits(np.array([[0, 2]]), counts) == pytest.approx(-math.log2(3 / 6) - math.log2(3 / 6))
    assert ideal_bits(np.array([[2, 0]]), counts) == pytest.approx(-2 * math.log2(1 / 6))


@pytest.mark.parametrize("method", ["lzma", "zlib"])
def test_general_purpose_payload_with_wrong_length_is_refused(method):
    payload = encode_symbols(np.ones((10, 2), dtype=np.int64), levels=4, method=method)
    with pytest.raises(DataError):
        decode_symbols(payload, n=11, d=2, levels=4, method=method)
    with pytest.raises(DataError):
        decode_symbols(payload[:-3], n=10, d=2, levels=4, method=method)


# ---------------------------------------------------------------- container
HEADER = {"shape": [1, 8, 8], "count": 3, "latent_dim": 2, "bits": 4, "method": "range", "alpha": 1.0,
          "model_hash": "a" * 64, "codec_hash": "b" * 64}


def _with_header(blob: bytes, **changes) -> bytes:
    """Rewrite the header of a packed container (with a valid CRC), keeping its payload."""
    n = struct.unpack(">I", blob[6:10])[0]
    header = json.loads(blob[10:10 + n])
    header.update(changes)
    head = json.dumps(header).encode()
    return blob[:4] + blob[4:6] + struct.pack(">I", len(head)) + head + struct.pack(">I", zlib.crc32(head)) + blob[14 + n:]


def test_container_round_trip(tmp_path):
    from aekit.tasks.compression import write_container

    payload = bytes(range(200))
    path = write_container(tmp_path / "x.aekc", HEADER, payload)
    header, body = read_container(path, model_hash="a" * 64, codec_hash="b" * 64)
    assert body == payload and header["count"] == 3 and header["payload_bytes"] == 200
    assert path.read_bytes()[:4] == MAGIC


@pytest.mark.parametrize("mutate,error,needle", [
    (lambda b: b"XXXX" + b[4:], DataError, "not an aekit container"),
    (lambda b: b[:4] + struct.pack(">H", 99) + b[6:], DataError, "version 99"),
    (lambda b: b[:6] + struct.pack(">I", 2 ** 31) + b[10:], DataError, "header"),
    (lambda b: b[:-1], DataError, "truncated"),
    (lambda b: b[:12], DataError, "truncated"),
    (lambda b: b[:3], DataError, "truncated"),
    (lambda b: b"", DataError, "truncated"),
    (lambda b: b + b"\0", DataError, "unexpected bytes"),
    (lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:], DataError, "SHA-256"),
    (lambda b: b[:20] + bytes([b[20] ^ 4]) + b[21:], DataError, "CRC"),
    (lambda b: _with_header(b, count=2 ** 40), DataError, "count"),
    (lambda b: _with_header(b, count=MAX_SYMBOLS, latent_dim=64), DataError, "exceeds the limit"),
    (lambda b: _with_header(b, shape=[1, 2 ** 20, 2 ** 20]), DataError, "exceeds the limit"),
    (lambda b: _with_header(b, bits=40), DataError, "bits"),
    (lambda b: _with_header(b, method="gzip"), DataError, "method"),
    (lambda b: _with_header(b, payload_bytes=10 ** 12), DataError, "payload_bytes"),
    (lambda b: _with_header(b, shape="1x8x8"), DataError, "shape"),
    (lambda b: _with_header(b, model_hash="c" * 64), CheckpointError, "different model"),
])
def test_container_corruptions_raise_aekit_errors(mutate, error, needle):
    blob = pack_container(HEADER, bytes(range(100)))
    with pytest.raises(error, match=needle):
        unpack_container(mutate(blob), model_hash="a" * 64)


def test_container_flipping_any_byte_never_escapes_as_a_foreign_error():
    blob = pack_container(HEADER, bytes(range(40)))
    for i in range(len(blob)):
        bad = blob[:i] + bytes([blob[i] ^ 0x5A]) + blob[i + 1:]
        with pytest.raises((DataError, CheckpointError)):
            unpack_container(bad, model_hash="a" * 64, codec_hash="b" * 64)


# ---------------------------------------------------------------- codec with a model
@pytest.fixture(scope="module")
def tiny():
    from aekit.data import load_data

    torch.manual_seed(0)
    ds = load_data("digits")
    model = aekit.build("ae", input_shape=ds.shape, latent_dim=6, hidden=[32], seed=0, quantization_noise=5)
    aekit.fit(model, ds.train, ds.val, epochs=3, batch_size=64, progress=False)
    return model.eval(), ds


@pytest.mark.parametrize("method", METHODS)
def test_codec_round_trip_decodes_the_quantized_codes(tiny, method):
    model, ds = tiny
    codec = fit_codec(model, ds.train, bits=5)
    blob = compress(model, ds.test[:50], codec, method=method)
    x_hat, header = decompress(model, blob, codec)
    z = torch.from_numpy(codec.quantizer.dequantize(codec.quantizer.quantize(model.encode(ds.test[:50]).detach().double().numpy())))
    with torch.no_grad():
        assert torch.equal(x_hat, model.decode(z))
    assert header["count"] == 50 and header["model_hash"] == model_hash(model)


def test_codec_refuses_another_model_and_survives_save_load(tiny, tmp_path):
    model, ds = tiny
    codec = fit_codec(model, ds.train, bits=4)
    again = Codec.load(codec.save(tmp_path / "c.safetensors"))
    assert again.hash == codec.hash
    blob = compress(model, ds.test[:5], codec)
    other = aekit.build("ae", input_shape=ds.shape, latent_dim=6, hidden=[32], seed=1).eval()
    with pytest.raises(CheckpointError, match="different model"):
        decompress(other, blob, codec)
    refit = fit_codec(model, ds.train[:100], bits=4)
    with pytest.raises(CheckpointError, match="quantizer"):
        decompress(model, blob, refit)


def test_quantization_noise_is_bounded_and_training_only(tiny):
    z = torch.randn(256, 4) * torch.tensor([1.0, 5.0, 0.1, 2.0])
    noisy = quantization_noise(z, 3)
    step = (z.amax(0) - z.amin(0)) / 7
    assert torch.all((noisy - z).abs() <= step / 2 + 1e-6) and not torch.equal(noisy, z)
    model, ds = tiny
    model.train()
    code, _ = model.encode_code(ds.test[:64])
    assert not torch.equal(code.z, code.mean)
    model.eval()
    code, _ = model.encode_code(ds.test[:64])
    assert torch.equal(code.z, code.mean)
    with pytest.raises(ConfigError, match="quantization_noise"):
        aekit.build("vae", input_shape=(4,), quantization_noise=4)
    with pytest.raises(ConfigError, match="quantization_noise"):
        aekit.build("ae", input_shape=(4,), quantization_noise=0)


# ---------------------------------------------------------------- command line
def test_cli_compress_decompress_end_to_end(tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "ae", "--data", "digits", "--out", run, "--epochs", "2", "--latent-dim", "6",
                       "--hidden", "32", "--quantization-noise", "6", "--quiet")
    assert code == 0, err
    code, out, err = cli("compress", run, "--data", "digits", "--out", tmp_path / "d.aekc", "--bits", "6", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["images"] == 359 and stats["bpp"] > 0 and 0 < stats["ssim"] <= 1 and stats["psnr"] > 5
    assert stats["bytes_per_image"] == pytest.approx(stats["payload_bytes"] / 359)
    assert stats["bytes_per_image"] < 6 * 6 / 8 + 0.1  # entropy-coded: below the raw 6 x 6 bits
    assert (run / "compression" / "codec-6bit.safetensors").is_file()
    code, _, err = cli("decompress", run, tmp_path / "d.aekc", "--out", tmp_path / "x.npy")
    assert code == 0, err
    x_hat = np.load(tmp_path / "x.npy")
    assert x_hat.shape == (359, 1, 8, 8)
    # the same reconstructions the compressor measured
    from aekit.metrics import reconstruction_metrics
    from aekit.data import load_data

    ds = load_data("digits")  # decompress writes the loaded data's raw units (0..16 for digits)
    x_hat = torch.from_numpy(x_hat) / ds.scale
    assert reconstruction_metrics(ds.test, x_hat.clamp(0, 1))["psnr"] == pytest.approx(stats["psnr"], abs=1e-4)


def test_cli_errors(tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    for r, seed in ((run, 0), (other, 1)):
        code, _, err = cli("train", "ae", "--data", "digits", "--out", r, "--epochs", "1", "--latent-dim", "4",
                           "--hidden", "16", "--seed", seed, "--quiet")
        assert code == 0, err
    f = tmp_path / "d.aekc"
    assert cli("compress", run, "--data", "digits", "--out", f, "--bits", "4")[0] == 0
    code, _, err = cli("compress", run, "--data", "digits", "--out", f, "--bits", "17")
    assert code == 2 and "--bits" in err
    code, _, err = cli("compress", run, "--data", "digits", "--out", f, "--method", "lzmaa")
    assert code == 2 and "Did you mean 'lzma'" in err
    code, _, err = cli("decompress", other, f, "--out", tmp_path / "x.npy")
    assert code == 1 and "codec" in err  # the other run has no 4-bit codec
    assert cli("compress", other, "--data", "digits", "--out", tmp_path / "o.aekc", "--bits", "4")[0] == 0
    code, _, err = cli("decompress", other, f, "--out", tmp_path / "x.npy")
    assert code == 1 and "different model" in err
    f.write_bytes(f.read_bytes()[:-2])
    code, _, err = cli("decompress", run, f, "--out", tmp_path / "x.npy")
    assert code == 1 and "truncated" in err and "Traceback" not in err
    code, _, err = cli("decompress", run, tmp_path / "missing.aekc", "--out", tmp_path / "x.npy")
    assert code == 1 and "does not exist" in err
