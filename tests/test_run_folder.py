"""One writer per run folder, nothing read or deleted outside it, and every run file checked on resume.

Adversarial cases from issue 18: a second training into a folder in use (one process, and under
torchrun), a `checkpoints/` link to another folder, a last.json naming another run's checkpoint,
a damaged kept model or config.json, hostile state.json / run.json values with recomputed
checksums, and a run folder written by the release before config.json had a checksum.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import checkpoint as ckpt
from aekit.errors import CheckpointError
from cli_helpers import cli

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "run-v0"
ARGS = ["ae", "--batch-size", "16", "--latent-dim", "3", "--hidden", "8", "--seed", "3", "--quiet", "--device", "cpu",
        "--warmup-steps", "2", "--schedule", "none"]  # 86 train rows: 6 steps per epoch


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "x.npy"
    np.save(path, np.random.default_rng(0).random((96, 8)).astype(np.float32))  # (96, 8)
    return path


def train(data, out, *extra) -> tuple[int, str]:
    code, _, err = cli("train", *ARGS, "--data", data, "--out", out, *extra)
    return code, err


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("aekit: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("aekit: error: "), err
    return lines[0]


# ---------------------------------------------------------------------- point 2: one writer
def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds the run folder's lock (as a running training does) until killed."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from aekit.training.run_lock import RunLock\n"
            "with RunLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), str(Path(aekit.__file__).parents[1])],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("how", ["overwrite", "resume", "fresh"])
def test_a_second_training_into_a_folder_in_use_is_refused_naming_the_holder(data, tmp_path, how):
    run = tmp_path / "run"
    if how != "fresh":
        assert train(data, run, "--epochs", "1")[0] == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} if run.exists() else {}
    holder = hold_lock(run)
    try:
        extra = {"overwrite": ["--overwrite"], "resume": ["--resume", "--epochs", "2"], "fresh": []}[how]
        code, err = train(data, run, "--epochs", "2", *extra)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    line = one_line(err)
    assert "in use by another training" in line and f"pid {holder.pid}" in line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".aekit.lock"}
    assert after == {p: b for p, b in before.items() if p.name != ".aekit.lock"}  # nothing written
    assert train(data, run, "--epochs", "1", "--overwrite")[0] == 0  # the lock went with its holder


def test_two_trainings_started_together_one_wins_the_other_is_refused(data, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aekit", "train", *ARGS, "--data", str(data), "--out", str(run), "--epochs", "40",
           "--overwrite"]
    procs = [subprocess.Popen(cmd + ["--seed", str(s)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for s in (1, 2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], results
    loser = next(err for p, (_, err) in zip(procs, results) if p.returncode == 1)
    assert "in use by another training" in loser
    winner_seed = next(s for p, s in zip(procs, (1, 2)) if p.returncode == 0)
    info = json.loads((run / "run.json").read_text())
    assert info["train"]["seed"] == winner_seed
    assert not list(run.rglob("*.partial"))
    model = aekit.load(run)  # the kept model is the winner's
    assert model.config["seed"] == winner_seed


def test_under_torchrun_a_locked_folder_stops_every_rank_without_a_hang(data, tmp_path):
    from test_distributed import free_port  # the same launcher

    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        port = free_port()
        commands = [["train", *ARGS, "--data", str(data), "--out", str(run), "--epochs", "1"]]
        procs = []
        for rank in range(2):
            env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            procs.append(subprocess.Popen([sys.executable, str(HERE / "distributed_worker.py"), str(tmp_path / "res"),
                                           json.dumps(commands)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        for p in procs:
            p.communicate(timeout=200)
            assert p.returncode == 0
    finally:
        holder.kill()
        holder.wait()
    for rank in (0, 1):
        (result,) = json.loads((tmp_path / f"res.{rank}").read_text())
        assert result["code"] == 1, result
        assert "in use by another training" in result["stderr"] or "rank 0 could not lock" in result["stderr"]


# ---------------------------------------------------------------------- point 3: links
def test_overwrite_with_a_linked_checkpoints_folder_deletes_nothing_outside(data, tmp_path):
    run, outside = tmp_path / "run", tmp_path / "precious"
    assert train(data, run, "--epochs", "1")[0] == 0
    (outside / "epoch-00000").mkdir(parents=True)
    (outside / "epoch-00000" / "thesis.txt").write_text("years of work")
    (outside / "notes.txt").write_text("keep me")
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(outside, target_is_directory=True)
    code, err = train(data, run, "--epochs", "3", "--overwrite")
    assert code == 0, err
    assert (outside / "epoch-00000" / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in outside.iterdir()) == ["epoch-00000", "notes.txt"]  # nothing written there either
    assert not (run / "checkpoints").is_symlink() and (run / "checkpoints" / "epoch-00003").is_dir()


def test_resume_through_a_linked_checkpoints_folder_is_refused(data, tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    assert train(data, run, "--epochs", "1")[0] == 0
    assert train(data, other, "--epochs", "1", "--seed", "9")[0] == 0
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(other / "checkpoints", target_is_directory=True)
    code, err = train(data, run, "--resume", "--epochs", "2")
    assert code == 1 and "symbolic link" in one_line(err)


@pytest.mark.parametrize("pointer", ["../../other/checkpoints/epoch-00002", "/tmp", "epoch-00002/../../../other"])
def test_last_json_pointing_outside_the_run_is_ignored(data, tmp_path, pointer):
    run, other = tmp_path / "run", tmp_path / "other"
    assert train(data, run, "--epochs", "2")[0] == 0
    assert train(data, other, "--epochs", "2", "--seed", "9")[0] == 0
    (run / "checkpoints" / "last.json").write_text(json.dumps({"dir": pointer, "epoch": 2}))
    code, err = train(data, run, "--resume", "--epochs", "3")
    assert code == 0, err
    assert "not a checkpoint folder of this run" in err
    whole = tmp_path / "whole"
    assert train(data, whole, "--epochs", "3")[0] == 0
    assert same_weights(run / "checkpoints" / "epoch-00003" / "model.safetensors",
                        whole / "checkpoints" / "epoch-00003" / "model.safetensors")


# ---------------------------------------------------------------------- point 5: checksums
def flip(path: Path, offset_from_end: int = 10) -> None:
    b = bytearray(path.read_bytes())
    b[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(b))


def test_a_damaged_kept_model_is_restored_on_resume(data, tmp_path):
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert train(data, run, "--epochs", "2")[0] == 0
    assert train(data, whole, "--epochs", "3")[0] == 0
    flip(run / "model.safetensors")
    code, err = train(data, run, "--resume", "--epochs", "3")
    assert code == 0, err
    assert "kept model" in err and "damaged" in err
    aekit.load(run)
    assert same_weights(run / "model.safetensors", whole / "model.safetensors")


def test_a_damaged_kept_model_whose_epoch_is_gone_is_a_one_line_error(data, tmp_path):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "2", "--checkpoint-every", "2")[0] == 0
    # kept (2 newest): epoch-00001-step-0000000010 (best epoch 1) and epoch-00002; epoch-00001 is pruned
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-00001-step-0000000010", "epoch-00002", "last.json"]
    shutil.rmtree(run / "checkpoints" / "epoch-00002")
    (run / "checkpoints" / "last.json").unlink()
    flip(run / "model.safetensors")
    code, err = train(data, run, "--resume", "--epochs", "2")
    assert code == 1 and "kept model" in one_line(err) and "--overwrite" in err


def test_config_json_has_a_checksum(data, tmp_path):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "1")[0] == 0
    meta = json.loads((run / "config.json").read_text())
    assert meta["config_sha256"] == ckpt.config_sha256(meta)
    meta["config"]["likelihood"] = "gaussian" if meta["config"]["likelihood"] != "gaussian" else "bernoulli"
    (run / "config.json").write_text(json.dumps(meta))  # valid JSON, a model that still builds
    with pytest.raises(CheckpointError, match="checksum"):
        aekit.load(run)
    code, _, err = cli("evaluate", run)
    assert code == 1 and "checksum" in one_line(err)


def test_a_run_folder_written_before_config_checksums_still_loads_and_resumes(tmp_path):
    run = tmp_path / "run-v0"
    shutil.copytree(FIXTURE, run)
    shutil.copy(FIXTURE.parent / "run-v0-data.npy", tmp_path / "data.npy")
    assert "config_sha256" not in json.loads((run / "config.json").read_text())
    model = aekit.load(run)
    assert model.latent_dim == 2
    info = json.loads((run / "run.json").read_text())
    info["data"]["source"] = str(tmp_path / "data.npy")  # the fixture recorded a relative path
    (run / "run.json").write_text(json.dumps(info))
    code, _, err = cli("train", "ae", "--out", run, "--resume", "--epochs", "3", "--quiet")
    assert code == 0, err
    assert json.loads((run / "checkpoints" / "last.json").read_text())["epoch"] == 3
    assert "config_sha256" in json.loads((run / "config.json").read_text())
    aekit.load(run)


# ---------------------------------------------------------------------- points 10, 11: hostile values
def rewrite_state(folder: Path, **changes) -> None:
    """Edit state.json and recompute its checksum, as a careful forger would."""
    meta = json.loads((folder / "state.json").read_text())
    meta.pop("meta_sha256", None)
    meta.update(changes)
    meta["meta_sha256"] = ckpt.sha256(json.dumps(meta, sort_keys=True).encode())
    (folder / "state.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("changes", [{"epoch": float("inf")}, {"history": "x"}, {"history": ["x"]},
                                     {"step": -1}, {"elapsed": float("nan")}, {"best_val": "low"},
                                     {"epoch": 10**30}])
def test_hostile_state_json_with_a_recomputed_checksum_falls_back_cleanly(data, tmp_path, changes):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "2")[0] == 0
    rewrite_state(run / "checkpoints" / "epoch-00002", **changes)
    code, err = train(data, run, "--resume", "--epochs", "3")
    assert code == 0, err
    assert "skipped unreadable checkpoint" in err and "Traceback" not in err
    code, out, err = cli("report", run)
    assert code == 0, err


def test_every_state_json_hostile_is_a_one_line_error_and_report_still_works(data, tmp_path):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "2")[0] == 0
    for d in ("epoch-00001", "epoch-00002"):
        rewrite_state(run / "checkpoints" / d, epoch=float("inf"), history="x")
    code, err = train(data, run, "--resume", "--epochs", "3")
    assert code == 1 and "no readable checkpoint" in one_line(err)
    code, _, err = cli("report", run)
    assert code == 0, err


@pytest.mark.parametrize("edit", ["no model", "no train", "model not an object", "huge hidden", "no source"])
def test_hostile_run_json_is_a_one_line_error_before_anything_is_built(data, tmp_path, edit):
    run = tmp_path / "run"
    assert train(data, run, "--epochs", "1")[0] == 0
    info = json.loads((run / "run.json").read_text())
    if edit == "no model":
        del info["model"]
    elif edit == "no train":
        del info["train"]
    elif edit == "model not an object":
        info["model"] = [1, 2]
    elif edit == "huge hidden":
        info["model"]["hidden"] = [2**31, 512]
    else:
        del info["data"]["source"]
    (run / "run.json").write_text(json.dumps(info))
    code, err = train(data, run, "--resume", "--epochs", "2")
    assert code == 1, err
    line = one_line(err)
    assert "run.json" in line
    if edit == "huge hidden":
        assert "memory" in line or "parameters" in line  # sized on the meta device: refused before any allocation


def test_resume_into_a_folder_with_no_run_yet_starts_it_with_its_own_command(data, tmp_path):
    run = tmp_path / "run"  # killed before it wrote anything: the same command with --resume starts it
    code, err = train(data, run, "--epochs", "1", "--resume")
    assert code == 0, err
    assert "holds no run yet" in err and (run / "checkpoints" / "epoch-00001").is_dir()


def test_single_bit_flips_of_config_json_never_change_the_model_silently(tmp_path):
    """300 seeded single-bit flips: each is refused, or loads the very same model (a flip in whitespace)."""
    import random

    model = aekit.build("vae", input_shape=(6,), hidden=[4], latent_dim=2, seed=0)
    aekit.save(model, tmp_path / "m")
    good = (tmp_path / "m" / "config.json").read_bytes()
    rng = random.Random(18)
    silent = []
    for _ in range(300):
        bit = rng.randrange(8 * len(good))
        flipped = bytearray(good)
        flipped[bit // 8] ^= 1 << (bit % 8)
        (tmp_path / "m" / "config.json").write_bytes(bytes(flipped))
        try:
            loaded = aekit.load(tmp_path / "m")
        except CheckpointError:
            continue
        if loaded.config != model.config:
            silent.append(bit)
    assert silent == []
