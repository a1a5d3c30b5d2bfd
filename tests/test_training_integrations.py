"""The one trainer wired to mixed precision and experiment loggers (issue 22): TrainConfig(precision=...,
loggers=...), `aekit train --precision/--logger`, the precision state in checkpoints, run.json's loggers record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import aekit
from aekit.errors import CheckpointError, ConfigError
from aekit.step import OptimizerGroup, StepOutput
from aekit.training import trainer as trainer_module
from aekit.training.precision import Precision, cpu_has_native_bf16
from aekit.training.trainer import TrainConfig, Trainer
from cli_helpers import cli

pytestmark = pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
BF16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16-mixed is refused on a CPU without AMX")
WALL_CLOCK = ("time", "samples_per_s")


def data(n: int = 48):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # (n, 1, 8, 8)


def vae():
    return aekit.build("vae", input_shape=(1, 8, 8), hidden=[8], latent_dim=2, seed=0)


def opts(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "progress": False, "device": "cpu", "grad_clip": 1.0,
                          "warmup_steps": 2, **kw})


def weights(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in history]


# ------------------------------------------------------------------ float32: the numbers of before
def test_fp32_path_gives_the_numbers_computed_before_the_wiring():
    """Values computed with the trainer before precision and loggers were wired in (same seed, same options)."""
    x = data()
    model = vae()
    history = Trainer(model, opts()).fit(x[:40], x[40:]).history
    assert [(r["train_loss"], r["val_loss"]) for r in history] == [
        pytest.approx((45.32844848632813, 44.57426071166992), rel=1e-6),
        pytest.approx((44.98275146484375, 44.56204605102539), rel=1e-6)]
    assert sum(float(p.double().sum()) for p in model.parameters()) == pytest.approx(-7.186773381930834, rel=1e-6)
    assert all(r["samples_per_s"] > 0 for r in history)


# ------------------------------------------------------------------ precision: refused with one line
def test_unknown_precision_is_refused_by_train_config():
    with pytest.raises(ConfigError, match=r"precision must be one of '32', 'bf16-mixed', '16-mixed'; got 'bf16'") as info:
        TrainConfig(precision="bf16")
    assert "\n" not in str(info.value)


def test_precision_the_device_cannot_run_is_refused_before_training():
    with pytest.raises(ConfigError, match=r"precision='16-mixed' is for CUDA GPUs") as info:
        Trainer(vae(), opts(precision="16-mixed"))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"16-mixed"):
        aekit.fit(vae(), data(), precision="16-mixed", device="cpu", progress=False)


def test_cli_refuses_a_precision_with_one_line(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "64", "--epochs", "1",
                       "--out", tmp_path / "r", "--precision", "16-mixed", "--device", "cpu", "--quiet")
    assert code != 0 and err.strip().splitlines() == [
        "aekit: error: precision='16-mixed' is for CUDA GPUs; on the CPU use precision='32' "
        "(or 'bf16-mixed' on a CPU with AMX)."]
    assert not (tmp_path / "r" / "run.json").exists()  # refused before anything was written
    code, _, err = cli("train", "ae", "--data", "digits", "--out", tmp_path / "r", "--precision", "bf16")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--precision" in err
    code, _, err = cli("segment", "train", "--out", tmp_path / "s", "--precision", "8")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--precision" in err


def test_loggers_are_checked_and_need_a_run_folder():
    with pytest.raises(ConfigError, match=r"logger must be one of .*'mlfow'.*Did you mean 'mlflow'"):
        TrainConfig(loggers=["mlfow"])
    assert TrainConfig(loggers=["mlflow"]).loggers == ("mlflow",)  # a list from JSON becomes a tuple
    assert TrainConfig(tensorboard=True, loggers=("tensorboard",)).logger_names() == ["csv", "tensorboard"]
    with pytest.raises(ConfigError, match=r"loggers=\['mlflow'\] write into the run folder: pass out_dir") as info:
        Trainer(vae(), opts(loggers=("mlflow",))).fit(data())
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ resume bit-identical within a precision
class _Stop(Exception):
    pass


def _stop_after(model: nn.Module, calls: int):
    """Interrupt training at the model's `calls`-th forward pass (inside an epoch)."""
    seen = [0]

    def hook(module, args):
        seen[0] += 1
        if seen[0] == calls:
            raise _Stop

    return model.register_forward_pre_hook(hook)


@pytest.mark.parametrize("precision", ["32", pytest.param("bf16-mixed", marks=BF16)])
def test_resume_inside_an_epoch_is_bit_identical(tmp_path, no_fsync, precision):
    x = data()
    cfg = opts(epochs=3, precision=precision, checkpoint_every=2)  # 5 batches per epoch, a checkpoint every 2 steps
    ref_model = vae()
    ref = Trainer(ref_model, cfg, out_dir=tmp_path / "ref").fit(x[:40], x[40:])
    stopped = vae()
    handle = _stop_after(stopped, 9)  # 5 steps + 1 validation of epoch 1, then inside epoch 2
    with pytest.raises(_Stop):
        Trainer(stopped, cfg, out_dir=tmp_path / "run").fit(x[:40], x[40:])
    handle.remove()
    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("epoch-00001-step-*/state.json")).read_text())
    assert state["precision"] == {"precision": precision, "scaler": None}
    again = vae()
    result = Trainer(again, cfg, out_dir=tmp_path / "run").fit(x[:40], x[40:], resume=True)
    assert strip(result.history) == strip(ref.history)
    for name, value in weights(again).items():
        assert torch.equal(value, ref_model.state_dict()[name]), name
    if precision != "32":  # autocast really ran: the numbers differ from float32's
        plain = Trainer(vae(), opts(epochs=3, checkpoint_every=2)).fit(x[:40], x[40:])
        assert strip(plain.history) != strip(ref.history)


@BF16
def test_resuming_with_another_precision_is_refused_naming_both(tmp_path, no_fsync):
    x = data()
    Trainer(vae(), opts(epochs=1), out_dir=tmp_path).fit(x)
    with pytest.raises(CheckpointError) as info:
        Trainer(vae(), opts(epochs=2, precision="bf16-mixed"), out_dir=tmp_path).fit(x, resume=True)
    msg = str(info.value)
    assert "trained with precision='32'" in msg and "not 'bf16-mixed'" in msg and "no readable" not in msg


def test_a_checkpoint_without_precision_state_resumes_as_float32(tmp_path, no_fsync):
    x = data()
    Trainer(vae(), opts(epochs=1), out_dir=tmp_path).fit(x)
    from aekit import checkpoint as ckpt

    folder = tmp_path / "checkpoints" / "epoch-00001"
    meta = json.loads((folder / "state.json").read_text())
    del meta["precision"], meta["meta_sha256"]  # as the previous release wrote it
    meta["meta_sha256"] = ckpt.sha256(json.dumps(meta, sort_keys=True).encode())
    (folder / "state.json").write_text(json.dumps(meta))
    trainer = Trainer(vae(), opts(epochs=2), out_dir=tmp_path)
    assert trainer.fit(x, resume=True).history[-1]["epoch"] == 2


# ------------------------------------------------------------------ a loss scale per optimizer group
class TwoGroups(nn.Module):
    """A linear autoencoder with a discriminator on its code, each part with its own optimizer (an AAE in miniature)."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.enc, self.dec, self.disc = nn.Linear(4, 2), nn.Linear(2, 4), nn.Linear(2, 1)

    def training_step(self, batch, group: str = "main") -> StepOutput:
        z = self.enc(batch)  # (B, 2)
        if group == "disc":
            real, fake = self.disc(torch.randn_like(z)), self.disc(z.detach())
            loss = F.binary_cross_entropy_with_logits(real.float(), torch.ones_like(real, dtype=torch.float32)) + \
                F.binary_cross_entropy_with_logits(fake.float(), torch.zeros_like(fake, dtype=torch.float32))
            return StepOutput(loss=loss, terms={"bce": loss.detach()})
        rec = (self.dec(z).float() - batch).pow(2).sum(1).mean()
        return StepOutput(loss=rec, terms={"rec": rec.detach()})

    def validation_step(self, batch) -> StepOutput:
        return self.training_step(batch)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("main", [*self.enc.parameters(), *self.dec.parameters()]),
                OptimizerGroup("disc", list(self.disc.parameters()), steps=2)]


def _cpu_fp16(monkeypatch, growth_interval: int = 3):
    """16-mixed with a CPU GradScaler (the scaler's logic without a GPU): float16 autocast on the CPU."""
    def make(precision, device):
        if precision != "16-mixed":
            return Precision(name=precision, device_type="cpu")
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=growth_interval)
        return Precision(name=precision, device_type="cpu", scaler=scaler)

    monkeypatch.setattr(trainer_module, "make_precision", make)


def _save(model, folder):
    from aekit import checkpoint as ckpt

    Path(folder).mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_bytes(Path(folder) / ckpt.WEIGHTS_NAME, ckpt.tensors_to_bytes(model.state_dict()))


def _load(folder):
    from aekit import checkpoint as ckpt

    model = TwoGroups()
    ckpt.load_state_into(model, ckpt.read_tensors(Path(folder) / ckpt.WEIGHTS_NAME), source=folder)
    return model


def test_each_group_has_its_own_loss_scale_and_resumes_it_exactly(tmp_path, monkeypatch, no_fsync):
    _cpu_fp16(monkeypatch)
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(1)) * 300.0  # large: fp16 gradients overflow
    cfg = TrainConfig(epochs=3, batch_size=8, progress=False, device="cpu", precision="16-mixed", grad_clip=5.0,
                      checkpoint_every=2, warmup_steps=0, schedule="none", lr=1e-3)
    kw = dict(save_model=_save, load_model=_load)
    ref = Trainer(TwoGroups(), cfg, out_dir=tmp_path / "ref", **kw)
    ref.fit(x)
    assert ref.precisions[1] is not ref.precisions[0] and ref.precisions[1].scaler is not ref.precision.scaler
    scales = [p.scaler.get_scale() for p in ref.precisions]
    assert scales[0] != scales[1]  # measured 2.0 and 1024.0: each group's own skips and growth
    model = TwoGroups()
    calls = [0]

    def stop(module, args):
        calls[0] += 1
        if calls[0] == 21:  # inside epoch 2 (3 forward passes of the encoder per batch)
            raise _Stop

    handle = model.enc.register_forward_pre_hook(stop)
    with pytest.raises(_Stop):
        Trainer(model, cfg, out_dir=tmp_path / "run", **kw).fit(x)
    handle.remove()
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("epoch-00001-step-*/state.json")).read_text())
    assert meta["precision"]["precision"] == "16-mixed" and meta["precision"]["scaler"]["scale"] > 0
    assert set(meta["precision_groups"]) == {"disc"} and meta["precision_groups"]["disc"]["scaler"]["scale"] > 0
    again = Trainer(TwoGroups(), cfg, out_dir=tmp_path / "run", **kw)
    again.fit(x, resume=True)
    assert strip(again.history) == strip(ref.history)
    for name, value in again.model.state_dict().items():
        assert torch.equal(value, ref.model.state_dict()[name]), name
    assert [p.scaler.get_scale() for p in again.precisions] == scales
    assert [p.state_dict() for p in again.precisions] == [p.state_dict() for p in ref.precisions]


# ------------------------------------------------------------------ loggers in the fit loop
def test_mlflow_logs_every_epoch_and_the_final_metrics_and_run_json_records_it(tmp_path, no_fsync):
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install 'aekit[mlflow]'")
    from mlflow.tracking import MlflowClient

    x = data()
    run = tmp_path / "run"
    result = Trainer(vae(), opts(loggers=["mlflow"]), out_dir=run).fit(x[:40], x[40:])
    record = json.loads((run / "run.json").read_text())["loggers"]
    assert [r["name"] for r in record] == ["csv", "mlflow"] and record[1]["dir"] == "mlruns"
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    run_id = record[1]["run_id"]
    info = client.get_run(run_id)
    assert info.info.status == "FINISHED" and info.info.run_name == "run"
    assert info.data.params["train/precision"] == "32" and info.data.params["train/loggers"] == '["mlflow"]'
    for key in ("train_loss", "train_nll", "train_kl_prior", "val_loss", "lr", "samples_per_s"):
        got = [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        assert got == [(r["epoch"], pytest.approx(r[key])) for r in result.history], key
    final = info.data.metrics
    assert final["final/best_val_loss"] == pytest.approx(result.best_val)
    assert final["final/best_epoch"] == result.best_epoch and final["final/seconds"] > 0
    assert final["final/val_loss"] == pytest.approx(result.history[-1]["val_loss"])
    # resumed to more epochs: the same MLflow run goes on
    again = Trainer(vae(), opts(epochs=3, loggers=["mlflow"]), out_dir=run).fit(x[:40], x[40:], resume=True)
    assert json.loads((run / "run.json").read_text())["loggers"][1]["run_id"] == run_id
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2, 3]
    assert client.get_metric_history(run_id, "train_loss")[-1].value == pytest.approx(again.history[-1]["train_loss"])


def test_a_run_that_fails_closes_its_loggers_as_failed(tmp_path, no_fsync):
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install 'aekit[mlflow]'")
    from mlflow.tracking import MlflowClient

    def boom(record, trainer):
        raise RuntimeError("stop here")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="stop here"):
        Trainer(vae(), opts(loggers=["mlflow"]), out_dir=run, callbacks=[boom]).fit(data())
    run_id = json.loads((run / "run.json").read_text())["loggers"][1]["run_id"]
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    assert client.get_run(run_id).info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1]


def test_cli_logger_flag_is_recorded_in_run_json(tmp_path):
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install 'aekit[mlflow]'")
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "64", "--epochs", "1", "--batch-size", "32",
                       "--out", tmp_path / "r", "--logger", "mlflow", "--device", "cpu", "--quiet")
    assert code == 0, err
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["train"]["loggers"] == ["mlflow"] and [r["name"] for r in info["loggers"]] == ["csv", "mlflow"]
    assert (tmp_path / "r" / "mlruns").is_dir()


def test_segment_train_takes_the_same_flags(tmp_path, no_fsync):
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install 'aekit[mlflow]'")
    from mlflow.tracking import MlflowClient

    data, run = tmp_path / "data", tmp_path / "run"
    assert cli("segment", "make-data", "--out", data, "-n", "6", "--size", "16", "--seed", "3")[0] == 0
    precision = "bf16-mixed" if cpu_has_native_bf16() else "32"
    code, _, err = cli("segment", "train", "--images", data / "images", "--masks", data / "masks", "--out", run,
                       "--epochs", "1", "--depth", "1", "--width", "2", "--crop", "16", "--tile", "16", "--logger", "mlflow",
                       "--precision", precision, "--quiet")
    assert code == 0, err
    info = json.loads((run / "run.json").read_text())
    assert info["train"]["precision"] == precision and info["train"]["loggers"] == ["mlflow"]
    assert [r["name"] for r in info["loggers"]] == ["csv", "mlflow"]
    history = json.loads((run / "history.json").read_text())  # segmentation's own layout, as before
    assert set(history) == {"history", "best_epoch", "best_dice"}
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    metrics = client.get_run(info["loggers"][1]["run_id"]).data.metrics
    assert metrics["val_dice"] == pytest.approx(history["history"][-1]["val_dice"])
    assert metrics["final/best_val_dice"] == pytest.approx(history["best_dice"])
