"""The Trainer: history, exact resume, checkpoint fallbacks, NaN handling, early stopping,
atomic checkpoints, validation objective, binarization, streaming, config checks, schedules."""

from __future__ import annotations

import csv
import errno
import json
import math
import os

import pytest
import torch
from torch.utils.data import TensorDataset

import aekit
from aekit import checkpoint as ckpt
from aekit.data import load_data
from aekit.errors import AekitError, CheckpointError, ConfigError, TrainingError
from aekit.training import trainer as train_module
from aekit.training.trainer import TrainConfig, Trainer

# the one-call helper (aekit.fit; formerly aekit.training.trainer.train)
train_fn = getattr(train_module, "fit", None) or getattr(train_module, "train")
HAS_DEVICE = "device" in TrainConfig.__dataclass_fields__

N_TRAIN = 256
BATCH = 32
STEPS = N_TRAIN // BATCH  # 8 optimizer steps per epoch


@pytest.fixture(scope="module")
def digits():
    ds = load_data("digits", seed=0, max_samples=N_TRAIN)
    assert ds.train.shape == (N_TRAIN, 1, 8, 8)
    return ds


def small(variant="ae", seed=0, **kw):
    if variant != "cae":
        kw.setdefault("hidden", [16])
    kw.setdefault("latent_dim", 3)
    return aekit.build(variant, input_shape=(1, 8, 8), seed=seed, **kw)


def cfg(**kw):
    base = dict(epochs=4, batch_size=BATCH, lr=1e-2, seed=0, progress=False, schedule="none", warmup_steps=0)
    if HAS_DEVICE:
        base["device"] = "cpu"  # the comparisons below are with CPU tensors, also on a GPU machine
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    """Durability is not under test (the failure tests below patch fsync themselves); fsync is slow on VMs."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def state_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


class Interrupt(Exception):
    pass


def interrupt_after(epoch):
    def cb(record, trainer):
        if record["epoch"] == epoch:
            raise Interrupt(f"stop after epoch {epoch}")
    return cb


def last_json(out):
    return json.loads((out / "checkpoints" / "last.json").read_text())


# ---------------------------------------------------------------------- history
def test_loss_decreases_and_history_is_complete_and_written(digits, tmp_path):
    model = small("vae")
    result = Trainer(model, cfg(epochs=5), out_dir=tmp_path).fit(digits.train, digits.val)
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in h] == [STEPS * e for e in range(1, 6)]
    assert h[-1]["train_loss"] < 0.9 * h[0]["train_loss"]
    assert h[-1]["val_loss"] < h[0]["val_loss"]

    terms = set(model(digits.train[:4]).terms)
    assert terms == {"nll", "kl_prior"}
    for r in h:
        expected = {"epoch", "step", "time", "lr", "train_loss", "val_loss", "samples_per_s"}
        expected |= {f"train_{t}" for t in terms} | {f"val_{t}" for t in terms}
        assert expected <= set(r), sorted(expected - set(r))
        assert r["lr"] == pytest.approx(1e-2)
        assert all(math.isfinite(r[k]) for k in expected)
        assert r["samples_per_s"] > 0  # throughput of the epoch's training steps
        # loss = nll + 1.0 * kl for beta = 1, per epoch mean and on validation
        assert r["train_loss"] == pytest.approx(r["train_nll"] + r["train_kl_prior"], rel=1e-5)
        assert r["val_loss"] == pytest.approx(r["val_nll"] + r["val_kl_prior"], rel=1e-5)
    times = [r["time"] for r in h]
    assert times == sorted(times) and times[0] >= 0

    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk == h
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(h)
    for row, r in zip(rows, h):
        assert set(row) == set(r)
        for k, v in r.items():
            assert float(row[k]) == v, k  # repr() of floats round-trips exactly
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["train"]["epochs"] == 5 and run["model"]["variant"] == "vae"
    assert result.best_epoch == min(h, key=lambda r: r["val_loss"])["epoch"]


def test_train_function_one_call(digits, tmp_path):
    model = small("ae")
    before = Trainer(model, cfg()).evaluate(digits.val)["loss"]
    extra = {"device": "cpu"} if HAS_DEVICE else {}
    result = train_fn(model, digits.train, digits.val, out_dir=tmp_path, epochs=3, lr=1e-2, batch_size=BATCH,
                      progress=False, **extra)
    assert len(result.history) == 3
    assert result.history[-1]["val_loss"] < before
    assert (tmp_path / "model.safetensors").is_file()


# ---------------------------------------------------------------------- exact resume
RESUME_CASES = {
    "dae_gaussian_noise": (dict(variant="dae", corruption="gaussian:0.3"), dict()),
    "dae_masking": (dict(variant="dae"), dict(schedule="step")),
    "vae_dynamic_cosine": (dict(variant="vae"), dict(binarize="dynamic", schedule="cosine", warmup_steps=3)),
    "vae_streaming": (dict(variant="vae"), dict(schedule="onecycle", optimizer="adamw", stream=True)),
}


def _run(out, case, digits, *, torch_seed, model_seed=0, callbacks=(), resume=False, **extra):
    build_kw, train_kw = RESUME_CASES[case]
    train_kw = {**train_kw, **extra}
    stream = train_kw.pop("stream", False)
    torch.manual_seed(torch_seed)
    model = small(build_kw["variant"], seed=model_seed, **{k: v for k, v in build_kw.items() if k != "variant"})
    trainer = Trainer(model, cfg(epochs=4, **train_kw), out_dir=out, callbacks=list(callbacks))
    data = TensorDataset(digits.train) if stream else digits.train
    result = trainer.fit(data, digits.val, resume=resume)
    return trainer, result


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_interrupted_and_resumed_run_is_bit_identical(digits, tmp_path, case):
    ref, ref_result = _run(tmp_path / "ref", case, digits, torch_seed=123)

    with pytest.raises(Interrupt):
        _run(tmp_path / "run", case, digits, torch_seed=123, callbacks=[interrupt_after(2)])
    assert last_json(tmp_path / "run")["epoch"] == 2
    # a different global seed and different initial weights: everything must come from the checkpoint
    resumed, result = _run(tmp_path / "run", case, digits, torch_seed=999, model_seed=7, resume=True)

    assert resumed.epoch == 4 and resumed.step == 4 * STEPS
    assert state_equal(ref.model.state_dict(), resumed.model.state_dict())
    assert [r["val_loss"] for r in result.history] == [r["val_loss"] for r in ref_result.history]
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in ref_result.history]
    assert [r["lr"] for r in result.history] == [r["lr"] for r in ref_result.history]
    assert result.best_epoch == ref_result.best_epoch
    assert state_equal(aekit.load(tmp_path / "ref").state_dict(), aekit.load(tmp_path / "run").state_dict())
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 4

    if case == "dae_gaussian_noise":
        # the comparison is sensitive: another seed (noise stream and shuffling) gives other weights
        other, _ = _run(tmp_path / "other", case, digits, torch_seed=123, seed=5)
        assert not state_equal(ref.model.state_dict(), other.model.state_dict())


def test_resume_of_a_finished_run_is_a_no_op_and_empty_dir_is_an_error(digits, tmp_path):
    trainer, result = _run(tmp_path / "run", "dae_masking", digits, torch_seed=1)
    again, result2 = _run(tmp_path / "run", "dae_masking", digits, torch_seed=2, model_seed=3, resume=True)
    assert state_equal(trainer.model.state_dict(), again.model.state_dict())
    assert result2.history == result.history
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(small(), cfg(), out_dir=tmp_path / "empty").fit(digits.train, resume=True)
    with pytest.raises(ConfigError, match="out_dir"):
        Trainer(small(), cfg()).fit(digits.train, resume=True)


def _flip_bytes(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_newest_checkpoint_falls_back_to_the_previous(digits, tmp_path, capsys):
    case = "dae_gaussian_noise"
    ref, ref_result = _run(tmp_path / "ref", case, digits, torch_seed=11)
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        _run(run, case, digits, torch_seed=11, callbacks=[interrupt_after(3)], keep_checkpoints=2)
    kept = sorted(p.name for p in (run / "checkpoints").glob("epoch-*"))
    assert kept == ["epoch-00002", "epoch-00003"]
    _flip_bytes(run / "checkpoints" / "epoch-00003" / "state.safetensors")
    capsys.readouterr()

    resumed, result = _run(run, case, digits, torch_seed=0, model_seed=4, resume=True, keep_checkpoints=2)
    err = capsys.readouterr().err
    assert "epoch-00003" in err and "epoch-00002" in err  # says what it skipped and what it used
    assert state_equal(ref.model.state_dict(), resumed.model.state_dict())
    assert [r["val_loss"] for r in result.history] == [r["val_loss"] for r in ref_result.history]


def test_all_checkpoints_corrupted_is_a_checkpoint_error(digits, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        _run(run, "dae_masking", digits, torch_seed=0, callbacks=[interrupt_after(3)])
    for d in (run / "checkpoints").glob("epoch-*"):
        _flip_bytes(d / "state.safetensors")
    with pytest.raises(CheckpointError, match="no readable checkpoint") as info:
        _run(run, "dae_masking", digits, torch_seed=0, resume=True)
    assert "corrupted" in str(info.value)


def test_corrupted_weights_in_newest_checkpoint_also_fall_back(digits, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        _run(run, "dae_masking", digits, torch_seed=0, callbacks=[interrupt_after(3)])
    weights = run / "checkpoints" / "epoch-00003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])  # truncated
    trainer = Trainer(small("dae"), cfg(epochs=4, schedule="step"), out_dir=run)
    assert trainer.load_checkpoint().name == "epoch-00002"
    assert trainer.epoch == 2 and len(trainer.history) == 2


# ---------------------------------------------------------------------- NaN
def test_nan_loss_names_epoch_step_and_last_good_checkpoint(digits, tmp_path):
    def poison(record, trainer):  # after epoch 2's checkpoint: every weight becomes NaN
        if record["epoch"] == 2:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))

    trainer = Trainer(small("ae"), cfg(epochs=4), out_dir=tmp_path, callbacks=[poison])
    with pytest.raises(TrainingError) as info:
        trainer.fit(digits.train, digits.val)
    msg = str(info.value)
    last = tmp_path / "checkpoints" / "epoch-00002"
    assert "epoch 3" in msg and "step 1 " in msg and f"global step {2 * STEPS + 1}" in msg
    assert str(last) in msg
    assert "nan" in msg.lower()

    good = aekit.load(last)
    assert all(torch.isfinite(t).all() for t in good.state_dict().values() if t.is_floating_point())
    root = aekit.load(tmp_path)
    assert all(torch.isfinite(t).all() for t in root.state_dict().values() if t.is_floating_point())
    # the kept state resumes and finishes
    again = Trainer(small("ae"), cfg(epochs=4), out_dir=tmp_path)
    result = again.fit(digits.train, digits.val, resume=True)
    assert again.epoch == 4 and all(math.isfinite(r["train_loss"]) for r in result.history)


def test_absurd_learning_rate_raises_training_error_without_checkpoint(digits):
    trainer = Trainer(small("ae"), cfg(epochs=3, lr=1e30, optimizer="sgd"))
    with pytest.raises(TrainingError, match=r"epoch 1, step \d+") as info:
        trainer.fit(digits.train)
    assert "checkpoint" not in str(info.value)  # there is none yet; it must not invent one


# ---------------------------------------------------------------------- early stopping
@pytest.mark.parametrize("patience,vals,stop_at,best", [
    (1, [5.0, 3.0, 4.0, 2.0, 1.0], 3, 2),
    (2, [5.0, 3.0, 4.0, 3.5, 1.0, 0.5], 4, 2),
])
def test_early_stopping_keeps_the_best_epoch_as_the_run_model(digits, tmp_path, patience, vals, stop_at, best):
    trainer = Trainer(small("ae"), cfg(epochs=10, early_stopping=patience, keep_checkpoints=3), out_dir=tmp_path)
    feed = iter(vals)
    trainer.evaluate = lambda x, **kw: {"loss": next(feed)}
    result = trainer.fit(digits.train, digits.val)
    assert result.stopped_early
    assert len(result.history) == stop_at and trainer.epoch == stop_at
    assert result.best_epoch == best and result.best_val == vals[best - 1]

    root = aekit.load(tmp_path).state_dict()
    best_w = ckpt.read_tensors(tmp_path / "checkpoints" / f"epoch-{best:05d}" / "model.safetensors")
    last_w = ckpt.read_tensors(tmp_path / "checkpoints" / f"epoch-{stop_at:05d}" / "model.safetensors")
    assert state_equal(root, best_w)
    assert not state_equal(root, last_w)
    assert state_equal(last_w, trainer.model.state_dict())


def test_without_validation_the_final_model_is_kept(digits, tmp_path):
    trainer = Trainer(small("ae"), cfg(epochs=2), out_dir=tmp_path)
    result = trainer.fit(digits.train)
    assert result.best_epoch is None and "val_loss" not in result.history[-1]
    assert state_equal(aekit.load(tmp_path).state_dict(), trainer.model.state_dict())


# ---------------------------------------------------------------------- atomic checkpoints
# calls inside save_checkpoint(best=True): os.replace: 1 weights, 2 config, 3 state.safetensors,
# 4 state.json, 5 folder rename, 6 root weights, 7 root config, 8 last.json; os.fsync: the same
# without the folder rename (1..4, 5 root weights, 6 root config, 7 last.json). The kept model is
# written before last.json is switched: a crash never leaves last.json ahead of the kept model.
SWITCHED = {"replace": 9, "fsync": 8}  # from this call on, last.json already points to the new folder (never)
FAILURES = [("replace", k) for k in range(1, 9)] + [("fsync", k) for k in range(1, 8)]


def _train_with_failing_save(digits, out, monkeypatch, which, k):
    real = getattr(os, which)
    state = {"armed": False, "n": 0}

    def flaky(*args, **kwargs):
        if state["armed"]:
            state["n"] += 1
            if state["n"] == k:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(os, which, flaky)
    trainer = Trainer(small("ae"), cfg(epochs=4), out_dir=out)
    feed = iter([4.0, 3.0, 2.0, 1.0])  # improves every epoch: the run's model is re-saved each time
    trainer.evaluate = lambda x, **kw: {"loss": next(feed)}
    real_save = trainer.save_checkpoint
    snapshot = {}

    def save(**kw):
        if trainer.epoch == 3:
            for p in sorted(out.rglob("*")):
                if p.is_file():
                    snapshot[p.relative_to(out)] = p.read_bytes()
            state["armed"] = True
        try:
            return real_save(**kw)
        finally:
            state["armed"] = False

    trainer.save_checkpoint = save
    with pytest.raises(OSError):
        trainer.fit(digits.train, digits.val)
    assert state["n"] == k, "the failure was not reached"
    return snapshot


@pytest.mark.parametrize("which,k", FAILURES)
def test_failed_write_during_save_checkpoint_keeps_the_previous_checkpoint(digits, tmp_path, monkeypatch, which, k):
    snapshot = _train_with_failing_save(digits, tmp_path, monkeypatch, which, k)
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    last = json.loads((root / "last.json").read_text())
    if k < SWITCHED[which]:
        assert last["dir"] == "epoch-00002"
        assert (root / "last.json").read_bytes() == snapshot[root.relative_to(tmp_path) / "last.json"]
    else:
        assert last["dir"] == "epoch-00003"
    # the previous checkpoint is byte for byte what it was
    prev = root / "epoch-00002"
    for rel, data in snapshot.items():
        if rel.parts[:2] == ("checkpoints", "epoch-00002"):
            assert (tmp_path / rel).read_bytes() == data, rel
    assert sorted(p.name for p in prev.iterdir()) == ["config.json", "model.safetensors", "state.json",
                                                     "state.safetensors"]
    # nothing half-written is visible: every epoch-* folder is complete and loadable, no temp files
    for d in root.glob("epoch-*"):
        Trainer(small("ae"), cfg(epochs=4), out_dir=tmp_path)._restore(d)
    visible = [p for p in tmp_path.rglob("*") if not any(part.startswith(".") for part in p.relative_to(tmp_path).parts)]
    assert not [p for p in visible if p.suffix in (".tmp", ".partial")]
    # and the run resumes from what last.json names
    again = Trainer(small("ae"), cfg(epochs=4), out_dir=tmp_path)
    assert again.load_checkpoint().name == last["dir"]
    again.fit(digits.train, digits.val, resume=True)
    assert again.epoch == 4


ROOT_FAILURES = [("replace", 6), ("fsync", 5),
                 pytest.param("replace", 7),
                 pytest.param("fsync", 6)]


@pytest.mark.parametrize("which,k", ROOT_FAILURES)
def test_failed_write_of_the_run_model_keeps_a_loadable_model(digits, tmp_path, monkeypatch, which, k):
    _train_with_failing_save(digits, tmp_path, monkeypatch, which, k)
    monkeypatch.undo()
    aekit.load(tmp_path)  # the previous (epoch 2) or the new model, but never an unloadable pair


# ---------------------------------------------------------------------- validation objective
@pytest.mark.parametrize("variant", ["ae", "dae", "sparse_kl", "cae"])
def test_evaluate_is_the_training_objective_in_eval_mode(digits, variant):
    model = small(variant)
    trainer = Trainer(model, cfg())
    x = digits.train[:64]
    model.train()
    got = trainer.evaluate(x)
    assert model.training, "evaluate must restore the training mode"
    model.eval()
    out = model(x)
    assert got["loss"] == pytest.approx(float(out.loss.detach()), rel=1e-6)
    assert set(got) == {"loss", *out.terms}
    for k, v in out.terms.items():
        assert got[k] == pytest.approx(float(v.detach()), rel=1e-6, abs=1e-9), k
    if variant == "ae":  # per-sample losses average exactly across evaluation batches
        assert trainer.evaluate(x, batch_size=10)["loss"] == pytest.approx(got["loss"], rel=1e-6)
    if variant == "dae":  # and the corruption really is off: the training-mode loss differs
        model.train()
        assert float(model(x).loss) != pytest.approx(got["loss"], rel=1e-4)


def test_vae_evaluate_is_a_fixed_seed_sample_and_leaves_the_rng_alone(digits):
    model = small("vae")
    trainer = Trainer(model, cfg())
    x = digits.val
    rng = torch.get_rng_state()
    a, b = trainer.evaluate(x), trainer.evaluate(x)
    assert torch.equal(rng, torch.get_rng_state())
    assert a == b
    model.eval()
    mean_code_loss = float(model(x).loss)  # z = mu: the optimistic estimate evaluate must not use
    assert a["loss"] != pytest.approx(mean_code_loss, rel=1e-6)


# ---------------------------------------------------------------------- binarization
@pytest.mark.parametrize("stream", [False, True], ids=["tensor", "dataset"])
@pytest.mark.parametrize("mode", ["none", "threshold", "dynamic"])
def test_binarize_applies_to_training_batches(digits, mode, stream):
    model = small("vae")
    seen = []
    forward = model.forward

    def spy(x):
        seen.append((model.training, x.detach().clone()))
        return forward(x)

    model.forward = spy
    data = TensorDataset(digits.train) if stream else digits.train
    Trainer(model, cfg(epochs=2, binarize=mode)).fit(data, digits.val)
    train_batches = [x for training, x in seen if training]
    val_batches = [x for training, x in seen if not training]
    assert len(train_batches) == 2 * STEPS and len(val_batches) == 2
    epoch1 = torch.cat(train_batches[:STEPS])
    epoch2 = torch.cat(train_batches[STEPS:])
    assert epoch1.shape == digits.train.shape
    binary = all(bool(((x == 0) | (x == 1)).all()) for x in train_batches + val_batches)
    if mode == "none":
        assert not binary
        assert float(epoch1.sum()) == pytest.approx(float(digits.train.sum()), rel=1e-5)
        return
    assert binary
    ones1 = float(epoch1.sum())
    if mode == "threshold":
        assert ones1 == float((digits.train > 0.5).sum())
        assert torch.equal(val_batches[0], (digits.val > 0.5).float())
    else:  # a fresh Bernoulli draw per batch, with the grey level as probability
        assert ones1 == pytest.approx(float(digits.train.sum()), rel=0.05)
        assert ones1 != float((digits.train > 0.5).sum())
        assert not torch.equal(epoch1.sort(0).values, epoch2.sort(0).values)
        assert torch.equal(val_batches[0], val_batches[1]), "validation uses one fixed binarization"


# ---------------------------------------------------------------------- streaming
def test_streaming_dataset_trains_and_reduces_the_loss(digits, tmp_path):
    model = small("ae")
    trainer = Trainer(model, cfg(epochs=4), out_dir=tmp_path)
    before = trainer.evaluate(digits.train)["loss"]
    labels = torch.zeros(N_TRAIN, dtype=torch.long)
    result = trainer.fit(TensorDataset(digits.train, labels), digits.val)
    assert trainer.step == 4 * STEPS
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert trainer.evaluate(digits.train)["loss"] < 0.95 * before
    assert (tmp_path / "model.safetensors").is_file()


def test_fit_refuses_non_datasets_and_bad_tensors(digits):
    trainer = Trainer(small("ae"), cfg())
    with pytest.raises(ConfigError, match="map-style"):
        trainer.fit(iter([digits.train]))
    bad = digits.train.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        trainer.fit(bad)
    with pytest.raises(AekitError, match=r"shape \(10, 63\)"):
        trainer.fit(torch.rand(10, 63))  # (10, 64) would be accepted: flattened 8x8 images


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize("kwargs,name,hint", [
    ({"optimizer": "adma"}, "optimizer", "Did you mean 'adam'"),
    ({"schedule": "cosin"}, "schedule", "Did you mean 'cosine'"),
    ({"binarize": "dynamc"}, "binarize", "Did you mean 'dynamic'"),
    ({"epochs": 0}, "epochs", None),
    ({"epochs": 2.5}, "epochs", None),
    ({"batch_size": 0}, "batch_size", None),
    ({"lr": -1}, "lr", None),
    ({"lr": 0}, "lr", None),
    ({"lr": float("nan")}, "lr", None),
    ({"grad_clip": -1.0}, "grad_clip", None),
    ({"early_stopping": 0}, "early_stopping", None),
    ({"keep_checkpoints": 0}, "keep_checkpoints", None),
])
def test_train_config_errors_name_the_parameter(kwargs, name, hint):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**kwargs)
    msg = str(info.value)
    assert msg.startswith(name) or f"{name} " in msg, msg
    assert repr(next(iter(kwargs.values()))) in msg or str(next(iter(kwargs.values()))) in msg
    if hint:
        assert hint in msg


def test_unknown_training_option_has_a_did_you_mean(digits):
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        train_fn(small(), digits.train, batchsize=3)


def test_negative_weight_decay_is_a_config_error():
    with pytest.raises(ConfigError, match="weight_decay"):
        Trainer(small(), TrainConfig(weight_decay=-1.0))


def test_default_config_is_valid_and_recorded():
    c = TrainConfig()
    assert c.optimizer == "adam" and c.epochs == 10 and c.lr == 4e-3
    assert c.schedule == "cosine" and c.warmup_fraction == 0.4 and c.warmup_steps is None and c.betas == (0.9, 0.99)
    assert TrainConfig(betas=[0.8, 0.9]).betas == (0.8, 0.9)  # lists from JSON/TOML become tuples
    with pytest.raises(ConfigError, match="betas"):
        TrainConfig(betas=(0.9, 1.0))
    assert TrainConfig.from_dict({"epochs": 3, "lr": 0.5}).epochs == 3


# ---------------------------------------------------------------------- schedules
@pytest.mark.parametrize("schedule", ["none", "cosine", "onecycle", "step"])
def test_schedules_change_the_learning_rate(digits, schedule):
    lr = 1e-2
    trainer = Trainer(small("ae"), cfg(epochs=4, schedule=schedule, lr=lr))
    result = trainer.fit(digits.train)
    lrs = [r["lr"] for r in result.history]
    assert all(math.isfinite(v) and 0 < v <= lr * (1 + 1e-9) for v in lrs)
    if schedule == "none":
        assert lrs == [lr] * 4
        return
    assert lrs[-1] < 0.1 * lr and lrs[-1] != lrs[0]
    if schedule == "cosine":
        assert lrs == sorted(lrs, reverse=True)
        assert lrs[-1] == pytest.approx(0.02 * lr)
    if schedule == "step":
        assert lrs == pytest.approx([lr, 0.1 * lr, 0.01 * lr, 0.01 * lr])
    if schedule == "onecycle":
        assert max(lrs) > lrs[-1] and lrs.index(max(lrs)) < 3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_warmup_ramps_the_learning_rate(digits):
    trainer = Trainer(small("ae"), cfg(epochs=1, warmup_steps=16))  # 8 steps done of a 16-step warm-up
    result = trainer.fit(digits.train)
    # the closed-form warm-up caps at total_steps - 1 = 7 steps, so after 8 steps the full lr is reached
    assert result.history[-1]["lr"] == pytest.approx(1e-2)
    trainer = Trainer(small("ae"), cfg(epochs=4, warmup_steps=16))
    seen = []
    trainer.callbacks.append(lambda r, t: seen.append(r["lr"]))
    trainer.fit(digits.train)
    assert seen[0] == pytest.approx(1e-2 * 9 / 16) and seen[1:] == pytest.approx([1e-2] * 3)


def test_resume_onecycle_run_to_more_epochs(digits, tmp_path):
    Trainer(small("ae"), cfg(epochs=2, schedule="onecycle"), out_dir=tmp_path).fit(digits.train, digits.val)
    trainer = Trainer(small("ae"), cfg(epochs=4, schedule="onecycle"), out_dir=tmp_path)
    try:
        trainer.fit(digits.train, digits.val, resume=True)
    except AekitError:
        return  # a clear refusal would be acceptable too
    assert trainer.epoch == 4


# ---------------------------------------------------------------------- data checks
def test_bernoulli_likelihood_refuses_data_outside_unit_interval(digits):
    trainer = Trainer(small("vae"), cfg(epochs=1))
    with pytest.raises(ConfigError, match="bernoulli") as info:
        trainer.fit(digits.train * 2.0)
    assert "train" in str(info.value)
    with pytest.raises(ConfigError, match="val"):
        trainer.fit(digits.train, digits.val - 0.5)
    # threshold binarization makes any data valid for a Bernoulli decoder
    Trainer(small("vae"), cfg(epochs=1, binarize="threshold")).fit(digits.train * 2.0)


def test_dynamic_binarization_of_data_outside_unit_interval_is_a_config_error():
    x = torch.randn(64, 6)
    model = aekit.build("ae", input_shape=(6,), hidden=[4], latent_dim=2, seed=0)
    with pytest.raises(ConfigError, match="binarize"):
        Trainer(model, cfg(epochs=1, binarize="dynamic")).fit(x)


def test_tensorboard_logs_every_epoch_metric(digits, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(small("ae"), cfg(epochs=2, tensorboard=True), out_dir=tmp_path).fit(digits.train, digits.val)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "val_loss", "train_nll", "lr"} <= tags
    assert [e.step for e in events.Scalars("val_loss")] == [1, 2]


def test_unknown_device_is_a_config_error_with_a_hint():
    from aekit.training.trainer import resolve_device

    with pytest.raises(ConfigError, match="device must be .*'cpux'.*Did you mean 'cpu'"):
        resolve_device("cpux")
    assert resolve_device("cpu").type == "cpu"
