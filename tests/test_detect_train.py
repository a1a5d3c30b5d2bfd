"""`aekit detect --train TRAIN --data TEST`: the recommended detector for tables from the command line, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import cli, read_scores

from aekit.tasks.sklearn import AutoencoderOutlierDetector

pytestmark = pytest.mark.usefixtures("no_fsync")
FAST = ["--epochs", "2"]  # tiny tables, two epochs: the command's plumbing, not the detector's quality


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """60 x 5 training rows (.npy), 30 test rows (.mat, ODDS form) with 5 planted outliers, and bad files."""
    from scipy.io import savemat

    root = tmp_path_factory.mktemp("detect_train")
    rng = np.random.default_rng(0)
    np.save(root / "train.npy", rng.normal(size=(60, 5)) * [1, 2, 3, 4, 5])
    test = rng.normal(size=(30, 5)) * [1, 2, 3, 4, 5]
    test[:5] += 12.0  # far from the training rows
    y = np.r_[np.ones(5), np.zeros(25)]
    savemat(root / "test.mat", {"X": test, "y": y[:, None]})
    np.save(root / "narrow.npy", rng.normal(size=(10, 4)))
    bad = rng.normal(size=(10, 5))
    bad[3, 2] = np.nan
    np.save(root / "nan.npy", bad)
    np.save(root / "images.npy", rng.random(size=(10, 8, 8)))
    return root, test, y


def test_fit_score_save_and_rescore(tables, tmp_path):
    root, test, y = tables
    code, out, err = cli("detect", "--train", root / "train.npy", "--data", root / "test.mat", "--out",
                         tmp_path / "scores.csv", *FAST)
    assert code == 0, err
    summary = json.loads(out)
    saved = tmp_path / "scores.detector"  # the default: beside --out
    assert summary["detector"] == str(saved) and f"saved the fitted detector to {saved}" in err
    assert summary["method"] == "contamination" and summary["level"] == 0.1 and summary["n_calibration"] == 60
    assert summary["params"]["n_estimators"] == 5 and summary["params"]["epochs"] == 2  # the defaults, --epochs
    assert summary["auroc"] == 1.0, summary  # planted 12 units away
    index, scores, labels = read_scores(tmp_path / "scores.csv")
    assert index.tolist() == list(range(30))
    assert labels.tolist() == (scores > summary["threshold"]).astype(int).tolist()
    det = AutoencoderOutlierDetector.load(saved)
    x32 = test.astype(np.float32).astype(np.float64)  # the command reads tables as float32
    assert np.allclose(scores, -det.score_samples(x32), rtol=0, atol=0)
    assert summary["threshold"] == -det.offset_ and det.random_state == 0
    assert json.loads((tmp_path / "scores.json").read_text()) == summary

    code, out2, err = cli("detect", saved, "--data", root / "test.mat", "--out", tmp_path / "again.csv")
    assert code == 0, err
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "scores.csv").read_text()  # identical re-scoring
    assert json.loads(out2)["threshold"] == summary["threshold"]


def test_the_threshold_flags_the_contamination_share_of_the_training_rows(tables, tmp_path):
    root, _, _ = tables
    code, out, err = cli("detect", "--train", root / "train.npy", "--data", root / "train.npy", "--out",
                         tmp_path / "s.csv", "--contamination", "0.2", "--save", tmp_path / "det", "--seed", "3", *FAST)
    assert code == 0, err
    summary = json.loads(out)
    # offset_ is the 20th percentile of 60 training scores (linear interpolation at position 11.8): 12 rows below it
    assert summary["level"] == 0.2 and summary["n_flagged"] == 12 and "auroc" not in summary
    det = AutoencoderOutlierDetector.load(tmp_path / "det")
    assert det.contamination == 0.2 and det.random_state == 3


def test_bad_input_is_one_line_and_non_zero(tables, tmp_path):
    root, _, _ = tables
    s = ["--out", tmp_path / "s.csv"]
    cases = [
        (["--train", root / "missing.npy", "--data", root / "test.mat", *s], 1, "--train: "),
        (["--train", root / "train.npy", "--data", root / "narrow.npy", *s], 1, "has 4 columns, but the detector was fitted on 5"),
        (["--train", root / "train.npy", "--data", root / "nan.npy", *s], 1, "NaN or inf"),
        (["--train", root / "nan.npy", "--data", root / "train.npy", *s], 1, "--train: "),
        (["--train", root / "images.npy", "--data", root / "train.npy", *s], 1, "the fitted detector is for tables"),
        (["--train", root / "train.npy", "--data", root / "test.mat", "--quantile", "0.9", *s], 2, "--quantile applies to a run"),
        (["--train", root / "train.npy", "--data", root / "test.mat", "--contamination", "0.7", *s], 2,
         "contamination must be a number in (0, 0.5]"),
        (["--train", root / "train.npy", *s], 2, "--data SRC is required"),
        ([root, "--train", root / "train.npy", "--data", root / "test.mat", *s], 2, "not both"),
        (["--data", root / "test.mat", *s], 2, "give a run folder"),
        ([root, "--data", root / "test.mat", *s], 1, "neither a run folder"),
        (["--train", root / "train.npy", "--data", root / "test.mat", "--save", root, *s], 2,
         "does not hold a saved detector"),
    ]
    for args, want, match in cases:
        code, out, err = cli("detect", *args)
        assert code == want and match in err, (args, code, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.csv").exists()


def test_a_saved_detector_refuses_fitting_options(tables, tmp_path):
    root, _, _ = tables
    code, _, err = cli("detect", "--train", root / "train.npy", "--data", root / "test.mat", "--out", tmp_path / "s.csv",
                       *FAST)
    assert code == 0, err
    for extra, match in ([["--contamination", "0.2"], "applies when fitting"], [["--epochs", "3"], "applies when fitting"],
                         [["--maps", tmp_path / "m"], "--maps applies to a run"]):
        code, _, err = cli("detect", tmp_path / "s.detector", "--data", root / "narrow.npy", "--out",
                           tmp_path / "t.csv", *extra)
        assert code == 2 and match in err, err
    code, _, err = cli("detect", tmp_path / "s.detector", "--data", root / "narrow.npy", "--out", tmp_path / "t.csv")
    assert code == 1 and "fitted on 5" in err


def test_a_run_trained_on_a_table_suggests_the_detector_once(tables, tmp_path):
    root, _, _ = tables
    code, _, err = cli("train", "ae", "--data", root / "train.npy", "--out", tmp_path / "run", "--epochs", "1",
                       "--quiet")
    assert code == 0, err
    code, _, err = cli("detect", tmp_path / "run", "--data", root / "test.mat", "--contamination", "0.1",
                       "--out", tmp_path / "s.csv")
    assert code == 0, err
    assert err.count("aekit detect --train") == 1
    code, _, err = cli("detect", tmp_path / "run", "--data", root / "test.mat", "--out", tmp_path / "s.csv",
                       "--epochs", "2")
    assert code == 2 and "--epochs applies to the fitted detector" in err
