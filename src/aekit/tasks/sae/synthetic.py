"""Synthetic superposition data with a known dictionary, and how much of it a learned dictionary recovers.

n sparse features live in d < n dimensions (Elhage et al. 2022, "Toy Models of Superposition"):
each feature has a random unit-norm direction (a column of the true dictionary D, (d, n)), is
active in a sample with probability p, with a magnitude drawn from uniform(0, 1) or
exponential(1), and a sample is x = D c. Sharkey et al. 2022 ("Taking features out of
superposition with sparse autoencoders") score a learned dictionary by the mean max cosine
similarity (MMCS) between each true feature and its closest learned decoder column; the issue's
benchmark also counts the share of true features recovered with cosine above 0.9.

Conventions: a dictionary is a (d, m) matrix whose columns are feature directions (the weight
of nn.Linear(m, d), as an SAE's decoder).
"""

from __future__ import annotations

import torch

from ...errors import ConfigError, ShapeError
from ...memory_budget import check_budget

MAGNITUDES = ("uniform", "exponential")


def superposition_data(n_samples: int, *, n_features: int, dim: int, p: float, magnitude: str = "uniform",
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (n_samples, dim), dictionary (dim, n_features) unit-norm columns, codes (n_samples, n_features)); x = codes @ D.T."""
    for name, value in (("n_samples", n_samples), ("n_features", n_features), ("dim", dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
    if not 0 < p <= 1:
        raise ConfigError(f"p (each feature's probability of being active) must be in (0, 1]; got {p!r}.")
    if magnitude not in MAGNITUDES:
        raise ConfigError(f"magnitude must be one of {', '.join(map(repr, MAGNITUDES))}; got {magnitude!r}.")
    check_budget(4 * n_samples * (n_features + dim) * 2, what=f"{n_samples} synthetic samples of {n_features} features",
                 hint="lower n_samples", error=ConfigError)
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(dim, n_features, generator=g)
    dictionary = dictionary / dictionary.norm(dim=0, keepdim=True)  # (d, n) unit columns
    active = torch.rand(n_samples, n_features, generator=g) < p  # (N, n)
    if magnitude == "uniform":
        size = torch.rand(n_samples, n_features, generator=g)
    else:
        size = torch.empty(n_samples, n_features).exponential_(1.0, generator=g)
    codes = size * active  # (N, n)
    return codes @ dictionary.T, dictionary, codes


def max_cosines(learned: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """(n,) for each true column (d, n) the largest cosine with any learned column (d, m)."""
    if learned.dim() != 2 or true.dim() != 2 or learned.shape[0] != true.shape[0]:
        raise ShapeError(f"learned and true dictionaries must be (d, m) and (d, n) with the same d; "
                         f"got {tuple(learned.shape)} and {tuple(true.shape)}.")
    a = learned.detach().double()
    b = true.detach().double()
    a = a / a.norm(dim=0, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return (b.T @ a).max(dim=1).values  # (n, m) -> (n,)


def feature_recovery(learned: torch.Tensor, true: torch.Tensor, *, threshold: float = 0.9) -> dict:
    """{'fraction_recovered': share of true features whose best learned column has cosine > threshold,
    'mean_max_cosine': mean over true features of that best cosine}."""
    best = max_cosines(learned, true)
    return {"fraction_recovered": float((best > threshold).double().mean()), "mean_max_cosine": float(best.mean())}


__all__ = ["MAGNITUDES", "feature_recovery", "max_cosines", "superposition_data"]
