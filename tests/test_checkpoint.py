"""Checkpoint layer: nested-state round trips without pickle, atomic writes, corrupted files."""

from __future__ import annotations

import errno
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import load as st_load

import aekit
from aekit import checkpoint as ckpt
from aekit.errors import CheckpointError


def _tiny_model(seed: int = 0):
    return aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=seed)


def _assert_same(a, b, path="state"):
    """Recursive equality with exact tensor comparison and container types kept."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _roundtrip(obj):
    """flatten -> JSON skeleton + safetensors bytes -> parse both back -> unflatten (the on-disk path)."""
    skeleton, tensors = ckpt.flatten_state(obj)
    skeleton = json.loads(json.dumps(skeleton))  # must be plain JSON
    tensors = st_load(ckpt.tensors_to_bytes(tensors))
    return ckpt.unflatten_state(skeleton, tensors)


def _adam_after_steps(model, steps=3):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    x = torch.rand(16, 1, 8, 8)
    for _ in range(steps):
        opt.zero_grad()
        model(x).loss.backward()
        opt.step()
    return opt


# ---------------------------------------------------------------------- flatten / unflatten
def test_flatten_unflatten_roundtrip_of_a_real_adam_state_dict():
    model = _tiny_model()
    opt = _adam_after_steps(model)
    state = opt.state_dict()
    assert state["state"], "Adam should have per-parameter state after steps"
    restored = _roundtrip(state)
    _assert_same(state, restored)
    # integer parameter ids stay ints, betas stay a tuple
    assert all(isinstance(k, int) for k in restored["state"])
    assert isinstance(restored["param_groups"][0]["betas"], tuple)

    # loading the restored state continues training exactly like the original optimizer
    twin = _tiny_model()
    twin.load_state_dict(model.state_dict())
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-2, betas=(0.8, 0.95))
    twin_opt.load_state_dict(restored)
    x = torch.rand(16, 1, 8, 8)
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        m(x).loss.backward()
        o.step()
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k


def test_flatten_roundtrip_of_scheduler_and_rng_states():
    model = _tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    opt.step()
    sched.step()
    gen = torch.Generator().manual_seed(5)
    state = {"scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "gen": gen.get_state(),
             "nothing": None, "flag": True, "nested": [1, (2.5, "x"), {"a": torch.arange(3)}]}
    restored = _roundtrip(state)
    _assert_same(state, restored)
    gen2 = torch.Generator()
    gen2.set_state(restored["gen"])
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=gen2))


def test_flatten_refuses_values_that_would_need_pickle():
    with pytest.raises(CheckpointError, match="without pickle"):
        ckpt.flatten_state({"a": {1, 2}})


def test_unflatten_with_a_missing_tensor_is_a_checkpoint_error():
    skeleton, tensors = ckpt.flatten_state({"w": torch.ones(2)})
    with pytest.raises(CheckpointError, match="missing tensor"):
        ckpt.unflatten_state(skeleton, {})


# ---------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_atomic_write_bytes_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch, fail):
    target = tmp_path / "file.bin"
    ckpt.atomic_write_bytes(target, b"old contents")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, fail, disk_full)
    with pytest.raises(OSError):
        ckpt.atomic_write_bytes(target, b"new contents that never land" * 100)
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"], "the temporary file must be removed"


def test_atomic_write_bytes_replaces_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "f.json"
    ckpt.atomic_write_json(target, {"x": 1})
    ckpt.atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


# ---------------------------------------------------------------------- model save / load
def test_save_load_roundtrip_is_bit_identical(tmp_path):
    model = _tiny_model()
    aekit.save(model, tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert not loaded.training
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.rand(5, 1, 8, 8)
    model.eval()
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_load_of_a_damaged_weights_file_names_corruption(tmp_path, damage):
    aekit.save(_tiny_model(), tmp_path)
    weights = tmp_path / ckpt.WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted or truncated") as info:
        aekit.load(tmp_path)
    assert str(weights) in str(info.value)


def test_load_of_a_truncated_file_is_a_checkpoint_error(tmp_path):
    aekit.save(_tiny_model(), tmp_path)
    weights = tmp_path / ckpt.WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        aekit.load(tmp_path)


def test_a_pickle_disguised_as_weights_is_never_unpickled(tmp_path):
    aekit.save(_tiny_model(), tmp_path)

    class Boom:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "pwned"),))

    (tmp_path / ckpt.WEIGHTS_NAME).write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        aekit.load(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_load_errors_for_missing_dir_bad_json_and_format_version(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        aekit.load(tmp_path / "nope")
    aekit.save(_tiny_model(), tmp_path)
    cfg = tmp_path / ckpt.CONFIG_NAME
    good = cfg.read_text()
    cfg.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        aekit.load(tmp_path)
    meta = json.loads(good)
    meta["format_version"] = 999
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version"):
        aekit.load(tmp_path)


def test_weights_file_checks_itself_without_the_config(tmp_path):
    """The checksum lives in the safetensors header: a flipped payload byte is caught by read_tensors alone."""
    aekit.save(_tiny_model(), tmp_path)
    weights = tmp_path / ckpt.WEIGHTS_NAME
    good = ckpt.read_tensors(weights)
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's bytes, the header stays valid JSON
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        ckpt.read_tensors(weights)
    assert good  # the intact file had loaded
