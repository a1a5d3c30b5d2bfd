"""Faults, end to end through `aekit train`: SIGKILL and --resume, corrupted checkpoints, a full disk.

Tolerance: none. The trainer saves every random stream with each checkpoint, so a run killed at
any point and resumed ends with bit-identical weights and identical per-epoch metrics (every
history field except the wall-clock "time").
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit.errors import CheckpointError
from cli_helpers import cli

ARGS = ["ae", "--batch-size", "16", "--latent-dim", "3", "--hidden", "16", "--seed", "3", "--quiet", "--device", "cpu",
        "--warmup-steps", "5", "--schedule", "none"]  # a schedule that does not depend on --epochs


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "x.npy"
    x = np.random.default_rng(0).random((320, 16)).astype(np.float32)  # (320, 16): 288 train rows = 18 steps/epoch
    np.save(path, x)
    return path


@pytest.fixture(scope="module")
def whole(data) -> Path:
    """The uninterrupted 5-epoch run every damaged-and-resumed run must reproduce."""
    run = data.parent / "whole"
    code, err = train(data, run, "--epochs", "5")
    assert code == 0, err
    return run


def train(data, out, *extra) -> tuple[int, str]:
    code, _, err = cli("train", *ARGS, "--data", data, "--out", out, *extra)
    return code, err


def resume(out, epochs) -> tuple[int, str]:
    code, _, err = cli("train", "ae", "--out", out, "--resume", "--epochs", epochs, "--quiet")
    return code, err


def history(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in json.loads((run / "history.json").read_text())]


def assert_same_run(a: Path, b: Path, epoch: int) -> None:
    """Bit-identical final checkpoint weights and kept model, identical metrics."""
    assert history(a) == history(b)
    for rel in (f"checkpoints/epoch-{epoch:05d}/model.safetensors", "model.safetensors"):
        wa, wb = load_file(str(a / rel)), load_file(str(b / rel))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), rel


def last_epoch(run: Path) -> int:
    try:
        return json.loads((run / "checkpoints" / "last.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


# ---------------------------------------------------------------------- SIGKILL
def test_sigkill_at_a_random_step_then_resume_ends_bit_identical(data, tmp_path):
    epochs = 10
    rng = random.Random(20261122)  # seeded: the kill point is reproducible in distribution
    kill_after, delay = rng.randint(2, 6), rng.uniform(0.0, 0.05)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "aekit", "train", *ARGS, "--data", str(data), "--out", str(run),
                             "--epochs", str(epochs)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while last_epoch(run) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)  # somewhere inside a later epoch (or its checkpoint write)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    killed_at = last_epoch(run)
    assert kill_after <= killed_at < epochs, "the process was not killed mid-run"

    code, err = resume(run, epochs)
    assert code == 0, err
    code, err = train(data, tmp_path / "whole", "--epochs", epochs)
    assert code == 0, err
    assert_same_run(run, tmp_path / "whole", epochs)


# ---------------------------------------------------------------------- corrupted checkpoints
def flip_byte(path: Path, offset_from_end: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip state", "truncate weights", "flip weights", "edit state.json"])
def test_corrupted_newest_checkpoint_is_detected_and_the_previous_one_used(data, whole, tmp_path, no_fsync, damage):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "3")[0] == 0
    newest = run / "checkpoints" / "epoch-00003"
    if damage == "flip state":
        flip_byte(newest / "state.safetensors")
    elif damage == "truncate weights":
        (newest / "model.safetensors").write_bytes((newest / "model.safetensors").read_bytes()[:100])
    elif damage == "flip weights":
        flip_byte(newest / "model.safetensors")
    else:  # valid JSON, wrong numbers: caught by the state file's own checksum
        meta = json.loads((newest / "state.json").read_text())
        meta["step"] += 1
        (newest / "state.json").write_text(json.dumps(meta))
    code, err = resume(run, 5)
    assert code == 0, err
    assert "skipped unreadable checkpoint" in err and "epoch-00003" in err and "resumed from" in err
    assert "corrupted" in err or "checksum" in err or "does not match" in err
    assert str(run / "checkpoints" / "epoch-00002") in err
    assert_same_run(run, whole, 5)  # resuming from epoch 2 is exact too


def test_every_checkpoint_corrupted_is_a_one_line_error_naming_them(data, tmp_path, no_fsync):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "2")[0] == 0
    for d in (run / "checkpoints").glob("epoch-*"):
        flip_byte(d / "state.safetensors")
    code, err = resume(run, 4)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aekit: error: no readable checkpoint")
    assert "epoch-00001" in lines[0] and "epoch-00002" in lines[0]


def test_corrupted_run_model_fails_to_load_with_a_checksum_error(data, tmp_path, no_fsync):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "1")[0] == 0
    flip_byte(run / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        aekit.load(run)


# ---------------------------------------------------------------------- disk full
class _FullDisk:
    """os.fdopen whose files raise OSError(ENOSPC) on write once `armed` and the path matches."""

    def __init__(self, real, target: str):
        self.real, self.target, self.armed, self.hits = real, target, False, 0

    def __call__(self, fd, *args, **kwargs):
        f = self.real(fd, *args, **kwargs)
        path = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        name = Path(path).name  # the temporary name: .<target>.XXXX.tmp
        if self.armed and name.startswith(f".{self.target}."):
            self.hits += 1
            real_write = f.write

            def write(data):
                real_write(data[: len(data) // 2])  # half of it lands, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            f.write = write
        return f


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the file being written")
@pytest.mark.parametrize("target", ["state.safetensors", "model.safetensors", "last.json"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_exits_with_one_line(data, whole, tmp_path, no_fsync,
                                                                                   monkeypatch, target):
    run = tmp_path / "run"
    full = _FullDisk(os.fdopen, target)
    monkeypatch.setattr(os, "fdopen", full)
    snapshot = {}

    def arm(record, trainer):  # after epoch 2's checkpoint: remember it, then the disk fills up
        if record["epoch"] == 2:
            snapshot.update({p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()})
            full.armed = True

    import aekit.training.distributed as distributed

    orig = distributed.make_trainer

    def make_trainer(*args, **kwargs):  # `aekit train` builds its trainer through this
        trainer = orig(*args, **kwargs)
        trainer.callbacks.append(arm)
        return trainer

    monkeypatch.setattr(distributed, "make_trainer", make_trainer)
    code, err = train(data, run, "--epochs", "5")
    monkeypatch.undo()
    assert full.hits == 1
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aekit: error: No space left on device"), err
    assert target in lines[0]  # names the file
    # the previous checkpoint is intact, byte for byte, and last.json still names it
    assert last_epoch(run) == 2
    for p, content in snapshot.items():
        assert p.read_bytes() == content, p
    assert not list(run.rglob("*.tmp"))
    # and the run resumes from it to the same end as an uninterrupted run
    code, err = resume(run, 5)
    assert code == 0, err
    assert_same_run(run, whole, 5)
