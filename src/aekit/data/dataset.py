"""The `Dataset` record that every loader returns.

A `Dataset` holds float32 tensors ready for a model, split into train / val / test, plus what
is needed to go back to the units of the loaded data (`to_raw`).

kind:
  "image"  values are pixel intensities in [0, 1]; shape (C, H, W), or (C*H*W,) when the
           data were loaded with flatten=True (`image_shape` keeps (C, H, W) in both cases).
  "table"  anything else; shape (D,) (flattened images that were standardized are tables too).

Scaling: raw = x * scale + offset, where scale/offset are floats or tensors of the per-sample
shape (per feature, for standardized tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aekit.errors import DataError, check_choice

SPLITS = ("train", "val", "test", "all")


def _as_jsonable(value: float | torch.Tensor) -> float | list:
    """A float stays a float; a tensor becomes a (nested) list of floats."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().tolist() if value.ndim else float(value.item())
    return float(value)


def unscale(x: torch.Tensor, *, scale: float | torch.Tensor, offset: float | torch.Tensor) -> torch.Tensor:
    """x (B, *shape) in model units -> x * scale + offset in loaded-data units (scale/offset scalars or per feature)."""
    if isinstance(scale, torch.Tensor):
        scale = scale.to(device=x.device, dtype=x.dtype)
    if isinstance(offset, torch.Tensor):
        offset = offset.to(device=x.device, dtype=x.dtype)
    return x * scale + offset


@dataclass
class Dataset:
    """Train/val/test tensors of one data source, with labels and scaling info."""

    name: str                              # "digits", "mnist", "/path/x.npy", ...
    train: torch.Tensor                    # (N, *shape) float32
    val: torch.Tensor                      # (Nv, *shape) float32 (0 rows only for tiny N)
    test: torch.Tensor | None              # (Nt, *shape) float32; None for a file source
    y_train: torch.Tensor | None           # (N,) int64 or None
    y_val: torch.Tensor | None             # (Nv,) int64 or None
    y_test: torch.Tensor | None            # (Nt,) int64 or None
    kind: str                              # "image" or "table"
    scale: float | torch.Tensor = 1.0      # raw = x * scale + offset; tensor: per-sample shape
    offset: float | torch.Tensor = 0.0
    whole: torch.Tensor | None = None      # file sources: every row in file order (N_all, *shape)
    y_whole: torch.Tensor | None = None    # (N_all,) int64 or None
    image_shape: tuple[int, ...] | None = None   # (C, H, W) for images, also when flattened
    classes: list[str] | None = field(default=None)  # class names (image folders, csv labels)
    factors: dict | None = field(default=None)  # split -> (N, K) int64 generative factor classes (dsprites)

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape, e.g. (1, 8, 8) for images or (64,) for tables."""
        return tuple(self.train.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """max label + 1 over every labelled split, or None without (non-negative) labels."""
        ys = [y for y in (self.y_train, self.y_val, self.y_test, self.y_whole) if y is not None]
        ys = [y for y in ys if y.numel()]
        if not ys or min(int(y.min()) for y in ys) < 0:
            return None
        return max(int(y.max()) for y in ys) + 1

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (x, y) of split `name`: "train", "val", "test" or "all".

        "all" is `whole` (every row in file order) for file sources and the concatenation
        train + val + test for named datasets.
        """
        check_choice("split", name, SPLITS)
        if name == "train":
            return self.train, self.y_train
        if name == "val":
            return self.val, self.y_val
        if name == "test":
            if self.test is None:
                raise DataError(
                    f"data source {self.name!r} has no 'test' split (a file source is split "
                    "into 'train' and 'val' only); use split 'val' or 'all' instead."
                )
            return self.test, self.y_test
        if self.whole is not None:
            return self.whole, self.y_whole
        parts = [self.train, self.val] + ([self.test] if self.test is not None else [])
        labels = [self.y_train, self.y_val] + ([self.y_test] if self.test is not None else [])
        y = None if any(v is None for v in labels) else torch.cat(labels)  # type: ignore[arg-type]
        return torch.cat(parts), y

    def to_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the scaling: x (B, *shape) in model units -> (B, *shape) in loaded-data units."""
        return unscale(x, scale=self.scale, offset=self.offset)

    def to_dict(self) -> dict:
        """A JSON-able description: name, kind, shape, split sizes and scaling."""
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape),
            "image_shape": list(self.image_shape) if self.image_shape is not None else None,
            "sizes": {
                "train": int(self.train.shape[0]),
                "val": int(self.val.shape[0]),
                "test": int(self.test.shape[0]) if self.test is not None else None,
                "whole": int(self.whole.shape[0]) if self.whole is not None else None,
            },
            "has_labels": self.y_train is not None,
            "num_classes": self.num_classes,
            "classes": list(self.classes) if self.classes is not None else None,
            "scale": _as_jsonable(self.scale),
            "offset": _as_jsonable(self.offset),
        }
