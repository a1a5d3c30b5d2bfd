"""Training a segmentation U-Net through the one Trainer: random crops and augmentation as a batch
transform, BCE/CE + Dice, Adam with a cosine schedule, best epoch by validation Dice.

The U-Net implements the step contract (aekit.step; unet.py): its loss is
BCE-with-logits (binary) or cross-entropy (multi-class) plus dice_weight times the soft Dice
loss (losses.py), minimised by Adam with a cosine decay of the learning rate to
min_lr_ratio * lr over all steps. The training data handed to aekit.training.Trainer is the
index of each pair ({"index": (N,)}); one epoch draws ceil(N / batch_size) batches from a seeded
permutation, and the batch transform `CropAugment` turns each index into one random crop
(crop x crop, or the whole image when smaller), flipped, rotated and elastically deformed
(augment.py) identically in image and mask, from the trainer's checkpointed transform generator.

After each epoch the held-out pairs are predicted whole (by overlapping tiles when larger
than `tile`) and scored (Dice, IoU, pixel error): the trainer's `validate` hook. The model with
the best validation Dice (the last one without validation data) is written to out_dir as
config.json + model.safetensors. Everything else is the one trainer's: checkpoints at epoch ends
and inside epochs (checkpoint_every), bit-exact resume, early stopping on the validation Dice,
max_time, TensorBoard, data-parallel training (make_segment_trainer(..., dist_ctx=...)).
Checkpoints of the first release's segmentation trainer still resume (checkpoints.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch

from ... import checkpoint as ckpt
from ...errors import ConfigError, check_choice
from ...training.distributed import make_trainer
from ...training.trainer import TrainConfig, Trainer, parse_checkpoint_every
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
    early_stopping: int | None = None           # patience in epochs on the validation Dice
    checkpoint_every: int | str | None = "10m"  # also checkpoint inside epochs (steps or a duration)
    tensorboard: bool = False
    precision: str = "32"           # "32" | "bf16-mixed" | "16-mixed" (the one trainer's; checked against the device)
    loggers: tuple = ()             # experiment loggers besides the CSV history: tensorboard, mlflow, wandb

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
        parse_checkpoint_every(self.checkpoint_every)
        self.loggers = TrainConfig(precision=self.precision, loggers=self.loggers).loggers  # checked, as a tuple

    def train_config(self, n_train: int | None = None) -> TrainConfig:
        """The one trainer's options for this run (a batch is at most the training set)."""
        b = self.batch_size if n_train is None else max(1, min(self.batch_size, n_train))
        return TrainConfig(epochs=self.epochs, batch_size=b, lr=self.lr, weight_decay=self.weight_decay,
                           seed=self.seed, max_time=self.max_time, keep_checkpoints=self.keep_checkpoints,
                           device=self.device, early_stopping=self.early_stopping,
                           checkpoint_every=self.checkpoint_every, tensorboard=self.tensorboard, progress=False,
                           precision=self.precision, loggers=self.loggers,
                           schedule="none", warmup_steps=0)

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


class CropAugment:
    """The batch transform of segmentation: {"index": (B,)} -> {"x": (B, C, h, w), "y": (B, h, w)}, one random
    crop per pair, augmented alike in image and mask (augment.py), drawn from the trainer's generator."""

    def __init__(self, images: list[torch.Tensor], masks: list[torch.Tensor], *, crop: int, augment: Augment) -> None:
        self.images, self.masks, self.crop, self.augment = images, masks, crop, augment

    def __call__(self, batch: dict, gen: torch.Generator) -> dict:
        x, y = random_crops(self.images, self.masks, batch["index"].tolist(), self.crop, gen)
        if self.augment.active:
            x, y = self.augment(x, y, gen)
        return {"x": x, "y": y}


def _check_data(model: SegmentationUNet, train: SegmentationSet) -> None:
    if len(train) == 0:
        raise ConfigError("the training set has no image/mask pairs.")
    if train.channels != model.in_channels:
        raise ConfigError(f"the images have {train.channels} channel(s) but the U-Net expects {model.in_channels}.")
    if train.classes != model.classes:
        raise ConfigError(f"the masks have {train.classes} classes but the U-Net was built for {model.classes}.")


def _trainer_options(model: SegmentationUNet, cfg: SegmentConfig, run_info: dict | None, callbacks) -> dict:
    model.configure_training(lr=cfg.lr, min_lr_ratio=cfg.min_lr_ratio, weight_decay=cfg.weight_decay,
                             dice_weight=cfg.dice_weight)
    return dict(run_info={**(run_info or {}), "train": asdict(cfg)}, callbacks=list(callbacks or []),
                monitor="val_dice", monitor_mode="max", save_model=save_segmenter,
                load_model=lambda folder: load_segmenter(folder))


def _attach_data(trainer: Trainer, cfg: SegmentConfig, train: SegmentationSet, val: SegmentationSet | None) -> dict:
    """Give the trainer its batch transform and validation; returns the training data (the pairs' indices)."""
    images, masks = to_tensors(train, trainer.device)
    trainer.batch_transform = CropAugment(images, masks, crop=cfg.crop, augment=cfg.augmenter())
    if val is not None and len(val):
        def validate(model) -> dict:
            scores = evaluate_model(model, val, tile=cfg.tile, overlap=cfg.overlap, dice_weight=cfg.dice_weight)
            return {k: v for k, v in scores.items() if k != "per_class"}

        trainer.validate = validate
    return {"index": torch.arange(len(train))}


def _legacy_history(trainer: Trainer) -> Callable[[dict, Trainer], None]:
    """history.json as the first release wrote it for segmentation runs: {history, best_epoch, best_dice};
    without validation data the model of every epoch is kept (the last one), as that release did."""
    def write(record, t) -> None:
        if t.out_dir is not None:
            if t.validate is None:
                save_segmenter(t.model, t.out_dir)
            best = t.best_epoch if t.best_epoch is not None else t.epoch
            ckpt.atomic_write_json(t.out_dir / "history.json", {"history": t.history, "best_epoch": best,
                                                                 "best_dice": t.best_val})
    return write


class SegmentTrainer(Trainer):
    """The one Trainer set up for a SegmentationUNet (see the module docstring); no loop of its own."""

    def __init__(self, model: SegmentationUNet, config: SegmentConfig | None = None, *, out_dir=None,
                 run_info: dict | None = None, callbacks: list[Callable[[dict, Trainer], None]] | None = None):
        self.segment_cfg = config or SegmentConfig()
        options = _trainer_options(model, self.segment_cfg, run_info, callbacks)
        super().__init__(model, self.segment_cfg.train_config(), out_dir=out_dir, **options)
        self.callbacks.insert(0, _legacy_history(self))

    def fit(self, train: SegmentationSet, val: SegmentationSet | None = None, *, resume: bool = False) -> SegmentResult:
        _check_data(self.model, train)
        self.cfg = self.segment_cfg.train_config(len(train))
        data = _attach_data(self, self.segment_cfg, train, val)
        super().fit(data, None, resume=resume)
        return segment_result(self)


def segment_result(trainer: Trainer) -> SegmentResult:
    best = trainer.best_epoch if trainer.validate is not None else trainer.epoch  # no validation: the last
    return SegmentResult(trainer.history, best, trainer.best_val, trainer.elapsed)


def make_segment_trainer(model: SegmentationUNet, cfg: SegmentConfig, train: SegmentationSet,
                         val: SegmentationSet | None = None, *, out_dir=None, run_info: dict | None = None,
                         callbacks=None, dist_ctx=None) -> tuple[Trainer, dict]:
    """(trainer, training data) for a U-Net: the plain Trainer, or a DistributedTrainer inside an initialised
    multi-process session (aekit.training.distributed). Call trainer.fit(data, resume=...)."""
    _check_data(model, train)
    options = _trainer_options(model, cfg, run_info, callbacks)
    trainer = make_trainer(model, cfg.train_config(len(train)), dist_ctx=dist_ctx, out_dir=out_dir, **options)
    trainer.callbacks.insert(0, _legacy_history(trainer))
    return trainer, _attach_data(trainer, cfg, train, val)


def fit_segmenter(model: SegmentationUNet, train: SegmentationSet, val: SegmentationSet | None = None, *,
                  out_dir=None, resume: bool = False, callbacks=None, dist_ctx=None, **options) -> SegmentResult:
    """Train a U-Net in one call through the one Trainer; options: SegmentConfig's fields."""
    trainer, data = make_segment_trainer(model, SegmentConfig.from_dict(options), train, val, out_dir=out_dir,
                                         callbacks=callbacks, dist_ctx=dist_ctx)
    trainer.fit(data, None, resume=resume)
    return segment_result(trainer)
