"""Procedural dSprites: 2-D shapes on a black canvas, rendered on demand from their factors.

The factor grid of the original data set (Matthey et al. 2017, "dSprites: disentanglement
testing sprites dataset"; Higgins et al. 2017, beta-VAE):

    factor        classes  values
    shape         3        square, ellipse, heart (value 1, 2, 3 as in the original)
    scale         6        linspace(0.5, 1, 6)
    orientation   40       2 pi k / 40, k = 0..39 (radians, in [0, 2 pi))
    pos_x         32       linspace(0, 1, 32)  (left -> right)
    pos_y         32       linspace(0, 1, 32)  (top -> bottom)

3 * 6 * 40 * 32 * 32 = 737,280 binary images. The index of a combination is the mixed-radix
number of its classes in the order above (pos_y fastest), as in the original .npz file.

Rendering is vectorized: every pixel centre of the canvas is mapped into each sprite's own
frame (translate, un-rotate, un-scale) and tested against the shape's implicit inequality, so
a batch of B images is a few (B, H, W) tensor operations and any resolution renders directly
(the `dsprites32` source renders at 32 x 32, still binary). The shapes are not pixel copies of
the original sprites; the geometry (a sprite of radius 0.18 * side at scale 1, whose centre
moves over [0.2, 0.8] of the side, so every shape stays inside the canvas) is this module's own.

Nothing is kept in memory beyond what is asked for: `DSprites` is a map-style torch Dataset
that renders items when indexed; `random_indices` draws a seeded subset; `load_split` renders
the train / val / test subsets that `load_data("dsprites")` returns.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from aekit.errors import ConfigError

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
NUM_COMBINATIONS = int(np.prod(FACTOR_SIZES))  # 737,280
SOURCES = {"dsprites": 64, "dsprites32": 32}   # data source name -> image side in pixels
DEFAULT_SAMPLES = 20_000   # training images when max_samples is not given (the grid is 737,280)
RADIUS = 0.18              # sprite radius at scale 1, as a fraction of the image side
MARGIN = 0.2               # sprite centres move over [MARGIN, 1 - MARGIN] of the side: never cut off
_CHUNK = 2048              # images rendered per tensor operation (bounds the temporaries)
_STRIDES = tuple(int(np.prod(FACTOR_SIZES[i + 1:])) for i in range(len(FACTOR_SIZES)))  # (245760, 40960, 1024, 32, 1)
_HEART_SCALE = 1.0 / 1.32  # around (0, 0.2) the heart curve reaches radius 1.28: shrink it into the unit disk


def factor_values(classes) -> np.ndarray:
    """Integer classes (N, 5) -> float factor values (N, 5): shape 1..3, scale, radians, x, y."""
    c = _check_classes(classes)
    out = np.empty(c.shape, dtype=np.float64)
    out[:, 0] = c[:, 0] + 1
    out[:, 1] = 0.5 + 0.5 * c[:, 1] / (FACTOR_SIZES[1] - 1)
    out[:, 2] = 2 * math.pi * c[:, 2] / FACTOR_SIZES[2]
    out[:, 3] = c[:, 3] / (FACTOR_SIZES[3] - 1)
    out[:, 4] = c[:, 4] / (FACTOR_SIZES[4] - 1)
    return out


def index_to_classes(index) -> np.ndarray:
    """Grid indices (N,) in [0, 737280) -> factor classes (N, 5) int64."""
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_COMBINATIONS):
        raise ConfigError(f"dSprites indices must be in [0, {NUM_COMBINATIONS}); got values in "
                          f"[{idx.min()}, {idx.max()}].")
    return np.stack([(idx // s) % n for s, n in zip(_STRIDES, FACTOR_SIZES)], axis=1)


def classes_to_index(classes) -> np.ndarray:
    """Factor classes (N, 5) -> grid indices (N,) int64 (the inverse of index_to_classes)."""
    return _check_classes(classes) @ np.asarray(_STRIDES, dtype=np.int64)


def _check_classes(classes) -> np.ndarray:
    c = np.asarray(classes, dtype=np.int64)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[1] != len(FACTOR_SIZES):
        raise ConfigError(f"dSprites factor classes must have shape (N, {len(FACTOR_SIZES)}) in the order "
                          f"{FACTOR_NAMES}; got shape {c.shape}.")
    if c.size and ((c < 0).any() or (c >= np.asarray(FACTOR_SIZES)).any()):
        raise ConfigError(f"dSprites factor classes must be in [0, size) per factor, sizes {FACTOR_SIZES}.")
    return c


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 8:
        raise ConfigError(f"dSprites resolution must be an integer >= 8 (e.g. 64 or 32); got {resolution!r}.")
    return int(resolution)


def render_classes(classes, *, resolution: int = 64) -> torch.Tensor:
    """Factor classes (N, 5) -> binary images (N, 1, R, R) float32 in {0, 1}."""
    c = _check_classes(classes)
    r = _check_resolution(resolution)
    chunks = [_render_chunk(c[i:i + _CHUNK], r) for i in range(0, len(c), _CHUNK)]
    return torch.cat(chunks) if chunks else torch.zeros((0, 1, r, r))


def render(index, *, resolution: int = 64) -> torch.Tensor:
    """Grid indices (N,) -> binary images (N, 1, R, R) float32."""
    return render_classes(index_to_classes(index), resolution=resolution)


def _render_chunk(c: np.ndarray, r: int) -> torch.Tensor:
    out = torch.zeros((len(c), 1, r, r))                         # (B, 1, R, R)
    grid = torch.arange(r, dtype=torch.float32) + 0.5            # (R,) pixel centres
    for s in range(len(SHAPES)):                                 # one group per shape: no masked copies
        rows = np.flatnonzero(c[:, 0] == s)
        if rows.size:
            out[torch.from_numpy(rows), 0] = _inside(s, c[rows], grid, r).float()
    return out


def _inside(shape: int, c: np.ndarray, grid: torch.Tensor, r: int) -> torch.Tensor:
    """(B, R, R) bool: which pixel centres fall inside each sprite of one shape."""
    v = torch.from_numpy(factor_values(c)).float()             # (B, 5)
    radius = RADIUS * v[:, 1] * r                                # (B,) pixels
    lo, span = r * MARGIN, r * (1 - 2 * MARGIN)                  # centres keep the largest sprite inside
    cx, cy = lo + v[:, 3] * span, lo + v[:, 4] * span            # (B,) pixel coordinates of the centre
    dx = (grid[None, :] - cx[:, None]) / radius[:, None]         # (B, R) along columns
    dy = (grid[None, :] - cy[:, None]) / radius[:, None]         # (B, R) along rows (downwards)
    cos, sin = torch.cos(v[:, 2])[:, None, None], torch.sin(v[:, 2])[:, None, None]
    dx, dy = dx[:, None, :], dy[:, :, None]                      # (B, 1, R), (B, R, 1)
    u = cos * dx + sin * dy                                      # (B, R, R) the sprite's own frame
    w = cos * dy - sin * dx                                      # w > 0 is "down" in the sprite's frame
    if shape == 0:   # square of half-side 0.7 (corners at radius 0.99)
        return torch.maximum(u.abs_(), w.abs_()) <= 0.7
    if shape == 1:   # ellipse with semi-axes 1 and 0.5
        return u.square_().add_(w.square_().mul_(4.0)) <= 1.0
    # heart (x^2 + y^2 - 1)^3 <= x^2 y^3 with y up, shrunk into the unit disk
    x2 = u.div_(_HEART_SCALE).square_()
    y = w.div_(-_HEART_SCALE).add_(0.2)
    return (x2 + y * y - 1).pow_(3) <= x2 * y.pow_(3)


def random_indices(n: int, *, seed: int = 0) -> np.ndarray:
    """n distinct grid indices drawn uniformly without replacement (seeded): (n,) int64."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= NUM_COMBINATIONS:
        raise ConfigError(f"the number of dSprites samples must be in [0, {NUM_COMBINATIONS}]; got {n!r}.")
    return np.random.default_rng(seed).choice(NUM_COMBINATIONS, size=int(n), replace=False).astype(np.int64)


def sample_classes(n: int, *, rng: np.random.Generator, fixed: tuple[int, int] | None = None) -> np.ndarray:
    """n factor combinations drawn uniformly with replacement, optionally one factor held fixed.

    fixed=(k, value) sets factor k to class `value` in every row: the "batch with one factor
    in common" that the beta-VAE and FactorVAE scores need. Returns (n, 5) int64.
    """
    c = np.stack([rng.integers(0, size, size=n) for size in FACTOR_SIZES], axis=1).astype(np.int64)
    if fixed is not None:
        c[:, fixed[0]] = fixed[1]
    return c


class DSprites(torch.utils.data.Dataset):
    """Map-style dataset over the grid (or a subset of it): item i -> (image (1, R, R), classes (5,)).

    Images are rendered when indexed, so the full 737,280-image grid costs no memory; with
    cache=True each rendered image is kept (uint8) for later epochs.
    """

    def __init__(self, *, resolution: int = 64, indices=None, cache: bool = False) -> None:
        self.resolution = _check_resolution(resolution)
        self.indices = (np.arange(NUM_COMBINATIONS, dtype=np.int64) if indices is None
                        else np.asarray(indices, dtype=np.int64).reshape(-1))
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= NUM_COMBINATIONS):
            raise ConfigError(f"dSprites indices must be in [0, {NUM_COMBINATIONS}).")
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return int(self.indices.size)

    def factors(self) -> np.ndarray:
        """Factor classes of every item, (N, 5) int64."""
        return index_to_classes(self.indices)

    def __getitem__(self, i: int):
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a DSprites of {len(self)} items")
        grid_index = int(self.indices[i])
        if self._cache is not None and grid_index in self._cache:
            image = self._cache[grid_index].float()
        else:
            image = render([grid_index], resolution=self.resolution)[0]   # (1, R, R)
            if self._cache is not None:
                self._cache[grid_index] = image.to(torch.uint8)
        return image, torch.from_numpy(index_to_classes([grid_index])[0])

    def batch(self, items) -> torch.Tensor:
        """Render many items at once (vectorized): positions (B,) -> images (B, 1, R, R)."""
        return render(self.indices[np.asarray(items, dtype=np.int64)], resolution=self.resolution)


def split_sizes(max_samples: int | None, val_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) sizes: train = max_samples (default 20,000); val = test = its share."""
    n_train = DEFAULT_SAMPLES if max_samples is None else int(max_samples)
    n_val = int(round(n_train * val_fraction / (1 - val_fraction))) if val_fraction > 0 else 0
    total = n_train + 2 * n_val
    if total > NUM_COMBINATIONS:  # the whole grid asked for: shrink val/test first, then train
        n_val = min(n_val, (NUM_COMBINATIONS - 1) // 10)
        n_train = min(n_train, NUM_COMBINATIONS - 2 * n_val)
    return n_train, n_val, n_val


def load_split(name: str, *, val_fraction: float, seed: int, max_samples: int | None):
    """Render the seeded, disjoint train / val / test subsets of data source `name`.

    Returns (xs, ys, factors): split -> images (N, 1, R, R), split -> shape labels (N,), and
    split -> factor classes (N, 5) int64.
    """
    resolution = SOURCES[name]
    sizes = split_sizes(max_samples, val_fraction)
    idx = random_indices(sum(sizes), seed=seed)
    parts = dict(zip(("train", "val", "test"), np.split(idx, np.cumsum(sizes)[:-1])))
    xs, ys, factors = {}, {}, {}
    for split, part in parts.items():
        classes = index_to_classes(part)                        # (N, 5)
        xs[split] = render_classes(classes, resolution=resolution)
        factors[split] = torch.from_numpy(classes)
        ys[split] = factors[split][:, 0].clone()                 # label: the shape class
    return xs, ys, factors


def split_factors(ds, split: str) -> torch.Tensor:
    """Factor classes (N, 5) of a loaded dSprites Dataset's split ('train', 'val', 'test', 'all')."""
    from aekit.errors import DataError

    factors = getattr(ds, "factors", None)
    if not factors:
        raise DataError(f"data source {ds.name!r} has no generative factors; use 'dsprites' or 'dsprites32'.")
    if split == "all":
        return torch.cat([factors[s] for s in ("train", "val", "test") if factors.get(s) is not None])
    return factors[split]


__all__ = ["DEFAULT_SAMPLES", "DSprites", "FACTOR_NAMES", "FACTOR_SIZES", "NUM_COMBINATIONS", "SHAPES", "SOURCES",
           "classes_to_index", "factor_values", "index_to_classes", "load_split", "random_indices", "render",
           "render_classes", "sample_classes", "split_factors"]
