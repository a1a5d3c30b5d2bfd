"""Binarization of [0, 1] data for Bernoulli models.

mode "dynamic":   a fresh Bernoulli sample with probability x on every call (the usual
                  dynamically binarized MNIST); needs values in [0, 1].
mode "threshold": (x > threshold) as floats, the same on every call.
mode "none":      x unchanged.
"""

from __future__ import annotations

import torch

from aekit.errors import DataError, check_choice

BINARIZE_MODES = ("dynamic", "threshold", "none")


def binarize(
    x: torch.Tensor, *, mode: str, threshold: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binarize x (any shape, values in [0, 1]) -> tensor of the same shape and dtype."""
    check_choice("binarize mode", mode, BINARIZE_MODES)
    if mode == "none":
        return x
    if mode == "threshold":
        return (x > threshold).to(x.dtype)
    if x.numel():
        lo, hi = torch.aminmax(x.detach())
        if lo < 0 or hi > 1:
            raise DataError(
                "binarize(mode='dynamic') needs probabilities in [0, 1]; got values in "
                f"[{float(lo):.4g}, {float(hi):.4g}] (is the data standardized?)."
            )
    return torch.bernoulli(x.detach(), generator=generator)
