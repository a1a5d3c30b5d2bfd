"""The named source 'digits': scikit-learn's bundled 8x8 handwritten digits (offline).

1797 grayscale images with values 0..16 and labels 0..9. load.py divides by 16 (scale = 16),
keeps a fixed 20% test split (the same for every seed) and splits the rest into train/val
with the seed.
"""

from __future__ import annotations

import numpy as np

from aekit.errors import DataError

DIGITS_MAX = 16.0
TEST_FRACTION = 0.2
TEST_SEED = 0          # the test split never depends on the user's seed


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return (x (1797, 8, 8) float64 in 0..16, y (1797,) int64)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            "data source 'digits' needs scikit-learn (pip install scikit-learn); "
            f"it could not be imported: {exc}."
        ) from exc
    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
