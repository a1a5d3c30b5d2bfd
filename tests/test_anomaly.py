"""Anomaly detection: scores, threshold calibration, error maps, the `aekit detect` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from cli_helpers import cli, read_scores

import aekit
from aekit.tasks.anomaly import (binary_truth, calibrate_threshold, detect, detection_metrics, error_maps,
                           score_samples)
from aekit.errors import ConfigError, DataError, ShapeError


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""


def subspace_data(n_normal: int = 500, n_out: int = 25, dim: int = 10, rank: int = 2, seed: int = 0):
    """Normal points on a random rank-2 linear subspace of R^10 plus small noise; outliers off it.

    Returns (x (N, dim) float32, y (N,) 1 = outlier); the outliers have the same overall scale.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, rank)))  # (dim, rank) orthonormal
    normal = rng.normal(size=(n_normal, rank)) @ basis.T + 0.05 * rng.normal(size=(n_normal, dim))
    out = rng.normal(size=(n_out, dim)) * np.sqrt(rank / dim)  # isotropic, same expected squared norm
    x = np.concatenate([normal, out]).astype(np.float32)
    y = np.concatenate([np.zeros(n_normal), np.ones(n_out)]).astype(np.int64)
    return x, y


def tiny_ae(dim: int = 10, latent: int = 2):
    return aekit.build(input_shape=(dim,), hidden=[16], latent_dim=latent, seed=0)


# ----------------------------------------------------------------------------- scores
def test_tiny_ae_finds_off_subspace_outliers():
    x, y = subspace_data()
    model = tiny_ae()
    aekit.fit(model, torch.from_numpy(x[y == 0][:400]), None, epochs=20, batch_size=100, lr=1e-2,
              warmup_steps=0, progress=False)
    x_test = torch.from_numpy(np.concatenate([x[y == 0][400:], x[y == 1]]))  # 100 unseen normals + 25 outliers
    truth = np.concatenate([np.zeros(100), np.ones(25)])
    scores = score_samples(model, x_test)
    m = detection_metrics(scores, truth)
    assert m["auroc"] > 0.95, m
    assert m["average_precision"] > 0.8, m
    res = detect(model, x_test, torch.from_numpy(x[y == 0][:400]), quantile=0.99, truth=truth)
    assert res.labels[truth == 1].mean() > 0.8  # most outliers flagged
    assert res.labels[truth == 0].mean() < 0.1  # few false alarms at the 99% quantile


def test_nll_score_is_half_sse_plus_constant_for_unit_gaussian():
    model = tiny_ae()
    x = torch.randn(7, 10)
    with torch.no_grad():
        sse_ref = (model.reconstruct(x).double() - x.double()).pow(2).sum(dim=1)
    sse = score_samples(model, x, score="sse")
    nll = score_samples(model, x, score="nll")
    assert torch.allclose(sse, sse_ref, rtol=1e-6)
    assert torch.allclose(nll, 0.5 * sse_ref + 0.5 * 10 * math.log(2 * math.pi), rtol=1e-5)
    assert torch.equal(score_samples(model, x), nll)  # auto -> nll for a deterministic AE


def test_vae_score_is_negative_elbo():
    model = aekit.build("vae", input_shape=(6,), hidden=[8], latent_dim=3, seed=0)
    x = torch.bernoulli(torch.rand(5, 6))  # binary, so torch's Bernoulli can score it
    k, seed = 4, 3
    got = score_samples(model, x, samples=k, seed=seed)  # auto -> elbo
    # reference with torch.distributions and the same noise: (K, N, D) drawn from one seeded generator
    eps = torch.randn((k, 5, 3), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        code, _ = model.encode_code(x)
        mu, std = code.posterior.mu, code.posterior.std
        q = torch.distributions.Normal(mu, std)
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
        rec = torch.stack([-torch.distributions.Bernoulli(logits=model.decoder(mu + std * eps[i], [])).log_prob(x).sum(1)
                           for i in range(k)]).mean(0)
    assert torch.allclose(got, (rec + kl).double(), rtol=1e-5)
    # the score does not depend on how the inputs are batched
    assert torch.allclose(score_samples(model, x, samples=k, seed=seed, batch_size=2), got, rtol=1e-6)
    with pytest.raises(ConfigError, match="samples"):
        score_samples(model, x, samples=0)


def test_elbo_needs_a_vae_and_unknown_score_is_named():
    with pytest.raises(ConfigError, match="Gaussian posterior"):
        score_samples(tiny_ae(), torch.randn(2, 10), score="elbo")
    with pytest.raises(ConfigError, match="Did you mean 'sse'"):
        score_samples(tiny_ae(), torch.randn(2, 10), score="sso")


def test_wrong_feature_count_is_a_shape_error():
    with pytest.raises(ShapeError, match="expected \\(batch, 10\\)"):
        score_samples(tiny_ae(), torch.randn(3, 7))


# ----------------------------------------------------------------------------- thresholds
def test_calibrate_threshold_by_hand():
    s = np.arange(101.0)  # 0, 1, ..., 100
    assert calibrate_threshold(s, quantile=0.9) == pytest.approx(90.0)
    assert calibrate_threshold(s, contamination=0.1) == pytest.approx(90.0)
    assert calibrate_threshold(s) == pytest.approx(99.0)  # default quantile 0.99
    five = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert calibrate_threshold(five, quantile=0.5) == pytest.approx(3.0)
    assert calibrate_threshold(five, contamination=0.25) == pytest.approx(4.0)
    assert calibrate_threshold(five, quantile=0.625) == pytest.approx(3.5)  # linear between order statistics
    assert calibrate_threshold(torch.tensor(five), quantile=1.0) == pytest.approx(5.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(contamination=0.6), "contamination must be a number in \\(0, 0.5\\]"),
    (dict(contamination=0.0), "contamination"),
    (dict(contamination=-0.1), "contamination"),
    (dict(quantile=1.5), "quantile must be a number in \\(0, 1\\]"),
    (dict(quantile=0.9, contamination=0.1), "not both"),
])
def test_bad_levels_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        calibrate_threshold([1.0, 2.0], **kwargs)


def test_bad_scores_are_refused():
    with pytest.raises(DataError, match="empty"):
        calibrate_threshold([])
    with pytest.raises(DataError, match="NaN"):
        calibrate_threshold([1.0, float("nan")])


def test_detection_labels_and_metrics_by_hand():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    truth = np.array([0, 0, 1, 1])
    m = detection_metrics(scores, truth)
    assert m["auroc"] == pytest.approx(0.75)  # 3 of the 4 (outlier, normal) pairs ordered right
    assert m["average_precision"] == pytest.approx((1.0 + 2 / 3) / 2)
    with pytest.raises(DataError, match="both"):
        detection_metrics(scores, np.zeros(4))
    assert binary_truth(torch.tensor([0, 1, 1])).tolist() == [0, 1, 1]
    assert binary_truth(torch.tensor([3, 5, 7])) is None
    assert binary_truth(torch.tensor([3, 5, 7]), normal_classes=[3, 7]).tolist() == [0, 1, 0]


# ----------------------------------------------------------------------------- error maps
def test_error_maps_have_the_image_shape_and_sum_to_the_scores():
    ae = aekit.build(input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0)
    x = torch.rand(6, 1, 8, 8)
    maps = error_maps(ae, x)
    assert maps.shape == (6, 1, 8, 8)
    assert torch.allclose(maps.double().sum(dim=(1, 2, 3)), score_samples(ae, x, score="sse"), rtol=1e-5)
    assert torch.allclose(error_maps(ae, x, kind="nll").double().sum(dim=(1, 2, 3)), score_samples(ae, x, score="nll"),
                          rtol=1e-5)
    vae = aekit.build("vae", input_shape=(1, 8, 8), backbone="conv", channels=[4], hidden=[], latent_dim=2, seed=0)
    assert torch.allclose(error_maps(vae, x, kind="nll").double().sum(dim=(1, 2, 3)),
                          score_samples(vae, x, score="nll"), rtol=1e-5)  # per-pixel BCE sums to the Bernoulli NLL
    with pytest.raises(ConfigError, match="kind"):
        error_maps(ae, x, kind="abs")


# ----------------------------------------------------------------------------- the command
TRAIN = ["--epochs", "30", "--hidden", "16", "--latent-dim", "2", "--lr", "0.01", "--warmup-steps", "0", "--quiet"]


@pytest.fixture(scope="module")
def table_files(tmp_path_factory):
    """The subspace data as .mat (ODDS form: X and y, y = 1 for outliers), .csv and .npy; a run trained on the .mat."""
    from scipy.io import savemat

    root = tmp_path_factory.mktemp("anomaly")
    x, y = subspace_data(n_normal=300, n_out=15)
    savemat(root / "data.mat", {"X": x.astype(np.float64), "y": y[:, None].astype(np.float64)})
    np.savetxt(root / "data.csv", x, delimiter=",", header=",".join(f"f{i}" for i in range(10)), comments="")
    np.save(root / "data.npy", x)
    np.savetxt(root / "narrow.csv", x[:, :7], delimiter=",")
    with pytest.MonkeyPatch.context() as mp:
        import os

        mp.setattr(os, "fsync", lambda fd: None)
        code, _, err = cli("train", "ae", "--data", root / "data.mat", "--out", root / "run", *TRAIN)
    assert code == 0, err
    return root, y


def test_detect_mat_with_labels_reports_auroc(table_files, tmp_path):
    root, y = table_files
    code, out, err = cli("detect", root / "run", "--data", root / "data.mat", "--contamination", "0.05",
                         "--out", tmp_path / "scores.csv")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["method"] == "contamination" and summary["level"] == 0.05
    assert summary["score"] == "nll" and summary["auroc"] > 0.9, summary
    assert "AUROC" in err and "threshold" in err
    index, scores, labels = read_scores(tmp_path / "scores.csv")
    assert index.tolist() == list(range(len(y)))
    assert labels.tolist() == (scores > summary["threshold"]).astype(int).tolist()
    assert json.loads((tmp_path / "scores.json").read_text())["threshold"] == summary["threshold"]


def test_detect_defaults_to_the_runs_file_and_takes_a_calibration_file(table_files, tmp_path):
    root, y = table_files
    code, out, err = cli("detect", root / "run", "--calibration", root / "data.npy", "--out", tmp_path / "s.csv")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_samples"] == len(y) and summary["n_calibration"] == len(y)  # every row of both files
    assert summary["method"] == "quantile" and summary["level"] == 0.99 and "auroc" in summary
    _, scores, labels = read_scores(tmp_path / "s.csv")
    assert summary["threshold"] == pytest.approx(np.quantile(scores, 0.99))  # same rows scored and calibrated on
    assert labels.sum() == summary["n_flagged"] == int((scores > summary["threshold"]).sum())


@pytest.mark.parametrize("name", ["data.csv", "data.npy"])
def test_detect_csv_and_npy(table_files, tmp_path, name):
    root, y = table_files
    code, out, err = cli("detect", root / "run", "--data", root / name, "--quantile", "0.9",
                         "--out", tmp_path / "s.csv", "--maps", tmp_path / "maps")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["method"] == "quantile" and "auroc" not in summary  # no labels in these files
    _, scores, labels = read_scores(tmp_path / "s.csv")
    assert len(scores) == len(y)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, scores) > 0.9
    maps = np.load(tmp_path / "maps" / "error_maps.npy")
    assert maps.shape == (len(y), 10)  # per-feature squared errors for a table
    # unit-sigma Gaussian decoder: the nll score is half the map's sum plus 0.5 * D * log(2 pi)
    assert np.allclose(0.5 * maps.sum(1) + 0.5 * 10 * math.log(2 * math.pi), scores, rtol=1e-4)


def test_detect_images_with_maps_and_png(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits", "--out", tmp_path / "run", "--epochs", "1", "--hidden", "16",
                       "--latent-dim", "4", "--max-samples", "300", "--likelihood", "gaussian", "--quiet")
    assert code == 0, err
    code, out, err = cli("detect", tmp_path / "run", "--data", "digits", "--normal-classes", "0,1,2,3,4",
                         "--out", tmp_path / "s.csv", "--maps", tmp_path / "maps", "--png", "4")
    assert code == 0, err
    summary = json.loads(out)
    assert 0.0 <= summary["auroc"] <= 1.0 and summary["n_calibration"] > 0
    maps = np.load(tmp_path / "maps" / "error_maps.npy")
    assert maps.shape == (summary["n_samples"], 1, 8, 8)
    _, scores, _ = read_scores(tmp_path / "s.csv")
    assert np.allclose(maps.reshape(len(maps), -1).sum(1) * 0.5 + 0.5 * 64 * math.log(2 * math.pi), scores, rtol=1e-4)
    from PIL import Image

    assert Image.open(tmp_path / "maps" / "top.png").size == (3 * 9 - 1, 4 * 9 - 1)  # 3 columns x 4 rows of 8x8
    top = json.loads((tmp_path / "maps" / "top.json").read_text())
    assert top["score"] == sorted(scores, reverse=True)[:4]


@pytest.mark.parametrize("extra, match", [
    (["--contamination", "0.7"], "contamination must be a number in (0, 0.5]"),
    (["--quantile", "0"], "quantile must be a number in (0, 1]"),
    (["--png", "4"], "--png N draws the error maps"),
])
def test_detect_option_errors(table_files, tmp_path, extra, match):
    root, _ = table_files
    code, _, err = cli("detect", root / "run", "--data", root / "data.npy", "--out", tmp_path / "s.csv", *extra)
    assert code == 2 and match in err and "Traceback" not in err


def test_detect_data_errors(table_files, tmp_path):
    root, _ = table_files
    code, _, err = cli("detect", root / "run", "--data", root / "narrow.csv", "--out", tmp_path / "s.csv")
    assert code == 1 and "expected (batch, 10)" in err  # the model was built for 10 features
    code, _, err = cli("detect", root / "run", "--data", root / "missing.csv", "--out", tmp_path / "s.csv")
    assert code == 1 and "missing.csv: no such file" in err
    code, _, err = cli("detect", tmp_path / "norun", "--data", root / "data.npy", "--out", tmp_path / "s.csv")
    assert code == 1 and "does not exist" in err
    code, _, err = cli("detect", root / "run", "--data", root / "data.npy", "--out", tmp_path / "s.txt")
    assert code == 2 and "--out must end in .csv" in err
    code, _, err = cli("detect", root / "run", "--data", root / "data.npy", "--out", tmp_path / "s.csv",
                       "--png", "2", "--maps", tmp_path / "m")
    assert code == 2 and "--png needs an image model" in err
    code, _, err = cli("detect", root / "run", "--data", root / "data.npy", "--out", tmp_path / "s.csv", "--contaminaton", "0.1")
    assert code == 2 and "Did you mean '--contamination'" in err


# ---------------------------------------------------------------------- contamination, as scikit-learn means it
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A run trained on rank-2 tables (8 features) and a file to score: 192 normal rows and 8 planted outliers."""
    from cli_helpers import cli

    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 8))

    def normal(n):
        return (rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 8))).astype(np.float32)

    np.save(root / "train.npy", normal(400))
    x = np.concatenate([normal(192), (4.0 * rng.normal(size=(8, 8))).astype(np.float32)])
    y = np.r_[np.zeros(192), np.ones(8)].astype(np.int64)  # 1 = outlier, the ODDS convention
    np.savez(root / "scored.npz", x=x, y=y)
    code, _, err = cli("train", "ae", "--data", root / "train.npy", "--latent-dim", "2", "--hidden", "16",
                       "--epochs", "40", "--batch-size", "32", "--quiet", "--out", root / "run")
    assert code == 0, err
    return root


def test_contamination_applies_to_the_scored_data(planted, tmp_path):
    from cli_helpers import cli

    code, out, err = cli("detect", planted / "run", "--data", planted / "scored.npz", "--contamination", "0.04",
                         "--out", tmp_path / "s.csv")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["auroc"] == 1.0
    assert summary["calibrated_on"] == "scored data" and summary["n_calibration"] == 200
    assert "the scored data" in summary["calibration"] and "the scored data" in err
    labels = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)[:, 2]
    assert labels[192:].sum() == 8 and labels[:192].sum() == 0  # exactly the 8 planted outliers


def test_a_calibration_set_keeps_its_meaning(planted, tmp_path):
    from cli_helpers import cli

    code, out, err = cli("detect", planted / "run", "--data", planted / "scored.npz", "--quantile", "0.99",
                         "--out", tmp_path / "s.csv")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["calibrated_on"] == "held-out data" and "[val]" in summary["calibration"]
    code, out, err = cli("detect", planted / "run", "--data", planted / "scored.npz", "--contamination", "0.04",
                         "--calibration", planted / "train.npy", "--out", tmp_path / "s2.csv")
    assert code == 0, err
    assert json.loads(out)["calibrated_on"] == "held-out data"


def test_detect_without_calibration_needs_contamination():
    model = aekit.build("ae", input_shape=(4,), latent_dim=2, hidden=[4], seed=0).eval()
    x = torch.rand(50, 4)
    result = detect(model, x, contamination=0.1)
    assert result.calibrated_on == "scored data" and int(result.labels.sum()) == 5
    with pytest.raises(ConfigError, match="needs held-out normal data"):
        detect(model, x, quantile=0.9)


def test_detect_max_samples_keeps_the_data_row_numbers(planted, tmp_path):
    from cli_helpers import cli

    code, out, err = cli("detect", planted / "run", "--data", planted / "scored.npz", "--contamination", "0.1",
                         "--max-samples", "40", "--out", tmp_path / "s.csv")
    assert code == 0, err
    table = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    rows = table[:, 0].astype(int)
    assert len(rows) == 40 and np.all(np.diff(rows) > 0) and rows.max() < 200 and rows.max() >= 40
    code, _, err = cli("detect", planted / "run", "--data", planted / "scored.npz", "--contamination", "0.1",
                       "--out", tmp_path / "all.csv")
    assert code == 0, err
    full = np.loadtxt(tmp_path / "all.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 1], full[rows, 1], rtol=1e-6)  # the same rows, the same scores
