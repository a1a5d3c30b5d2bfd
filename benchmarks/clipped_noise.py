"""The bias of clipped Gaussian noise and its inverse, for the classical denoisers of denoising.py.

The noisy image is y = clip(x + n, 0, 1) with n ~ N(0, s^2). A classical filter (blur, median,
NL-means, BM3D) estimates the local mean of y, which is E[y | x] = f(x), not x: near 0 and 1 the
clipping pulls the mean inwards (f(0) = s * phi(0) ~ 0.4 s at large s). The known correction
(Foi, "Clipped noisy images", 2009) maps the filter output through f^-1. Closed form, with
a = -x / s, b = (1 - x) / s, Phi / phi the standard normal cdf / pdf:

    f(x) = x (Phi(b) - Phi(a)) + s (phi(a) - phi(b)) + (1 - Phi(b))

f is strictly increasing, so f^-1 is read from a lookup table of f on a fine grid of x in [0, 1];
filter outputs below f(0) map to 0 and above f(1) to 1.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def clipped_gaussian_mean(x: np.ndarray, sigma: float) -> np.ndarray:
    """E[clip(x + n, 0, 1)] for n ~ N(0, sigma^2), elementwise; x: any shape."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = np.asarray(x, dtype=np.float64)
    a, b = -x / sigma, (1.0 - x) / sigma
    return x * (norm.cdf(b) - norm.cdf(a)) + sigma * (norm.pdf(a) - norm.pdf(b)) + norm.sf(b)


def invert_clipped_mean(y: np.ndarray, sigma: float, grid: int = 4097) -> np.ndarray:
    """x in [0, 1] with clipped_gaussian_mean(x, sigma) = y, by a lookup table; y: any shape."""
    xs = np.linspace(0.0, 1.0, grid)
    fx = clipped_gaussian_mean(xs, sigma)  # increasing
    y = np.asarray(y)
    return np.interp(y.astype(np.float64), fx, xs).astype(y.dtype if y.dtype.kind == "f" else np.float64)
