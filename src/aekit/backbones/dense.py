"""Fully connected pieces shared by the backbones: width checks and Linear + activation stacks."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .activations import make_activation


def check_widths(widths, *, name: str) -> tuple[int, ...]:
    """The widths as a tuple of positive ints; ConfigError naming the parameter otherwise."""
    sizes = tuple(widths or ())
    if isinstance(widths, (str, bytes)) or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in sizes):
        raise ConfigError(f"{name} must be a list of positive integers (fully connected widths); got {widths!r}.")
    return sizes


def dense_stack(sizes, activation: str) -> list[nn.Module]:
    """Linear + activation for each consecutive pair of sizes: [d0, d1, d2] -> d0 -> d1 -> d2."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), make_activation(activation)]
    return layers
