"""Training a segmentation U-Net: random crops, augmentation, BCE/CE + Dice, Adam, checkpoints.

One epoch draws ceil(N / batch_size) batches from a seeded permutation of the training pairs;
each pair contributes one random crop (crop x crop, or the whole image when smaller), flipped,
rotated and elastically deformed (augment.py) identically in image and mask. The loss is
BCE-with-logits (binary) or cross-entropy (multi-class) plus dice_weight times the soft Dice
loss (losses.py), minimised by Adam with a cosine decay of the learning rate to
min_lr_ratio * lr over all steps.

After each epoch the held-out pairs are predicted whole (by overlapping tiles when larger
than `tile`) and scored (Dice, IoU, pixel error). The model with the best validation Dice (the
last one without validation data) is written to out_dir as config.json + model.safetensors;
every epoch also writes checkpoints/epoch-NNNNN/ (model, Adam state, RNG state, counters,
history; each file atomic, the folder renamed into place when complete, checkpoints/last.json
switched to it afterwards) and history.json, so `resume=True` continues where a run stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ... import checkpoint as ckpt
from ...errors import CheckpointError, ConfigError, TrainingError, check_choice
from ...training.trainer import resolve_device
from ...training.checkpoints import read_checkpoint, restore_newest, write_checkpoint
from .augment import Augment, random_crops
from .losses import segmentation_loss
from .metrics import confusion_matrix, scores_from_confusion
from .pairs import SegmentationSet
from .saving import load_segmenter, save_segmenter
from .tiles import predict_logits
from .unet import SegmentationUNet, logits_to_labels

AUGMENTATIONS = ("flip", "rotate", "elastic")


@dataclass
class SegmentConfig:
    """Every training option of a segmentation run, recorded in run.json and each checkpoint."""

    epochs: int = 30
    batch_size: int = 8
    crop: int = 128                 # side of the random training crops (the whole image when smaller)
    lr: float = 2e-3
    min_lr_ratio: float = 0.05      # cosine decay ends at lr * min_lr_ratio
    weight_decay: float = 0.0
    dice_weight: float = 1.0
    augment: list[str] = field(default_factory=lambda: list(AUGMENTATIONS))
    elastic_std: float = 4.0        # pixels (coarse-grid displacement std)
    p_elastic: float = 0.5
    seed: int = 0
    tile: int = 256                 # prediction tile for validation / predict
    overlap: int = 32
    max_time: float | None = None   # seconds; stop after the epoch that crosses it
    keep_checkpoints: int = 2
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "crop", "tile", "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number; got {self.lr!r}.")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile:
            raise ConfigError(f"overlap must be an integer in [0, tile={self.tile}); got {self.overlap!r}.")
        if not self.dice_weight >= 0:
            raise ConfigError(f"dice_weight must be >= 0; got {self.dice_weight!r}.")
        self.augment = list(self.augment)
        for a in self.augment:
            check_choice("augment", a, AUGMENTATIONS)

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentConfig":
        names = {f.name for f in fields(cls)}
        for key in d:
            check_choice("segment training option", key, sorted(names))
        return cls(**d)

    def augmenter(self) -> Augment:
        return Augment(flip="flip" in self.augment, rotate="rotate" in self.augment, elastic="elastic" in self.augment,
                       elastic_std=self.elastic_std, p_elastic=self.p_elastic)


@dataclass
class SegmentResult:
    history: list[dict]
    best_epoch: int | None
    best_dice: float | None
    seconds: float


def to_tensors(data: SegmentationSet, device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return ([torch.as_tensor(a, dtype=torch.float32, device=device) for a in data.images],
            [torch.as_tensor(m, dtype=torch.int64, device=device) for m in data.masks])


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, data: SegmentationSet, *, tile: int = 256, overlap: int = 32,
                   dice_weight: float = 1.0) -> dict:
    """{"loss", "dice", "iou", "pixel_error", "per_class"} over whole images of data (eval mode)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    cm = np.zeros((data.classes, data.classes), np.int64)
    losses = []
    try:
        for img, mask in zip(data.images, data.masks):
            logits = predict_logits(model, torch.as_tensor(img), tile=tile, overlap=overlap)  # (K, H, W)
            target = torch.as_tensor(mask, device=device)
            losses.append(float(segmentation_loss(logits[None], target[None], dice_weight=dice_weight)[0]))
            cm += confusion_matrix(logits_to_labels(logits), target, data.classes)
    finally:
        model.train(was_training)
    return {"loss": float(np.mean(losses)), **scores_from_confusion(cm)}


class SegmentTrainer:
    """Trains a SegmentationUNet on a SegmentationSet (see the module docstring)."""

    def __init__(self, model: SegmentationUNet, config: SegmentConfig | None = None, *, out_dir=None,
                 run_info: dict | None = None, callbacks: list[Callable[[dict, "SegmentTrainer"], None]] | None = None):
        self.cfg = config or SegmentConfig()
        self.device = resolve_device(self.cfg.device)
        self.model = model.to(self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_info = dict(run_info or {})
        self.callbacks = list(callbacks or [])
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.augment = self.cfg.augmenter()
        self.epoch = 0
        self.step = 0
        self.best_dice: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.elapsed = 0.0

    # ------------------------------------------------------------------ loop
    def _lr(self, total_steps: int) -> float:
        progress = min(1.0, self.step / max(1, total_steps))
        r = self.cfg.min_lr_ratio
        return self.cfg.lr * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress)))

    def fit(self, train: SegmentationSet, val: SegmentationSet | None = None, *, resume: bool = False) -> SegmentResult:
        if len(train) == 0:
            raise ConfigError("the training set has no image/mask pairs.")
        if train.channels != self.model.in_channels:
            raise ConfigError(f"the images have {train.channels} channel(s) but the U-Net expects {self.model.in_channels}.")
        if train.classes != self.model.classes:
            raise ConfigError(f"the masks have {train.classes} classes but the U-Net was built for {self.model.classes}.")
        if resume:
            self.load_checkpoint()
        images, masks = to_tensors(train, self.device)
        b = min(self.cfg.batch_size, len(train))
        steps_per_epoch = math.ceil(len(train) / b)
        total_steps = steps_per_epoch * self.cfg.epochs
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_json(self.out_dir / "run.json", {**self.run_info, "train": asdict(self.cfg),
                                                                "model": self.model.config})
        self.model.train()
        while self.epoch < self.cfg.epochs:
            t0 = time.perf_counter()
            perm = torch.randperm(len(train), generator=self.gen)
            sums: dict[str, float] = {}
            for s in range(steps_per_epoch):
                idx = perm[s * b:(s + 1) * b]  # the last batch of an epoch may be smaller
                x, y = random_crops(images, masks, idx, self.cfg.crop, self.gen)  # (B, C, h, w), (B, h, w)
                if self.augment.active:
                    x, y = self.augment(x, y, self.gen)
                for group in self.optimizer.param_groups:
                    group["lr"] = self._lr(total_steps)
                loss, terms = segmentation_loss(self.model(x), y, dice_weight=self.cfg.dice_weight)
                if not torch.isfinite(loss):
                    raise TrainingError(f"the loss became {float(loss)} at epoch {self.epoch + 1}, step {self.step}; "
                                        "lower the learning rate (--lr).")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
                for k, v in {"loss": loss.detach(), **terms}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
            self.epoch += 1
            record = {"epoch": self.epoch, "step": self.step, "lr": self._lr(total_steps)}
            record.update({f"train_{k}": v / steps_per_epoch for k, v in sums.items()})
            best = True
            if val is not None and len(val):
                scores = evaluate_model(self.model, val, tile=self.cfg.tile, overlap=self.cfg.overlap,
                                        dice_weight=self.cfg.dice_weight)
                record.update({f"val_{k}": v for k, v in scores.items() if k != "per_class"})
                best = self.best_dice is None or scores["dice"] > self.best_dice
                if best:
                    self.best_dice, self.best_epoch = scores["dice"], self.epoch
            else:
                self.best_epoch = self.epoch
            self.elapsed += time.perf_counter() - t0
            record["time"] = round(self.elapsed, 3)
            self.history.append(record)
            if self.out_dir is not None:
                self.save_checkpoint(best=best)
            for cb in self.callbacks:
                cb(record, self)
            if self.cfg.max_time is not None and self.elapsed >= self.cfg.max_time:
                break
        return SegmentResult(self.history, self.best_epoch, self.best_dice, self.elapsed)

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_root(self) -> Path:
        assert self.out_dir is not None
        return self.out_dir / "checkpoints"

    def save_checkpoint(self, *, best: bool) -> Path:
        final = write_checkpoint(self.checkpoint_root, self.epoch,
                                 write_model=lambda folder: save_segmenter(self.model, folder),
                                 state={"optimizer": self.optimizer.state_dict(), "rng": self.gen.get_state()},
                                 meta={"step": self.step, "best_dice": self.best_dice, "best_epoch": self.best_epoch,
                                       "elapsed": self.elapsed, "history": self.history, "train": asdict(self.cfg)},
                                 keep=self.cfg.keep_checkpoints)
        if best:
            save_segmenter(self.model, self.out_dir)
        ckpt.atomic_write_json(self.out_dir / "history.json", {"history": self.history, "best_epoch": self.best_epoch,
                                                                "best_dice": self.best_dice})
        return final

    def load_checkpoint(self) -> Path:
        """Restore the newest readable checkpoint; a corrupted newest one falls back to the previous."""
        return restore_newest(self.out_dir, self._restore)

    def _restore(self, path: Path) -> None:
        meta, state = read_checkpoint(path)
        saved = load_segmenter(path)
        ckpt.load_state_into(self.model, saved.state_dict(), source=path / ckpt.WEIGHTS_NAME)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{str(path)!r}: optimizer state does not match this model ({exc}).") from None
        self.gen.set_state(state["rng"].cpu())
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.best_dice, self.best_epoch = meta.get("best_dice"), meta.get("best_epoch")
        self.elapsed, self.history = float(meta.get("elapsed", 0.0)), list(meta.get("history", []))


def fit_segmenter(model: SegmentationUNet, train: SegmentationSet, val: SegmentationSet | None = None, *,
                  out_dir=None, resume: bool = False, **options) -> SegmentResult:
    """One call: SegmentTrainer(model, SegmentConfig(**options), out_dir=out_dir).fit(train, val)."""
    return SegmentTrainer(model, SegmentConfig.from_dict(options), out_dir=out_dir).fit(train, val, resume=resume)
