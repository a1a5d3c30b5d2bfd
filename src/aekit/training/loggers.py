"""Experiment loggers behind one small interface: CSV (the run's history), TensorBoard, MLflow, W&B.

    from aekit.training.loggers import make_loggers, loggers_record
    loggers = make_loggers(["csv", "mlflow"], run_dir)      # each writes inside run_dir, offline
    for lg in loggers: lg.log_hparams({"train": {...}, "model": {...}})
    for lg in loggers: lg.log_metrics(record["epoch"], record)   # once per epoch
    for lg in loggers: lg.log_final({"val_loss": 0.12})
    for lg in loggers: lg.close()
    run_json["loggers"] = loggers_record(loggers)           # which loggers, and where they wrote

Every logger writes into the run folder and nowhere else; none makes a network call:

    name          writes                                   needs
    csv           RUN_DIR/history.json, history.csv        nothing (the run folder's own history)
    tensorboard   RUN_DIR/tensorboard/events.*             pip install 'aekit[tensorboard]'
    mlflow        RUN_DIR/mlruns (tracking URI file:...)   pip install 'aekit[mlflow]'
    wandb         RUN_DIR/wandb/offline-run-* (offline)    pip install 'aekit[wandb]'

`log_metrics(step, metrics)` takes one record (the trainer's per-epoch dict: epoch, step, time,
lr, train_* and val_* terms, throughput); every number in it but the step key itself ("epoch") is
logged under its own name, the same tags the trainer's TensorBoard writer has always used.
Non-numbers (None, strings) are skipped by the trackers; the CSV keeps them as empty cells.

A resumed run passes the previous record (`resume=`) so MLflow and W&B continue the same run id;
the epochs between the last checkpoint and the interruption are logged again (TensorBoard purges
them with purge_step; MLflow keeps both values of such a step; W&B writes a second offline-run folder
under the same run id, which `wandb sync` uploads into that one run).
MLflow's usage telemetry is switched off and its file store allowed (MLFLOW_DISABLE_TELEMETRY=true and
MLFLOW_ALLOW_FILE_STORE=true, unless the environment sets them): MLflow 3 calls the file store "maintenance
mode" but it needs no database and opens in ~15 ms, where a new SQLite store takes ~3.6 s of migrations.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import checkpoint as ckpt
from ..errors import ConfigError, check_choice

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")
EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # logger -> pip extra
STEP_KEY = "epoch"
EXPERIMENT = "aekit"  # MLflow experiment and W&B project of every run


def _require(logger: str, module: str):
    """Import an optional package, or a one-line ConfigError naming the logger and the pip extra."""
    if module == "mlflow":
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # read when mlflow is imported: no usage pings
        # MLflow 3.x keeps the file store (no database, no server) behind this opt-in; 2.x ignores it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"logger {logger!r} needs the {module} package: pip install 'aekit[{EXTRAS[logger]}]'.") from None


def scalars(metrics: dict) -> dict[str, float]:
    """The finite-or-not real numbers of a record, as floats, without the step key and without booleans."""
    return {k: float(v) for k, v in metrics.items()
            if k != STEP_KEY and isinstance(v, (int, float)) and not isinstance(v, bool)}


def flat_params(params: dict, prefix: str = "") -> dict[str, object]:
    """Nested hyperparameters as one level: {"train": {"lr": 1e-3}} -> {"train/lr": 1e-3}.

    Numbers, strings and booleans stay as they are; None and lists become their JSON text."""
    out: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, prefix=f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str)
    return out


class Logger:
    """The interface: hyperparameters once, one record per step (epoch), the final metrics, close."""

    name = "logger"

    def log_hparams(self, params: dict) -> None:
        """The run's configuration (nested dicts allowed), logged once at the start."""

    def log_metrics(self, step: int, metrics: dict) -> None:
        """One record at this step (the epoch number for the trainer)."""

    def log_final(self, metrics: dict) -> None:
        """The run's final metrics (best validation loss, test scores ...), logged once at the end."""

    def close(self, *, failed: bool = False) -> None:
        """Flush and release files; the logger is not used afterwards. failed: the run ended on an error."""

    def record(self) -> dict:
        """JSON-able: the logger's name and where it wrote, relative to the run folder (run.json["loggers"])."""
        return {"name": self.name}


class CSVLogger(Logger):
    """The run's history: RUN_DIR/history.json (a list of records) and history.csv (one row per record).

    Both files are rewritten whole and atomically after every `write_every`-th record (1: every record)
    and when the logger closes, so a crash never leaves a torn row; columns are the union of every record's keys in order of first appearance; a value a record
    lacks is an empty cell; numbers are written with repr (they read back exactly).
    history: the records already logged (a resumed run's, restored from its checkpoint)."""

    name = "csv"

    def __init__(self, run_dir, *, history: list[dict] | None = None, write_every: int = 1) -> None:
        self.run_dir = Path(run_dir)
        self.rows: list[dict] = [dict(r) for r in (history or [])]
        self.write_every = max(1, int(write_every))
        self.pending = 0  # records not yet written

    def log_metrics(self, step: int, metrics: dict) -> None:
        self.rows.append({STEP_KEY: step, **{k: v for k, v in metrics.items() if k != STEP_KEY}})
        self.pending += 1
        if self.pending >= self.write_every or step % self.write_every == 0:
            self.write()

    def close(self, *, failed: bool = False) -> None:
        if self.pending:
            self.write()

    def write(self) -> None:
        ckpt.atomic_write_json(self.run_dir / "history.json", self.rows)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        lines = [",".join(keys)] + [",".join("" if r.get(k) is None else repr(r[k]) for k in keys) for r in self.rows]
        ckpt.atomic_write_bytes(self.run_dir / "history.csv", ("\n".join(lines) + "\n").encode())
        self.pending = 0

    def record(self) -> dict:
        return {"name": self.name, "files": ["history.json", "history.csv"]}


class TensorBoardLogger(Logger):
    """TensorBoard event files in RUN_DIR/tensorboard: one scalar per record key (tag = the key, x = the epoch).

    purge_step: on resume, the first epoch to be logged again; events at or after it are dropped.
    The hyperparameters and the final metrics go to the HParams dashboard (tags final/<name>)."""

    name = "tensorboard"
    SUBDIR = "tensorboard"

    def __init__(self, run_dir, *, purge_step: int | None = None) -> None:
        _require(self.name, "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / self.SUBDIR), purge_step=purge_step)
        self.params: dict = {}
        self.last_step = 0

    def log_hparams(self, params: dict) -> None:
        self.params.update(flat_params(params))

    def log_metrics(self, step: int, metrics: dict) -> None:
        for k, v in scalars(metrics).items():
            self.writer.add_scalar(k, v, step)
        self.last_step = step

    def log_final(self, metrics: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = {f"final/{k}": v for k, v in scalars(metrics).items()}
        exp, ssi, sei = hparams(self.params, final)  # the HParams dashboard, in this run's own event file
        for summary in (exp, ssi, sei):
            self.writer.file_writer.add_summary(summary)
        for k, v in final.items():
            self.writer.add_scalar(k, v, self.last_step)

    def close(self, *, failed: bool = False) -> None:
        self.writer.close()

    def record(self) -> dict:
        return {"name": self.name, "dir": self.SUBDIR}


class MLflowLogger(Logger):
    """An MLflow run in a local file store, RUN_DIR/mlruns (tracking URI file:///.../mlruns): no server, no network.

    Experiment "aekit"; run_id: continue that run (a resume; a new run when the store no longer has it),
    else a new one named run_name.
    Browse with: mlflow ui --backend-store-uri file:RUN_DIR/mlruns"""

    name = "mlflow"
    SUBDIR = "mlruns"

    def __init__(self, run_dir, *, run_id: str | None = None, run_name: str | None = None) -> None:
        _require(self.name, "mlflow")
        from mlflow.tracking import MlflowClient

        self.uri = (Path(run_dir) / self.SUBDIR).resolve().as_uri()  # file:///abs/RUN_DIR/mlruns
        self.client = MlflowClient(tracking_uri=self.uri)  # no global mlflow state is touched
        if run_id is not None:
            try:
                self.client.update_run(run_id, status="RUNNING")
            except Exception:  # mlruns removed or not copied with the run folder: a new run, recorded anew
                run_id = None
        if run_id is None:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(EXPERIMENT)
            run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        self.run_id = run_id

    def log_hparams(self, params: dict) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params  # a resumed run logged them already
        items = [Param(k, str(v)) for k, v in flat_params(params).items() if k not in existing]
        for i in range(0, len(items), 100):  # the store's batch limit
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, step: int, metrics: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in scalars(metrics).items()]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def log_final(self, metrics: dict) -> None:
        self.log_metrics(0, {f"final/{k}": v for k, v in scalars(metrics).items()})

    def close(self, *, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")

    def record(self) -> dict:
        return {"name": self.name, "dir": self.SUBDIR, "experiment": EXPERIMENT, "run_id": self.run_id}


class WandbLogger(Logger):
    """A Weights & Biases run in offline mode, written to RUN_DIR/wandb/offline-run-*; never a network call.

    Upload later, if wanted, with the user's own account: wandb sync RUN_DIR/wandb/offline-run-*
    run_id: continue that run id (a resume), else a new id. W&B's service process finishes writing the
    offline file in the background after close() returns (it is complete when the Python process exits)."""

    name = "wandb"
    SUBDIR = "wandb"

    def __init__(self, run_dir, *, run_id: str | None = None, run_name: str | None = None) -> None:
        wandb = _require(self.name, "wandb")
        settings = wandb.Settings(mode="offline", console="off", silent=True, disable_git=True,
                                  x_disable_stats=True, x_disable_machine_info=True, save_code=False)
        kwargs = {"id": run_id, "resume": "allow"} if run_id is not None else {}
        self.run = wandb.init(project=EXPERIMENT, name=run_name, dir=str(Path(run_dir)), mode="offline",
                              settings=settings, reinit="create_new", **kwargs)
        self.run_id = self.run.id

    def log_hparams(self, params: dict) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, step: int, metrics: dict) -> None:
        self.run.log(scalars(metrics), step=int(step))

    def log_final(self, metrics: dict) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in scalars(metrics).items()})

    def close(self, *, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)

    def record(self) -> dict:
        return {"name": self.name, "dir": self.SUBDIR, "project": EXPERIMENT, "run_id": self.run_id, "mode": "offline"}


def make_loggers(names, run_dir, *, history: list[dict] | None = None, resume: list[dict] | None = None,
                 purge_step: int | None = None, run_name: str | None = None, write_every: int = 1) -> list[Logger]:
    """Build the named loggers (each once, in the order given) writing into run_dir.

    names: a list of LOGGERS names (or one comma-separated string: "csv,mlflow").
    history: the CSV logger's records so far (a resumed run). resume: the previous loggers_record,
    so MLflow and W&B continue the same run. purge_step: TensorBoard drops its events from this step on.
    A missing optional package is a ConfigError naming the logger and its pip extra."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    wanted: list[str] = []
    for n in names:
        check_choice("logger", n, LOGGERS)
        if n not in wanted:
            wanted.append(n)
    previous = {r.get("name"): r for r in (resume or []) if isinstance(r, dict)}
    loggers: list[Logger] = []
    try:
        for n in wanted:
            run_id = previous.get(n, {}).get("run_id")
            if n == "csv":
                loggers.append(CSVLogger(run_dir, history=history, write_every=write_every))
            elif n == "tensorboard":
                loggers.append(TensorBoardLogger(run_dir, purge_step=purge_step))
            elif n == "mlflow":
                loggers.append(MLflowLogger(run_dir, run_id=run_id, run_name=run_name))
            else:
                loggers.append(WandbLogger(run_dir, run_id=run_id, run_name=run_name))
    except BaseException:
        for lg in loggers:  # the ones already open: no dangling run or file handle
            lg.close(failed=True)
        raise
    return loggers


def loggers_record(loggers: list[Logger]) -> list[dict]:
    """What run.json records under "loggers": each logger's name, folder and run id (JSON-able)."""
    return [lg.record() for lg in loggers]
