"""Fully connected encoder/decoder for inputs of any shape (flattened to D features).

Encoder: D -> hidden[0] -> ... -> hidden[-1] (activation after each layer); the bottleneck adds
the last layer to the code. Decoder mirrors it: latent -> hidden[-1] -> ... -> hidden[0] -> D,
no activation on the output (the likelihood interprets it: mean or logits).
With hidden=() the encoder is the identity on flattened input: bottleneck and decoder are then
single linear maps, the linear autoencoder of Baldi & Hornik (1989).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .activations import make_activation


def _check_widths(hidden) -> tuple[int, ...]:
    widths = tuple(hidden)
    if any((not isinstance(w, int)) or w <= 0 for w in widths):
        raise ConfigError(f"hidden must be a list of positive integers; got {list(hidden)!r}.")
    return widths


class MLPEncoder(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...], hidden=(), activation: str = "relu") -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = _check_widths(hidden)
        layers: list[nn.Module] = []
        d = math.prod(self.input_shape)
        for w in widths:
            layers += [nn.Linear(d, w), make_activation(activation)]
            d = w
        self.net = nn.Sequential(*layers)
        self.out_features = d

    def forward(self, x: torch.Tensor):
        h = self.net(x.flatten(1))  # (B, *shape) -> (B, D) -> (B, F)
        return h, []


class MLPDecoder(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...], latent_dim: int, hidden=(), activation: str = "relu") -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = _check_widths(hidden)
        layers: list[nn.Module] = []
        d = latent_dim
        for w in reversed(widths):
            layers += [nn.Linear(d, w), make_activation(activation)]
            d = w
        layers.append(nn.Linear(d, math.prod(self.input_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, skips=()) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.input_shape)  # (B, latent) -> (B, *shape)
