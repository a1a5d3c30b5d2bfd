"""Where a run's data live is remembered: absolute paths in run.json, the run's MNIST folder reused by
every command (no download), and an explicit folder that does not exist is refused, not skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from aekit.data import download as download_module

REAL_MNIST = Path(os.environ.get("AEKIT_MNIST_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
needs_mnist = pytest.mark.skipif(not (REAL_MNIST / "t10k-labels-idx1-ubyte.gz").is_file() and
                                 not (REAL_MNIST / "t10k-labels-idx1-ubyte").is_file(),
                                 reason=f"no MNIST IDX files in {REAL_MNIST}")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path, no_fsync):
    """No network, no cache, no $AEKIT_DATA_DIR: only the folders the commands are given or remember."""
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(download_module, "download", no_download)


@needs_mnist
def test_every_command_reuses_the_runs_mnist_folder(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "mnist").symlink_to(REAL_MNIST)  # given as a relative path below
    monkeypatch.chdir(work)
    code, _, err = cli("train", "ae", "--data", "mnist", "--data-dir", "mnist", "--max-samples", "300", "--epochs", "1",
                       "--hidden", "16", "--latent-dim", "4", "--quiet", "--out", "run")
    assert code == 0, err
    data = json.loads((work / "run" / "run.json").read_text())["data"]
    assert data["data_dir"] == str(work / "mnist")  # absolute, as resolved when training
    monkeypatch.chdir(elsewhere)  # another folder: the relative 'mnist' means nothing here
    run = work / "run"
    for args in (["evaluate", run, "--json"],
                 ["encode", run, "--data", "mnist", "--split", "test", "--max-samples", "50", "--out", "z.npy"],
                 ["compress", run, "--data", "mnist", "--max-samples", "50", "--bits", "4", "--out", "t.aekc"],
                 ["denoise", run, "--data", "mnist", "--max-samples", "50", "--noise", "gaussian_clipped:0.5",
                  "--out", "d.npy"],
                 ["detect", run, "--data", "mnist", "--max-samples", "50", "--out", "s.csv"]):
        code, _, err = cli(*args)
        assert code == 0, f"{args[0]}: {err}"
    assert np.load(elsewhere / "z.npy").shape == (50, 4)


def test_a_relative_file_source_is_stored_absolute(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    np.save(work / "table.npy", np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32))
    monkeypatch.chdir(work)
    code, _, err = cli("train", "ae", "--data", "table.npy", "--epochs", "1", "--hidden", "8", "--latent-dim", "2",
                       "--quiet", "--out", "run")
    assert code == 0, err
    assert json.loads((work / "run" / "run.json").read_text())["data"]["source"] == str(work / "table.npy")
    monkeypatch.chdir(elsewhere)
    for args in (["evaluate", work / "run", "--json"], ["report", work / "run", "--out", "r.html"],
                 ["train", "ae", "--resume", "--epochs", "2", "--quiet", "--out", work / "run"]):
        code, _, err = cli(*args)
        assert code == 0, f"{args[0]}: {err}"


def test_an_explicit_data_dir_that_does_not_exist_is_refused(tmp_path):
    code, _, err = cli("train", "ae", "--data", "mnist", "--data-dir", tmp_path / "mnsit", "--out", tmp_path / "r")
    assert code == 1 and "mnsit" in err and "does not exist" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("train", "ae", "--data", "mnist", "--data-dir", tmp_path / "empty", "--out", tmp_path / "r")
    assert code == 1 and "does not hold the mnist files" in err and "t10k-labels-idx1-ubyte.gz" in err
    assert not (tmp_path / "r").exists()
