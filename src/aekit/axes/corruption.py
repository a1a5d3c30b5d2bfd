"""Input corruptions for denoising autoencoders (Vincent et al. 2008, "Extracting and composing
robust features with denoising autoencoders").

`corruption(x) -> x~` in training mode and the identity in eval mode. The model always scores
the reconstruction against the clean x, so any corruption turns an autoencoder into a
denoising one. One class per corruption, registered in CORRUPTIONS; specs:
"none", "gaussian:std=0.3" (shorthand "gaussian:0.3"), "gaussian_clipped:0.3", "masking:0.25"
(p=0.25), "salt_and_pepper:0.1". Levels are in the data's units (pixel intensities in [0, 1] for
images): "gaussian" adds N(0, std^2) unclipped; "gaussian_clipped" clips the result to [0, 1],
the usual protocol for image denoising benchmarks; "gaussian_blind:max_std=0.55" draws each
sample's std uniformly from [0, max_std] (blind denoising, one model for every level).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import CORRUPTIONS


class Corruption(nn.Module):
    """Base class: one strength `level` (a std or a probability); `is_identity` when it changes nothing."""

    shorthand: str | None = None  # 'name:VALUE' sets this parameter
    level: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.level == 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.is_identity:
            return x  # identity in eval: deterministic reconstructions
        return self.corrupt(x)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def spec(self) -> str:
        return f"{self.name}:{self.level:g}" if self.shorthand else self.name

    def extra_repr(self) -> str:
        return self.spec()


def _std(name: str, std) -> float:
    std = float(std)
    if not (std >= 0 and math.isfinite(std)):
        raise ConfigError(f"corruption {name!r} needs a std >= 0 (its level); got {std!r}.")
    return std


def _probability(name: str, p) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"corruption {name!r} needs a probability in [0, 1] (its level p); got {p!r}.")
    return p


@CORRUPTIONS.register("none")
class NoCorruption(Corruption):
    """No corruption: the encoder sees the clean input (a plain autoencoder)."""

    name = "none"

    def __init__(self) -> None:
        super().__init__()


@CORRUPTIONS.register("gaussian")
class GaussianNoise(Corruption):
    """Additive Gaussian noise x + N(0, std^2), unclipped.
    Vincent et al. 2010, Stacked denoising autoencoders."""

    name, shorthand = "gaussian", "std"

    def __init__(self, *, std: float) -> None:
        super().__init__()
        self.level = self.std = _std(self.name, std)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x)


@CORRUPTIONS.register("gaussian_clipped")
class ClippedGaussianNoise(GaussianNoise):
    """Additive Gaussian noise clipped to [0, 1]: the noisy image stays a valid image.
    Vincent et al. 2010, Stacked denoising autoencoders."""

    name = "gaussian_clipped"

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.std * torch.randn_like(x)).clamp(0.0, 1.0)


@CORRUPTIONS.register("gaussian_blind")
class BlindGaussianNoise(Corruption):
    """Blind Gaussian noise: each sample gets its own std ~ U[0, max_std], then x + N(0, std^2)
    (clipped to [0, 1] with clip=True), so one model denoises every level up to max_std without being
    told it. Zhang et al. 2017, Beyond a Gaussian denoiser: residual learning of deep CNN for image
    denoising (DnCNN-B, blind denoising)."""

    name, shorthand = "gaussian_blind", "max_std"

    def __init__(self, *, max_std: float = 0.55, clip: bool = True) -> None:
        super().__init__()
        self.level = self.max_std = _std(self.name, max_std)
        if not isinstance(clip, bool):
            raise ConfigError(f"corruption 'gaussian_blind' parameter clip must be true or false; got {clip!r}.")
        self.clip = clip

    def stds(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, ..., 1) per-sample stds, uniform on [0, max_std] (broadcast over the sample's shape)."""
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return self.max_std * torch.rand(shape, dtype=x.dtype, device=x.device)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        noisy = x + self.stds(x) * torch.randn_like(x)  # (B, ...)
        return noisy.clamp(0.0, 1.0) if self.clip else noisy

    def spec(self) -> str:
        return f"{self.name}:max_std={self.max_std:g},clip={str(self.clip).lower()}"


@CORRUPTIONS.register("masking")
class Masking(Corruption):
    """Masking noise: each element zeroed with probability p.
    Vincent et al. 2008, Extracting and composing robust features with denoising autoencoders."""

    name, shorthand = "masking", "p"

    def __init__(self, *, p: float) -> None:
        super().__init__()
        self.level = self.p = _probability(self.name, p)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.rand_like(x) >= self.p  # (B, ...) each element kept with probability 1 - p
        return x * keep


@CORRUPTIONS.register("salt_and_pepper")
class SaltAndPepper(Corruption):
    """Salt-and-pepper noise: a fraction p of elements set to 0 or 1 with equal probability.
    Vincent et al. 2010, Stacked denoising autoencoders."""

    name, shorthand = "salt_and_pepper", "p"

    def __init__(self, *, p: float) -> None:
        super().__init__()
        self.level = self.p = _probability(self.name, p)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        hit = torch.rand_like(x) < self.p
        salt = torch.rand_like(x) < 0.5
        return torch.where(hit, salt.to(x.dtype), x)


def _has_default(cls, param: str) -> bool:
    import inspect

    p = inspect.signature(cls.__init__).parameters.get(param)
    return p is not None and p.default is not inspect.Parameter.empty


def corruption_spec(spec) -> dict:
    """Any accepted corruption form as {name: {param: value}}: a spec (name, 'gaussian:0.3',
    'masking:p=0.25', {name: params}) or the first release's {'kind': ..., 'level': ...}."""
    if spec is None:
        return {"none": {}}
    if isinstance(spec, Mapping) and ("kind" in spec or "level" in spec):  # the first release's form
        unknown = set(spec) - {"kind", "level"}
        if unknown:
            raise ConfigError(f"corruption accepts keys 'kind' and 'level' (or {{name: {{parameter: value}}}}); "
                              f"got {sorted(unknown)}.")
        kind = spec.get("kind", "none")
        cls = CORRUPTIONS.get(kind)
        if cls.shorthand is None:
            return {kind: {}}
        return {kind: {cls.shorthand: spec.get("level", 0.0)}}
    if isinstance(spec, str):
        name, _, rest = spec.strip().partition(":")
        cls = CORRUPTIONS.get(name.strip())
        if cls.shorthand and not rest and _has_default(cls, cls.shorthand):
            return {name.strip(): {}}  # its level's default (gaussian_blind: max_std=0.55)
        if cls.shorthand and not rest:
            raise ConfigError(f"corruption {name!r} needs a level, e.g. '{name}:0.3'; got {spec!r}.")
        if cls.shorthand and "=" not in rest:
            try:
                value = float(rest)
            except ValueError:
                raise ConfigError(f"corruption level must be a number; got {rest!r} in {spec!r}.") from None
            return {name.strip(): {cls.shorthand: value}}
    if not isinstance(spec, (str, Mapping)):
        raise ConfigError(f"corruption must be a string like 'gaussian:0.3' or {{name: {{parameter: value}}}}; "
                          f"got {spec!r}.")
    name, params = CORRUPTIONS.spec(spec)
    return {name: params}

