"""Uniform scalar quantization of codes, one range per latent dimension.

Each dimension d gets 2^bits reconstruction levels evenly spaced over [lo_d, hi_d], the range of
the training codes, ends included:

    step_d   = (hi_d - lo_d) / (2^bits - 1)
    symbol   = round((clip(z, lo_d, hi_d) - lo_d) / step_d)      in {0, ..., 2^bits - 1}
    z_hat    = lo_d + symbol * step_d

so |z - z_hat| <= step_d / 2 for every z inside the range (codes outside it are clipped first).
A dimension whose training codes are constant (hi_d == lo_d) has one used level; its step is
set to 1 so nothing divides by zero and every code maps back to lo_d.
Training with `quantization_noise=bits` (aekit.axes.bottlenecks) teaches the decoder this error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DataError

MAX_BITS = 16


def check_bits(bits) -> int:
    """bits must be an integer in [1, 16]; returns it as int."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise ConfigError(f"bits must be an integer from 1 to {MAX_BITS}; got {bits!r}.")
    return int(bits)


@dataclass
class UniformQuantizer:
    """Per-dimension uniform quantizer; lo, hi: (D,) float64, bits in [1, 16]."""

    lo: np.ndarray
    hi: np.ndarray
    bits: int

    def __post_init__(self) -> None:
        self.bits = check_bits(self.bits)
        self.lo = np.asarray(self.lo, dtype=np.float64).reshape(-1)
        self.hi = np.asarray(self.hi, dtype=np.float64).reshape(-1)
        if self.lo.shape != self.hi.shape or not np.all(np.isfinite(self.lo)) or not np.all(np.isfinite(self.hi)) \
                or np.any(self.hi < self.lo):
            raise DataError("a quantizer needs finite ranges lo <= hi of equal length.")

    @classmethod
    def fit(cls, z: np.ndarray, *, bits: int) -> "UniformQuantizer":
        """Fit the range on codes z: (N, D) (the training codes); N >= 1."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] == 0:
            raise DataError(f"fitting a quantizer needs codes of shape (N >= 1, D); got {z.shape}.")
        if not np.all(np.isfinite(z)):
            raise DataError("fitting a quantizer needs finite codes; the model produced NaN or inf.")
        return cls(lo=z.min(axis=0), hi=z.max(axis=0), bits=bits)

    @property
    def levels(self) -> int:
        return 2 ** self.bits

    @property
    def dim(self) -> int:
        return int(self.lo.shape[0])

    @property
    def step(self) -> np.ndarray:
        """(D,) spacing of the levels; 1 for a constant dimension."""
        width = self.hi - self.lo
        return np.where(width > 0, width / (self.levels - 1), 1.0)

    def quantize(self, z: np.ndarray) -> np.ndarray:
        """Codes (N, D) -> symbols (N, D) int64 in [0, 2^bits - 1]."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise DataError(f"codes must have shape (N, {self.dim}); got {z.shape}.")
        z = np.nan_to_num(z, nan=0.0)
        q = np.rint((np.clip(z, self.lo, self.hi) - self.lo) / self.step)  # (N, D)
        return np.clip(q, 0, self.levels - 1).astype(np.int64)

    def dequantize(self, symbols: np.ndarray) -> np.ndarray:
        """Symbols (N, D) -> reconstructed codes (N, D) float32."""
        symbols = np.asarray(symbols)
        if symbols.ndim != 2 or symbols.shape[1] != self.dim:
            raise DataError(f"symbols must have shape (N, {self.dim}); got {symbols.shape}.")
        return (self.lo + symbols.astype(np.float64) * self.step).astype(np.float32)
