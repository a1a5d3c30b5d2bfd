"""Arrays written as .npy files, atomically and without pickle (what `encode`, `reconstruct`, `detect --maps` write)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_bytes


def save_npy(path: Path, array: np.ndarray) -> None:
    """array -> path (.npy), replacing it atomically; object arrays are refused (allow_pickle=False)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
