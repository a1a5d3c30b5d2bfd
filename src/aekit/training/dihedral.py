"""The symmetries of the square (the dihedral group D4) as training augmentation and as a self-ensemble.

    x2 = dihedral(x, k)            # k in 0..7: rot90 k % 4 times, then (k >= 4) a left-right flip
    x == undo_dihedral(x2, k)      # the inverse
    batch = RandomDihedral()(batch, generator)   # one random symmetry per image (a Trainer batch_transform)
    y = self_ensemble(f, x)        # mean over the 8 symmetries of undo(f(dihedral(x, k)), k)

A denoiser of natural images should not care how its input is turned: trained on all eight
orientations (TrainConfig augment='dihedral'; Zhang et al. 2017, DnCNN, train on rotated and
flipped patches) it sees eight times the distinct patches, and averaging its eight outputs at test
time (Timofte et al. 2016, "Seven ways to improve example-based single image super resolution":
the geometric self-ensemble) averages out errors that are not symmetric. Images that are not
square use the four symmetries that keep their shape (identity, the two flips, the half turn).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError

SQUARE = tuple(range(8))  # every symmetry of a square image
RECTANGLE = (0, 2, 4, 6)  # identity, half turn, left-right flip, up-down flip (= half turn then left-right flip)


def symmetries(x: torch.Tensor) -> tuple[int, ...]:
    """The symmetries that keep the shape of images x (..., H, W): all 8 when H == W, else 4."""
    return SQUARE if x.shape[-1] == x.shape[-2] else RECTANGLE


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """x (..., H, W) turned k % 4 quarter turns (counter-clockwise), then flipped left-right when k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of dihedral(., k)."""
    x = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(-2, -1)) if k % 4 else x


def _images(x, where: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{where} needs image batches (N, C, H, W); got {shape}. "
                          "Use it only on image data.")
    return x


class RandomDihedral:
    """A Trainer batch_transform: each image of the batch (N, C, H, W) gets one symmetry drawn uniformly from
    symmetries(x) with the trainer's transform generator; labels (a tuple's other members, a dict's other
    keys) pass unchanged."""

    def __call__(self, batch, generator: torch.Generator):
        if isinstance(batch, tuple):
            return (self(batch[0], generator), *batch[1:])
        if isinstance(batch, dict):
            return {**batch, "x": self(batch["x"], generator)}
        x = _images(batch, "augment='dihedral'")
        ks = symmetries(x)
        draw = torch.randint(len(ks), (x.shape[0],), generator=generator)  # (N,) on the CPU, like the generator
        out = x.clone()
        for j in range(1, len(ks)):  # index 0 is the identity
            rows = (draw == j).nonzero().flatten().to(x.device)
            if rows.numel():
                out[rows] = dihedral(x[rows], ks[j])
        return out


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean over the symmetries of images x (N, C, H, W) of undo_dihedral(fn(dihedral(x, k)), k); fn maps images to
    images of the same shape (a denoiser's reconstruction)."""
    x = _images(x, "the self-ensemble")
    ks = symmetries(x)
    total = None
    for k in ks:
        y = undo_dihedral(fn(dihedral(x, k)), k)
        total = y if total is None else total + y
    return total / len(ks)
