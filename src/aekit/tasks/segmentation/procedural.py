"""A procedural segmentation data set: cell-like blobs and shapes on noisy, uneven backgrounds.

Each image holds a few objects on a background with a linear illumination gradient and a
vignette (a darker rim around a random centre), blurred slightly and covered in Gaussian
noise, so a global threshold does not segment it:

- cells: ellipses whose boundary radius is jittered by random low-order Fourier terms, with a
  soft bright cytoplasm and a darker nucleus;
- shapes: rotated rectangles and triangles of uniform brightness with straight edges.

Binary (classes=2): the mask marks every object (cells and shapes) as foreground 1.
Multi-class (classes=3): 0 background, 1 cell, 2 shape; the net has to tell them apart by form
and texture, as object brightness ranges overlap. Everything is drawn from one seeded numpy
Generator, so (n, size, classes, seed) fixes the data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from ...errors import ConfigError

CELL, SHAPE = 1, 2


def _cell(rng, yy, xx, size, hw):
    """(inside mask, intensity map) of one jittered ellipse with a nucleus."""
    cy, cx = rng.uniform(0.08, 0.92, 2) * hw
    a, b = rng.uniform(0.06, 0.14, 2) * size
    th = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    phi = np.arctan2(v / b, u / a)
    radius = np.ones_like(phi)
    for k in range(2, 6):  # boundary jitter: sum of low-order harmonics, amplitude ~ 1/k
        amp = rng.normal(0, 0.07 / k, 2)
        radius += amp[0] * np.cos(k * phi) + amp[1] * np.sin(k * phi)
    inside = rho < radius
    r = np.clip(rho / radius, 0, 1)
    contrast = rng.uniform(0.2, 0.55)
    body = contrast * (1.0 - 0.35 * r ** 2)  # brighter centre, softer rim
    ny, nx = rng.normal(0, 0.15, 2)
    nucleus = ((u / a - nx) ** 2 + (v / b - ny) ** 2) < rng.uniform(0.12, 0.2)
    body = body - nucleus * contrast * rng.uniform(0.3, 0.6)
    return inside, body


def _shape(rng, yy, xx, size, hw):
    """(inside mask, intensity map) of a rotated rectangle or a triangle."""
    cy, cx = rng.uniform(0.08, 0.92, 2) * hw
    contrast = rng.uniform(0.2, 0.55)
    if rng.random() < 0.5:
        a, b = rng.uniform(0.05, 0.13, 2) * size
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        inside = (np.abs(u) < a) & (np.abs(v) < b)
    else:
        r = rng.uniform(0.08, 0.15) * size
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.normal(0, 0.25, 3)
        py, px = cy + r * np.sin(angles), cx + r * np.cos(angles)

        def side(i, j):  # sign of the cross product: which side of edge i -> j a pixel is on
            return (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])

        s0, s1, s2 = side(0, 1), side(1, 2), side(2, 0)
        inside = ((s0 >= 0) & (s1 >= 0) & (s2 >= 0)) | ((s0 <= 0) & (s1 <= 0) & (s2 <= 0))
    return inside, np.full(inside.shape, contrast)


def make_cells(n: int, *, size: int | tuple[int, int] = 96, classes: int = 2, seed: int = 0,
               objects: tuple[int, int] = (3, 8), noise: tuple[float, float] = (0.03, 0.08),
               object_scale: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 1, H, W) float32 in [0, 1] and masks (n, H, W) int64 (see module docstring).

    Object sizes are fractions of object_scale pixels (default min(H, W)), and `objects` is the
    range of object counts per object_scale x object_scale area: large images with
    object_scale=96 look like a field of view tiled with 96 x 96 images (for tiled prediction).
    """
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer; got {n!r}.")
    if classes not in (2, 3):
        raise ConfigError(f"classes must be 2 (binary: objects vs background) or 3 (background, cell, shape); got {classes!r}.")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if min(h, w) < 8:
        raise ConfigError(f"size must be at least 8 pixels; got {size!r}.")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    scale = float(object_scale or min(h, w))
    area = h * w / scale ** 2  # how many object_scale x object_scale squares the image holds
    images = np.empty((n, 1, h, w), np.float32)
    masks = np.zeros((n, h, w), np.int64)
    for i in range(n):
        base = rng.uniform(0.1, 0.35)
        th = rng.uniform(0, 2 * np.pi)
        side = float(min(h, w))  # illumination varies over the whole field of view
        gradient = rng.uniform(-0.45, 0.45) * ((xx - w / 2) * np.cos(th) + (yy - h / 2) * np.sin(th)) / side
        vy, vx = rng.uniform(0.2, 0.8, 2) * (h, w)
        vignette = -rng.uniform(0.1, 0.6) * (((yy - vy) ** 2 + (xx - vx) ** 2) / side ** 2)
        img = base + gradient + vignette
        mask = masks[i]
        for _ in range(int(round(rng.integers(objects[0], objects[1] + 1) * area))):
            kind = CELL if rng.random() < 0.65 else SHAPE
            inside, body = (_cell if kind == CELL else _shape)(rng, yy, xx, scale, (h, w))
            img = np.where(inside, img + body, img)
            mask[inside] = kind if classes == 3 else 1
        img = gaussian_filter(img, sigma=0.7) + rng.normal(0, rng.uniform(*noise), img.shape)
        images[i, 0] = np.clip(img, 0.0, 1.0)
    return images, masks


def write_cells(out, n: int, *, size: int | tuple[int, int] = 96, classes: int = 2, seed: int = 0,
                prefix: str = "cell") -> tuple[Path, Path]:
    """Write make_cells(...) as out/images/PREFIX_00000.png and out/masks/PREFIX_00000.png.

    Images are 8-bit gray PNGs; binary masks are stored as {0, 255}, multi-class masks as the
    class indices 0..classes-1. Returns (images folder, masks folder).
    """
    from PIL import Image

    images, masks = make_cells(n, size=size, classes=classes, seed=seed)
    out = Path(out)
    img_dir, mask_dir = out / "images", out / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"{prefix}_{i:05d}.png"
        Image.fromarray(np.round(images[i, 0] * 255).astype(np.uint8), mode="L").save(img_dir / name)
        m = masks[i] * (255 if classes == 2 else 1)
        Image.fromarray(m.astype(np.uint8), mode="L").save(mask_dir / name)
    return img_dir, mask_dir
