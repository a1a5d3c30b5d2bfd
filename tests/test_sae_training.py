"""SAE training through the one Trainer (aekit.tasks.sae.model / train): top-k keeps exactly k, the decoder is
unit-norm after every optimizer step (the step contract's hooks), AuxK reaches only dead latents, dead latents are
counted over a window of samples, an exact reconstruction spliced into the host recovers the loss exactly, the
scale is folded into the saved weights, and a run streamed from a store resumes bit-identically."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit.errors import ConfigError, ShapeError, ShortRunWarning
from aekit.tasks.sae import (ActivationStore, FiringTracker, ShufflingBuffer, SparseAutoencoder, load_sae, sae_forward,
                             save_sae, superposition_data, train_sae)
from aekit.tasks.sae.evaluate import evaluate_sae
from aekit.training.trainer import TrainConfig, Trainer


def _data(n=512, d=8, seed=0):
    x, true, _ = superposition_data(n, n_features=16, dim=d, p=0.1, seed=seed)
    return x, true


@pytest.mark.parametrize("activation", ["topk", "batch_topk"])
def test_topk_keeps_exactly_k(activation):
    sae = SparseAutoencoder(d=8, n_latents=32, activation=activation, k=3).train()
    with torch.no_grad():
        sae.encoder.bias.fill_(50.0)  # every pre-activation positive: ReLU removes none of the kept ones
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    z = sae.encode(x)
    if activation == "topk":
        assert ((z != 0).sum(1) == 3).all()  # exactly k per row
        a = sae.pre_activations(x)
        assert torch.equal(z != 0, torch.zeros_like(a, dtype=torch.bool).scatter(1, a.topk(3, dim=1).indices, True))
    else:
        assert int((z != 0).sum()) == 64 * 3  # exactly B*k in the batch, not per row


class _Recording(SparseAutoencoder):
    """Records the decoder column norms the optimizer hooks leave, and how often each hook ran."""

    def __init__(self, *args, enforce=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.enforce, self.norms, self.calls = enforce, [], {"before": 0, "after": 0}

    def before_optimizer_step(self, group):
        self.calls["before"] += 1
        if self.enforce:
            super().before_optimizer_step(group)

    def after_optimizer_step(self, group):
        self.calls["after"] += 1
        if self.enforce:
            super().after_optimizer_step(group)
        self.norms.append(self.decoder.weight.detach().norm(dim=0).clone())


@pytest.mark.parametrize("activation,options", [("topk", {"k": 2}), ("relu", {"l1": 0.01}),
                                                ("jumprelu", {"sparsity": 0.01, "threshold": 0.1, "bandwidth": 0.1})])
def test_decoder_is_unit_norm_after_each_optimizer_step(activation, options):
    x, _ = _data()
    runs = {}
    for enforce in (True, False):
        sae = _Recording(d=8, n_latents=24, activation=activation, enforce=enforce, **options).init_from_sample(x)
        Trainer(sae, TrainConfig(epochs=2, batch_size=64, lr=0.02, progress=False)).fit(x)
        runs[enforce] = sae
    sae = runs[True]
    assert sae.calls == {"before": 16, "after": 16} and len(sae.norms) == 16  # one per optimizer step
    for norms in sae.norms:
        assert torch.allclose(norms, torch.ones(24), atol=1e-5)
    drift = max(float((n - 1).abs().max()) for n in runs[False].norms)
    assert drift > 1e-3  # without the hooks the columns leave the sphere: the check above can fail


def test_auxk_gradient_reaches_only_dead_latents():
    x, _ = _data()
    sae = SparseAutoencoder(d=8, n_latents=16, activation="topk", k=2, aux_k=4, dead_window=100).init_from_sample(x)
    dead = torch.zeros(16, dtype=torch.bool)
    dead[[1, 5, 9, 12]] = True
    with torch.no_grad():
        sae.since_fired.copy_(torch.where(dead, 1000, 0))  # dead: no firing for 1000 > 100 samples
    sae.eval()  # no firing update in this step: the mask stays as set
    out = sae.training_step(x[:64])
    assert out.terms["dead_fraction"] == pytest.approx(4 / 16)
    out.terms["auxk"].backward()
    enc, dec = sae.encoder.weight.grad, sae.decoder.weight.grad  # (m, d), (d, m)
    assert float(enc[~dead].abs().max()) == 0.0 and float(dec[:, ~dead].abs().max()) == 0.0
    assert float(enc[dead].abs().sum()) > 0 and float(dec[:, dead].abs().sum()) > 0


def test_auxk_is_off_without_dead_latents_and_weighted_into_the_loss():
    x, _ = _data()
    sae = SparseAutoencoder(d=8, n_latents=16, activation="batch_topk", k=2, aux_weight=0.5).init_from_sample(x)
    out = sae.training_step(x[:64])
    assert float(out.terms["auxk"].detach()) == 0.0 and out.weights["auxk"] == 0.5
    assert torch.allclose(out.loss, sum(out.weights[k] * out.terms[k] for k in out.terms))


def test_dead_latents_are_counted_over_a_window_of_samples():
    g = torch.Generator().manual_seed(0)
    sae = SparseAutoencoder(d=4, n_latents=6, activation="relu", dead_window=50)
    tracker = FiringTracker(6, window=50)
    for _ in range(7):
        z = torch.relu(torch.randn(16, 6, generator=g) - 1.2) * (torch.arange(6) < 4)  # latents 4 and 5 never fire
        sae._track_firing(z)
        tracker.update(z)
        assert torch.equal(sae.dead_mask(), tracker.dead_mask())
    assert sae.dead_mask()[4:].all() and not sae.dead_mask()[:4].any()  # 112 samples > the window of 50


def test_training_tracks_dead_latents_in_its_buffers():
    x, _ = _data()
    sae = SparseAutoencoder(d=8, n_latents=24, activation="topk", k=2, dead_window=128).init_from_sample(x)
    with torch.no_grad():
        sae.encoder.bias[:4] = -1e3  # latents 0-3 never reach the top k: they never fire
    Trainer(sae, TrainConfig(epochs=7, batch_size=64, lr=1e-3, progress=False)).fit(x)
    assert sae.dead_mask()[:4].all() and int(sae.since_fired[:4].min()) >= 7 * 512


def test_an_exact_reconstruction_spliced_into_the_host_recovers_the_loss_exactly(tmp_path):
    d = 6
    host = torch.nn.Sequential(torch.nn.Linear(5, d), torch.nn.Tanh(), torch.nn.Linear(d, 3))
    inputs = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(40) % 3
    with torch.no_grad():
        acts = host[1](host[0](inputs))  # (40, d) the captured layer's rows
    store = ActivationStore.create(tmp_path / "acts", d=d, meta={"layer": "1", "layout": "flat", "positions": 1})
    store.append(acts)
    sae = SparseAutoencoder(d=d, n_latents=2 * d, activation="relu")
    eye = torch.eye(d)
    with torch.no_grad():  # z = (relu(x), relu(-x)), x_hat = relu(x) - relu(-x) = x exactly; unit-norm columns
        sae.encoder.weight.copy_(torch.cat([eye, -eye]))
        sae.encoder.bias.zero_()
        sae.decoder.weight.copy_(torch.cat([eye, -eye], dim=1))
        sae.decoder.bias.zero_()
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    out = evaluate_sae(loaded, store, host=host, inputs=inputs, labels=labels)
    assert out["fvu"] == 0.0 and out["loss_sae"] == out["loss_original"]
    assert out["fraction_loss_recovered"] == 1.0 and out["accuracy_sae"] == out["accuracy_original"]
    assert out["l0"] == pytest.approx(float((acts != 0).sum()) / 40)


@pytest.mark.parametrize("activation,options", [("topk", {"k": 2}), ("batch_topk", {"k": 2}),
                                                ("jumprelu", {"sparsity": 0.01, "threshold": 0.05, "bandwidth": 0.1}),
                                                ("relu", {"l1": 0.01})])
def test_the_scale_is_folded_into_the_saved_weights(tmp_path, activation, options):
    x, _ = _data()
    raw = x * 7.0 + 0.3  # activations far from E||x||^2 = d: the scale matters
    sae, _ = train_sae(raw, n_latents=16, activation=activation, epochs=1, batch_size=64, lr=0.01,
                       out_dir=tmp_path / "run", **options)
    assert float(sae.scale) != pytest.approx(1.0, abs=0.05)
    folded = load_file(str(tmp_path / "run" / "sae.safetensors"))
    threshold = folded.pop("threshold", None)
    if activation == "topk":
        def act(h):
            return torch.relu(torch.zeros_like(h).scatter(1, h.topk(2, dim=1).indices, h.topk(2, dim=1).values))
    elif activation == "batch_topk":
        def act(h):
            return torch.relu(h) * (torch.relu(h) > threshold)
    elif activation == "jumprelu":
        def act(h):
            return h * (h > threshold)
    else:
        act = torch.relu
    z, x_hat = sae_forward(raw, folded, activation=act)  # raw activations in and out, no scale
    with torch.no_grad():
        assert torch.allclose(z, sae.encode(raw), atol=1e-4) and torch.allclose(x_hat, sae(raw), atol=1e-4)
        # the folded decoder columns have norm 1 / s
        assert torch.allclose(folded["decoder.weight"].norm(dim=0), torch.full((16,), 1 / float(sae.scale)), rtol=1e-4)


def test_training_streams_from_the_store_and_resumes_bit_identically(tmp_path):
    x, true = _data(n=600)
    store = ActivationStore.create(tmp_path / "acts", d=8)
    store.append(x)
    options = dict(n_latents=24, activation="topk", k=2, epochs=3, batch_size=64, lr=0.01, chunk_rows=100,
                   buffer_rows=200, dead_window=256)
    whole, result = train_sae(store, out_dir=tmp_path / "whole", **options)
    assert result.history[-1]["step"] == 3 * 10  # ceil(600 / 64) batches per epoch, from the buffer

    def stop_after_first_epoch(record, trainer):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train_interrupted(store, tmp_path / "part", options, stop_after_first_epoch)
    resumed, _ = train_sae(store, out_dir=tmp_path / "part", resume=True, **options)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def _train_interrupted(store, out_dir, options, callback):
    """train_sae's own steps with an epoch callback (the trainer's) that stops the run after epoch 1."""
    opts = dict(options)
    sae = SparseAutoencoder(d=store.d, n_latents=opts.pop("n_latents"), activation=opts.pop("activation"),
                            k=opts.pop("k"), dead_window=opts.pop("dead_window"))
    sae.init_from_sample(torch.from_numpy(store.sample(8192, seed=0)))
    buffer = ShufflingBuffer(store, batch_size=opts["batch_size"], buffer_rows=opts["buffer_rows"],
                             chunk_rows=opts["chunk_rows"], seed=0)
    cfg = TrainConfig(epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"], betas=(0.9, 0.999),
                      progress=False)
    Trainer(sae, cfg, out_dir=out_dir, callbacks=[callback], save_model=save_sae, load_model=load_sae).fit(buffer)


def test_a_batch_source_must_match_the_batch_size(tmp_path):
    store = ActivationStore.create(tmp_path / "acts", d=4)
    store.append(torch.randn(100, 4))
    sae = SparseAutoencoder(d=4, n_latents=8, activation="topk", k=2)
    with pytest.raises(ConfigError, match="batch source gives batches of 32 rows but batch_size is 64"):
        Trainer(sae, TrainConfig(batch_size=64, progress=False)).fit(ShufflingBuffer(store, batch_size=32))


def test_sae_options_are_checked_with_one_line_errors():
    with pytest.raises(ConfigError, match="needs k"):
        SparseAutoencoder(d=4, n_latents=8, activation="topk")
    with pytest.raises(ConfigError, match="k applies to"):
        SparseAutoencoder(d=4, n_latents=8, activation="relu", k=2)
    with pytest.raises(ConfigError, match="aux_k .* applies to"):
        SparseAutoencoder(d=4, n_latents=8, activation="jumprelu", aux_k=2)
    with pytest.raises(ConfigError, match="Did you mean 'topk'"):
        SparseAutoencoder(d=4, n_latents=8, activation="topkk", k=2)
    with pytest.raises(ShapeError, match=r"\(N, 4\)"):
        SparseAutoencoder(d=4, n_latents=8, activation="relu").init_from_sample(torch.randn(10, 5))


def test_the_jumprelu_bottleneck_adds_its_l0_penalty_in_any_autoencoder():
    model = aekit.build(input_shape=(6,), latent_dim=5, backbone={"mlp": {"hidden": [7]}},
                        bottleneck={"jumprelu": {"sparsity": 0.5, "threshold": 0.05, "bandwidth": 0.1}}, seed=0)
    x = torch.rand(9, 6, generator=torch.Generator().manual_seed(0))
    out = model(x)
    a = model.bottleneck.linear(model.encoder(x)[0])
    assert float(out.terms["l0_penalty"]) == pytest.approx(0.5 * float((a > 0.05).sum()) / 9, rel=1e-5)
    assert torch.equal(out.z, a * (a > 0.05))
    out.loss.backward()
    assert model.bottleneck.log_threshold.grad is not None


@pytest.fixture(autouse=True)
def _short_runs_are_intended():
    """These runs are a few steps long on purpose (tiny shapes): the trainer's ShortRunWarning is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortRunWarning)
        yield
