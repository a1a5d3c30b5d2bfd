"""Images side by side in one uint8 array, for PNG files (`aekit sample`, `detect --png`, `interpolate`)."""

from __future__ import annotations

import numpy as np


def image_grid(images: np.ndarray, *, cols: int | None = None) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (rows*H, cols*W[, C]) uint8 with 1-pixel gaps."""
    n, c, h, w = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1, c), dtype=np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = np.clip(img.transpose(1, 2, 0), 0, 1)
    grid = (grid * 255).round().astype(np.uint8)
    return grid[..., 0] if c == 1 else grid
