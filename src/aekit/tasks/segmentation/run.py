"""Segmentation run folders: train (or resume) one, load it, predict masks for a folder, evaluate on pairs.

What `aekit segment train|predict|evaluate` call; the U-Net trains through the one Trainer
(training.py: SegmentTrainer is the Trainer with the segmentation task's batch transform and
Dice validation hook).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...checkpoint import read_json
from ...errors import CheckpointError, ConfigError, ShapeError

RESUMABLE = ("epochs", "max_time", "device", "early_stopping", "checkpoint_every", "tensorboard")


def default_overlap(tile: int, overlap: int | None) -> int:
    """The tile overlap in pixels: min(32, tile / 4) unless given."""
    return min(32, tile // 4) if overlap is None else overlap


def train_segmentation_run(out, *, resume: bool = False, overwrite: bool = False, data: dict | None = None,
                           options: dict | None = None, architecture: dict | None = None, command=None,
                           callbacks: list[Callable] = ()) -> dict:
    """Train a U-Net into run folder `out` (or resume it); returns the summary the command prints.

    data: {'images', 'masks', 'mask_suffix', 'classes', 'val_fraction', 'seed'} (a new run);
    options: SegmentConfig fields given by the user; architecture: {'depth', 'width', 'norm'}."""
    from .pairs import load_pairs
    from .training import SegmentConfig, SegmentTrainer
    from .unet import SegmentationUNet

    out = Path(out)
    options = dict(options or {})
    if "tile" in options:
        options["overlap"] = default_overlap(options["tile"], options.get("overlap"))
    model = None
    if resume:
        info = read_json(out / "run.json")
        data = dict(info["data"])
        train_cfg = dict(info["train"])
        train_cfg.update({k: v for k, v in options.items() if k in RESUMABLE})
        cfg = SegmentConfig.from_dict(train_cfg)
        model = SegmentationUNet(**info["model"])
        run_info = {k: v for k, v in info.items() if k not in ("train", "model")}
    else:
        if (out / "run.json").exists() and not overwrite:
            raise ConfigError(f"{str(out)!r} already holds a run; pass --resume to continue it or --overwrite to replace it.")
        if data is None or data.get("images") is None:
            raise ConfigError("--images is required: a folder of images (with --masks) or a .npz of images and masks.")
        cfg = SegmentConfig.from_dict(options)
        run_info = {"task": "segment", "data": data, "command": list(command or [])}
    ds = load_pairs(data["images"], data["masks"], classes=data["classes"], mask_suffix=data["mask_suffix"])
    train, val = ds.split(data["val_fraction"], seed=data["seed"])
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = SegmentationUNet(in_channels=ds.channels, classes=ds.classes, **dict(architecture or {}))
        run_info.update({"classes": ds.classes, "channels": ds.channels, "encoding": ds.encoding,
                         "train_names": train.names, "val_names": val.names if val is not None else []})
    trainer = SegmentTrainer(model, cfg, out_dir=out, run_info=run_info, callbacks=list(callbacks))
    result = trainer.fit(train, val, resume=resume)
    return {"run_dir": str(out), "epochs": trainer.epoch, "seconds": round(result.seconds, 2),
            "train_pairs": len(train), "val_pairs": len(val) if val is not None else 0,
            "best_epoch": result.best_epoch, "best_val_dice": result.best_dice}


def load_segmentation_run(run_dir):
    """(model, run.json contents) of a segmentation run folder, or a CheckpointError naming the folder."""
    from .saving import is_segmenter_dir, load_segmenter

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist.")
    if not is_segmenter_dir(run_dir):
        raise CheckpointError(f"{str(run_dir)!r} holds no segmentation model (config.json missing or of another kind); "
                              "train one with 'aekit segment train'.")
    info = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    return load_segmenter(run_dir), info


def check_channels(model, channels: int, where: str) -> None:
    if channels != model.in_channels:
        raise ShapeError(f"{where}: the images have {channels} channel(s) but the model was trained on {model.in_channels}.")


def encode_mask(labels: np.ndarray, encoding: str) -> np.ndarray:
    """Class map (H, W) -> the pixel values to store: x255 for '0/255' masks, the indices otherwise."""
    if encoding == "0/255":
        return (labels * 255).astype(np.uint8)
    return labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)


def predict_folder(run_dir, images, out, *, tile: int = 256, overlap: int | None = None) -> dict:
    """Write one PNG mask per image of `images` (a folder or .npz) into `out`; returns a summary."""
    from PIL import Image

    from .pairs import read_images
    from .tiles import predict_mask

    model, info = load_segmentation_run(run_dir)
    arrays, names = read_images(images)
    check_channels(model, arrays[0].shape[0], str(images))
    encoding = info.get("encoding", "0/255" if model.classes == 2 else "indices")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for img, name in zip(arrays, names):
        labels = predict_mask(model, img, tile=tile, overlap=default_overlap(tile, overlap)).cpu().numpy()
        Image.fromarray(encode_mask(labels, encoding)).save(out / (Path(name).stem + ".png"))
    return {"written": len(names), "out": str(out), "encoding": encoding}


def evaluate_segmentation_run(run_dir, images, masks, *, mask_suffix: str = "", tile: int = 256,
                              overlap: int | None = None) -> dict:
    """Dice, IoU, pixel error and loss of a run on image/mask pairs (and per class)."""
    from .pairs import load_pairs
    from .training import evaluate_model

    model, _ = load_segmentation_run(run_dir)
    ds = load_pairs(images, masks, classes=model.classes, mask_suffix=mask_suffix)
    check_channels(model, ds.channels, str(images))
    scores = evaluate_model(model, ds, tile=tile, overlap=default_overlap(tile, overlap))
    return {"dice": scores["dice"], "iou": scores["iou"], "pixel_error": scores["pixel_error"],
            "loss": scores["loss"], "images": len(ds), "classes": ds.classes,
            "per_class": {str(c): v for c, v in scores["per_class"].items()}}
