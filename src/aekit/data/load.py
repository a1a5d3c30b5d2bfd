"""`load_data`: turn a source name or path into a split, scaled `Dataset`.

Named sources ("digits", "mnist", "fashion-mnist"; matched case-insensitively and before any
file of the same name) have train / val / test splits; a file source has train / val (a seeded
split of its rows) and `whole`, every row in file order, and no test split.

Order of operations: read -> check shape / numbers (arrays.py) -> intensity scaling to [0, 1]
for images and uint8 -> split (splits.py) -> resize images to image_size -> flatten ->
standardize (tables only; mean/std from the train split).

max_samples caps the training rows; val and test shrink by the same ratio; `whole` is never
capped (it must stay aligned with the rows of the file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aekit.data import digits as _digits
from aekit.data import dsprites as _dsprites
from aekit.data import mnist as _mnist
from aekit.data.arrays import as_labels, as_samples, to_unit_tensor
from aekit.data.dataset import Dataset
from aekit.data.files import SUPPORTED, read_file
from aekit.data.splits import (
    cap_rows, check_max_samples, check_val_fraction, fixed_holdout, train_val_indices,
)
from aekit.errors import ConfigError, DataError, ShapeError, did_you_mean

NAMED_SOURCES = ("digits", "mnist", "fashion-mnist", *_dsprites.SOURCES)  # dsprites: rendered on demand
STD_FLOOR = 1e-8
_RESIZE_CHUNK = 4096


def list_sources() -> list[str]:
    """The named sources, then a description of each kind of file source."""
    return list(NAMED_SOURCES) + [
        "PATH.npy",
        "PATH.npz (data key x/X/data/images or the only array; labels y/labels/targets)",
        "PATH.csv or PATH.tsv (numbers; optional header; label_column)",
        "PATH.mat (key X/x or the largest numeric array; labels y)",
        "PATH.idx, PATH-ubyte or PATH-ubyte.gz (IDX files)",
        "DIR of .png/.jpg/.jpeg images (class subfolders give labels)",
    ]


def _check_image_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                       for s in image_size)
            or min(image_size) < 1):
        raise ConfigError(
            f"image_size must be a positive int or a pair (H, W) of positive ints; "
            f"got {image_size!r}."
        )
    return int(image_size[0]), int(image_size[1])


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, C, *size), bilinear with antialiasing, clamped to [0, 1]."""
    if tuple(x.shape[2:]) == size:
        return x
    chunks = [
        F.interpolate(c, size=size, mode="bilinear", align_corners=False, antialias=True)
        for c in x.split(_RESIZE_CHUNK)
    ]
    return torch.cat(chunks).clamp_(0.0, 1.0) if chunks else x.new_zeros((0, x.shape[1], *size))


def _finish(
    name: str, kind: str, xs: dict, ys: dict, *, scale, offset, classes,
    image_size, flatten: bool, standardize: bool,
) -> Dataset:
    """Resize, flatten and standardize the split tensors `xs` and build the Dataset."""
    present = {k: v for k, v in xs.items() if v is not None}
    image_shape = None
    if kind == "image":
        if image_size is not None:
            from aekit.data.image_folder import warn_if_stretched

            h, w = present["train"].shape[2:]
            warn_if_stretched(name, [(int(h), int(w))] * int(present["train"].shape[0]), image_size)
            present = {k: _resize(v, image_size) for k, v in present.items()}
        image_shape = tuple(present["train"].shape[1:])
    elif image_size is not None:
        raise ConfigError(
            f"image_size applies to images, but data source {name!r} is a table with "
            f"{xs['train'].shape[1]} features; drop image_size."
        )
    if flatten:
        present = {k: v.reshape(v.shape[0], -1) for k, v in present.items()}   # (N, C*H*W)
    if standardize:
        if present["train"].ndim != 2:
            raise ConfigError(
                f"standardize=True applies to tables, but data source {name!r} gives images "
                f"of shape {tuple(present['train'].shape[1:])}; pass flatten=True as well to "
                "standardize them as a table."
            )
        mean = present["train"].mean(dim=0)                       # (D,)
        std = present["train"].std(dim=0, correction=0).clamp_min(STD_FLOOR)     # (D,)
        present = {k: (v - mean) / std for k, v in present.items()}
        offset = scale * mean + offset                            # raw = (x*std + mean)*s + o
        scale = scale * std
        kind = "table"
    return Dataset(
        name=name, train=present["train"], val=present["val"], test=present.get("test"),
        y_train=ys.get("train"), y_val=ys.get("val"), y_test=ys.get("test"), kind=kind,
        scale=scale, offset=offset, whole=present.get("whole"), y_whole=ys.get("whole"),
        image_shape=image_shape, classes=classes,
    )


def standardized(ds: Dataset) -> Dataset:
    """ds with its table columns standardized on the training split: what load_data(standardize=True) gives.

    x' = (x - mean) / std per column, mean and std (floored at STD_FLOOR) of ds.train; scale and offset
    follow (raw = (x' * std + mean) * scale + offset), so they are the run's scaler."""
    mean = ds.train.mean(dim=0)                                    # (D,)
    std = ds.train.std(dim=0, correction=0).clamp_min(STD_FLOOR)   # (D,)
    for split in ("train", "val", "test", "whole"):
        value = getattr(ds, split)
        if value is not None:
            setattr(ds, split, (value - mean) / std)
    ds.offset = ds.scale * mean + ds.offset
    ds.scale = ds.scale * std
    ds.kind = "table"
    return ds


def with_scaler(ds: Dataset, *, scale, offset) -> Dataset:
    """ds re-expressed in another run's model units: x' = (x * ds.scale + ds.offset - offset) / scale.

    scale, offset: the recorded scaler of the run (floats or per-feature lists), so data loaded for a
    command go through exactly the standardization the model was trained with."""
    s = torch.as_tensor(scale, dtype=torch.float64)
    o = torch.as_tensor(offset, dtype=torch.float64)
    s0 = torch.as_tensor(ds.scale, dtype=torch.float64)
    o0 = torch.as_tensor(ds.offset, dtype=torch.float64)
    for split in ("train", "val", "test", "whole"):
        value = getattr(ds, split)
        if value is not None:
            if value.ndim != 2 or (s.ndim and value.shape[1] != s.shape[0]):
                raise ShapeError(f"data source {ds.name!r} has samples of shape {tuple(value.shape[1:])}; the run's "
                                 f"scaler standardizes {int(s.shape[0]) if s.ndim else 'scalar'} columns.")
            setattr(ds, split, ((value.double() * s0 + o0 - o) / s).float())
    ds.scale, ds.offset = (s if s.ndim else float(s)), (o if o.ndim else float(o))
    ds.kind = "table"
    return ds


def _take(t: torch.Tensor | None, idx: np.ndarray) -> torch.Tensor | None:
    return None if t is None else t[torch.from_numpy(idx)]


def _load_named(name: str, *, data_dir, val_fraction, seed, max_samples):
    """(kind, xs, ys, scale) of a named source, split and capped."""
    if name == "digits":
        images, labels = _digits.read_digits()                    # (1797, 8, 8) in 0..16
        x = torch.from_numpy((images / _digits.DIGITS_MAX).astype(np.float32))[:, None]
        y = torch.from_numpy(labels)
        rest, test = fixed_holdout(len(x), fraction=_digits.TEST_FRACTION, seed=_digits.TEST_SEED)
        pool_x, pool_y, test_x, test_y = x[rest], y[rest], x[test], y[test]
        scale = _digits.DIGITS_MAX
    else:
        arrays = _mnist.read_idx_dataset(name, data_dir=data_dir)
        source = f"data source {name!r}"
        pool_np, kind = as_samples(arrays["train_x"], source=source)   # (60000, 1, 28, 28)
        test_np, _ = as_samples(arrays["test_x"], source=source)       # (10000, 1, 28, 28)
        pool_x, scale, _ = to_unit_tensor(pool_np, kind=kind)
        test_x, _, _ = to_unit_tensor(test_np, kind=kind)
        pool_y, _ = as_labels(arrays["train_y"], n=len(pool_x), source=source + " (train)")
        test_y, _ = as_labels(arrays["test_y"], n=len(test_x), source=source + " (test)")
    train_idx, val_idx, ratio = train_val_indices(
        len(pool_x), val_fraction=val_fraction, seed=seed, max_samples=max_samples
    )
    test_idx = cap_rows(len(test_x), ratio=ratio, seed=seed)
    xs = {"train": _take(pool_x, train_idx), "val": _take(pool_x, val_idx),
          "test": _take(test_x, test_idx)}
    ys = {"train": _take(pool_y, train_idx), "val": _take(pool_y, val_idx),
          "test": _take(test_y, test_idx)}
    return "image", xs, ys, scale


def _missing_source(source: str) -> DataError:
    looks_like_name = not any(c in source for c in "/\\.") and not source.startswith("~")
    hint = ""
    if looks_like_name:
        hint = (f" It is not a named source either (named: {', '.join(NAMED_SOURCES)})."
                + did_you_mean(source.lower(), NAMED_SOURCES))
    return DataError(f"{source}: no such file or folder.{hint}")


def load_data(
    source: str, *, data_dir: str | None = None, val_fraction: float = 0.1, seed: int = 0,
    image_size: tuple[int, int] | int | None = None, standardize: bool = False,
    label_column: str | int | None = None, max_samples: int | None = None,
    flatten: bool = False,
) -> Dataset:
    """Load a named source or a file / image folder into a split, scaled Dataset."""
    val_fraction = check_val_fraction(val_fraction)
    max_samples = check_max_samples(max_samples)
    size = _check_image_size(image_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer; got {seed!r}.")
    seed = int(seed)
    source = os.fspath(source)
    options = dict(image_size=size, flatten=flatten, standardize=standardize)
    if source.strip().lower() in NAMED_SOURCES:
        name = source.strip().lower()
        if label_column is not None:
            raise ConfigError(
                f"label_column applies to file sources; data source {name!r} has its own labels."
            )
        if name in _dsprites.SOURCES:  # a seeded random subset of the 737,280-image grid (default 20,000)
            xs, ys, factors = _dsprites.load_split(name, val_fraction=val_fraction, seed=seed, max_samples=max_samples)
            ds = _finish(name, "image", xs, ys, scale=1.0, offset=0.0, classes=list(_dsprites.SHAPES), **options)
            ds.factors = factors  # split -> (N, 5) factor classes, see aekit.data.dsprites
            return ds
        kind, xs, ys, scale = _load_named(name, data_dir=data_dir, val_fraction=val_fraction,
                                          seed=seed, max_samples=max_samples)
        return _finish(name, kind, xs, ys, scale=scale, offset=0.0, classes=None, **options)

    path = Path(source).expanduser()
    if not path.exists():
        raise _missing_source(source)
    raw = read_file(path, label_column=label_column, image_size=size)
    x_np, kind = as_samples(raw.x, source=source)                # (N, D) or (N, C, H, W)
    x, scale, offset = to_unit_tensor(x_np, kind=kind)
    y, classes = None, raw.classes
    if raw.y is not None:
        y, label_classes = as_labels(raw.y, n=len(x), source=source)
        classes = classes or label_classes
    train_idx, val_idx, _ = train_val_indices(
        len(x), val_fraction=val_fraction, seed=seed, max_samples=max_samples
    )
    xs = {"train": _take(x, train_idx), "val": _take(x, val_idx), "test": None, "whole": x}
    ys = {"train": _take(y, train_idx), "val": _take(y, val_idx), "whole": y}
    return _finish(source, kind, xs, ys, scale=scale, offset=offset, classes=classes, **options)


__all__ = ["NAMED_SOURCES", "SUPPORTED", "list_sources", "load_data", "standardized", "with_scaler"]
