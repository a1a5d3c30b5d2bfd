"""The one rule for the units of everything aekit writes out.

Models work in *model units*: images in [0, 1], tables as loaded (standardized with
--standardize). Every command that writes data (reconstruct, sample, interpolate, augment,
denoise, decompress) and the ONNX export's metadata follow one rule:

    output = clip(x, 0, 1) * scale + offset   where the data are bounded,
    output = x * scale + offset               otherwise,

in the *loaded data's units*: scale and offset are those of the data the command loaded (the
run's recorded `dataset` when it loads none, e.g. `sample`), so a uint8 image file comes back in
[0, 255] and a float image in [0, 1]. Bounded data are images (kind "image") and anything a
Bernoulli likelihood models (its targets must lie in [0, 1]); tables otherwise are unbounded and
never clipped. Inputs a command made itself (the noisy copy of `denoise --save-noisy`) are not
model outputs: they are converted to the data's units but not clipped.

    units = OutputUnits.from_dataset(ds, model)     # or OutputUnits.from_run(info, model)
    x_out = units.to_raw(x_hat)                      # (B, *shape) in the loaded data's units
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data.dataset import unscale

RULE = ("data units: output = clip(x, 0, 1) * scale + offset where the data are bounded (images, Bernoulli "
        "likelihoods), else x * scale + offset")


def _tensor_or_float(value) -> float | torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        return torch.tensor(value, dtype=torch.float64)
    return float(value)


def _bernoulli(model) -> bool:
    return bool(hasattr(model, "provides") and model.provides("bounded_mean"))  # a Bernoulli mean in (0, 1)


@dataclass
class OutputUnits:
    """How model outputs become the loaded data's units: clip to [0, 1] when bounded, then * scale + offset."""

    scale: float | torch.Tensor = 1.0  # a float, or a tensor of the per-sample shape (standardized tables)
    offset: float | torch.Tensor = 0.0
    bounded: bool = False

    @classmethod
    def from_dataset(cls, ds, model=None) -> "OutputUnits":
        """The units of a loaded Dataset (aekit.data.Dataset)."""
        return cls(scale=_tensor_or_float(ds.scale), offset=_tensor_or_float(ds.offset),
                   bounded=ds.kind == "image" or _bernoulli(model))

    @classmethod
    def from_run(cls, info: dict, model=None) -> "OutputUnits":
        """The units of the data a run was trained on (run.json's `dataset`); runs that did not record it
        (older ones, `aekit demo`'s) count as bounded image data in [0, 1] when the model takes images."""
        ds = info.get("dataset") or {}
        if ds:
            kind = ds.get("kind")
            return cls(scale=_tensor_or_float(ds.get("scale", 1.0)), offset=_tensor_or_float(ds.get("offset", 0.0)),
                       bounded=kind == "image" or _bernoulli(model))
        image = model is not None and len(getattr(model, "input_shape", ())) == 3
        return cls(bounded=image or _bernoulli(model))

    def to_raw(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *shape) model units -> (B, *shape) in the data's units, clipped where the data are bounded."""
        if self.bounded:
            x = x.clamp(0.0, 1.0)
        return unscale(x, scale=self.scale, offset=self.offset)

    def range(self) -> list[float] | None:
        """[low, high] of outputs in the data's units when bounded by scalars; None when unbounded."""
        if not self.bounded or isinstance(self.scale, torch.Tensor) or isinstance(self.offset, torch.Tensor):
            return None
        return [float(self.offset), float(self.offset + self.scale)]

    def to_dict(self) -> dict:
        """What the ONNX metadata (and anyone converting by hand) needs."""
        def plain(v):
            return v.tolist() if isinstance(v, torch.Tensor) else float(v)

        return {"rule": RULE, "clip_model_output_to": [0.0, 1.0] if self.bounded else None,
                "scale": plain(self.scale), "offset": plain(self.offset), "data_range": self.range()}


__all__ = ["OutputUnits", "RULE"]
