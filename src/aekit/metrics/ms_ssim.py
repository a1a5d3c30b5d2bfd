"""Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003, Multiscale structural similarity for image
quality assessment).

    ms_ssim(x, y)                       # x, y: (N, C, H, W) or (N, H, W) in [0, data_range]; a float
    ms_ssim_scales(h, w)                # how many scales an h x w image gets (5 from 176 pixels a side)

At scales j = 1..M (each a 2 x 2 average pooling of the previous one) the contrast-structure term cs_j is
the mean over valid 11 x 11 Gaussian-window positions (sigma 1.5, K1 0.01, K2 0.03, as `ssim`); the last
scale also takes the luminance term, so MS-SSIM = prod_{j<M} cs_j^{w_j} * SSIM_M^{w_M}, with the standard
weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) for M = 5. Negative terms are clipped at 0 (as
pytorch-msssim does) so that a fractional power stays real.

Small images: the coarsest scale must still hold a whole 11 x 11 window, so an image whose smaller side is
under 16 * 11 = 176 pixels gets fewer scales M = 1 + floor(log2(min(H, W) / 11)) (at least 1; under 11 pixels the
window shrinks as in `ssim`), with the first M standard weights renormalised to sum to 1 (at M = 5 the published
weights are used unchanged; they sum to 1.0001, as in pytorch-msssim 1.0.0, which agrees to 5e-6 on grayscale; its
Gaussian window is built in float32. Colour: the terms are averaged over channels before the powers; pytorch-msssim
takes the powers per channel, then the mean: the two differ slightly). The number used is
`ms_ssim_scales(H, W)`; callers that report MS-SSIM of small images say so.
"""

from __future__ import annotations

import torch

from ..axes.structural_similarity import (WEIGHTS, WINDOW, combine_terms, ms_ssim_scales,  # noqa: F401
                                       ms_ssim_terms)


def ms_ssim_per_image(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, scales: int | None = None,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MS-SSIM of each image pair, (N,), differentiable; x, y: (N, C, H, W) or (N, H, W)."""
    terms, weights = ms_ssim_terms(x, y, data_range=data_range, scales=scales, dtype=dtype)
    return combine_terms(terms, weights)


@torch.no_grad()
def ms_ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, scales: int | None = None,
            reduction: str = "mean") -> torch.Tensor | float:
    """MS-SSIM of images (N, C, H, W) or (N, H, W); scales: default `ms_ssim_scales(H, W)`.
    reduction: 'mean' -> float, 'none' -> (N,) tensor."""
    out = ms_ssim_per_image(x, y, data_range=data_range, scales=scales)
    return float(out.mean()) if reduction == "mean" else out
