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

from ..registry import BACKBONES
from .dense import check_widths, dense_stack


class MLPEncoder(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...], hidden=(), activation: str = "relu") -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = check_widths(hidden, name="hidden")
        d = math.prod(self.input_shape)
        self.net = nn.Sequential(*dense_stack([d, *widths], activation))  # D -> hidden[0] -> ... -> hidden[-1]
        self.out_features = widths[-1] if widths else d

    def forward(self, x: torch.Tensor):
        h = self.net(x.flatten(1))  # (B, *shape) -> (B, D) -> (B, F)
        return h, []


class MLPDecoder(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...], latent_dim: int, hidden=(), activation: str = "relu") -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = check_widths(hidden, name="hidden")
        layers = dense_stack([latent_dim, *reversed(widths)], activation)  # latent -> hidden[-1] -> ... -> hidden[0]
        layers.append(nn.Linear(widths[0] if widths else latent_dim, math.prod(self.input_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, skips=()) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.input_shape)  # (B, latent) -> (B, *shape)


@BACKBONES.register("mlp")
class MLPBackbone:
    """Fully connected encoder D -> hidden -> code and its mirror; hidden=[] is the linear autoencoder.
    Rumelhart, Hinton & Williams 1986; Baldi & Hornik 1989 (hidden=[])."""

    provides = frozenset({"code_decoder"})  # the decoder runs on a code alone
    may_provide = {"linear_backbone": "hidden=[]"}
    examples = ({"hidden": [8]}, {"hidden": []})  # small settings the contract suite (and `aekit list`) shows

    @classmethod
    def provides_for(cls, *, hidden=(256,), activation: str = "relu") -> frozenset[str]:
        return frozenset({"code_decoder"} if tuple(hidden) else {"code_decoder", "linear_backbone"})

    def __init__(self, *, input_shape, latent_dim: int, hidden: list[int] = (256,), activation: str = "relu") -> None:
        self.encoder = MLPEncoder(input_shape=input_shape, hidden=hidden, activation=activation)
        self.decoder = MLPDecoder(input_shape=input_shape, latent_dim=latent_dim, hidden=hidden, activation=activation)
