"""Data-parallel training (aekit.training.distributed) against single-process training.

Two CPU ranks (gloo) launched with torchrun must end where one process ends with the same global
batch: the gradient of the global batch's mean loss is assembled from the shards' gradients, so
the only difference is float32 summation order. Tolerance: max |w_ddp - w_single| < 1e-5 after
16 Adam steps (measured ~1e-7), losses equal to a relative 1e-5.

Two launches keep it fast: (1) `torchrun -m aekit train` for 2 epochs (the user's command: init
from torchrun's environment, rank-0-only outputs, teardown); (2) two worker processes given
torchrun's environment variables by hand, which run, inside one process group, `--resume` to 4 epochs, a run whose loss becomes inf on one rank's shard only,
and a batch size the world size does not divide.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aekit.training.distributed import DistContext, choose_backend, context_from_env, distributed_session, make_trainer
from aekit.errors import ConfigError
from aekit.training.trainer import TrainConfig, Trainer
from cli_helpers import cli

HERE = Path(__file__).resolve().parent
WEIGHT_TOL = 1e-5
LOSS_RTOL = 1e-5
# 66 rows -> 53 train / 13 val; batch 16 -> 3 full batches and one of 5 rows (shards of 3 and 2)
COMMON = ["--batch-size", "16", "--val-fraction", "0.2", "--latent-dim", "3", "--hidden", "8",
          "--warmup-steps", "0", "--schedule", "none", "--seed", "1", "--quiet", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    def launch():
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}", *args]
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=420)

    proc = launch()
    if proc.returncode != 0 and "(SIGABRT)" in proc.stderr:
        # a rank killed by a native abort (exit -6), not a Python error (exit 1): seen once in CI
        # with "terminate called without an active exception"; not reproduced in 60 local launches
        # with and without load. Shown as a warning, then tried once more.
        warnings.warn(f"torchrun launch aborted natively; retrying once:\n{failure(proc)}")
        shutil.rmtree(cwd / "ddp", ignore_errors=True)
        proc = launch()
    return proc


def failure(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def launch_ranks(args: list[str], cwd: Path, world: int = 2) -> list[subprocess.CompletedProcess]:
    """Start `world` ranks with torchrun's environment variables set by hand (no agent process: faster)."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=420)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def weights(run: Path, epoch: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"epoch-{epoch:05d}" / "model.safetensors"))


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((66, 12)).astype(np.float32)  # (66, 12) table
    np.save(tmp_path / "x.npy", x)
    bad = x.copy()
    bad[40, 3] = 1e30  # finite data whose Gaussian NLL overflows to inf (unstandardized): only one rank's shard sees it
    np.save(tmp_path / "bad.npy", bad)
    return tmp_path


def test_two_ranks_match_single_process_resume_and_agree_on_failures(tables):
    tmp = tables
    # single process, in this process: the reference
    code, _, err = cli("train", "ae", "--data", tmp / "x.npy", "--out", tmp / "single", "--epochs", "4", *COMMON)
    assert code == 0, err
    code, _, single_nan = cli("train", "ae", "--data", tmp / "bad.npy", "--out", tmp / "single_nan", "--epochs", "2",
                              *COMMON[:2], "--val-fraction", "0", "--no-standardize", *COMMON[4:])
    assert code == 1 and "the loss became inf" in single_nan

    # launch 1: the user's command, 2 epochs
    proc = torchrun(["-m", "aekit", "train", "ae", "--data", "x.npy", "--out", "ddp", "--epochs", "2", *COMMON], tmp)
    assert proc.returncode == 0, failure(proc)
    summaries = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1, proc.stdout  # rank 0 reports, rank 1 stays quiet
    assert json.loads(summaries[0])["epochs"] == 2
    assert sorted(p.name for p in (tmp / "ddp" / "checkpoints").iterdir()) == ["epoch-00001", "epoch-00002", "last.json"]

    # launch 2: resume to 4 epochs, an inf loss on one shard, an indivisible batch size
    commands = [
        ["train", "ae", "--out", "ddp", "--resume", "--epochs", "4", "--quiet"],
        ["train", "ae", "--data", "bad.npy", "--out", "ddp_nan", "--epochs", "2", *COMMON[:2], "--val-fraction", "0",
         "--no-standardize", *COMMON[4:]],
        ["train", "ae", "--data", "x.npy", "--out", "ddp_bs", "--epochs", "1", *COMMON, "--batch-size", "15"],
    ]
    for proc in launch_ranks([str(HERE / "distributed_worker.py"), str(tmp / "result"), json.dumps(commands)], tmp):
        assert proc.returncode == 0, failure(proc)
    ranks = [json.loads((tmp / f"result.{r}").read_text()) for r in (0, 1)]

    resumed, nan, indivisible = zip(*ranks)
    assert [r["code"] for r in resumed] == [0, 0], resumed
    assert max_abs_diff(weights(tmp / "ddp", 4), weights(tmp / "single", 4)) < WEIGHT_TOL
    assert max_abs_diff(load_file(str(tmp / "ddp" / "model.safetensors")),
                        load_file(str(tmp / "single" / "model.safetensors"))) < WEIGHT_TOL
    h_ddp = json.loads((tmp / "ddp" / "history.json").read_text())
    h_one = json.loads((tmp / "single" / "history.json").read_text())
    assert [r["step"] for r in h_ddp] == [r["step"] for r in h_one] == [4, 8, 12, 16]
    for a, b in zip(h_ddp, h_one):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=LOSS_RTOL)

    # NaN/inf agreed: both ranks stop at the single-process step with the same one-line error
    for r in nan:
        assert r["code"] == 1
        assert r["stderr"].strip().splitlines() == single_nan.strip().splitlines(), (r["stderr"], single_nan)
    # batch size 15 on 2 ranks: a clear error on every rank, nothing trained
    for r in indivisible:
        assert r["code"] == 2 and "divisible by the number of processes (2)" in r["stderr"] and "--batch-size 14" in r["stderr"]
    assert not (tmp / "ddp_bs" / "checkpoints").exists()


def test_environment_parsing_and_backend_choice():
    assert context_from_env({}) == DistContext()
    ctx = context_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (1, 4, 1, True, False)
    with pytest.raises(ConfigError, match="RANK"):
        context_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer"):
        context_from_env({"WORLD_SIZE": "two"})
    assert choose_backend("cpu") == "gloo"
    with pytest.raises(ConfigError, match="distributed training supports"):
        choose_backend("mps")
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        with distributed_session("cpu", environ={"RANK": "0", "WORLD_SIZE": "2"}):
            pass


def test_single_process_session_initialises_nothing_and_uses_the_plain_trainer():
    import torch.distributed as dist

    from aekit import build

    with distributed_session("cpu", environ={}) as ctx:
        assert not ctx.enabled and not dist.is_initialized()
        trainer = make_trainer(build("ae", input_shape=(4,), latent_dim=2), TrainConfig(epochs=1), dist_ctx=ctx)
        assert type(trainer) is Trainer
