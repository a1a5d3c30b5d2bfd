"""Resume from any moment: real kills (SIGKILL, SIGINT) at chosen and at random steps, then `--resume`.

Tolerance: none. A run killed anywhere (inside the first epoch before any checkpoint, between two
`--checkpoint-every` checkpoints, right after the last checkpoint) and resumed with its own
command ends with bit-identical weights (the last checkpoint and the kept model) and identical
per-epoch metrics as the uninterrupted run. The kill moments come from tests/kill_worker.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from safetensors.torch import load_file

from aekit.errors import ConfigError
from aekit.training.trainer import TrainConfig, Trainer, parse_checkpoint_every
from cli_helpers import cli

HERE = Path(__file__).resolve().parent
ARGS = ["ae", "--batch-size", "16", "--latent-dim", "3", "--hidden", "16", "--seed", "3", "--quiet", "--device", "cpu",
        "--warmup-steps", "5", "--epochs", "3"]  # 288 train rows: 18 steps per epoch, 54 in all
STEPS = 54


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "x.npy"
    np.save(path, np.random.default_rng(0).random((320, 16)).astype(np.float32))  # (320, 16)
    return path


@pytest.fixture(scope="module")
def whole(data) -> Path:
    run = data.parent / "whole"
    code, _, err = cli("train", *ARGS, "--data", data, "--out", run)
    assert code == 0, err
    return run


def killed(spec: str, data: Path, run: Path, *extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HERE / "kill_worker.py"), spec, "--", "train", *ARGS, "--data", str(data),
           "--out", str(run), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def history(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in json.loads((run / "history.json").read_text())]


def assert_same_run(a: Path, b: Path, epochs: int = 3) -> None:
    assert history(a) == history(b)
    for rel in (f"checkpoints/epoch-{epochs:05d}/model.safetensors", "model.safetensors"):
        wa, wb = load_file(str(a / rel)), load_file(str(b / rel))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), rel


def resume(run: Path, *extra) -> tuple[int, str]:
    code, _, err = cli("train", *ARGS, "--data", "unused-on-resume.npy", "--out", run, "--resume", *extra)
    return code, err


def test_kill_at_the_last_checkpoint_then_resume_keeps_the_best_model(data, whole, tmp_path):
    run = tmp_path / "run"
    proc = killed("last:3", data, run)  # last.json names the final epoch: the process dies right there
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    code, err = resume(run)
    assert code == 0, err
    assert_same_run(run, whole)


def test_kill_inside_the_first_epoch_before_any_checkpoint_starts_over_and_says_so(data, whole, tmp_path):
    run = tmp_path / "run"
    proc = killed("step:7", data, run)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (run / "checkpoints" / "last.json").exists()
    code, err = resume(run)
    assert code == 0, err
    assert "no checkpoint" in err and "from the beginning" in err
    assert_same_run(run, whole)


@pytest.mark.parametrize("every", ["4", "5ms"])
def test_kill_at_random_steps_between_checkpoints_resumes_bit_identical(data, whole, tmp_path, every):
    rng = random.Random(f"20261203:{every}")
    for k in sorted(rng.sample(range(2, STEPS), 2)):  # a step anywhere, the first epoch included
        run = tmp_path / f"run-{k}"
        proc = killed(f"step:{k}", data, run, "--checkpoint-every", every)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        pointer = json.loads((run / "checkpoints" / "last.json").read_text()) if k > 5 else None
        if every == "4" and k > 4:  # the newest checkpoint: the last multiple of 4 (or epoch end) before step k
            assert pointer["step"] == max(s for s in range(1, k) if s % 4 == 0 or s % 18 == 0), (k, pointer)
        code, err = resume(run)
        assert code == 0, (k, err)
        assert_same_run(run, whole)


def test_ctrl_c_in_the_first_epoch_names_resume_and_overwrite_and_resume_works(data, whole, tmp_path):
    run = tmp_path / "run"
    proc = killed("step:9:INT", data, run)
    assert proc.returncode == 130, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "--resume" in line and "--overwrite" in line, line
    code, err = resume(run)
    assert code == 0, err
    assert_same_run(run, whole)


class _Stop(Exception):
    pass


def _stop_at(step: int):
    count = [0]

    def hook(optimizer, args, kwargs):
        count[0] += 1
        if count[0] == step:
            raise _Stop

    return register_optimizer_step_pre_hook(hook)


@pytest.mark.parametrize("streaming", [False, True])
def test_mid_epoch_resume_is_exact_with_noise_binarization_and_a_dataset(tmp_path, no_fsync, streaming):
    """Every random stream in play: masking noise (torch's RNG), dynamic binarization, shuffling, VAE samples."""
    import aekit

    x = torch.rand(70, 12)  # (70, 12): 62 train rows, batch 8 -> 8 steps per epoch, the last one of 6 rows
    train = torch.utils.data.TensorDataset(x[:62]) if streaming else x[:62]
    opts = dict(epochs=3, batch_size=8, binarize="dynamic", checkpoint_every=4, progress=False, warmup_steps=3)

    def model():
        return aekit.build("vae", input_shape=(12,), latent_dim=2, hidden=[8], corruption="masking:0.3", seed=1)

    ref = Trainer(model(), TrainConfig(**opts), out_dir=tmp_path / "ref")
    ref.fit(train, x[62:])
    for stop in (3, 11, 22):  # inside epoch 1, inside epoch 2, inside epoch 3
        out = tmp_path / f"stopped-{stop}"
        handle = _stop_at(stop)
        try:
            with pytest.raises(_Stop):
                Trainer(model(), TrainConfig(**opts), out_dir=out).fit(train, x[62:])
        finally:
            handle.remove()
        again = Trainer(model(), TrainConfig(**opts), out_dir=out)
        again.fit(train, x[62:], resume=True)
        assert again.step == ref.step == 24
        assert [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in again.history] == \
               [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in ref.history], stop
        for (name, a), (_, b) in zip(again.model.state_dict().items(), ref.model.state_dict().items()):
            assert torch.equal(a, b), (stop, name)


def test_a_long_run_checkpoints_every_few_epochs_keeps_its_best_model_and_resumes_exactly(tmp_path, no_fsync):
    """101 epochs of one step: end-of-epoch checkpoints every 2nd epoch (about 100 in a run), the history written
    whole, the kept model the best epoch's even between checkpoints, and a kill resumed bit-identically."""
    import aekit
    from safetensors.torch import load_file as read

    x = torch.rand(40, 6)  # (40, 6): 32 train rows, one batch an epoch
    opts = dict(epochs=101, batch_size=32, progress=False, warmup_steps=3, lr=3e-2)

    def model():
        return aekit.build("ae", input_shape=(6,), latent_dim=2, hidden=[8], seed=1)

    best: dict = {}

    def keep_best(record, trainer):
        if trainer.best_epoch == record["epoch"]:
            best.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    ref = Trainer(model(), TrainConfig(**opts), out_dir=tmp_path / "ref", callbacks=[keep_best])
    assert ref.epoch_checkpoint_every == 2 and Trainer(model(), TrainConfig(epochs=100)).epoch_checkpoint_every == 1
    ref.fit(x[:32], x[32:])
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "ref" / "checkpoints").glob("epoch-*"))
    assert saved[-1] == 101 and all(e % 2 == 0 for e in saved[:-1])  # and the last epoch
    assert len(json.loads((tmp_path / "ref" / "history.json").read_text())) == 101
    kept = read(str(tmp_path / "ref" / "model.safetensors"))
    assert all(torch.equal(kept[k], best[k]) for k in best)  # the best epoch's weights, checkpoint or not
    out = tmp_path / "stopped"
    handle = _stop_at(61)  # inside epoch 61: the newest checkpoint is epoch 60's
    try:
        with pytest.raises(_Stop):
            Trainer(model(), TrainConfig(**opts), out_dir=out).fit(x[:32], x[32:])
    finally:
        handle.remove()
    again = Trainer(model(), TrainConfig(**opts), out_dir=out)
    again.fit(x[:32], x[32:], resume=True)
    assert [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in again.history] == \
           [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in ref.history]
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), ref.model.state_dict().values()))
    resumed = read(str(out / "model.safetensors"))
    assert all(torch.equal(resumed[k], kept[k]) for k in kept)


def test_checkpoint_every_parses_steps_and_durations():
    assert parse_checkpoint_every(None) == parse_checkpoint_every("off") == (None, None)
    assert TrainConfig().checkpoint_every == "10m"  # by default a kill on large data loses at most ten minutes
    assert parse_checkpoint_every(100) == (100, None)
    assert parse_checkpoint_every("100") == (100, None)
    assert parse_checkpoint_every("10m") == (None, 600.0)
    assert parse_checkpoint_every("90s") == (None, 90.0)
    assert parse_checkpoint_every("1.5h") == (None, 5400.0)
    assert parse_checkpoint_every("250ms") == (None, 0.25)
    for bad in ("0", "-3", "10x", "m", "", "1e999m", True, 2.5):
        with pytest.raises(ConfigError, match="checkpoint_every"):
            parse_checkpoint_every(bad)
    with pytest.raises(ConfigError, match="checkpoint_every"):
        TrainConfig(checkpoint_every="soon")
