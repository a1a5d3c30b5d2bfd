"""Seeded, deterministic index splits (train / val / test) and the `max_samples` cap.

Every split is a numpy Generator permutation seeded with `seed`; the indices of each split are
returned sorted, so a split keeps the order of the source.

max_samples caps the number of *training* rows. The val split shrinks by the same ratio
(keeping val:train as without the cap, at least 1 row when val_fraction > 0) and a test split
is subsampled by that ratio too (`cap_rows`).
"""

from __future__ import annotations

import math

import numpy as np

from aekit.errors import ConfigError


def check_val_fraction(val_fraction: float) -> float:
    """Raise ConfigError unless 0 <= val_fraction < 1."""
    numeric = (int, float, np.integer, np.floating)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numeric):
        raise ConfigError(f"val_fraction must be a number in [0, 1); got {val_fraction!r}.")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1); got {val_fraction!r}.")
    return float(val_fraction)


def check_max_samples(max_samples: int | None) -> int | None:
    """Raise ConfigError unless max_samples is None or a positive int."""
    if max_samples is None:
        return None
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)):
        raise ConfigError(f"max_samples must be a positive integer or None; got {max_samples!r}.")
    if max_samples < 1:
        raise ConfigError(f"max_samples must be >= 1; got {max_samples}.")
    return int(max_samples)


def split_sizes(n: int, *, val_fraction: float) -> tuple[int, int]:
    """(n_train, n_val) for n rows: n_val = round(n * val_fraction), >= 1 when val_fraction > 0
    and n >= 2, and never all n rows."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    n_val = min(n_val, max(n - 1, 0))
    return n - n_val, n_val


def train_val_indices(
    n: int, *, val_fraction: float, seed: int, max_samples: int | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Split range(n) into sorted (train_idx, val_idx) and return the cap ratio too.

    ratio = kept training rows / training rows without the cap (1.0 without max_samples).
    """
    n_train, n_val = split_sizes(n, val_fraction=val_fraction)
    ratio = 1.0
    if max_samples is not None and max_samples < n_train:
        ratio = max_samples / n_train
        n_val = min(n_val, max(1, int(round(n_val * ratio)))) if n_val else 0
        n_train = max_samples
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:n_val + n_train])
    return train_idx, val_idx, ratio


def cap_rows(n: int, *, ratio: float, seed: int) -> np.ndarray:
    """Sorted indices of ceil(n * ratio) rows (at least 1) of range(n), seeded; all if ratio>=1."""
    if ratio >= 1.0 or n == 0:
        return np.arange(n)
    keep = min(n, max(1, math.ceil(n * ratio)))
    return np.sort(np.random.default_rng(seed + 1).permutation(n)[:keep])


def fixed_holdout(n: int, *, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (rest_idx, holdout_idx): a holdout of round(n * fraction) rows that depends only
    on `seed` (used for the fixed test split of 'digits')."""
    n_hold = int(round(n * fraction))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])
