"""Checks and conversions from a raw numpy array to model-ready float32 samples and labels.

Shape rules (N = number of samples):
  (N, D)                      -> table, kept as (N, D) (even uint8 with a square D: no guessing)
  (N, H, W)                   -> image (N, 1, H, W)
  (N, C, H, W), C in {1,3,4}  -> image as is
  (N, H, W, C), C in {1,3}    -> image, transposed to (N, C, H, W)

Intensity rules (raw = x * scale + offset is recorded so `Dataset.to_raw` undoes them):
  uint8 (images and tables)         -> x / 255
  images, bool or ints in {0, 1}    -> kept
  images, other ints in [0, 255]    -> x / 255
  images, floats in [0, 1]          -> kept
  images, anything else             -> min-max rescaled into [0, 1] with the array's min / max
                                       (so images are always in [0, 1])
  tables, other dtypes              -> kept (see `standardize` in load.py)
"""

from __future__ import annotations

import numpy as np
import torch

from aekit.errors import DataError

IMAGE_CHANNELS_FIRST = (1, 3, 4)
IMAGE_CHANNELS_LAST = (1, 3)


def check_numeric(x: np.ndarray, *, source: str, what: str = "data") -> None:
    """Raise DataError unless x holds bool, int or float numbers."""
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"{source}: {what} must be numeric (bool, int or float); got dtype {x.dtype} "
            f"({'text' if x.dtype.kind in 'USO' else 'not a plain number'})."
        )


def check_finite(x: np.ndarray, *, source: str, what: str = "data") -> None:
    """Raise DataError naming how many NaN/inf values x has and the index of the first one."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{source}: {what} has {count} NaN or inf value(s); expected only finite numbers "
            f"(first at index {first[0] if len(first) == 1 else first}: {x[first]})."
        )


def as_samples(x: np.ndarray, *, source: str) -> tuple[np.ndarray, str]:
    """Check x and reshape it to (N, D) for a table or (N, C, H, W) for images; return kind."""
    check_numeric(x, source=source)
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"{source}: wrong number of dimensions: expected 2 (N, D) for a table, 3 (N, H, W) "
            f"or 4 (N, C, H, W) / (N, H, W, C) for images; got {x.ndim} with shape {x.shape}."
        )
    if x.shape[0] == 0 or any(s == 0 for s in x.shape[1:]):
        raise DataError(
            f"{source}: empty data: expected at least 1 sample and 1 feature; got shape {x.shape}."
        )
    if x.ndim == 2:
        kind = "table"
    elif x.ndim == 3:
        x, kind = x[:, None, :, :], "image"                 # (N, H, W) -> (N, 1, H, W)
    elif x.shape[1] in IMAGE_CHANNELS_FIRST:
        kind = "image"
    elif x.shape[3] in IMAGE_CHANNELS_LAST:
        x, kind = np.transpose(x, (0, 3, 1, 2)), "image"    # (N, H, W, C) -> (N, C, H, W)
    else:
        raise DataError(
            f"{source}: cannot tell the channel axis of 4-D data with shape {x.shape}: expected "
            f"(N, C, H, W) with C in {IMAGE_CHANNELS_FIRST} or (N, H, W, C) with C in "
            f"{IMAGE_CHANNELS_LAST}."
        )
    check_finite(x, source=source)
    return np.ascontiguousarray(x), kind


def to_unit_tensor(x: np.ndarray, *, kind: str) -> tuple[torch.Tensor, float, float]:
    """Apply the intensity rules above: return (float32 tensor, scale, offset)."""
    kind_code = x.dtype.kind
    scale, offset = 1.0, 0.0
    if x.dtype == np.uint8:
        scale = 255.0
    elif kind == "image" and kind_code != "b":
        lo, hi = float(x.min()), float(x.max())
        if kind_code in "iu" and lo >= 0 and hi > 1 and hi <= 255:
            scale = 255.0
        elif lo < 0 or hi > 1:
            scale, offset = (hi - lo) or 1.0, lo
    if offset:
        t = torch.from_numpy(((x.astype(np.float64) - offset) / scale).astype(np.float32))
    else:
        t = torch.from_numpy(x.astype(np.float32))
        if scale != 1.0:
            t = t / scale
    return t.contiguous(), scale, offset


def as_labels(
    y: np.ndarray, *, n: int, source: str
) -> tuple[torch.Tensor, list[str] | None]:
    """Check labels and return ((n,) int64 tensor, class names or None).

    Accepts shape (n,), (n, 1) or (1, n); ints, bools, integer-valued floats, or text (mapped to
    the sorted class names 0, 1, ...).
    """
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(f"{source}: labels must be 1-D (N,); got shape {y.shape}.")
    if y.shape[0] != n:
        raise DataError(
            f"{source}: label length mismatch: expected {n} labels (one per sample); "
            f"got {y.shape[0]}."
        )
    classes = None
    if y.dtype.kind in "US":
        classes = sorted({str(v) for v in y.tolist()})
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[str(v)] for v in y.tolist()], dtype=np.int64)
    check_numeric(y, source=source, what="labels")
    if y.dtype.kind == "f":
        check_finite(y, source=source, what="labels")
        if not np.all(y == np.round(y)):
            first = int(np.argwhere(y != np.round(y))[0][0])
            raise DataError(
                f"{source}: labels must be whole numbers; got {y[first]} at index {first}."
            )
    return torch.from_numpy(y.astype(np.int64)), classes
