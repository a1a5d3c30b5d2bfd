"""Hidden-layer activations by name (shared by every backbone)."""

from __future__ import annotations

from torch import nn

from ..errors import check_choice

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


INPLACE = {"relu", "leaky_relu", "elu", "silu"}  # safe after a Linear/Conv output, saves a copy per layer


def make_activation(name: str) -> nn.Module:
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name](inplace=True) if name in INPLACE else ACTIVATIONS[name]()
