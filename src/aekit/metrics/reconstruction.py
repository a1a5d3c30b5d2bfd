"""Reconstruction metrics in the units of the data (images in [0, 1]).

- mse_per_pixel: mean over images and pixels of (x - x_hat)^2;
- sse_per_image: squared error summed over pixels, mean over images (Hinton & Salakhutdinov 2006);
- bce_per_image: binary cross-entropy of the reconstruction mean (clamped to [1e-7, 1 - 1e-7])
  summed over pixels, mean over images; only for data in [0, 1], else None;
- psnr: the mean over images of 10 log10(peak^2 / mse_image), peak = 1 for [0, 1] data and the
  data range otherwise; an image reconstructed exactly counts as 100 dB.
"""

from __future__ import annotations

import math

import torch

from ..axes.structural_similarity import image_pair, ssim_maps  # noqa: F401  (the SSIM maps live with the distortion)


@torch.no_grad()
def reconstruction_metrics(x: torch.Tensor, x_hat: torch.Tensor, *, peak: float | None = None) -> dict:
    """x, x_hat: (N, ...) in data units -> dict of floats."""
    if x.shape != x_hat.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but x_hat has shape {tuple(x_hat.shape)}")
    n = x.shape[0]
    x, x_hat = x.double().reshape(n, -1), x_hat.double().reshape(n, -1)
    sq = (x - x_hat).pow(2)  # (N, D)
    mse_image = sq.mean(dim=1)  # (N,)
    in_unit = bool(x.min() >= 0 and x.max() <= 1)
    if peak is None:
        peak = 1.0 if in_unit else float(x.max() - x.min()) or 1.0
    psnr_image = torch.where(mse_image > 0, 10 * torch.log10(peak**2 / mse_image.clamp_min(1e-300)),
                             torch.full_like(mse_image, 100.0)).clamp(max=100.0)
    out = {
        "mse_per_pixel": float(sq.mean()),
        "sse_per_image": float(sq.sum(dim=1).mean()),
        "psnr": float(psnr_image.mean()),
        "n_samples": int(n),
    }
    if in_unit:
        p = x_hat.clamp(1e-7, 1 - 1e-7)
        bce = -(x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(dim=1)
        out["bce_per_image"] = float(bce.mean())
    else:
        out["bce_per_image"] = None
    out["rmse"] = math.sqrt(out["mse_per_pixel"])
    return out


@torch.no_grad()
def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         reduction: str = "mean") -> torch.Tensor | float:
    """Structural similarity (Wang et al. 2004) of images (N, C, H, W) or (N, H, W).

    A Gaussian window (11 x 11, sigma 1.5, shrunk to the image when smaller), K1 = 0.01,
    K2 = 0.03, population covariances, the mean over valid window positions and channels; this
    matches skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False) for images of 11 pixels or more a side (skimage filters smaller
    ones with reflect padding; this uses the largest odd window that fits). reduction: 'mean' -> float, 'none' -> (N,) tensor.
    """
    x, y = image_pair(x, y, name="ssim")
    n, c, h, w = x.shape
    if n > 2000:  # bounded memory: five (N, C, H, W) maps per chunk
        parts = [ssim(x[i:i + 2000], y[i:i + 2000], data_range=data_range, window=window, sigma=sigma, reduction="none")
                 for i in range(0, n, 2000)]
        per = torch.cat(parts)
        return float(per.mean()) if reduction == "mean" else per
    s, _ = ssim_maps(x, y, data_range=data_range, window=window, sigma=sigma)
    per_image = s.flatten(1).mean(dim=1)  # (N,)
    return float(per_image.mean()) if reduction == "mean" else per_image
