"""Discrete and k-sparse codes: vector quantization, finite scalar quantization, (batch) top-k.

- VectorQuantizer (van den Oord et al. 2017, VQ-VAE): each code vector is replaced by its
  nearest codebook entry; the decoder's gradient passes straight through to the encoder
  (z_q = z_e + sg[e - z_e]); the commitment loss beta ||z_e - sg[e]||^2 keeps the encoder near
  its entries. The codebook learns either by the codebook loss ||sg[z_e] - e||^2 or by
  exponential moving averages of the assigned vectors (Razavi et al. 2019, appendix; with
  decay 0 one update is exactly k-means' centroid step on the batch's assignment). Entries
  unused for a while are restarted at random encoder outputs of the batch (Dhariwal et al.
  2020, Jukebox; Zeghidour et al. 2021).
- FiniteScalarQuantizer (Mentzer et al. 2023, FSQ): each of d dimensions is bounded and rounded
  to L_i levels with a straight-through gradient; the implicit codebook has prod(L_i) entries and
  there is no codebook loss.
- topk_mask / batch_topk_mask: the k largest values per row (Makhzani & Frey 2013, k-sparse
  autoencoders), or the B*k largest over the whole batch (Bussmann et al. 2024, BatchTopK).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


def straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q in the forward pass, the identity's gradient to x in the backward pass."""
    return x + (q - x).detach()


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """exp(entropy) of the empirical code distribution: 1 when one code is used, num_codes when all equally."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes).to(torch.float64)
    p = counts / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())


class VectorQuantizer(nn.Module):
    """Nearest-entry quantization of (B, D) vectors against a (K, D) codebook."""

    def __init__(self, *, num_codes: int, dim: int, beta: float = 0.25, ema_decay: float | None = 0.99,
                 eps: float = 1e-5, restart_after: int = 0) -> None:
        super().__init__()
        if num_codes < 2:
            raise ConfigError(f"vq num_codes must be >= 2; got {num_codes!r}.")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"vq ema_decay must be in [0, 1) or None; got {ema_decay!r}.")
        if not beta >= 0:
            raise ConfigError(f"vq beta (the commitment weight) must be >= 0; got {beta!r}.")
        self.num_codes, self.dim, self.beta, self.ema_decay, self.eps = num_codes, dim, float(beta), ema_decay, eps
        self.restart_after = int(restart_after)  # steps without use before an entry restarts; 0: never
        init = torch.randn(num_codes, dim) / math.sqrt(dim)
        if ema_decay is None:
            self.codebook = nn.Parameter(init)  # learned by the codebook loss
        else:
            self.register_buffer("codebook", init)  # learned by moving averages
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())
        self.register_buffer("idle_steps", torch.zeros(num_codes, dtype=torch.int64))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) index of the nearest codebook entry (squared Euclidean distance)."""
        d = z.pow(2).sum(1, keepdim=True) - 2.0 * z @ self.codebook.T + self.codebook.pow(2).sum(1).unsqueeze(0)
        return d.argmin(dim=1)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        """Moving averages of counts and sums of the vectors assigned to each entry; entry = sum / count
        (with Laplace smoothing of the counts so an unused entry never divides by zero)."""
        onehot = torch.nn.functional.one_hot(idx, self.num_codes).to(z.dtype)  # (B, K)
        g = self.ema_decay
        self.ema_count.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.ema_sum.mul_(g).add_(onehot.T @ z, alpha=1 - g)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
        used = onehot.sum(0) > 0
        new = self.ema_sum / smoothed.unsqueeze(1)
        # with decay 0 an unused entry would collapse to 0; it keeps its place instead
        self.codebook.copy_(torch.where(used.unsqueeze(1) | (g > 0), new, self.codebook))

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, idx: torch.Tensor) -> int:
        used = torch.bincount(idx, minlength=self.num_codes) > 0
        self.idle_steps.add_(1).masked_fill_(used, 0)
        if self.restart_after <= 0:
            return 0
        dead = (self.idle_steps >= self.restart_after).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        pick = torch.randint(0, z.shape[0], (dead.numel(),), device=z.device)
        self.codebook[dead] = z[pick].to(self.codebook.dtype)
        if self.ema_decay is not None:
            self.ema_sum[dead] = z[pick].to(self.ema_sum.dtype)
            self.ema_count[dead] = 1.0
        self.idle_steps[dead] = 0
        return int(dead.numel())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """z (B, D) -> (z_q straight-through (B, D), indices (B,), losses {name: (B,)})."""
        idx = self.nearest(z.detach())
        e = self.codebook[idx]  # (B, D)
        losses = {"commitment": self.beta * (z - e.detach()).pow(2).sum(1)}
        if self.ema_decay is None:
            losses["codebook"] = (z.detach() - e).pow(2).sum(1)
        if self.training:
            if self.ema_decay is not None:
                self.ema_update(z.detach(), idx)
            self.restart_dead(z.detach(), idx)
        return straight_through(z, e), idx, losses


class FiniteScalarQuantizer(nn.Module):
    """Bound each dimension to (-(L-1)/2, (L-1)/2), round, rescale to [-1, 1] (Mentzer et al. 2023)."""

    def __init__(self, *, levels: list[int]) -> None:
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ConfigError(f"fsq levels must be integers >= 2, one per code dimension; got {levels!r}.")
        self.levels = levels
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("_levels", lv, persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), dim=0)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Into the open interval of L levels; even L gets a half-step offset so rounding gives L values."""
        eps = 1e-3
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.tan(offset / half_l)  # as in the paper's reference code
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, d) -> (codes in [-1, 1] with straight-through rounding (B, d), indices (B,))."""
        if z.shape[-1] != len(self.levels):
            raise ConfigError(f"fsq has {len(self.levels)} levels, one per dimension; got codes of width {z.shape[-1]}.")
        b = self.bound(z)
        q = straight_through(b, torch.round(b))  # integers in [-(L//2), ...]
        half_width = torch.div(self._levels, 2, rounding_mode="floor")
        return q / half_width, self.indices(q)

    def indices(self, q: torch.Tensor) -> torch.Tensor:
        """Rounded codes (B, d) -> one integer each, mixed radix with the levels as bases."""
        half_width = torch.div(self._levels, 2, rounding_mode="floor")
        digits = (q.detach() + half_width).round().to(torch.int64)  # 0 .. L-1 per dimension
        return (digits * self._basis).sum(-1)

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B,) -> the codes in [-1, 1], (B, d): the inverse of indices()."""
        digits = (indices.unsqueeze(-1) // self._basis) % self._levels.to(torch.int64)
        half_width = torch.div(self._levels, 2, rounding_mode="floor")
        return (digits.to(torch.float32) - half_width) / half_width


def topk_mask(a: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean (B, D): True at the k largest values of each row."""
    idx = a.topk(k, dim=1).indices
    return torch.zeros_like(a, dtype=torch.bool).scatter_(1, idx, True)


def batch_topk_mask(a: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean (B, D): True at the B * k largest values of the whole batch (k per row on average)."""
    flat = a.reshape(-1)
    idx = flat.topk(min(flat.numel(), a.shape[0] * k)).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(0, idx, True).reshape(a.shape)
