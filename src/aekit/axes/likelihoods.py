"""Likelihoods: how a decoder's output scores the clean input.

`nll(x, params) -> Tensor[B]` is the negative log-likelihood in nats, summed over every
non-batch dimension (the reduction rule: sum over dimensions, mean over the batch happens in
the model). `mean(params)` turns decoder parameters into a reconstruction in data units.

- bernoulli: the decoder emits logits; nll = BCE-with-logits summed over pixels; mean = sigmoid.
  Targets may be binary or grey levels in [0, 1] (the "continuous Bernoulli" normaliser is not
  applied, as in Kingma & Welling 2014 and most MNIST VAE results).
- gaussian: the decoder emits the mean mu; with a fixed sigma
      nll = 0.5 * sum((x - mu)^2) / sigma^2 + D * log(sigma) + 0.5 * D * log(2 pi),
  so with sigma = 1 it is half the summed squared error plus the constant
  0.5 * D * log(2 pi) (= 720.45 nats for 784 pixels). The constant does not change gradients but
  keeps the number an honest NLL so ELBOs compare across likelihoods. With learn_sigma=True a
  single log-sigma is learned jointly (Rybkin et al. 2021, "sigma-VAE").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import LIKELIHOODS

LOG_2PI = math.log(2.0 * math.pi)


def _sum_nonbatch(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)  # (B, ...) -> (B,)


class Likelihood(nn.Module):
    """Base class: nll(x, params) -> (B,), mean(params) -> x_hat."""

    name = "base"

    def nll(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def check_target(self, x: torch.Tensor, *, name: str = "data") -> None:
        """Raise ConfigError when x cannot be scored by this likelihood."""


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Pixels as independent Bernoulli variables; decoder outputs logits, the mean is in (0, 1).
    Kingma & Welling 2014, Auto-encoding variational Bayes."""

    name = "bernoulli"
    provides = frozenset({"bounded_mean"})

    def __init__(self) -> None:
        super().__init__()

    def nll(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        # params are logits (B, ...); BCE-with-logits is the stable -log p(x | logits)
        return _sum_nonbatch(F.binary_cross_entropy_with_logits(params, x, reduction="none"))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)  # logits -> probabilities in (0, 1)

    def check_target(self, x: torch.Tensor, *, name: str = "data") -> None:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ConfigError(
                f"likelihood='bernoulli' needs {name} in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]. "
                "Use likelihood='gaussian' for unbounded data."
            )


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    """Independent Gaussians with a fixed or learned shared sigma; decoder outputs the mean.
    Rybkin et al. 2021, Simple and effective VAE training with calibrated decoders (learn_sigma)."""

    name = "gaussian"
    provides = frozenset({"gaussian_mean"})
    may_provide = {"fixed_sigma": "learn_sigma=False"}
    examples = ({}, {"sigma": 0.5, "learn_sigma": True})

    @classmethod
    def provides_for(cls, *, sigma: float = 1.0, learn_sigma: bool = False) -> frozenset[str]:
        return frozenset({"gaussian_mean"} | (set() if learn_sigma else {"fixed_sigma"}))

    def __init__(self, *, sigma: float = 1.0, learn_sigma: bool = False) -> None:
        super().__init__()
        if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
            raise ConfigError(f"likelihood 'gaussian' sigma must be a positive finite number; got {sigma!r}.")
        self.learn_sigma = bool(learn_sigma)
        log_sigma = torch.tensor(math.log(float(sigma)))
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def nll(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        d = x[0].numel()
        log_sigma = self.log_sigma
        sq = _sum_nonbatch((x - params).pow(2))  # (B,) summed squared error
        return 0.5 * sq * torch.exp(-2.0 * log_sigma) + d * log_sigma + 0.5 * d * LOG_2PI

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    @property
    def sigma(self) -> float:
        return float(torch.exp(self.log_sigma))

