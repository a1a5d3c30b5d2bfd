"""Runs written by the release before the second-edition core load and give the same numbers.

The folders under tests/fixtures/v1/ were written once by tests/fixtures/v1/make.sh with that
release (their configs use its flat keys: bottleneck='deterministic', code_activation, sigma,
quantization_noise, ...) and are never regenerated. expected.json holds what that release
computed from them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from cli_helpers import cli

V1 = Path(__file__).parent / "fixtures" / "v1"
EXPECTED = json.loads((V1 / "expected.json").read_text())
MODELS = ("ae", "vae", "sparse_kl", "dae", "cae", "conv", "cvae", "ae_quant")


def inputs(name: str):
    lab = np.load(V1 / "labelled.npz")
    if name == "conv":
        return torch.from_numpy(np.load(V1 / "images.npy"))[:5], None
    if name == "cvae":
        return torch.from_numpy(lab["x"][:5]), torch.from_numpy(lab["y"][:5])
    if name == "stacked":
        return torch.from_numpy(lab["x"][:5]), None
    return torch.from_numpy(np.load(V1 / "table.npy"))[:5], None


@pytest.mark.parametrize("name", MODELS)
def test_v1_run_loads_and_gives_the_same_numbers(name):
    model = aekit.load(V1 / name).eval()
    x, y = inputs(name)
    with torch.no_grad():
        rec = model.reconstruct(x, y)
        z = model.encode(x, y)
    want = EXPECTED[name]
    assert float(rec.double().sum()) == pytest.approx(want["reconstruct_sum"], rel=1e-5, abs=1e-5)
    assert float(z.double().sum()) == pytest.approx(want["encode_sum"], rel=1e-5, abs=1e-5)
    assert rec.reshape(5, -1)[0, :4].tolist() == pytest.approx(want["reconstruct_first"], rel=1e-5, abs=1e-6)


def test_v1_stacked_run_loads():
    model = aekit.load(V1 / "stacked").eval()
    x, _ = inputs("stacked")
    with torch.no_grad():
        assert float(model.encode(x).double().sum()) == pytest.approx(EXPECTED["stacked"]["encode_sum"], rel=1e-5)


def test_v1_segmentation_run_loads():
    from aekit.tasks.segmentation import load_segmenter

    seg = load_segmenter(V1 / "seg").eval()
    img = torch.from_numpy(np.random.default_rng(3).random((1, 1, 32, 32)).astype(np.float32))
    with torch.no_grad():
        assert float(seg(img).double().sum()) == pytest.approx(EXPECTED["seg"]["logits_sum"], rel=1e-5)


def test_v1_container_decodes_to_the_same_numbers(tmp_path):
    out = tmp_path / "decoded.npy"
    code, _, err = cli("decompress", V1 / "ae_quant", V1 / "table.aekc", "--out", out)
    assert code == 0, err
    decoded = np.load(out)
    assert list(decoded.shape) == EXPECTED["aekc_shape"]
    assert float(decoded.astype(np.float64).sum()) == pytest.approx(EXPECTED["aekc_decoded_sum"], rel=1e-6)


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_v1_run_resumes_with_the_current_trainer(tmp_path, name):
    run = tmp_path / name
    shutil.copytree(V1 / name, run)
    data = "labelled.npz" if name == "cvae" else "table.npy"
    shutil.copy(V1 / data, tmp_path / data)
    info = json.loads((run / "run.json").read_text())
    info["data"]["source"] = str(tmp_path / data)  # the fixture recorded the path where it was made
    (run / "run.json").write_text(json.dumps(info))
    code, _, err = cli("train", name, "--out", run, "--resume", "--epochs", "2", "--quiet")
    assert code == 0, err
    assert json.loads((run / "checkpoints" / "last.json").read_text())["epoch"] == 2
    aekit.load(run)
