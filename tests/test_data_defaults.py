"""Data-aware defaults (aekit.training.data_defaults) and the blind Gaussian corruption: issue 16."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

import aekit
from aekit.axes.corruption import corruption_spec
from aekit.data import load_data
from aekit.registry import CORRUPTIONS
from aekit.training.data_defaults import choose_defaults, code_width, mlp_widths
from aekit.training.runs import load_run, run_data
from cli_helpers import cli


def _table(path, *, n=120, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) * np.arange(1, d + 1) * 10 + 5).astype(np.float32)  # columns of unequal scale
    np.save(path, x)
    return x


def _images(path, *, n=40, seed=0):
    x = np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)  # in [0, 1]
    np.save(path, x)
    return x


# ---------------------------------------------------------------------- gaussian_blind


def test_blind_gaussian_per_sample_std_is_uniform_on_0_max_std():
    """Each sample's noise std s ~ U[0, m]: E s = m/2, Var s = m^2/12, and the KS distance to U[0, m] is small."""
    m, n, pixels = 0.4, 2000, 4096
    c = CORRUPTIONS.create({"gaussian_blind": {"max_std": m, "clip": False}}).train()
    torch.manual_seed(0)
    x = torch.full((n, pixels), 0.5)
    s = (c(x) - x).std(dim=1, correction=0)  # (n,) per-sample std, estimated from 4096 draws each (se ~ s/90)
    assert float(s.min()) >= 0 and float(s.max()) <= m * 1.05
    assert abs(float(s.mean()) - m / 2) < 0.01
    assert abs(float(s.var()) - m * m / 12) < 0.1 * m * m / 12
    ecdf = torch.arange(1, n + 1) / n
    ks = float((ecdf - s.sort().values.clamp(0, m) / m).abs().max())
    assert ks < 1.63 / math.sqrt(n) + 0.02  # 1% KS critical value, plus the estimation error of each s
    # whole-image noise is Gaussian given s: the pooled 4th moment is E s^4 * 3 = 3 m^4 / 5
    e = c(x) - x
    assert abs(float((e ** 4).mean()) - 3 * m ** 4 / 5) < 0.05 * 3 * m ** 4 / 5


def test_blind_gaussian_clips_and_is_identity_in_eval():
    c = CORRUPTIONS.create(corruption_spec("gaussian_blind")).train()
    assert c.max_std == 0.55 and c.clip is True
    x = torch.rand(16, 1, 8, 8)
    y = c(x)
    assert float(y.min()) >= 0 and float(y.max()) <= 1 and not torch.equal(x, y)
    assert torch.equal(c.eval()(x), x)
    assert corruption_spec("gaussian_blind:0.2") == {"gaussian_blind": {"max_std": 0.2}}
    with pytest.raises(aekit.ConfigError, match="gaussian_blind"):
        CORRUPTIONS.create({"gaussian_blind": {"max_std": -1}})


# ---------------------------------------------------------------------- the rules


def test_rules_for_a_small_table(tmp_path):
    _table(tmp_path / "t.npy")
    ds = load_data(str(tmp_path / "t.npy"))
    chosen = choose_defaults(ds, variant="ae", model={}, standardize=None)
    assert chosen.standardize is True
    assert chosen.model == {"latent_dim": 3, "hidden": [24]}  # d=6: code <= 6 // 2, widths <= 4 * 6
    assert [r["key"] for r in chosen.reasons] == ["standardize", "latent_dim", "hidden"]
    assert all(r["reason"] for r in chosen.reasons)
    assert "likelihood" not in chosen.model  # standardized: unbounded, the gaussian stays
    assert code_width(21, 32) == 10 and code_width(1, 32) == 1 and code_width(784, 32) == 32
    assert mlp_widths(21, [256], 10) == [84] and mlp_widths(784, [1000, 500], 30) == [1000, 500]
    assert choose_defaults(ds, variant="sparse_kl", model={}, standardize=None).model.get("latent_dim") is None


def test_rules_for_images(tmp_path):
    _images(tmp_path / "x.npy")
    ds = load_data(str(tmp_path / "x.npy"))
    ae = choose_defaults(ds, variant="ae", model={}, standardize=None)
    assert ae.standardize is False
    assert ae.model == {"backbone": {"conv": {"channels": [32, 64]}}, "likelihood": {"bernoulli": {}}}
    dae = choose_defaults(ds, variant="dae", model={}, standardize=None)
    assert dae.model == {"backbone": {"unet": {"channels": [16, 32]}},
                         "corruption": {"gaussian_blind": {"max_std": 0.55, "clip": True}},
                         "likelihood": {"gaussian": {}}}
    lin = choose_defaults(ds, variant="linear", model={}, standardize=None)
    assert "likelihood" not in lin.model and "backbone" not in lin.model  # linear stays PCA's model


def test_user_given_values_win(tmp_path):
    _table(tmp_path / "t.npy")
    _images(tmp_path / "x.npy")
    table = load_data(str(tmp_path / "t.npy"))
    given = choose_defaults(table, variant="ae", model={"latent_dim": 5, "hidden": [7]}, standardize=False)
    assert given.standardize is False and given.model == {} and given.reasons == []
    images = load_data(str(tmp_path / "x.npy"))
    dae = choose_defaults(images, variant="dae", model={"hidden": [32], "corruption": {"gaussian": {"std": 0.1}},
                                                        "likelihood": {"gaussian": {"sigma": 0.5}}}, standardize=None)
    assert dae.model == {} and dae.reasons == []
    ae = choose_defaults(images, variant="ae", model={"backbone": {"mlp": {"hidden": [16]}}}, standardize=None)
    assert ae.model == {"likelihood": {"bernoulli": {}}}


# ---------------------------------------------------------------------- aekit train


def test_train_prints_and_records_the_defaults(tmp_path):
    _table(tmp_path / "t.npy")
    code, _, err = cli("train", "ae", "--data", tmp_path / "t.npy", "--out", tmp_path / "r", "--epochs", "1")
    assert code == 0, err
    assert "defaults chosen from the data:" in err and "latent_dim=3:" in err and "standardize=true:" in err
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["data"]["standardize"] is True
    assert {r["key"]: r["value"] for r in info["defaults"]} == {"standardize": True, "latent_dim": 3, "hidden": [24]}
    model, _ = load_run(tmp_path / "r")
    assert model.latent_dim == 3 and model.config["backbone"] == {"mlp": {"hidden": [24]}}
    code, _, err = cli("train", "ae", "--data", tmp_path / "t.npy", "--out", tmp_path / "q", "--epochs", "1",
                       "--quiet", "--no-standardize", "--latent-dim", "4")
    assert code == 0, err
    assert "defaults chosen" not in err
    info = json.loads((tmp_path / "q" / "run.json").read_text())
    assert info["data"]["standardize"] is False and "standardize" not in {r["key"] for r in info["defaults"]}
    assert load_run(tmp_path / "q")[0].latent_dim == 4


def test_train_on_images_gets_conv_and_bernoulli(tmp_path):
    _images(tmp_path / "x.npy")
    code, _, err = cli("train", "ae", "--data", tmp_path / "x.npy", "--out", tmp_path / "r", "--epochs", "1")
    assert code == 0, err
    model, info = load_run(tmp_path / "r")
    assert next(iter(model.config["backbone"])) == "conv" and model.config["likelihood"] == {"bernoulli": {}}
    assert info["data"]["standardize"] is False
    code, _, err = cli("train", "ae", "--data", tmp_path / "x.npy", "--out", tmp_path / "s", "--epochs", "1",
                       "--hidden", "16", "--likelihood", "gaussian", "--quiet")
    assert code == 0, err
    model, _ = load_run(tmp_path / "s")
    assert model.config["backbone"] == {"mlp": {"hidden": [16]}} and model.config["likelihood"] == {"gaussian": {}}


def test_commands_apply_the_run_scaler(tmp_path):
    """Other data go through the run's saved scaler (mean/std of its training split), not their own statistics."""
    _table(tmp_path / "t.npy")
    other = _table(tmp_path / "o.npy", n=30, seed=1) * 3 + 7  # other statistics: own standardization would differ
    np.save(tmp_path / "o.npy", other)
    assert cli("train", "ae", "--data", tmp_path / "t.npy", "--out", tmp_path / "r", "--epochs", "1", "--quiet")[0] == 0
    model, info = load_run(tmp_path / "r")
    mean, std = np.array(info["dataset"]["offset"]), np.array(info["dataset"]["scale"])
    train = load_data(str(tmp_path / "t.npy"), seed=0).train.numpy()
    assert np.allclose(mean, train.mean(0), rtol=1e-5) and np.allclose(std, train.std(0), rtol=1e-5)
    x, _, ds, _ = run_data(info, source=str(tmp_path / "o.npy"), model=model)
    assert np.allclose(x.numpy(), (other - mean) / std, atol=1e-5)
    assert np.allclose(ds.to_raw(x).numpy(), other, rtol=1e-5, atol=1e-4)  # outputs go back to the data's units
    code, _, err = cli("encode", tmp_path / "r", "--data", tmp_path / "o.npy", "--out", tmp_path / "z.npy")
    assert code == 0, err
    with torch.no_grad():
        z = model.encode(torch.from_numpy(((other - mean) / std).astype(np.float32)))
    assert np.allclose(np.load(tmp_path / "z.npy"), z.numpy(), atol=1e-4)
    code, out, err = cli("evaluate", tmp_path / "r", "--data", tmp_path / "o.npy")
    assert code == 0, err
    code, _, err = cli("detect", tmp_path / "r", "--data", tmp_path / "o.npy", "--out", tmp_path / "s.csv")
    assert code == 0, err
    own = load_data(str(tmp_path / "o.npy"), standardize=True).whole.numpy()  # what its own statistics would give
    assert not np.allclose(own, x.numpy(), atol=1e-2)


def test_runs_without_the_key_are_not_standardized(tmp_path):
    x = _table(tmp_path / "t.npy")
    info = {"data": {"source": str(tmp_path / "t.npy"), "seed": 0}, "dataset": {"scale": 1.0, "offset": 0.0}}
    got, _, _, _ = run_data(info, source=str(tmp_path / "t.npy"))
    assert np.array_equal(got.numpy(), x)


def test_dae_on_images_end_to_end(tmp_path):
    """`aekit train dae --data IMAGES` then `aekit denoise RUN --data NOISY --out ...`: U-Net + blind noise."""
    clean = _images(tmp_path / "x.npy", n=24)
    noisy = np.clip(clean + 0.3 * np.random.default_rng(1).normal(size=clean.shape), 0, 1).astype(np.float32)
    np.save(tmp_path / "noisy.npy", noisy)
    code, _, err = cli("train", "dae", "--data", tmp_path / "x.npy", "--out", tmp_path / "r", "--epochs", "1",
                       "--batch-size", "8")
    assert code == 0, err
    assert "backbone=unet:channels=16,32" in err and "corruption=gaussian_blind:max_std=0.55,clip=true" in err
    model, _ = load_run(tmp_path / "r")
    assert model.config["corruption"] == {"gaussian_blind": {"max_std": 0.55, "clip": True}}
    assert model.config["likelihood"] == {"gaussian": {}}
    code, _, err = cli("denoise", tmp_path / "r", "--data", tmp_path / "noisy.npy", "--out", tmp_path / "d.npy")
    assert code == 0, err
    d = np.load(tmp_path / "d.npy")
    assert d.shape == noisy.shape and d.min() >= 0 and d.max() <= 1
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    chosen = info["denoise"]["ensemble"]  # decided on the run's validation images after training
    assert info["denoise"]["choose"] == "validation" and isinstance(chosen, bool)
    assert ("mean over the image symmetries" in err) == chosen
    from aekit.training.dihedral import self_ensemble

    with torch.no_grad():
        mean8 = self_ensemble(model.reconstruct, torch.from_numpy(noisy)).clamp(0, 1).numpy()
        one = model.reconstruct(torch.from_numpy(noisy)).clamp(0, 1).numpy()
    assert np.allclose(d, mean8 if chosen else one, atol=1e-5) and not np.allclose(one, mean8, atol=1e-4)
    for flag, want in (("--ensemble", mean8), ("--no-ensemble", one)):
        code, _, err = cli("denoise", tmp_path / "r", "--data", tmp_path / "noisy.npy", "--out", tmp_path / "e.npy",
                           flag)
        assert code == 0, err
        assert np.allclose(np.load(tmp_path / "e.npy"), want, atol=1e-5)


# ---------------------------------------------------------------------- estimators


def test_estimators_apply_the_table_rules():
    from aekit.tasks.sklearn import AutoencoderOutlierDetector, AutoencoderTransformer

    X = np.random.default_rng(0).normal(size=(40, 6)) * 50 + 3
    tr = AutoencoderTransformer(epochs=1).fit(X)
    assert tr.model_.config["backbone"] == {"mlp": {"hidden": [24]}}  # 256 -> 4 * 6
    assert np.allclose(tr.center_, X.mean(0)) and np.allclose(tr.scale_, X.std(0))  # standardized by default
    with pytest.warns(UserWarning, match="could copy its input"):
        det = AutoencoderOutlierDetector(latent_dim=8, epochs=1, n_estimators=1).fit(X)
    assert det.model_.latent_dim == 3
    assert det.model_.config["backbone"] == {"mlp": {"hidden": [256]}}  # the detector keeps the recipe's widths
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*could copy its input")
        assert AutoencoderTransformer(latent_dim=5, hidden=(4,), epochs=1).fit(X).model_.latent_dim == 5


# ---------------------------------------------------------------------- the step budget


def test_default_epochs_reach_the_minimum_step_budget():
    from aekit.training.data_defaults import MAX_EPOCHS, MIN_STEPS, default_epochs

    assert default_epochs(60_000, batch_size=128, epochs=10) == 10  # 469 steps an epoch: 4,690 >= 1,000
    assert default_epochs(4_000, batch_size=128, epochs=10) == 32  # 32 steps an epoch -> ceil(1000 / 32)
    assert default_epochs(4_000, batch_size=128, epochs=10) * 32 >= MIN_STEPS > 31 * 32
    assert default_epochs(115, batch_size=128, epochs=10) == 1000  # one (short) batch an epoch
    assert default_epochs(1, batch_size=1, epochs=10) == 1000
    assert default_epochs(10, batch_size=10_000, epochs=10) == 1000
    assert default_epochs(1_281, batch_size=1, epochs=10) == 10  # 12,810 steps already
    assert default_epochs(30, batch_size=64, epochs=10) <= MAX_EPOCHS


def test_rules_choose_epochs_only_when_not_given(tmp_path):
    _table(tmp_path / "t.npy", n=200)
    ds = load_data(str(tmp_path / "t.npy"))  # 180 training rows at the default val_fraction
    rows = ds.train.shape[0]
    chosen = choose_defaults(ds, variant="ae", model={}, standardize=None, train={})
    assert chosen.train == {"epochs": math.ceil(1000 / math.ceil(rows / 128))}
    assert any(r["key"] == "epochs" and str(rows) in r["reason"] for r in chosen.reasons)
    assert choose_defaults(ds, variant="ae", model={}, standardize=None, train={"epochs": 3}).train == {}
    assert choose_defaults(ds, variant="ae", model={}, standardize=None, train={"max_time": 5.0}).train == {}
    small_batch = choose_defaults(ds, variant="ae", model={}, standardize=None, train={"batch_size": 1})
    assert small_batch.train == {}  # rows steps an epoch: 10 epochs >= 1,000 steps
    assert choose_defaults(ds, variant="ae", model={}, standardize=None).train == {}  # no train given: no rule


def ae_run_free(ds) -> bool:
    """Only an image denoiser records a denoising choice."""
    return choose_defaults(ds, variant="ae", model={}, standardize=None, train={}).run == {}


def test_an_image_denoiser_gets_the_longer_step_budget(tmp_path):
    from aekit.training.data_defaults import DENOISER_MIN_STEPS, MAX_EPOCHS, MIN_STEPS

    _images(tmp_path / "x.npy")
    ds = load_data(str(tmp_path / "x.npy"))
    per_epoch = math.ceil(ds.train.shape[0] / 128)
    dae = choose_defaults(ds, variant="dae", model={}, standardize=None, train={})
    assert dae.train == {"epochs": min(MAX_EPOCHS, math.ceil(DENOISER_MIN_STEPS / per_epoch))}
    assert dae.run == {"denoise": {"choose": "validation", "ensemble": None}} and ae_run_free(ds)
    assert "5,000" in next(r["reason"] for r in dae.reasons if r["key"] == "epochs")
    ae = choose_defaults(ds, variant="ae", model={}, standardize=None, train={})
    assert ae.train == {"epochs": min(MAX_EPOCHS, math.ceil(MIN_STEPS / per_epoch))}  # other models: 1,000 steps
    assert dae.train["epochs"] > ae.train["epochs"]
    assert choose_defaults(ds, variant="dae", model={}, standardize=None,
                           train={"epochs": 2}).train == {}  # the user's options win


def test_cli_records_the_chosen_epochs_and_trains_them(tmp_path):
    _table(tmp_path / "t.npy", n=40, d=3)  # 36 training rows at batch 2: 18 steps an epoch -> 56 epochs
    code, _, err = cli("train", "ae", "--data", tmp_path / "t.npy", "--out", tmp_path / "run", "--batch-size", "2",
                       "--quiet")
    assert code == 0, err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    chosen = next(x for x in info["defaults"] if x["key"] == "epochs")
    assert chosen["value"] == 56 and info["train"]["epochs"] == 56
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 57))
    assert history[-1]["step"] == 56 * 18 >= 1000
