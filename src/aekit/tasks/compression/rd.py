"""Bjontegaard delta rate (Bjontegaard 2001, VCEG-M33; the piecewise cubic variant of VCEG-AL22 / JVET common
test conditions): the average rate difference of a test codec against an anchor at equal quality.

    bd_rate(anchor_rate, anchor_quality, test_rate, test_quality)   # percent; negative: the test saves rate

log(rate) is interpolated as a monotone piecewise cubic (PCHIP, Fritsch & Carlson 1980) function of quality
for each curve, integrated over the qualities both curves cover, and the mean difference d gives
100 * (exp(d) - 1) percent.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import ConfigError


def _curve(rate, quality, name: str) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=np.float64).ravel(), np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape or r.size < 2:
        raise ConfigError(f"{name}: rate and quality need the same number (at least 2) of points; got {r.size} and {q.size}.")
    if not (np.isfinite(r).all() and np.isfinite(q).all() and (r > 0).all()):
        raise ConfigError(f"{name}: rates must be positive and finite, qualities finite.")
    order = np.argsort(q)
    q, lr = q[order], np.log(r[order])
    keep = np.concatenate([[True], np.diff(q) > 0])  # equal qualities: keep the first (lowest rate after sort)
    if keep.sum() < 2:
        raise ConfigError(f"{name}: needs at least 2 distinct quality values.")
    return q[keep], lr[keep]


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    """Percent rate difference of the test curve against the anchor at equal quality (e.g. PSNR in dB).
    NaN when the two curves share no quality interval."""
    from scipy.interpolate import PchipInterpolator

    qa, la = _curve(anchor_rate, anchor_quality, "anchor")
    qt, lt = _curve(test_rate, test_quality, "test")
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not hi > lo:
        return math.nan
    ia = PchipInterpolator(qa, la).integrate(lo, hi)
    it = PchipInterpolator(qt, lt).integrate(lo, hi)
    return float(100.0 * (math.exp((it - ia) / (hi - lo)) - 1.0))
