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

import math

import torch

from .reconstruction import ssim_maps

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, Table / section 3.2
WINDOW = 11


def ms_ssim_scales(h: int, w: int, *, max_scales: int = len(WEIGHTS)) -> int:
    """Scales M such that the coarsest (min(h, w) / 2^(M-1)) still holds an 11-pixel window; 1 <= M <= 5."""
    side = min(int(h), int(w))
    if side < 2 * WINDOW:
        return 1
    return max(1, min(max_scales, 1 + int(math.floor(math.log2(side / WINDOW)))))


def ms_ssim_terms(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, scales: int | None = None,
                  dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, list[float]]:
    """The raw terms (cs_1, ..., cs_{M-1}, SSIM_M), (N, M), unclipped and differentiable, and their M weights.
    x, y: (N, C, H, W) or (N, H, W)."""
    if x.shape != y.shape:
        raise ValueError(f"ms_ssim needs equal shapes; got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"ms_ssim needs images (N, C, H, W) or (N, H, W); got shape {tuple(x.shape)}")
    m = ms_ssim_scales(*x.shape[2:]) if scales is None else int(scales)
    if not 1 <= m <= len(WEIGHTS) or min(x.shape[2:]) >> (m - 1) < 1:
        raise ValueError(f"scales must be from 1 to {len(WEIGHTS)} and leave at least one pixel; got {scales!r} "
                         f"for images of {tuple(x.shape[2:])}")
    # the published weights as they are (they sum to 1.0001, as in Wang et al. and pytorch-msssim) at 5 scales;
    # fewer scales: the first m renormalised to sum to 1
    w = list(WEIGHTS) if m == len(WEIGHTS) else [v / sum(WEIGHTS[:m]) for v in WEIGHTS[:m]]
    x, y = x.to(dtype), y.to(dtype)
    terms = []
    for j in range(m):
        s, cs = ssim_maps(x, y, data_range=data_range, window=WINDOW, dtype=dtype)
        terms.append((s if j == m - 1 else cs).flatten(1).mean(dim=1))  # (N,)
        if j < m - 1:
            x = torch.nn.functional.avg_pool2d(x, 2)  # (N, C, H/2, W/2), an odd last row/column dropped
            y = torch.nn.functional.avg_pool2d(y, 2)
    return torch.stack(terms, dim=1), w  # (N, M)


def combine_terms(terms: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """prod_j max(t_j, 0)^w_j, (N, M) -> (N,); a term <= 0 gives 0 with a zero (not NaN) gradient."""
    safe = terms.clamp_min(torch.finfo(terms.dtype).tiny)  # the power's base away from 0: finite gradients
    powered = torch.where(terms > 0, safe ** torch.tensor(weights, dtype=terms.dtype, device=terms.device),
                          torch.zeros_like(terms))
    return powered.prod(dim=1)


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
