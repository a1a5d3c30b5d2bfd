"""One rule for the units of every output (aekit.units): the loaded data's units, clipped to the data's
range where it is bounded; the same for every command and for the ONNX export's metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import cli

import aekit
from aekit.data import load_data
from aekit.units import OutputUnits


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""


def push_outputs_out_of_range(run) -> None:
    """Shift the last decoder layer's bias by +-3 so that the decoded means leave [0, 1] on both sides
    (a badly fitted model does that on its own); every command must still write in-range data."""
    model = aekit.load(run)
    last = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        sign = torch.ones_like(last.bias)
        sign[::2] = -1.0
        last.bias += 3.0 * sign
    aekit.save(model, run)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A gaussian vae on a labelled uint8 image file (0..240, so its units are 0..255) and an ae on a
    standardized table."""
    root = tmp_path_factory.mktemp("units")
    ds = load_data("digits", seed=0, max_samples=240)
    images = np.round(ds.train[:, 0].numpy() * 240).astype(np.uint8)  # (N, 8, 8) uint8
    np.savez(root / "images.npz", x=images, y=ds.y_train.numpy())
    table = np.random.default_rng(0).normal(loc=5.0, scale=3.0, size=(120, 6)).astype(np.float32)
    np.save(root / "table.npy", table)
    for name, args in (("vae", ["vae", "--data", root / "images.npz", "--likelihood", "gaussian"]),
                       ("table", ["ae", "--data", root / "table.npy", "--standardize"])):
        code, _, err = cli("train", *args, "--epochs", "1", "--hidden", "16", "--latent-dim", "3", "--quiet",
                           "--out", root / name)
        assert code == 0, err
    push_outputs_out_of_range(root / "vae")
    push_outputs_out_of_range(root / "table")
    return root


def in_data_units(array: np.ndarray) -> None:
    """uint8 data: every value in [0, 255], and the clipping reached both ends."""
    assert array.min() == 0.0 and array.max() == 255.0, (array.min(), array.max())


def test_every_command_writes_the_loaded_data_units_clipped(runs, tmp_path):
    run, data = runs / "vae", runs / "images.npz"
    commands = {
        "reconstruct": ["reconstruct", run, "--data", data, "--out", tmp_path / "reconstruct.npy"],
        "sample": ["sample", run, "-n", "32", "--out", tmp_path / "sample.npy"],
        "interpolate": ["interpolate", run, "--pair", "0,5", "--steps", "6", "--out", tmp_path / "interpolate.npy"],
        "denoise": ["denoise", run, "--data", data, "--noise", "gaussian:0.2", "--out", tmp_path / "denoise.npy"],
    }
    for name, args in commands.items():
        code, _, err = cli(*args)
        assert code == 0, f"{name}: {err}"
        in_data_units(np.load(tmp_path / f"{name}.npy"))
    code, _, err = cli("augment", run, "-n", "40", "--out", tmp_path / "augment.npz")
    assert code == 0, err
    in_data_units(np.load(tmp_path / "augment.npz")["x"])
    code, _, err = cli("compress", run, "--data", data, "--bits", "8", "--out", tmp_path / "c.aekc")
    assert code == 0, err
    code, _, err = cli("decompress", run, tmp_path / "c.aekc", "--out", tmp_path / "decompress.npy")
    assert code == 0, err
    in_data_units(np.load(tmp_path / "decompress.npy"))


def test_unbounded_tables_are_converted_but_not_clipped(runs, tmp_path):
    run = runs / "table"
    code, _, err = cli("reconstruct", run, "--out", tmp_path / "r.npy")
    assert code == 0, err
    ds = load_data(str(runs / "table.npy"), standardize=True)
    model = aekit.load(run)
    with torch.no_grad():
        expected = model.reconstruct(ds.val) * ds.scale + ds.offset  # (Nv, 6), no clipping
    got = np.load(tmp_path / "r.npy")
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-4)
    raw = np.load(runs / "table.npy")
    assert got.max() > raw.max()  # beyond the data's own range: tables are not clipped


def test_the_rule_itself():
    units = OutputUnits(scale=255.0, offset=0.0, bounded=True)
    x = torch.tensor([[-0.5, 0.0, 0.5, 1.0, 1.5]])
    assert units.to_raw(x).tolist() == [[0.0, 0.0, 127.5, 255.0, 255.0]]
    assert units.range() == [0.0, 255.0]
    free = OutputUnits(scale=2.0, offset=-1.0, bounded=False)
    assert free.to_raw(x).tolist() == [[-2.0, -1.0, 0.0, 1.0, 2.0]] and free.range() is None
    old = OutputUnits.from_run({}, aekit.build("ae", input_shape=(1, 4, 4), latent_dim=2, hidden=[4]))
    assert old.bounded and old.range() == [0.0, 1.0]  # a run that recorded no dataset: images in [0, 1]


def test_the_onnx_metadata_states_the_rule(runs, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    code, out, err = cli("export", runs / "vae", "--out", tmp_path / "onnx")
    assert code == 0, err
    meta = json.loads((tmp_path / "onnx" / "aekit-onnx.json").read_text())
    units = meta["output_units"]
    assert units["clip_model_output_to"] == [0.0, 1.0] and units["scale"] == 255.0 and units["offset"] == 0.0
    assert units["data_range"] == [0.0, 255.0] and "clip" in units["rule"]
