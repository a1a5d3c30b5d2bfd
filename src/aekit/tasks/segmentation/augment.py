"""Training-time sampling and augmentation of image / mask pairs, applied identically to both.

- random_crops: one random crop per chosen pair (crops of large images; the whole image when
  it is no larger than the crop).
- Augment: per sample a random horizontal flip, vertical flip and 90-degree rotation (exact
  pixel permutations), then with probability p_elastic an elastic deformation as in the U-Net
  paper: random displacements on a coarse grid x grid lattice, drawn from N(0, std^2) pixels
  and interpolated bicubically to a smooth per-pixel field. The image is resampled bilinearly,
  the mask with nearest-neighbour (class labels are never blended), both with reflection at
  the border and through the very same sampling grid.

All randomness comes from the torch.Generator passed in, so a seeded run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import ConfigError


def random_crops(images: list[torch.Tensor], masks: list[torch.Tensor], indices, crop: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack one crop of side min(crop, H) x min(crop, W) per index: (B, C, h, w), (B, h, w) int64."""
    xs, ys = [], []
    for i in indices:
        img, mask = images[int(i)], masks[int(i)]  # (C, H, W), (H, W)
        h, w = mask.shape
        ch, cw = min(crop, h), min(crop, w)
        top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        xs.append(img[:, top:top + ch, left:left + cw])
        ys.append(mask[top:top + ch, left:left + cw])
    try:
        return torch.stack(xs), torch.stack(ys)
    except RuntimeError:
        raise ConfigError("images smaller than the crop must all have the same size to share a batch; "
                          "pass a crop no larger than the smallest image.") from None


def elastic_grid(n: int, h: int, w: int, *, std: float, grid: int, gen: torch.Generator,
                 device=None) -> torch.Tensor:
    """A sampling grid (n, h, w, 2) for F.grid_sample: identity plus a smooth random displacement."""
    coarse = torch.randn(n, 2, grid, grid, generator=gen).to(device) * std  # pixels, (dx, dy)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # (n, 2, h, w) pixels
    ys = torch.arange(h, dtype=torch.float32, device=device)
    xs = torch.arange(w, dtype=torch.float32, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    px = gx + field[:, 0]  # (n, h, w): where each output pixel reads from, in input pixels
    py = gy + field[:, 1]
    # align_corners=False: pixel centre i sits at normalized (2 i + 1) / size - 1
    return torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)


def warp(x: torch.Tensor, y: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample image (B, C, H, W) bilinearly and mask (B, H, W) by nearest neighbour on one grid."""
    xw = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    yw = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=False)
    return xw, yw[:, 0].round().long()


@dataclass
class Augment:
    """Flips, 90-degree rotations and elastic deformations (see the module docstring)."""

    flip: bool = True
    rotate: bool = True
    elastic: bool = True
    elastic_std: float = 4.0   # pixels, std of the coarse-grid displacements
    elastic_grid: int = 3      # the coarse lattice is grid x grid (3 in the U-Net paper)
    p_elastic: float = 0.5

    def __post_init__(self) -> None:
        if not self.elastic_std >= 0:
            raise ConfigError(f"elastic_std must be >= 0 pixels; got {self.elastic_std!r}.")
        if not isinstance(self.elastic_grid, int) or self.elastic_grid < 2:
            raise ConfigError(f"elastic_grid must be an integer >= 2; got {self.elastic_grid!r}.")
        if not 0 <= self.p_elastic <= 1:
            raise ConfigError(f"p_elastic must be in [0, 1]; got {self.p_elastic!r}.")

    @property
    def active(self) -> bool:
        return self.flip or self.rotate or (self.elastic and self.p_elastic > 0 and self.elastic_std > 0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) float, y (B, H, W) int64 -> the same shapes, transformed alike."""
        b, _, h, w = x.shape
        if self.flip or self.rotate:
            flips = torch.randint(0, 2, (b, 2), generator=gen)
            turns = torch.randint(0, 4 if h == w else 2, (b,), generator=gen) * (1 if h == w else 2)
            xs, ys = [], []
            for i in range(b):
                xi, yi = x[i], y[i]  # (C, H, W), (H, W)
                if self.flip and flips[i, 0]:
                    xi, yi = xi.flip(-1), yi.flip(-1)
                if self.flip and flips[i, 1]:
                    xi, yi = xi.flip(-2), yi.flip(-2)
                if self.rotate and turns[i]:
                    xi, yi = torch.rot90(xi, int(turns[i]), dims=(-2, -1)), torch.rot90(yi, int(turns[i]), dims=(-2, -1))
                xs.append(xi)
                ys.append(yi)
            x, y = torch.stack(xs), torch.stack(ys)
        if self.elastic and self.p_elastic > 0 and self.elastic_std > 0:
            chosen = (torch.rand(b, generator=gen) < self.p_elastic).nonzero().flatten()
            if len(chosen):
                grid = elastic_grid(len(chosen), h, w, std=self.elastic_std, grid=self.elastic_grid, gen=gen,
                                    device=x.device)
                xw, yw = warp(x[chosen], y[chosen], grid)
                x, y = x.clone(), y.clone()
                x[chosen], y[chosen] = xw, yw
        return x.contiguous(), y.contiguous()
