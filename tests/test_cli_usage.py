"""Small things a new user meets first: exit codes, compare's order of work and its table, file modes,
warnings about silent changes to the data, and pytest's summary line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--max-samples", "200", "--epochs", "1", "--hidden", "16", "--latent-dim", "3", "--quiet"]


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("usage") / "ae"
    code, _, err = cli("train", "ae", "--data", "digits", *TINY, "--out", out)
    assert code == 0, err
    return out


@pytest.mark.parametrize("args", [
    ["train", "vea", "--data", "digits", "--out", "{tmp}/r"],  # a mistyped variant
    ["train", "ae", "--data", "digits"],  # --out missing
    ["train", "ae", "--data", "digits", "--noise", "gausian:0.1", "--out", "{tmp}/r"],  # a bad option value
    ["compress", "{run}", "--data", "digits", "--bits", "17", "--out", "{tmp}/x.aekc"],
    ["sample", "{run}", "--out", "{tmp}/s.txt"],
])
def test_argument_errors_exit_2_like_usage_errors(args, run, tmp_path):
    code, _, err = cli(*[a.format(tmp=tmp_path, run=run) for a in args])
    assert code == 2, err
    assert err.startswith("aekit: error: ") and len(err.strip().splitlines()) == 1


def test_other_errors_still_exit_1(tmp_path):
    code, _, err = cli("evaluate", tmp_path / "nothing")  # a missing run: not a usage error
    assert code == 1 and "does not exist" in err
    code, _, err = cli("train", "ae", "--data", tmp_path / "missing.npy", "--out", tmp_path / "r")
    assert code == 1 and "no such file" in err


def test_compare_checks_every_name_before_training_any(tmp_path):
    work = tmp_path / "work"
    code, _, err = cli("compare", "ae", "vea", "--data", "digits", "--epochs", "1", "--workdir", work,
                       "--out", tmp_path / "c.html")
    assert code == 2 and "Did you mean 'vae'" in err
    assert "training ae" not in err and not (work / "ae").exists()


def test_compare_prints_its_table(run, tmp_path):
    code, out, err = cli("compare", run, "--out", tmp_path / "c.html")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "variant", "latent", "params"] and "mse_per_pixel" in lines[0]
    assert lines[2].split()[:3] == ["ae", "ae", "3"]
    assert lines[3].startswith("PCA (baseline)")  # the baseline the demo prints, at the same code size
    assert f"wrote {tmp_path / 'c.html'} and {tmp_path / 'c.md'}" in out
    assert "PCA (baseline)" in (tmp_path / "c.html").read_text() and "PCA (baseline)" in (tmp_path / "c.md").read_text()


def test_output_files_get_the_usual_mode(run, tmp_path):
    old = os.umask(0o022)
    try:
        code, _, err = cli("encode", run, "--out", tmp_path / "z.npy")
        assert code == 0, err
        code, _, err = cli("report", run, "--out", tmp_path / "r.html")
        assert code == 0, err
    finally:
        os.umask(old)
    for name in ("z.npy", "r.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE((run / "run.json").stat().st_mode) & 0o044  # readable by others (umask permitting)


def test_image_size_says_when_it_stretches(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (10, 20), dtype=np.uint8)).save(folder / f"{i}.png")  # 10x20 (HxW)
    code, _, err = cli("train", "ae", "--data", folder, "--image-size", "16", "--epochs", "1", "--quiet",
                       "--out", tmp_path / "r")
    assert code == 0, err
    assert "aekit: warning:" in err and "12 of 12 images change aspect ratio" in err and "stretched" in err
    code, _, err = cli("train", "ae", "--data", folder, "--image-size", "8,16", "--epochs", "1", "--quiet",
                       "--out", tmp_path / "r2")
    assert code == 0 and "aspect ratio" not in err  # same proportions: nothing to say


def test_pytest_prints_its_summary_line(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(tmp_path), str(tmp_path / "test_one.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
