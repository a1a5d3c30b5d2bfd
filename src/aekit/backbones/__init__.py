"""Backbones: encoder/decoder pairs built from the input shape, for any size.

Each backbone is one class registered in BACKBONES (mlp.py, conv.py, unet.py):
`BACKBONES.create(spec, input_shape=..., latent_dim=...)` returns an object with `encoder` and
`decoder`, where `encoder(x) -> (h, skips)` with h: (B, F) flat features, and
`decoder(z, skips) -> params` with params shaped like the input (B, *input_shape).
`encoder.out_features` is F.
"""

from __future__ import annotations

from ..registry import BACKBONES
from . import conv, mlp, unet  # noqa: F401  (each registers its backbone)

__all__ = ["BACKBONES"]
