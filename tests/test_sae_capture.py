"""Capturing a layer's activations by name into a store: MLPs, conv maps, token sequences, aekit runs, errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import aekit
from aekit.errors import ConfigError
from aekit.tasks.sae.capture import capture, find_layer, flatten, resolve_layout, unflatten

FIXTURES = Path(__file__).parent / "fixtures" / "v1"


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def test_capture_mlp_hidden_layer_equals_its_output(tmp_path):
    model, x = _mlp(), torch.randn(23, 4)
    store = capture(model, layer="1", data=x, store=tmp_path / "s", batch_size=5)
    assert len(store) == 23 and store.d == 6
    np.testing.assert_allclose(store.rows, torch.relu(model[0](x)).detach().numpy(), atol=1e-6)
    assert not model._forward_hooks and not model[1]._forward_hooks  # hook removed


def test_capture_conv_map_gives_one_row_per_position(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 2))
    x = torch.randn(3, 1, 4, 4)
    store = capture(model, layer="0", data=[(x[:2], torch.zeros(2)), (x[2:], torch.zeros(1))], store=tmp_path / "s")
    expected = model[0](x).detach().permute(0, 2, 3, 1).reshape(-1, 5)  # (B*H*W, C)
    assert len(store) == 3 * 16 and store.d == 5
    np.testing.assert_array_equal(store.rows, expected.numpy())


def test_capture_token_sequence_and_tuple_output(tmp_path):
    torch.manual_seed(0)
    rnn = nn.GRU(3, 4, batch_first=True)

    class Host(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)[0].sum()

    x = torch.randn(2, 5, 3)  # (B, T, d)
    store = capture(Host(), layer="rnn", data=x, store=tmp_path / "s")  # GRU returns (output, h): output picked
    np.testing.assert_array_equal(store.rows, rnn(x)[0].detach().reshape(-1, 4).numpy())


def test_written_in_chunks_with_max_rows(tmp_path, monkeypatch):
    import importlib

    capture_module = importlib.import_module("aekit.tasks.sae.capture")  # the module (the package exports the function)

    monkeypatch.setattr(capture_module, "WRITE_BYTES", 3 * 6 * 4)  # a write every 3 rows of 6 floats
    model, x = _mlp(), torch.randn(23, 4)
    store = capture(model, layer="1", data=x, store=tmp_path / "s", batch_size=2, max_rows=17)
    assert len(store) == 17
    np.testing.assert_allclose(store.rows, torch.relu(model[0](x[:17])).detach().numpy(), atol=1e-6)
    store.verify()


def test_max_rows_and_float16(tmp_path):
    store = capture(_mlp(), layer="0", data=torch.randn(50, 4), store=tmp_path / "s", batch_size=8, max_rows=20,
                    dtype="float16")
    assert len(store) == 20 and store.rows.dtype == np.float16


def test_capture_from_an_aekit_run_folder(tmp_path):
    model = aekit.load(FIXTURES / "ae")
    x = torch.randn(7, 6)
    store = capture(FIXTURES / "ae", layer="encoder", data=x, store=tmp_path / "s")
    with torch.no_grad():
        h = model.encoder(x)
    h = h[0] if isinstance(h, tuple) else h
    assert len(store) == 7
    np.testing.assert_allclose(store.rows, h.numpy(), atol=1e-6)
    store = capture(FIXTURES / "ae", layer="bottleneck", data=x, store=tmp_path / "z")  # a Code: its z
    np.testing.assert_allclose(store.rows, model.encode(x).detach().numpy(), atol=1e-6)


def test_capture_a_run_folder_on_its_own_data(tmp_path):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "ae", run)
    info = json.loads((run / "run.json").read_text())
    info["data"]["source"] = str(FIXTURES / "table.npy")  # the fixture records where it was made
    (run / "run.json").write_text(json.dumps(info))
    store = capture(run, layer="bottleneck", store=tmp_path / "s")
    from aekit.training.runs import load_run, run_data

    model, info = load_run(run)
    held_out = run_data(info, model=model)[0]
    assert 0 < len(store) == held_out.shape[0] < np.load(FIXTURES / "table.npy").shape[0]  # the held-out part
    np.testing.assert_allclose(store.rows, model.encode(held_out).detach().numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match="data is required"):
        capture(_mlp(), layer="0", store=tmp_path / "t")


def test_layer_names_are_checked_with_did_you_mean(tmp_path):
    with pytest.raises(ConfigError, match=r"layer 'decodr.net'.*Did you mean 'decoder.net'\?") as info:
        capture(FIXTURES / "ae", layer="decodr.net", data=torch.randn(2, 6), store=tmp_path / "s")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="dtype must be one of 'float32', 'float16'; got 'float64'"):
        capture(_mlp(), layer="0", data=torch.randn(2, 4), store=tmp_path / "s", dtype="float64")
    capture(_mlp(), layer="0", data=torch.randn(2, 4), store=tmp_path / "kept")
    with pytest.raises(ConfigError, match="already holds"):
        capture(_mlp(), layer="0", data=torch.randn(2, 4), store=tmp_path / "kept")
    with pytest.raises(ConfigError, match="layout"):
        capture(_mlp(), layer="0", data=torch.randn(2, 4), store=tmp_path / "s", layout="nhwc")

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.extra = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    unused = Unused()
    with pytest.raises(ConfigError, match="did not run"):
        capture(unused, layer="extra", data=torch.randn(2, 4), store=tmp_path / "t")


def test_flatten_unflatten_round_trip():
    conv = nn.Conv1d(2, 3, 1)
    for act, module, kind in ((torch.randn(2, 3, 4, 5), None, "channels_first"), (torch.randn(2, 3, 7), conv, "channels_first"),
                              (torch.randn(2, 7, 3), None, "channels_last"), (torch.randn(4, 3), None, "flat")):
        layout = resolve_layout(act, module)
        assert layout == kind
        rows = flatten(act, layout)
        assert rows.shape[1] == 3
        assert torch.equal(unflatten(rows, act, layout), act)
    assert find_layer(_mlp(), "2").out_features == 3
