"""Input corruptions for denoising autoencoders (Vincent et al. 2008, "Extracting and composing
robust features with denoising autoencoders").

`Corruption(x) -> x~` in training mode and the identity in eval mode. The model always scores
the reconstruction against the clean x, so any corruption turns an autoencoder into a
denoising one. Specs parse from strings: "none", "gaussian:0.3", "gaussian_clipped:0.3",
"masking:0.25", "salt_and_pepper:0.1". Levels are in the data's units (pixel intensities in
[0, 1] for images): "gaussian" adds N(0, std^2) unclipped; "gaussian_clipped" clips the result
to [0, 1], the usual protocol for image denoising benchmarks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, check_choice

CORRUPTIONS = ("none", "gaussian", "gaussian_clipped", "masking", "salt_and_pepper")


class Corruption(nn.Module):
    """One corruption kind with one strength `level` (std for gaussian, a probability otherwise)."""

    def __init__(self, *, kind: str = "none", level: float = 0.0) -> None:
        super().__init__()
        check_choice("corruption", kind, CORRUPTIONS)
        level = float(level)
        if kind in ("gaussian", "gaussian_clipped") and not level >= 0:
            raise ConfigError(f"corruption {kind!r} needs a std >= 0; got {level!r}.")
        if kind in ("masking", "salt_and_pepper") and not 0.0 <= level <= 1.0:
            raise ConfigError(f"corruption {kind!r} needs a probability in [0, 1]; got {level!r}.")
        self.kind, self.level = kind, level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.kind == "none" or self.level == 0.0:
            return x  # identity in eval: deterministic reconstructions
        if self.kind == "gaussian":
            return x + self.level * torch.randn_like(x)
        if self.kind == "gaussian_clipped":  # images in [0, 1]: the noisy image stays a valid image
            return (x + self.level * torch.randn_like(x)).clamp(0.0, 1.0)
        if self.kind == "masking":
            keep = torch.rand_like(x) >= self.level  # each element zeroed with probability p
            return x * keep
        # salt_and_pepper: a fraction p of elements set to 0 or 1 with equal probability
        u = torch.rand_like(x)
        hit = u < self.level
        salt = torch.rand_like(x) < 0.5
        return torch.where(hit, salt.to(x.dtype), x)

    def spec(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.level:g}"

    def extra_repr(self) -> str:
        return self.spec()


def parse_corruption(spec: str | dict | None) -> dict:
    """'gaussian:0.3' or {'kind': 'gaussian', 'level': 0.3} -> {'kind': ..., 'level': ...}."""
    if spec is None:
        return {"kind": "none", "level": 0.0}
    if isinstance(spec, dict):
        unknown = set(spec) - {"kind", "level"}
        if unknown:
            raise ConfigError(f"corruption accepts keys 'kind' and 'level'; got {sorted(unknown)}.")
        kind = spec.get("kind", "none")
        check_choice("corruption", kind, CORRUPTIONS)
        return {"kind": kind, "level": float(spec.get("level", 0.0))}
    if not isinstance(spec, str):
        raise ConfigError(f"corruption must be a string like 'gaussian:0.3' or a dict; got {spec!r}.")
    kind, _, level = spec.partition(":")
    kind = kind.strip()
    check_choice("corruption", kind, CORRUPTIONS)
    if kind == "none":
        return {"kind": "none", "level": 0.0}
    if not level:
        raise ConfigError(f"corruption {kind!r} needs a level, e.g. '{kind}:0.3'; got {spec!r}.")
    try:
        value = float(level)
    except ValueError:
        raise ConfigError(f"corruption level must be a number; got {level!r} in {spec!r}.") from None
    return {"kind": kind, "level": value}
