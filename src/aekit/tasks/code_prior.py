"""A prior over the integer codes of a discrete autoencoder, fitted on its training indices.

A VQ-VAE or FSQ model has no prior of its own: van den Oord et al. 2017 fit one (a PixelCNN over
the grid of indices) after training the autoencoder, and sample by drawing indices from it and
decoding their codebook entries. Here the prior is a categorical per code position, the maximum-
likelihood estimate p_j(c) = (count_j(c) + smoothing) / (N + K * smoothing) from the training
indices (N, P) (P positions; a flat code has one). model.sample uses it:

    prior = fit_code_prior(model, x_train)      # also sets model.code_prior
    images = model.sample(16)
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..metrics.codes import code_indices


class CategoricalCodePrior:
    """Independent categorical distributions over K codes, one per position; fit(indices) then sample(n)."""

    def __init__(self, num_codes: int, *, smoothing: float = 0.0) -> None:
        if isinstance(num_codes, bool) or not isinstance(num_codes, int) or num_codes < 1:
            raise ConfigError(f"num_codes must be a positive integer; got {num_codes!r}.")
        if not float(smoothing) >= 0:
            raise ConfigError(f"smoothing must be >= 0; got {smoothing!r}.")
        self.num_codes, self.smoothing = num_codes, float(smoothing)
        self.probs: torch.Tensor | None = None  # (P, K) after fit
        self.flat = True  # fitted on (N,) indices: sample returns (n,)

    def fit(self, indices: torch.Tensor) -> "CategoricalCodePrior":
        """indices: (N,) or (N, P) integers in [0, K)."""
        idx = torch.as_tensor(indices)
        if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or idx.dim() not in (1, 2) \
                or idx.numel() == 0:
            raise ConfigError(f"indices must be a non-empty (N,) or (N, P) integer tensor; got {tuple(idx.shape)} "
                              f"of {idx.dtype}.")
        if int(idx.min()) < 0 or int(idx.max()) >= self.num_codes:
            raise ConfigError(f"indices must lie in [0, {self.num_codes}); got [{int(idx.min())}, {int(idx.max())}].")
        self.flat = idx.dim() == 1
        idx = idx.reshape(idx.shape[0], -1).long()  # (N, P)
        counts = torch.stack([torch.bincount(idx[:, j], minlength=self.num_codes) for j in range(idx.shape[1])])
        counts = counts.double() + self.smoothing  # (P, K)
        self.probs = counts / counts.sum(dim=1, keepdim=True)
        return self

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws: (n,) for a flat code, else (n, P)."""
        if self.probs is None:
            raise ConfigError("the code prior is not fitted: call fit(indices) first.")
        draws = torch.multinomial(self.probs, n, replacement=True, generator=generator).T  # (n, P)
        return draws[:, 0] if self.flat else draws

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        """log p(indices): (n,) or (n, P) -> (n,) summed over positions."""
        idx = torch.as_tensor(indices).reshape(len(indices), -1).long()  # (n, P)
        return torch.log(self.probs.gather(1, idx.T)).T.sum(dim=1)


def fit_code_prior(model, x: torch.Tensor, *, smoothing: float = 0.0, batch_size: int = 1000) -> CategoricalCodePrior:
    """Fit the per-position categorical prior on the training indices of x and attach it (model.code_prior)."""
    prior = CategoricalCodePrior(model.bottleneck.num_codes, smoothing=smoothing).fit(
        code_indices(model, model.as_input(x), batch_size=batch_size))
    model.code_prior = prior
    return prior
