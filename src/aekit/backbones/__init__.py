"""Backbones: encoder/decoder pairs built from the input shape, for any size.

`make_backbone(name, input_shape=..., **options) -> (encoder, decoder)` where
`encoder(x) -> (h, skips)` with h: (B, F) flat features, and `decoder(z, skips) -> params`
with params shaped like the input (B, *input_shape). `encoder.out_features` is F.
"""

from __future__ import annotations

from ..errors import check_choice
from .conv import ConvDecoder, ConvEncoder
from .mlp import MLPDecoder, MLPEncoder
from .unet import UNetDecoder, UNetEncoder

BACKBONES = ("mlp", "conv", "unet")


def make_backbone(name: str, *, input_shape: tuple[int, ...], latent_dim: int, hidden=(), channels=(),
                  activation: str = "relu", skips: bool = True, conv_hidden=()):
    check_choice("backbone", name, BACKBONES)
    if name == "mlp":
        enc = MLPEncoder(input_shape=input_shape, hidden=hidden, activation=activation)
        dec = MLPDecoder(input_shape=input_shape, latent_dim=latent_dim, hidden=hidden, activation=activation)
    elif name == "conv":
        enc = ConvEncoder(input_shape=input_shape, channels=channels, activation=activation, fc=conv_hidden)
        dec = ConvDecoder(input_shape=input_shape, latent_dim=latent_dim, channels=channels,
                          activation=activation, sizes=enc.sizes, fc=conv_hidden)
    else:
        enc = UNetEncoder(input_shape=input_shape, channels=channels, activation=activation)
        dec = UNetDecoder(input_shape=input_shape, latent_dim=latent_dim, channels=channels,
                          activation=activation, sizes=enc.sizes, skips=skips)
    return enc, dec


__all__ = ["BACKBONES", "make_backbone"]
