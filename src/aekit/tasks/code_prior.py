"""A prior over the integer codes of a discrete autoencoder, fitted on its training indices.

A VQ-VAE or FSQ model has no prior of its own: van den Oord et al. 2017 fit one (a PixelCNN over
the grid of indices) after training the autoencoder, and sample by drawing indices from it and
decoding their codebook entries. Here the prior is a categorical per code position, the maximum-
likelihood estimate p_j(c) = (count_j(c) + smoothing) / (N + K * smoothing) from the training
indices (N, P) (P positions; a flat code has one). model.sample uses it:

    prior = fit_code_prior(model, x_train)      # also sets model.code_prior
    images = model.sample(16)

`AutoregressiveCodePrior` (kind='autoregressive') models the positions in order instead,
p(c) = prod_j p(c_j | c_<j), with a small GRU over the positions (an embedding of the previous
code plus a learned position embedding in, logits over the K codes out), fitted by maximum
likelihood with Adam from a fixed seed; it captures dependencies between positions that the
per-position categorical cannot (van den Oord et al. 2017 use a PixelCNN for the same role;
a GRU over the raster order is the small causal model here). A flat code has one position, where
it is a learned categorical.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, check_choice
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


def check_indices(indices, num_codes: int) -> torch.Tensor:
    """indices (N,) or (N, *positions) integers in [0, K) -> (N, P) int64."""
    idx = torch.as_tensor(indices)
    if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or idx.dim() < 1 or idx.numel() == 0:
        raise ConfigError(f"indices must be a non-empty (N,) or (N, P) integer tensor; got {tuple(idx.shape)} "
                          f"of {idx.dtype}.")
    if int(idx.min()) < 0 or int(idx.max()) >= num_codes:
        raise ConfigError(f"indices must lie in [0, {num_codes}); got [{int(idx.min())}, {int(idx.max())}].")
    return idx.reshape(idx.shape[0], -1).long()


class AutoregressiveCodePrior(nn.Module):
    """p(c) = prod_j p(c_j | c_<j) over the P positions of a code, a GRU over positions; fit(indices) then sample(n).

    hidden: GRU width; epochs, lr, batch_size: the maximum-likelihood fit (Adam); seed: the weights' init and
    the fit's shuffling, so a fit is reproducible."""

    def __init__(self, num_codes: int, *, hidden: int = 64, epochs: int = 30, lr: float = 3e-3,
                 batch_size: int = 256, seed: int = 0) -> None:
        super().__init__()
        for key, val in (("num_codes", num_codes), ("hidden", hidden), ("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ConfigError(f"{key} must be a positive integer; got {val!r}.")
        if not float(lr) > 0:
            raise ConfigError(f"lr must be > 0; got {lr!r}.")
        self.num_codes, self.hidden, self.epochs, self.lr = num_codes, hidden, epochs, float(lr)
        self.batch_size, self.seed = batch_size, int(seed)
        self.shape: tuple[int, ...] | None = None  # the positions' shape after fit (() for a flat code)

    def _make(self, positions: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.embed = nn.Embedding(self.num_codes + 1, self.hidden)  # index K: the start token
            self.position = nn.Parameter(0.01 * torch.randn(positions, self.hidden))  # (P, H)
            self.gru = nn.GRU(self.hidden, self.hidden, batch_first=True)
            self.head = nn.Linear(self.hidden, self.num_codes)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (n, P) -> (n, P, K): position j's logits from the codes before it."""
        start = torch.full_like(idx[:, :1], self.num_codes)
        prev = torch.cat([start, idx[:, :-1]], dim=1)  # (n, P) shifted right: causal
        h, _ = self.gru(self.embed(prev) + self.position)  # (n, P, H)
        return self.head(h)

    def fit(self, indices: torch.Tensor) -> "AutoregressiveCodePrior":
        """indices: (N,) or (N, *positions) integers in [0, K)."""
        raw = torch.as_tensor(indices)
        idx = check_indices(raw, self.num_codes)  # (N, P)
        self.shape = tuple(raw.shape[1:])
        self._make(idx.shape[1])
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.epochs):
                for rows in torch.randperm(idx.shape[0], generator=gen).split(self.batch_size):
                    loss = -self._log_prob(idx[rows]).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        self.eval()
        return self

    def _log_prob(self, idx: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.logits(idx), dim=-1)  # (n, P, K)
        return logp.gather(2, idx.unsqueeze(2)).squeeze(2).sum(dim=1)  # (n,)

    @torch.no_grad()
    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        """log p(indices) in nats: (n,) or (n, P) -> (n,) summed over positions."""
        if self.shape is None:
            raise ConfigError("the code prior is not fitted: call fit(indices) first.")
        return self._log_prob(check_indices(indices, self.num_codes))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws, position by position: (n,) for a flat code, else (n, *positions)."""
        if self.shape is None:
            raise ConfigError("the code prior is not fitted: call fit(indices) first.")
        positions = self.position.shape[0]
        inp = torch.full((n, 1), self.num_codes, dtype=torch.long)
        h, out = None, []
        for j in range(positions):
            y, h = self.gru(self.embed(inp) + self.position[j], h)  # (n, 1, H)
            probs = torch.softmax(self.head(y[:, 0]), dim=-1)  # (n, K)
            inp = torch.multinomial(probs, 1, generator=generator)  # (n, 1)
            out.append(inp[:, 0])
        draws = torch.stack(out, dim=1)  # (n, P)
        return draws.reshape(n, *self.shape)


CODE_PRIORS = ("categorical", "autoregressive")


def fit_code_prior(model, x: torch.Tensor, *, kind: str = "categorical", smoothing: float = 0.0,
                   batch_size: int = 1000, seed: int = 0):
    """Fit a prior on the training indices of x and attach it (model.code_prior): kind 'categorical' (per
    position, with `smoothing`) or 'autoregressive' (AutoregressiveCodePrior, fitted from `seed`)."""
    check_choice("code prior", kind, CODE_PRIORS)
    indices = code_indices(model, model.as_input(x), batch_size=batch_size)
    if kind == "categorical":
        prior = CategoricalCodePrior(model.bottleneck.num_codes, smoothing=smoothing).fit(indices)
    else:
        prior = AutoregressiveCodePrior(model.bottleneck.num_codes, seed=seed).fit(indices)
    model.code_prior = prior
    return prior
