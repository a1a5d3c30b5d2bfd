"""Paths between two codes: linear (lerp) and spherical (slerp) interpolation.

Under a N(0, I) prior almost all the mass of a D-dimensional code lies near the sphere of radius
sqrt(D); the straight line between two such codes cuts through the low-norm interior, where the
decoder saw few codes. Spherical interpolation follows the great circle instead (Shoemake 1985,
Animating rotation with quaternion curves; White 2016, Sampling generative networks):

    slerp(a, b; t) = sin((1 - t) W) / sin W * a + sin(t W) / sin W * b,   cos W = <a, b> / (|a| |b|)

For |a| = |b| the path keeps that norm and its angle to a grows linearly, t * W. Codes (almost)
parallel (sin W ~ 0) fall back to the straight line, the limit of the formula; exactly opposite
codes have no unique great circle and also take the straight line (through the origin).
"""

from __future__ import annotations

import torch

from .errors import ConfigError, check_choice

MODES = ("linear", "slerp")
_PARALLEL = 1e-6  # sin(omega) below this: the codes are (anti)parallel, use the straight line


def interpolation_weights(steps: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """t = 0, 1/(steps-1), ..., 1 as a (steps,) tensor; steps >= 2."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"steps must be an integer >= 2; got {steps!r}.")
    return torch.linspace(0, 1, steps, device=device, dtype=dtype)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for codes a, b: (D,) and weights t: (T,) -> (T, D)."""
    t = t.to(a.dtype).unsqueeze(1)  # (T, 1)
    return (1 - t) * a.unsqueeze(0) + t * b.unsqueeze(0)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of codes a, b: (D,) at weights t: (T,) -> (T, D); see the module docstring."""
    a64, b64 = a.double(), b.double()  # the angle of nearly parallel codes needs the precision
    na, nb = a64.norm(), b64.norm()
    if float(na.detach()) == 0.0 or float(nb.detach()) == 0.0:
        return lerp(a, b, t)  # no direction to rotate from
    cos = torch.clamp((a64 @ b64) / (na * nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    if float(sin.detach()) < _PARALLEL:
        return lerp(a, b, t)
    t64 = t.double().unsqueeze(1)  # (T, 1)
    path = (torch.sin((1 - t64) * omega) / sin) * a64 + (torch.sin(t64 * omega) / sin) * b64  # (T, D)
    return path.to(a.dtype)


def interpolate_codes(a: torch.Tensor, b: torch.Tensor, steps: int, *, mode: str = "linear") -> torch.Tensor:
    """steps codes from a to b (both (D,)), ends included: (steps, D)."""
    check_choice("mode", mode, MODES)
    if a.dim() != 1 or a.shape != b.shape:
        raise ConfigError(f"interpolation needs two codes of shape (D,); got {tuple(a.shape)} and {tuple(b.shape)}.")
    t = interpolation_weights(steps, device=a.device)
    return slerp(a, b, t) if mode == "slerp" else lerp(a, b, t)


__all__ = ["MODES", "interpolate_codes", "interpolation_weights", "lerp", "slerp"]
