"""Structural similarity maps and the multi-scale terms (Wang, Bovik, Sheikh & Simoncelli 2004, Image quality
assessment: from error visibility to structural similarity; Wang, Simoncelli & Bovik 2003, Multiscale structural
similarity for image quality assessment): differentiable, in any dtype. The training distortion 'ms_ssim'
(axes/distortions.py) and the metrics (metrics/reconstruction.py `ssim`, metrics/ms_ssim.py `ms_ssim`) share them;
the metrics document the conventions (window, constants, scales, weights).
"""

from __future__ import annotations

import math

import torch


def gaussian_window(size: int, sigma: float, dtype) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]  # (size, size)


def ssim_maps(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
              sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM map, contrast-structure map), each (N, C, H', W') over the valid window positions of x, y (N, C, H, W):
    SSIM = l * cs with l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), cs = (2 s_xy + C2) / (s_x^2 + s_y^2 + C2).
    Computed in `dtype` (float64 for the metrics; a training loss passes its own dtype) and differentiable."""
    c, h, w = x.shape[1:]
    x, y = x.to(dtype), y.to(dtype)
    size = min(window, h, w)
    size = size if size % 2 == 1 else size - 1
    # skimage truncates the Gaussian at 3.5 sigma: window = 2 * int(3.5 * sigma + 0.5) + 1 = 11 for sigma = 1.5
    kernel = gaussian_window(size, sigma, x.dtype).to(x.device).expand(c, 1, size, size)
    conv = lambda t: torch.nn.functional.conv2d(t, kernel, groups=c)  # noqa: E731  valid positions only
    mu_x, mu_y = conv(x), conv(y)
    sxx = conv(x * x) - mu_x**2
    syy = conv(y * y) - mu_y**2
    sxy = conv(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs, cs


WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, Table / section 3.2
WINDOW = 11


def ms_ssim_scales(h: int, w: int, *, max_scales: int = len(WEIGHTS)) -> int:
    """Scales M such that the coarsest (min(h, w) / 2^(M-1)) still holds an 11-pixel window; 1 <= M <= 5."""
    side = min(int(h), int(w))
    if side < 2 * WINDOW:
        return 1
    return max(1, min(max_scales, 1 + int(math.floor(math.log2(side / WINDOW)))))


def image_pair(x: torch.Tensor, y: torch.Tensor, *, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y of one shape, (N, C, H, W) or (N, H, W) -> both (N, C, H, W); a ValueError naming `name` otherwise."""
    if x.shape != y.shape:
        raise ValueError(f"{name} needs equal shapes; got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"{name} needs images (N, C, H, W) or (N, H, W); got shape {tuple(x.shape)}")
    return x, y


def ms_ssim_terms(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, scales: int | None = None,
                  dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, list[float]]:
    """The raw terms (cs_1, ..., cs_{M-1}, SSIM_M), (N, M), unclipped and differentiable, and their M weights.
    x, y: (N, C, H, W) or (N, H, W)."""
    x, y = image_pair(x, y, name="ms_ssim")
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
