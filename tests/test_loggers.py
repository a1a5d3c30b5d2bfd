"""aekit.training.loggers: CSV and TensorBoard reproduce what the trainer writes; MLflow and W&B run offline for real.

MLflow and W&B tests run where the packages are installed (pip install 'aekit[mlflow]' 'aekit[wandb]')
and skip with the reason otherwise; the missing-package error is tested by hiding the module.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

import pytest
import torch

import aekit
from aekit.errors import ConfigError, ShortRunWarning
from aekit.training.loggers import (CSVLogger, LOGGERS, flat_params, loggers_record, make_loggers, scalars)
from aekit.training.trainer import Trainer, TrainConfig

RECORDS = [{"epoch": 1, "step": 4, "time": 0.25, "lr": 1e-3, "train_loss": 1.5, "train_nll": 1.25, "val_loss": 2.0},
           {"epoch": 2, "step": 8, "time": 0.5, "lr": 5e-4, "train_loss": 0.75, "train_nll": 0.625, "val_loss": 1.0}]
HPARAMS = {"variant": "ae", "train": {"lr": 1e-3, "betas": [0.9, 0.99], "grad_clip": None, "progress": False}}


@pytest.fixture
def offline(monkeypatch):
    """Any connection to a non-loopback address in this process fails the test (local sockets stay allowed)."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network call to {address!r}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    import os

    monkeypatch.setattr(os, "fsync", lambda fd: None)


def _fit(tmp_path, **kw):
    """A 2-epoch run of a tiny MLP autoencoder on 32 random 8x8 images: its records; it writes history and TensorBoard."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g)  # (40, 1, 8, 8)
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[8], latent_dim=2, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=8, progress=False, schedule="none", warmup_steps=0, device="cpu", **kw)
    with pytest.warns(ShortRunWarning):  # 8 steps: enough to log
        return Trainer(model, cfg, out_dir=tmp_path).fit(x[:32], x[32:]).history  # the records, in the trainer's order


def _replay(loggers, history):
    for lg in loggers:
        lg.log_hparams(HPARAMS)
    for record in history:
        for lg in loggers:
            lg.log_metrics(record["epoch"], record)
    for lg in loggers:
        lg.log_final({"val_loss": history[-1]["val_loss"], "best_epoch": 2})
    for lg in loggers:
        lg.close()


# ------------------------------------------------------------------ interface and factory
def test_scalars_keeps_numbers_but_the_step_key_and_booleans():
    got = scalars({"epoch": 3, "step": 7, "lr": 1e-3, "ok": True, "none": None, "name": "x", "nan": float("nan")})
    assert set(got) == {"step", "lr", "nan"} and got["step"] == 7.0 and isinstance(got["step"], float)


def test_flat_params_flattens_nested_dicts_and_jsons_the_rest():
    assert flat_params(HPARAMS) == {"variant": "ae", "train/lr": 1e-3, "train/betas": "[0.9, 0.99]",
                                    "train/grad_clip": "null", "train/progress": False}


def test_unknown_logger_is_a_config_error_with_a_hint(tmp_path):
    with pytest.raises(ConfigError, match=r"logger must be one of .*'mlfow'.*Did you mean 'mlflow'"):
        make_loggers(["csv", "mlfow"], tmp_path)


def test_names_may_be_one_comma_string_and_repeat(tmp_path):
    loggers = make_loggers("csv, csv", tmp_path)
    assert [lg.name for lg in loggers] == ["csv"]
    assert json.loads(json.dumps(loggers_record(loggers))) == [{"name": "csv", "files": ["history.json", "history.csv"]}]


@pytest.mark.parametrize("name, module", [("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_a_missing_optional_package_names_the_logger_and_the_extra(tmp_path, monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError, as if not installed
    with pytest.raises(ConfigError) as info:
        make_loggers(["csv", name], tmp_path)
    msg = str(info.value)
    assert msg == f"logger {name!r} needs the {module} package: pip install 'aekit[{name}]'."
    assert "\n" not in msg


def test_every_logger_has_a_pip_extra_in_pyproject():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in LOGGERS[1:]:
        assert name in extras and any(dep.startswith(name) for dep in extras[name])
    base = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(dep.startswith(("mlflow", "wandb")) for dep in base)


# ------------------------------------------------------------------ CSV: the run's history, byte for byte
def test_csv_logger_writes_the_trainers_history_byte_for_byte(tmp_path):
    history = _fit(tmp_path / "run")
    out = tmp_path / "replay"
    _replay(make_loggers(["csv"], out), history)
    for name in ("history.json", "history.csv"):
        assert (out / name).read_bytes() == (tmp_path / "run" / name).read_bytes()


def test_csv_logger_continues_a_resumed_history_and_leaves_missing_cells_empty(tmp_path):
    lg = CSVLogger(tmp_path, history=RECORDS[:1])
    lg.log_metrics(2, {"step": 8, "lr": 5e-4, "train_loss": 0.75, "extra": 3})  # no "epoch" key: the step is used
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,time,lr,train_loss,train_nll,val_loss,extra"
    assert lines[1] == "1,4,0.25,0.001,1.5,1.25,2.0,"
    assert lines[2] == "2,8,,0.0005,0.75,,,3"
    assert json.loads((tmp_path / "history.json").read_text())[1]["epoch"] == 2


# ------------------------------------------------------------------ TensorBoard: the trainer's tags
def test_tensorboard_logger_writes_the_trainers_tags_and_values(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed: pip install 'aekit[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = _fit(tmp_path / "run", tensorboard=True)
    _replay(make_loggers(["tensorboard"], tmp_path / "replay"), history)
    theirs = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    ours = EventAccumulator(str(tmp_path / "replay" / "tensorboard"))
    theirs.Reload(), ours.Reload()
    # the trainer logs through TensorBoardLogger now: its per-epoch tags are the replay's; its own final metrics too
    old = {t for t in theirs.Tags()["scalars"] if not t.startswith("final/")}
    assert {"final/best_val_loss", "final/val_loss", "final/best_epoch"} <= set(theirs.Tags()["scalars"])
    assert old <= set(ours.Tags()["scalars"]) and {"final/val_loss", "final/best_epoch"} <= set(ours.Tags()["scalars"])
    for tag in old:
        assert [(e.step, e.value) for e in ours.Scalars(tag)] == [(e.step, e.value) for e in theirs.Scalars(tag)]
    assert [e.value for e in ours.Scalars("final/val_loss")] == [pytest.approx(history[-1]["val_loss"])]


def test_tensorboard_resume_purges_the_epochs_logged_again(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed: pip install 'aekit[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = make_loggers(["tensorboard"], tmp_path)[0]
    for epoch in (1, 2, 3):
        first.log_metrics(epoch, {"epoch": epoch, "train_loss": float(epoch)})
    first.close()
    again = make_loggers(["tensorboard"], tmp_path, purge_step=3)[0]  # resumed from the checkpoint of epoch 2
    again.log_metrics(3, {"epoch": 3, "train_loss": 30.0})
    again.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [(1, 1.0), (2, 2.0), (3, 30.0)]


# ------------------------------------------------------------------ MLflow: local file store, offline
def test_mlflow_logs_params_every_metric_per_epoch_and_final_and_resumes_the_same_run(tmp_path, offline):
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install 'aekit[mlflow]'")
    loggers = make_loggers(["csv", "mlflow"], tmp_path, run_name="t")
    _replay(loggers, RECORDS)
    record = loggers_record(loggers)
    ml = record[1]
    assert ml["name"] == "mlflow" and ml["dir"] == "mlruns" and ml["experiment"] == "aekit"
    assert (tmp_path / "mlruns").is_dir() and list((tmp_path / "mlruns").rglob(ml["run_id"]))
    assert json.loads(json.dumps(record)) == record

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=loggers[1].uri)
    assert loggers[1].uri.startswith("file:") and loggers[1].uri.endswith("/mlruns")
    run = client.get_run(ml["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "t"
    assert run.data.params == {"variant": "ae", "train/lr": "0.001", "train/betas": "[0.9, 0.99]",
                               "train/grad_clip": "null", "train/progress": "False"}
    for key in ("step", "time", "lr", "train_loss", "train_nll", "val_loss"):
        assert [(m.step, m.value) for m in client.get_metric_history(ml["run_id"], key)] == [
            (r["epoch"], float(r[key])) for r in RECORDS]
    assert run.data.metrics["final/val_loss"] == 1.0 and run.data.metrics["final/best_epoch"] == 2.0
    assert "epoch" not in run.data.metrics

    again = make_loggers(["mlflow"], tmp_path, resume=record)  # a resumed run: the same MLflow run goes on
    again[0].log_hparams(HPARAMS)  # already there: not logged twice (MLflow refuses changed params)
    again[0].log_metrics(3, {"epoch": 3, "train_loss": 0.5})
    again[0].close()
    assert again[0].run_id == ml["run_id"]
    assert [(m.step, m.value) for m in client.get_metric_history(ml["run_id"], "train_loss")][-1] == (3, 0.5)
    assert len(client.search_runs([run.info.experiment_id])) == 1

    failed = make_loggers(["mlflow"], tmp_path, resume=record)
    failed[0].close(failed=True)  # the run ended on an error
    assert client.get_run(ml["run_id"]).info.status == "FAILED"

    gone = [dict(r, run_id="0" * 32) if r["name"] == "mlflow" else r for r in record]  # a run the store lacks
    fresh = make_loggers(["mlflow"], tmp_path, resume=gone)
    fresh[0].close()
    assert fresh[0].run_id != ml["run_id"] and len(client.search_runs([run.info.experiment_id])) == 2


# ------------------------------------------------------------------ W&B: offline mode, read back from its file
def _wandb_records(path):
    """The protobuf records of a W&B .wandb file (LevelDB log format: 32 KiB blocks of crc/length/type chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, out, buf = path.read_bytes(), 7, 32768, [], b""  # 7: the ':W&B' identity header
    while pos + 7 <= len(data):
        left = block - pos % block
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (n == 0 and kind == 0):
            pos += left  # block padding
            continue
        if pos + 7 + n > len(data):  # a chunk still being written
            break
        buf += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # FULL or LAST chunk: one record
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def _wandb_file_records(path, kind="summary", timeout=60.0):
    """The records of a .wandb file once it holds a record of `kind`: W&B's service writes the offline
    file in the background and may still be writing when run.finish() returns."""
    deadline = time.monotonic() + timeout
    while True:
        records = _wandb_records(path)
        if any(r.WhichOneof("record_type") == kind for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_wandb_offline_logs_config_every_metric_per_epoch_and_final(tmp_path, offline):
    pytest.importorskip("wandb", reason="wandb not installed: pip install 'aekit[wandb]'")
    loggers = make_loggers(["wandb"], tmp_path, run_name="t")
    _replay(loggers, RECORDS)
    rec = loggers_record(loggers)[0]
    assert rec["mode"] == "offline" and rec["dir"] == "wandb" and rec["project"] == "aekit"
    files = list((tmp_path / "wandb").glob(f"offline-run-*-{rec['run_id']}/run-{rec['run_id']}.wandb"))
    assert len(files) == 1
    records = _wandb_file_records(files[0], kind="exit")
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "run" in kinds
    config = {u.key: json.loads(u.value_json) for r in records if r.WhichOneof("record_type") == "config"
              for u in r.config.update}
    assert config["variant"] == "ae" and config["train"] == HPARAMS["train"]
    rows = [{("/".join(i.nested_key) or i.key): json.loads(i.value_json) for i in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    assert [row["_step"] for row in rows] == [1, 2]
    for row, want in zip(rows, RECORDS):
        assert {k: row[k] for k in scalars(want)} == scalars(want) and "epoch" not in row
    summary = {("/".join(u.nested_key) or u.key): json.loads(u.value_json) for r in records
               if r.WhichOneof("record_type") == "summary" for u in r.summary.update}
    assert summary["final/val_loss"] == 1.0 and summary["final/best_epoch"] == 2

    again = make_loggers(["wandb"], tmp_path, resume=loggers_record(loggers))  # a resumed run: the same run id
    again[0].log_metrics(3, {"epoch": 3, "train_loss": 0.5})
    again[0].close()
    assert again[0].run_id == rec["run_id"]
    # the resumed run writes step 3 under the same run id (in a new offline-run folder, or in the same one when
    # both start within one second: W&B names the folder by the second)
    deadline = time.monotonic() + 60.0
    while True:
        steps = [json.loads(i.value_json) for f in (tmp_path / "wandb").glob(f"offline-run-*-{rec['run_id']}/*.wandb")
                 for r in _wandb_records(f) if r.WhichOneof("record_type") == "history"
                 for i in r.history.item if ("/".join(i.nested_key) or i.key) == "_step"]
        if 3 in steps or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 3 in steps
