"""Perceptual distortions used in the likelihood slot: D(x, x_hat) per sample, where a rate-trained model's loss is
R + lambda * D (axes/entropy_models.py) and any other model's loss is D (plus its regularizers).

- ms_ssim: D = H * W * (1 - MS-SSIM(x, x_hat)) per image (C, H, W): one minus the multi-scale structural
  similarity of Wang, Simoncelli & Bovik 2003 (metrics/ms_ssim.py: 11 x 11 Gaussian window, sigma 1.5, the
  standard five weights, fewer scales for images under 176 pixels a side), summed over the H * W pixel
  positions so that, like the rate in bits per image, it grows with the image: loss / (H * W) =
  bpp + lambda * (1 - MS-SSIM), the convention of Balle et al. 2018 and CompressAI for MS-SSIM-optimized models
  (its lambdas 2.40 ... 60.50 carry over unchanged). The decoder emits the image itself (mean = params).

It is a distortion, not a normalised likelihood: `nll` returns D, not nats, so an ELBO or bits-per-dimension
read from it is not a likelihood bound (the run's terms call it 'nll' because it sits in that slot).
Computed in the decoder output's dtype (float32 in training). The value is exactly the metric's (a term <= 0 is
clipped to 0, as pytorch-msssim does), but where a term is clipped the metric has no gradient, and a decoder whose
first outputs have the wrong sign (luminance term < 0) would never leave that state. So each clipped term t_j adds
H * W * (-t_j) to the loss with its value subtracted again (a straight-through push: zero in the value, slope
one per pixel in the gradient, only while t_j <= 0).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .structural_similarity import WEIGHTS, combine_terms, ms_ssim_terms
from ..registry import LIKELIHOODS
from .likelihoods import Likelihood


@LIKELIHOODS.register("ms_ssim")
class MSSSIMDistortion(Likelihood):
    """D = H * W * (1 - MS-SSIM(x, x_hat)) per image (loss / pixels = bpp + lambda * (1 - MS-SSIM)).
    Wang, Simoncelli & Bovik 2003, Multiscale structural similarity for image quality assessment."""

    name = "ms_ssim"
    provides = frozenset({"image_distortion"})
    requires = frozenset({"image_input"})
    examples = ({}, {"scales": 1})

    def __init__(self, *, data_range: float = 1.0, scales: int | None = None) -> None:
        super().__init__()
        if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not (
                data_range > 0 and math.isfinite(data_range)):
            raise ConfigError(f"likelihood 'ms_ssim' data_range (the value range of the images, 1.0 for [0, 1]) must "
                              f"be a positive finite number; got {data_range!r}.")
        if scales is not None and (isinstance(scales, bool) or not isinstance(scales, int)
                                   or not 1 <= scales <= len(WEIGHTS)):
            raise ConfigError(f"likelihood 'ms_ssim' scales must be an integer from 1 to {len(WEIGHTS)} (or omitted: "
                              f"as many as the image size allows); got {scales!r}.")
        self.data_range = float(data_range)
        self.scales = scales

    def nll(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ConfigError(f"likelihood 'ms_ssim' needs images (batch, C, H, W); got data of shape {tuple(x.shape)}.")
        h, w = x.shape[2:]
        if self.scales is not None and min(h, w) >> (self.scales - 1) < 1:
            raise ConfigError(f"likelihood 'ms_ssim' scales={self.scales} halves a {h} x {w} image below one pixel; "
                              "use fewer scales (or omit scales).")
        dtype = params.dtype if params.dtype in (torch.float32, torch.float64) else torch.float32
        terms, weights = ms_ssim_terms(x, params, data_range=self.data_range, scales=self.scales, dtype=dtype)  # (B, M)
        push = (-terms).clamp_min(0).sum(dim=1)  # (B,) > 0 only where a term is clipped
        return (h * w) * (1.0 - combine_terms(terms, weights) + push - push.detach())  # (B,)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params  # the decoder emits the image

    def check_target(self, x: torch.Tensor, *, name: str = "data") -> None:
        if x.dim() != 4:
            raise ConfigError(f"likelihood 'ms_ssim' needs image {name} (N, C, H, W); got shape {tuple(x.shape)}.")
