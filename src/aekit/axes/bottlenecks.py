"""Bottlenecks: the map from encoder features h to the code z.

- deterministic: z = act(W h + b), act in none | sigmoid | relu | tanh (sigmoid codes are what
  the KL sparsity penalty and the closed-form contractive penalty need).
- gaussian: the VAE's amortised posterior q(z | x) = N(mu(h), diag(exp(logvar(h))))
  (Kingma & Welling 2014). In training z = mu + sigma * eps (the reparameterisation trick); in
  eval z = mu, so reconstructions are deterministic. `sample_prior(n)` draws from N(0, I).
  With iwae_k = K the model trains on the importance-weighted bound with K samples instead of
  the ELBO (Burda et al. 2016; model.py), so the prior term is part of the bound and no KL
  regularizer joins it.
- topk / batch_topk: k-sparse codes (Makhzani & Frey 2013; Bussmann et al. 2024).
- vq / fsq: discrete codes (van den Oord et al. 2017; Mentzer et al. 2023); `Code.indices`
  carries the integer code of each input and `embed(indices)` turns indices back into codes,
  which is how model.sample decodes draws of a code prior fitted on the training indices
  (aekit.tasks.code_prior).

`Bottleneck(h) -> Code(z, mean, posterior, aux_losses, indices)`; `Code.mean` is the deterministic
part of the code (z itself, or mu), used by representation metrics and the contractive penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..registry import BOTTLENECKS
from .jumprelu import jumprelu, step
from .quantizers import FiniteScalarQuantizer, VectorQuantizer, batch_topk_mask

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
    indices: torch.Tensor | None = None  # (B,) int64 codebook index of each input (discrete codes)


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
    may_provide = {"importance_weighted": "iwae_k", "elbo_path": "iwae_k=None"}
    activation_name = "none"
    examples = ({}, {"iwae_k": 2})

    @classmethod
    def provides_for(cls, *, iwae_k: int | None = None) -> frozenset[str]:
        # 'elbo_path': the prior term is a regularizer's (kl_prior, tc, ...); the IWAE bound holds it itself
        return frozenset({"code", "posterior"} | ({"importance_weighted"} if iwae_k else {"elbo_path"}))

    def __init__(self, *, in_features: int, latent_dim: int, iwae_k: int | None = None) -> None:
        super().__init__()
        if iwae_k is not None and (isinstance(iwae_k, bool) or not isinstance(iwae_k, int) or iwae_k < 1):
            raise ConfigError(f"bottleneck 'gaussian' iwae_k (importance samples) must be an integer >= 1 or None; "
                              f"got {iwae_k!r}.")
        self.mu = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.logvar = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.latent_dim = latent_dim
        self.iwae_k = iwae_k  # None: the ELBO path; K: the model trains on the K-sample IWAE bound

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

    def activate(self, a: torch.Tensor) -> torch.Tensor:
        """Pre-activations a (B, D) -> the code (B, D): each row's k largest kept, the rest zeroed."""
        keep = torch.zeros_like(a).scatter_(1, a.topk(self.k, dim=1).indices, 1.0)  # (B, D): 1 at each row's top k
        return a * keep

    def forward(self, h: torch.Tensor) -> Code:
        z = self.activate(self.linear(h))  # (B, D) from the pre-activations
        return Code(z=z, mean=z)


@BOTTLENECKS.register("batch_topk")
class BatchTopKBottleneck(nn.Module):
    """Batch k-sparse code: a = ReLU(W h + b), keep the B*k largest of the whole batch in training (k per row on
    average); in eval keep a > theta, theta the running mean of the smallest kept activation of the training
    batches, so one input's code does not depend on the others (before any training step: each row's top k).
    Bussmann, Leask & Nanda 2024, BatchTopK sparse autoencoders."""

    provides = frozenset({"code", "sparse_code", "nonneg_code"})

    def __init__(self, *, in_features: int, latent_dim: int, k: int, threshold_decay: float = 0.99) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= latent_dim:
            raise ConfigError(f"bottleneck 'batch_topk' k must be an integer from 1 to latent_dim={latent_dim}; "
                              f"got {k!r}.")
        if not 0.0 <= float(threshold_decay) < 1.0:
            raise ConfigError(f"bottleneck 'batch_topk' threshold_decay must be in [0, 1); got {threshold_decay!r}.")
        self.linear = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.latent_dim, self.k, self.threshold_decay = latent_dim, k, float(threshold_decay)
        self.register_buffer("threshold", torch.zeros(()))  # theta, estimated in training
        self.register_buffer("threshold_steps", torch.zeros((), dtype=torch.int64))  # batches seen

    def forward(self, h: torch.Tensor) -> Code:
        z = self.activate(self.linear(h))
        return Code(z=z, mean=z)

    def activate(self, a: torch.Tensor) -> torch.Tensor:
        """Pre-activations (B, D) -> the code (B, D) (in training: the batch's B*k largest; updates theta)."""
        a = torch.relu(a)  # (B, D) non-negative pre-activations
        if self.training:
            keep = batch_topk_mask(a, self.k) & (a > 0)  # (B, D): the B*k largest of the batch (zeros dropped)
            if keep.any():
                self._update_threshold(a.detach()[keep].min())
        elif int(self.threshold_steps) > 0:
            keep = a > self.threshold  # batch-independent inference
        else:
            keep = torch.zeros_like(a, dtype=torch.bool).scatter_(1, a.topk(self.k, dim=1).indices, True)
        return a * keep

    @torch.no_grad()
    def _update_threshold(self, smallest_kept: torch.Tensor) -> None:
        """theta <- g theta + (1 - g) min kept activation (theta = the first batch's value at the first step)."""
        g = self.threshold_decay if int(self.threshold_steps) > 0 else 0.0
        self.threshold.mul_(g).add_(smallest_kept.to(self.threshold.dtype), alpha=1 - g)
        self.threshold_steps += 1


@BOTTLENECKS.register("jumprelu")
class JumpReLUBottleneck(nn.Module):
    """JumpReLU code: a = W h + b, z = a H(a - theta) with a learned threshold theta > 0 per unit (kept as
    log theta); theta learns through straight-through pseudo-derivatives with a rectangle kernel of width
    `bandwidth`, and `sparsity` > 0 adds sparsity * ||z||_0 (the same estimator) to each sample's loss.
    Rajamanoharan et al. 2024, Jumping ahead: improving reconstruction fidelity with JumpReLU sparse autoencoders."""

    provides = frozenset({"code", "sparse_code", "nonneg_code"})
    examples = ({}, {"sparsity": 0.01, "threshold": 0.1, "bandwidth": 0.1})

    def __init__(self, *, in_features: int, latent_dim: int, threshold: float = 0.001, bandwidth: float = 0.001,
                 sparsity: float = 0.0) -> None:
        super().__init__()
        for name, value, low in (("threshold", threshold, 0.0), ("bandwidth", bandwidth, 0.0), ("sparsity", sparsity, None)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or (low is not None and not value > low) or (low is None and value < 0):
                raise ConfigError(f"bottleneck 'jumprelu' {name} must be a {'positive' if low is not None else 'non-negative'} "
                                  f"number; got {value!r}.")
        self.linear = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.log_threshold = nn.Parameter(torch.full((latent_dim,), math.log(float(threshold))))  # (D,)
        self.latent_dim, self.bandwidth, self.sparsity = latent_dim, float(bandwidth), float(sparsity)

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()  # (D,)

    def activate(self, a: torch.Tensor) -> torch.Tensor:
        """Pre-activations a (B, D) -> a H(a - theta) (B, D)."""
        return jumprelu(a, self.threshold, bandwidth=self.bandwidth)

    def l0(self, a: torch.Tensor) -> torch.Tensor:
        """(B,) the number of units above threshold, with the straight-through gradient to theta."""
        return step(a, self.threshold, bandwidth=self.bandwidth).sum(-1)

    def forward(self, h: torch.Tensor) -> Code:
        a = self.linear(h)  # (B, D) pre-activations
        z = self.activate(a)
        aux = {"l0_penalty": self.sparsity * self.l0(a)} if self.sparsity > 0 else {}
        return Code(z=z, mean=z, aux_losses=aux)


@BOTTLENECKS.register("vq")
class VQBottleneck(nn.Module):
    """Vector-quantized code: z_e = W h + b replaced by its nearest codebook entry, straight-through gradient,
    commitment loss beta ||z_e - sg[e]||^2; codebook by EMA (ema_decay) or by its loss (ema_decay=None);
    entries unused for restart_after steps restart at encoder outputs.
    van den Oord, Vinyals & Kavukcuoglu 2017, Neural discrete representation learning."""

    provides = frozenset({"code", "discrete", "indices"})
    examples = ({"num_codes": 8}, {"num_codes": 8, "ema_decay": None, "restart_after": 2})

    def __init__(self, *, in_features: int, latent_dim: int, num_codes: int = 512, beta: float = 0.25,
                 ema_decay: float | None = 0.99, restart_after: int = 0) -> None:
        super().__init__()
        if isinstance(num_codes, bool) or not isinstance(num_codes, int):
            raise ConfigError(f"bottleneck 'vq' num_codes must be an integer >= 2; got {num_codes!r}.")
        if int(restart_after) < 0:
            raise ConfigError(f"bottleneck 'vq' restart_after must be >= 0 (0: never); got {restart_after!r}.")
        self.linear = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, D)
        self.quantizer = VectorQuantizer(num_codes=num_codes, dim=latent_dim, beta=float(beta), ema_decay=ema_decay,
                                         restart_after=int(restart_after))
        self.latent_dim = latent_dim

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def forward(self, h: torch.Tensor) -> Code:
        z_e = self.linear(h)  # (B, D)
        z_q, idx, losses = self.quantizer(z_e)  # (B, D) straight-through, (B,), {name: (B,)}
        return Code(z=z_q, mean=z_q, aux_losses=losses, indices=idx)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (n,) -> their codebook entries (n, D)."""
        return self.quantizer.codebook[indices]


@BOTTLENECKS.register("fsq")
class FSQBottleneck(nn.Module):
    """Finite scalar quantization: each of the len(levels) code dimensions bounded and rounded to its number of
    levels (straight-through); implicit codebook of prod(levels) entries, no codebook loss; latent_dim = len(levels).
    Mentzer et al. 2023, Finite scalar quantization: VQ-VAE made simple."""

    provides = frozenset({"code", "discrete", "indices"})
    examples = ({"levels": [3, 4, 5]}, {"levels": [2, 3, 3], "normalize": False})

    def __init__(self, *, in_features: int, latent_dim: int, levels: list[int] = (8, 5, 5, 5),
                 normalize: bool = True) -> None:
        super().__init__()
        levels = list(levels)
        if len(levels) != latent_dim:
            raise ConfigError(f"bottleneck 'fsq' has one level count per code dimension, so latent_dim must be "
                              f"len(levels)={len(levels)}; got latent_dim={latent_dim} (levels={levels!r}).")
        self.linear = nn.Linear(in_features, latent_dim)  # (B, H) -> (B, d)
        self.quantizer = FiniteScalarQuantizer(levels=levels)
        self.latent_dim = latent_dim
        # normalize (aekit's choice, not the paper's): standardize each dimension before bounding, by the batch's
        # statistics in training and their running averages in eval (BatchNorm without affine parameters). Without
        # it a small MLP's projection drifts into tanh's flat tails and every input takes one code (digits, 10 epochs:
        # 1 of 1,000 codes used at lr 4e-3, 1e-3 and 3e-4; with it about 230).
        self.norm = nn.BatchNorm1d(latent_dim, affine=False) if normalize else None

    def _standardize(self, z: torch.Tensor) -> torch.Tensor:
        if self.norm is None:
            return z
        batch_stats = self.training and z.shape[0] > 1  # a batch of one has no variance: the running statistics
        return torch.nn.functional.batch_norm(z, self.norm.running_mean, self.norm.running_var, training=batch_stats,
                                              momentum=self.norm.momentum, eps=self.norm.eps)

    @property
    def num_codes(self) -> int:
        return self.quantizer.codebook_size

    def forward(self, h: torch.Tensor) -> Code:
        z, idx = self.quantizer(self._standardize(self.linear(h)))  # (B, d) in [-1, 1], (B,)
        return Code(z=z, mean=z, indices=idx)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (n,) -> their codes (n, d) in [-1, 1]."""
        return self.quantizer.codes(indices).to(self.linear.weight.dtype)
