"""Bottlenecks: the map from encoder features h to the code z.

- deterministic: z = act(W h + b), act in none | sigmoid | relu | tanh (sigmoid codes are what
  the KL sparsity penalty and the closed-form contractive penalty need).
- gaussian: the VAE's amortised posterior q(z | x) = N(mu(h), diag(exp(logvar(h))))
  (Kingma & Welling 2014). In training z = mu + sigma * eps (the reparameterisation trick); in
  eval z = mu, so reconstructions are deterministic. `sample_prior(n)` draws from N(0, I).

`Bottleneck(h) -> Code(z, posterior, aux_losses)`; `Code.mean` is the deterministic part of the
code (z itself, or mu), used by representation metrics and the contractive penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..registry import BOTTLENECKS

CODE_ACTIVATIONS = {"none": nn.Identity, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}


class DiagonalGaussian:
    """q(z | x) = N(mu, diag(exp(logvar))); mu, logvar: (B, D)."""

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        self.mu, self.logvar = mu, logvar

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(self.mu.shape, generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + self.std * eps  # reparameterised: gradients flow to mu and logvar

    def rsample(self, k: int) -> torch.Tensor:
        """k samples per input: (K, B, D)."""
        eps = torch.randn((k, *self.mu.shape), dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mu

    def kl_per_unit(self) -> torch.Tensor:
        """KL(q || N(0, I)) per latent unit, closed form: 0.5 (mu^2 + s^2 - 1 - log s^2); (B, D)."""
        return 0.5 * (self.mu.pow(2) + torch.exp(self.logvar) - 1.0 - self.logvar)

    def kl(self) -> torch.Tensor:
        return self.kl_per_unit().sum(dim=1)  # (B,)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z | x) summed over units; z: (..., B, D) -> (..., B)."""
        return (-0.5 * ((z - self.mu) ** 2 * torch.exp(-self.logvar) + self.logvar + math.log(2 * math.pi))).sum(-1)


@dataclass
class Code:
    """What a bottleneck returns. z: (B, D) the code used by the decoder."""

    z: torch.Tensor
    mean: torch.Tensor  # (B, D) deterministic code: z, or mu for a Gaussian posterior
    posterior: DiagonalGaussian | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B,)


@BOTTLENECKS.register("deterministic")
class DeterministicBottleneck(nn.Module):
    """z = act(W h + b), act in none | sigmoid | relu | tanh; noise_bits trains for quantization (uniform noise).
    Rumelhart, Hinton & Williams 1986; Balle et al. 2017 for the quantization noise."""

    provides = frozenset({"code"})
    may_provide = {"bounded_code": "activation='sigmoid'", "sigmoid_code": "activation='sigmoid'",
                   "nonneg_code": "activation='relu' or 'sigmoid'", "linear_code": "activation='none'",
                   "noisy_code": "noise_bits"}
    examples = ({}, {"activation": "sigmoid"}, {"activation": "relu"}, {"activation": "tanh", "noise_bits": 4})

    @classmethod
    def provides_for(cls, *, activation: str = "none", noise_bits: int | None = None) -> frozenset[str]:
        caps = {"code"}
        if activation == "sigmoid":
            caps |= {"bounded_code", "sigmoid_code", "nonneg_code"}
        elif activation == "relu":
            caps |= {"nonneg_code"}
        elif activation == "none":
            caps |= {"linear_code"}
        if noise_bits:
            caps |= {"noisy_code"}
        return frozenset(caps)

    def __init__(self, *, in_features: int, latent_dim: int, activation: str = "none",
                 noise_bits: int | None = None) -> None:
        super().__init__()
        check_choice("bottleneck 'deterministic' activation (code_activation)", activation, CODE_ACTIVATIONS)
        if noise_bits is not None and (isinstance(noise_bits, bool) or not isinstance(noise_bits, int)
                                       or not 1 <= noise_bits <= 16):
            raise ConfigError("bottleneck 'deterministic' noise_bits (quantization_noise) must be a number of bits "
                              f"from 1 to 16 (or None); got {noise_bits!r}.")
        self.activation_name = activation
        self.linear = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.activation = CODE_ACTIVATIONS[activation]()
        self.latent_dim = latent_dim
        self.noise_bits = noise_bits  # training for quantization: see quantization_noise below

    def forward(self, h: torch.Tensor) -> Code:
        z = self.activation(self.linear(h))
        if self.training and self.noise_bits:
            return Code(z=quantization_noise(z, self.noise_bits), mean=z)
        return Code(z=z, mean=z)


def quantization_noise(z: torch.Tensor, bits: int) -> torch.Tensor:
    """z + U(-step/2, step/2) per dimension, step = (max - min of the batch's codes) / (2^bits - 1).

    The differentiable stand-in for uniform quantization with 2^bits levels over the code's range
    (Balle et al. 2017, "End-to-end optimized image compression"): the decoder learns to tolerate
    the rounding error that aekit.tasks.compression's quantizer (range fitted on the training codes)
    will add. The range is the batch's, detached; training mode only. z: (B, D) -> (B, D).
    """
    zd = z.detach()
    step = (zd.amax(dim=0) - zd.amin(dim=0)) / (2 ** int(bits) - 1)  # (D,)
    return z + (torch.rand_like(z) - 0.5) * step


@BOTTLENECKS.register("gaussian")
class GaussianBottleneck(nn.Module):
    """Amortised Gaussian posterior q(z | x) = N(mu(h), diag(exp(logvar(h)))), reparameterised; prior N(0, I).
    Kingma & Welling 2014, Auto-encoding variational Bayes."""

    provides = frozenset({"code", "posterior"})
    activation_name = "none"

    def __init__(self, *, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.logvar = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.latent_dim = latent_dim

    def forward(self, h: torch.Tensor) -> Code:
        posterior = DiagonalGaussian(self.mu(h), self.logvar(h))
        # a sample while training (reparameterisation), the mean in eval: deterministic outputs
        z = posterior.sample() if self.training else posterior.mode()
        return Code(z=z, mean=posterior.mu, posterior=posterior)

    def sample_prior(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.mu.weight.device
        return torch.randn((n, self.latent_dim), generator=generator, device=device, dtype=self.mu.weight.dtype)  # (n, D) ~ N(0, I)



@BOTTLENECKS.register("topk")
class TopKBottleneck(nn.Module):
    """k-sparse code: a = W h + b, keep the k largest pre-activations of each row, zero the rest (gradients reach
    the kept units only).
    Makhzani & Frey 2013, k-sparse autoencoders."""

    provides = frozenset({"code", "sparse_code"})

    def __init__(self, *, in_features: int, latent_dim: int, k: int) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= latent_dim:
            raise ConfigError(f"bottleneck 'topk' k must be an integer from 1 to latent_dim={latent_dim}; got {k!r}.")
        self.linear = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.latent_dim, self.k = latent_dim, k

    def forward(self, h: torch.Tensor) -> Code:
        a = self.linear(h)  # (B, D) pre-activations
        keep = torch.zeros_like(a).scatter_(1, a.topk(self.k, dim=1).indices, 1.0)  # (B, D): 1 at each row's top k
        z = a * keep
        return Code(z=z, mean=z)
