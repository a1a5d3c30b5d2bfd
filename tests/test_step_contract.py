"""The step contract and the one Trainer: tuple and dict batches, several optimizer groups (own optimizer,
schedule and steps per batch), their checkpoints and bit-exact resume, and the models that implement it
(Autoencoder, conditional model, U-Net segmenter, stacked classifier)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import aekit
from aekit.errors import CheckpointError, ConfigError
from aekit.step import OptimizerGroup, StepOutput, check_batch, index_batch, optimizer_groups_of
from aekit.training.trainer import TrainConfig, Trainer
from cli_helpers import cli

V1 = Path(__file__).resolve().parent / "fixtures" / "v1"


class ToyAdversarial(nn.Module):
    """A linear autoencoder whose code is pushed towards N(0, I) by a discriminator (an AAE in miniature);
    the discriminator is updated k times per batch by its own SGD with its own schedule."""

    def __init__(self, *, k: int = 3, disc_lr: float = 0.05, main_lr: float | None = None, groups: int = 2) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.enc, self.dec, self.disc = nn.Linear(4, 2), nn.Linear(2, 4), nn.Linear(2, 1)
        self.k, self.disc_lr, self.main_lr, self.n_groups = k, disc_lr, main_lr, groups
        self.calls: list[str] = []
        self.labels: list[torch.Tensor] = []

    def training_step(self, batch, group: str = "main") -> StepOutput:
        x, y = batch["x"], batch["y"]  # labels travel in the batch
        self.calls.append(group)
        self.labels.append(y)
        z = self.enc(x)  # (B, 2)
        if group == "disc":  # not detached: its gradient reaches the encoder, whose optimizer must not step
            real, fake = self.disc(torch.randn_like(z)), self.disc(z)
            loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
                F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            return StepOutput(loss=loss, terms={"bce": loss.detach()})
        rec = (self.dec(z) - x).pow(2).sum(1).mean()
        fool = self.disc(z)  # its gradient reaches the discriminator, whose optimizer must not step
        adv = F.binary_cross_entropy_with_logits(fool, torch.ones_like(fool))
        return StepOutput(loss=rec + 0.1 * adv, terms={"rec": rec, "adv": adv}, weights={"rec": 1.0, "adv": 0.1})

    def validation_step(self, batch) -> StepOutput:
        return self.training_step(batch)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        main = list(self.enc.parameters()) + list(self.dec.parameters())
        opt = None if self.main_lr is None else (lambda p: torch.optim.SGD(p, lr=self.main_lr))
        groups = [OptimizerGroup("main", main, optimizer=opt)]
        if self.n_groups == 2:
            groups.append(OptimizerGroup("disc", list(self.disc.parameters()), steps=self.k,
                                         optimizer=lambda p: torch.optim.SGD(p, lr=self.disc_lr, momentum=0.9),
                                         schedule=lambda o, total: torch.optim.lr_scheduler.LambdaLR(
                                             o, lambda s: 1.0 / (1.0 + s))))
        else:
            main += list(self.disc.parameters())
        return groups


def toy_data(n: int = 40):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    x[:, 0] = torch.arange(n, dtype=torch.float32)  # the row index is readable from the data
    return {"x": x, "y": torch.arange(n) * 10}


def opts(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "progress": False, "lr": 1e-2, "warmup_steps": 2, **kw})


def params(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_each_group_steps_only_its_own_parameters_and_schedule():
    data = toy_data()  # 40 rows, batch 8: 5 batches per epoch, 10 in all
    frozen_disc = ToyAdversarial(disc_lr=0.0)
    before = params(frozen_disc)
    trainer = Trainer(frozen_disc, opts())
    trainer.fit(data)
    after = params(frozen_disc)
    assert torch.equal(after["disc.weight"], before["disc.weight"]), "the main loss's gradient moved the discriminator"
    assert not torch.equal(after["enc.weight"], before["enc.weight"])
    assert frozen_disc.calls[:4] == ["main", "disc", "disc", "disc"]  # in list order, k steps of the second
    assert frozen_disc.calls.count("main") == 10 and frozen_disc.calls.count("disc") == 30
    # each schedule follows its own optimizer's steps: 10 main, 30 discriminator steps
    assert trainer.schedulers[0].last_epoch == 10 and trainer.schedulers[1].last_epoch == 30
    assert trainer.history[-1]["lr_disc"] == 0.0
    assert {"train_loss", "train_rec", "train_adv", "train_disc_loss", "train_disc_bce"} <= set(trainer.history[-1])
    assert [set(o.param_groups[0]["params"]) for o in trainer.optimizers] == \
        [set(frozen_disc.enc.parameters()) | set(frozen_disc.dec.parameters()), set(frozen_disc.disc.parameters())]

    frozen_main = ToyAdversarial(main_lr=0.0, disc_lr=0.05)
    before = params(frozen_main)
    trainer = Trainer(frozen_main, opts())
    trainer.fit(data)
    after = params(frozen_main)
    for name in ("enc.weight", "enc.bias", "dec.weight"):
        assert torch.equal(after[name], before[name]), f"the discriminator's gradient moved {name}"
    assert not torch.equal(after["disc.weight"], before["disc.weight"])
    lr = trainer.optimizers[1].param_groups[0]["lr"]
    assert lr == pytest.approx(0.05 / (1 + 30)) and trainer.history[-1]["lr_disc"] == lr


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_labels_travel_in_dict_batches_with_the_same_rows():
    data = toy_data()
    model = ToyAdversarial(groups=1)
    Trainer(model, opts(epochs=1)).fit(data)
    seen = []
    model.training_step = lambda batch, group="main": seen.append(batch) or ToyAdversarial.training_step(model, batch)
    Trainer(model, opts(epochs=1)).fit(data, {k: v[:9] for k, v in data.items()})
    train_rows = torch.cat([b["x"][:, 0] for b in seen[:5]]).long()
    assert sorted(train_rows.tolist()) == list(range(40)) and train_rows.tolist() != list(range(40))  # shuffled
    for b in seen:
        assert torch.equal(b["y"], b["x"][:, 0].long() * 10), "every label belongs to its own row"
    x, y = data["x"], data["y"]
    idx = torch.tensor([3, 1])
    assert [t.tolist() for t in index_batch((x, y), idx)] == [x[idx].tolist(), [30, 10]]
    with pytest.raises(ConfigError, match="same number of rows"):
        check_batch((x, y[:5]), "train")
    shared = nn.Parameter(torch.zeros(1))

    class Bad(nn.Module):
        def optimizer_groups(self):
            return [OptimizerGroup("a", [shared]), OptimizerGroup("b", [shared])]

    with pytest.raises(ConfigError, match="two optimizer groups"):
        optimizer_groups_of(Bad())
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        OptimizerGroup("d", [], steps=0)


class _Stop(Exception):
    pass


def _stop_at(step: int):
    count = [0]

    def hook(optimizer, args, kwargs):
        count[0] += 1
        if count[0] == step:
            raise _Stop

    return register_optimizer_step_pre_hook(hook)


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_two_groups_resume_bit_identical_inside_an_epoch(tmp_path, no_fsync):
    data = toy_data(38)  # batch 8: 5 batches per epoch, the last of 6 rows
    cfg = opts(epochs=3, checkpoint_every=2)
    ref = Trainer(ToyAdversarial(), cfg, out_dir=tmp_path / "ref", save_model=lambda m, f: _save(m, f),
                  load_model=_load)
    ref.fit(data, {k: v[:10] for k, v in data.items()})
    val = {k: v[:10] for k, v in data.items()}
    for stop in (13, 27, 51):  # optimizer steps (4 per batch; checkpoints every 2 batches): inside epochs 1, 2, 3
        out = tmp_path / f"stopped-{stop}"
        handle = _stop_at(stop)
        try:
            with pytest.raises(_Stop):
                Trainer(ToyAdversarial(), cfg, out_dir=out, save_model=_save, load_model=_load).fit(data, val)
        finally:
            handle.remove()
        again = Trainer(ToyAdversarial(), cfg, out_dir=out, save_model=_save, load_model=_load)
        again.fit(data, val, resume=True)
        assert again.step == ref.step == 15
        strip = [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in ref.history]
        assert [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in again.history] == strip, stop
        for name, a in again.model.state_dict().items():
            assert torch.equal(a, ref.model.state_dict()[name]), (stop, name)
        for oa, ob in zip(again.optimizers, ref.optimizers):
            sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
            assert sa.keys() == sb.keys() and all(torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k]))
                                                  for i in sb for k in sb[i]), stop
        assert again.schedulers[1].last_epoch == ref.schedulers[1].last_epoch == 45
    # a checkpoint of a one-group run lacks the discriminator's optimizer: refused, naming the group
    one = tmp_path / "one"
    Trainer(ToyAdversarial(groups=1), opts(epochs=1), out_dir=one, save_model=_save, load_model=_load).fit(data)
    with pytest.raises(CheckpointError, match="'disc'"):
        Trainer(ToyAdversarial(), opts(epochs=2), out_dir=one, save_model=_save, load_model=_load).fit(data, resume=True)


def _save(model, folder):
    from aekit import checkpoint as ckpt

    Path(folder).mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_bytes(Path(folder) / ckpt.WEIGHTS_NAME, ckpt.tensors_to_bytes(model.state_dict()))


def _load(folder):
    from aekit import checkpoint as ckpt

    model = ToyAdversarial()
    ckpt.load_state_into(model, ckpt.read_tensors(Path(folder) / ckpt.WEIGHTS_NAME), source=folder)
    return model


# ---------------------------------------------------------------------- the models implementing it
@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_autoencoder_contract_and_y_train_is_a_thin_wrapper():
    x = torch.rand(30, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 3

    def cvae():
        return aekit.build("cvae", input_shape=(6,), hidden=[8], latent_dim=2, num_classes=3, seed=2)

    m = cvae()
    groups = m.optimizer_groups()
    assert len(groups) == 1 and groups[0].steps == 1 and len(groups[0].params) == len(list(m.parameters()))
    torch.manual_seed(5)
    a = m.training_step((x, y))
    torch.manual_seed(5)
    b = m.training_step({"x": x, "y": y})
    torch.manual_seed(5)
    c = m(x, y)
    assert torch.equal(a.loss, c.loss) and torch.equal(b.loss, c.loss)
    assert float(a.loss.detach()) == pytest.approx(sum(a.weights[k] * float(a.terms[k].detach()) for k in a.terms), rel=1e-6)
    plain = aekit.build("ae", input_shape=(6,), hidden=[8], latent_dim=2, seed=2)
    assert torch.equal(plain.training_step((x, y)).loss, plain(x).loss)  # an unconditional model ignores labels
    one, two = cvae(), cvae()
    Trainer(one, opts()).fit(x[:24], x[24:], y_train=y[:24], y_val=y[24:])
    Trainer(two, opts()).fit((x[:24], y[:24]), (x[24:], y[24:]))
    assert all(torch.equal(p, q) for p, q in zip(one.state_dict().values(), two.state_dict().values()))


def test_stacked_classifier_takes_x_y_batches():
    from aekit.tasks.stacked.classifier import StackedClassifier

    ae = aekit.build("ae", input_shape=(6,), hidden=[8], latent_dim=3, seed=0)
    clf = StackedClassifier(ae, 3)
    assert not hasattr(StackedClassifier, "pack")
    x, y = torch.rand(5, 6), torch.tensor([0, 1, 2, 0, 1])
    out = clf.training_step((x, y))
    with torch.no_grad():
        assert float(out.loss) == pytest.approx(float(F.cross_entropy(clf.logits(x), y)))
    assert float(out.terms["accuracy"]) == pytest.approx(float((clf.logits(x).argmax(1) == y).float().mean()))


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_segmenter_resumes_inside_an_epoch_and_stops_early_on_dice(tmp_path, no_fsync):
    from aekit.tasks.segmentation import SegmentationUNet, cells_set, fit_segmenter

    train, val = cells_set(6, size=20, seed=1), cells_set(2, size=20, seed=2)
    cfg = dict(epochs=2, batch_size=2, crop=16, checkpoint_every=2, augment=["flip", "rotate", "elastic"])

    def net():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return SegmentationUNet(depth=1, width=3)

    a = net()
    ref = fit_segmenter(a, train, val, out_dir=tmp_path / "ref", **cfg)
    b = net()
    handle = _stop_at(5)  # 3 steps per epoch: after the checkpoint at step 4, inside the second epoch
    try:
        with pytest.raises(_Stop):
            fit_segmenter(b, train, val, out_dir=tmp_path / "r", **cfg)
    finally:
        handle.remove()
    assert json.loads((tmp_path / "r" / "checkpoints" / "last.json").read_text()).get("epoch_step") is not None
    c = net()
    again = fit_segmenter(c, train, val, out_dir=tmp_path / "r", resume=True, **cfg)
    assert [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in again.history] == \
           [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in ref.history]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    assert set(json.loads((tmp_path / "r" / "history.json").read_text())) == {"history", "best_epoch", "best_dice"}
    # early stopping counts epochs without a better validation Dice (a higher one)
    stopped = fit_segmenter(net(), train, val, epochs=6, batch_size=2, crop=16, lr=1e-9, early_stopping=1)
    assert len(stopped.history) < 6 and stopped.best_epoch == 1


def test_first_release_segmentation_run_resumes(tmp_path, no_fsync):
    run = tmp_path / "seg"
    shutil.copytree(V1 / "seg", run)
    info = json.loads((run / "run.json").read_text())
    info["data"]["images"], info["data"]["masks"] = str(V1 / "cells" / "images"), str(V1 / "cells" / "masks")
    (run / "run.json").write_text(json.dumps(info))
    code, out, err = cli("segment", "train", "--out", run, "--resume", "--epochs", "2", "--quiet", "--checkpoint-every", "2",
                         "--early-stopping", "5")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2
    assert json.loads((run / "checkpoints" / "last.json").read_text())["epoch"] == 2
    history = json.loads((run / "history.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2] and history[0]["train_loss"] == pytest.approx(1.3417607545852661)
    assert json.loads((run / "run.json").read_text())["train"]["checkpoint_every"] == "2"


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_two_groups_and_dict_batches_train_data_parallel_like_one_process(tmp_path):
    """Two gloo ranks, each taking half of every batch (labels with their rows), end where one process does:
    two optimizer groups with dict batches, and the U-Net segmenter with its crop-and-augment transform."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from aekit.tasks.segmentation import fit_segmenter
    from distributed_groups_worker import SEGMENT, TwoGroups, config, data, segment_data, segmenter
    from test_distributed import free_port

    single = TwoGroups()
    Trainer(single, config()).fit(data())
    unet = segmenter()
    fit_segmenter(unet, segment_data(), **SEGMENT)
    port, procs = free_port(), []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, str(Path(__file__).parent / "distributed_groups_worker.py"),
                                       str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    ddp = load_file(str(tmp_path / "weights.safetensors"))
    for name, value in single.state_dict().items():
        assert torch.allclose(ddp[name], value, atol=1e-5), name
    assert not torch.equal(ddp["disc.weight"], TwoGroups().state_dict()["disc.weight"])
    ddp = load_file(str(tmp_path / "unet.safetensors"))  # the segmenter: every rank crops the global batch alike
    for name, value in unet.state_dict().items():
        assert torch.allclose(ddp[name], value, atol=1e-5), name
    assert not torch.equal(ddp["head.weight"], segmenter().state_dict()["head.weight"])


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_segmenter_without_validation_keeps_each_epochs_model(tmp_path, no_fsync):
    from aekit.tasks.segmentation import SegmentationUNet, cells_set, fit_segmenter, load_segmenter

    def interrupt(record, trainer):
        raise KeyboardInterrupt  # after the first epoch, as Ctrl-C would

    net = SegmentationUNet(depth=1, width=3)
    with pytest.raises(KeyboardInterrupt):
        fit_segmenter(net, cells_set(4, size=16, seed=1), out_dir=tmp_path / "r", epochs=3, batch_size=2, crop=16,
                      callbacks=[interrupt])
    kept = load_segmenter(tmp_path / "r")
    assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), net.state_dict().values()))
    assert json.loads((tmp_path / "r" / "history.json").read_text())["best_epoch"] == 1
