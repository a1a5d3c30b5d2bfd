"""Learned entropy models: bottlenecks whose code is coded with a density trained with the rate.

- entropy: the factorized prior of Balle et al. 2017/2018. y = W h + b (per position for a
  spatial feature map: a 1x1 convolution), one learned density p_c per channel c. In training
  y~ = y + U(-1/2, 1/2) (the differentiable stand-in for rounding); at test y^ = round(y - m) + m,
  m the learned median of each channel. The rate is -log2 of the probability of y~ (y^) under
  p_c convolved with a unit box, summed over the sample: bits per sample, exactly what the range
  coder (aekit.tasks.compression.learned) spends on y^, to within its quantized tables.
- hyperprior: the scale hyperprior of Balle et al. 2018 for spatial codes (B, C, H, W): a second
  code z = h_a(|y|) (factorized prior, as above) predicts through h_s the scale sigma of a
  zero-mean Gaussian for every element of y; y is coded with N(0, sigma^2) convolved with a unit
  box. rate = bits(y | z) + bits(z).

The loss is R + lambda * D (Balle et al. 2017, eq. 2): the rate terms ('rate', or 'rate_y' and
'rate_z', bits per sample) enter the model's loss with weight 1 and the distortion (the
likelihood's NLL, nats per sample; with a Gaussian likelihood of fixed sigma, SSE / (2 sigma^2)
plus a constant) with weight `lmbda` (model.py reads `distortion_weight`). lmbda = 1 / ln 2 makes
the loss the total code length in bits of image and code (a negative ELBO in bits).

The density's tail quantiles (used for the coding tables and the medians) are fitted by an
auxiliary loss over their own parameters only: `aux_parameters()` and `aux_loss()`. They get no
gradient from the main loss and must be trained by a separate optimizer (group) on `aux_loss()`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones.gdn import lower_bound
from ..errors import ConfigError
from ..registry import BOTTLENECKS
from .bottlenecks import Code

LIKELIHOOD_BOUND = 1e-9  # smallest probability the rate counts (about 30 bits)
SCALE_MIN, SCALE_MAX = 0.11, 256.0  # the range of the Gaussian scales (Balle et al. 2018)
SCALE_LEVELS = 256  # coding scales, log-spaced: neighbours 3% apart (CompressAI uses 64, 13% apart)


def _check_lmbda(name: str, lmbda) -> float:
    if isinstance(lmbda, bool) or not isinstance(lmbda, (int, float)) or not (lmbda > 0 and math.isfinite(lmbda)):
        raise ConfigError(f"bottleneck {name!r} lmbda (the distortion's weight, loss = rate + lmbda * distortion) "
                          f"must be a positive finite number; got {lmbda!r}.")
    return float(lmbda)


class FactorizedDensity(nn.Module):
    """A learned univariate density per channel: its CDF is a monotone network per channel.

    c(x) = sigmoid(f_K o ... o f_1(x)), f_k(x) = g_k(softplus(H_k) x + b_k), g_k(u) = u + tanh(a_k) tanh(u)
    (the last layer without g). softplus(H) > 0 and tanh(a) > -1 make every f_k increasing, so c is a
    CDF; its slope is asymptotically positive, so c runs from 0 to 1. The probability of the unit
    box around v is c(v + 1/2) - c(v - 1/2).
    Balle et al. 2018, Variational image compression with a scale hyperprior, appendix 6.1.
    """

    def __init__(self, channels: int, *, filters=(3, 3, 3), init_scale: float = 10.0, tail_mass: float = 1e-9) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"a factorized density needs a positive number of channels; got {channels!r}.")
        filters = tuple(filters)
        if any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters):
            raise ConfigError(f"bottleneck 'entropy' filters must be positive integers; got {list(filters)!r}.")
        self.channels, self.filters, self.tail_mass = channels, filters, float(tail_mass)
        dims = (1, *filters, 1)
        scale = float(init_scale) ** (1.0 / (len(filters) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))  # softplus(H) = 1 / (scale * width) at start
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # the tail quantiles and the median of each channel, fitted by aux_loss() alone
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))  # (C, 1, 3)
        target = math.log(2.0 / self.tail_mass - 1.0)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]), persistent=False)

    @property
    def medians(self) -> torch.Tensor:
        return self.quantiles[:, 0, 1]  # (C,)

    def logits_cumulative(self, x: torch.Tensor, *, stop_gradient: bool = False) -> torch.Tensor:
        """logit c(x) for x: (C, 1, N) -> (C, 1, N)."""
        logits = x
        for i, matrix in enumerate(self.matrices):
            m, b = F.softplus(matrix), self.biases[i]
            if stop_gradient:
                m, b = m.detach(), b.detach()
            logits = torch.matmul(m, logits) + b  # (C, f_{i+1}, f_i) @ (C, f_i, N)
            if i < len(self.factors):
                a = self.factors[i].detach() if stop_gradient else self.factors[i]
                logits = logits + torch.tanh(a) * torch.tanh(logits)
        return logits

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """c(x), x: (C, N) -> (C, N)."""
        return torch.sigmoid(self.logits_cumulative(x.unsqueeze(1))).squeeze(1)

    def box_probability(self, v: torch.Tensor) -> torch.Tensor:
        """c(v + 1/2) - c(v - 1/2) for v: (C, N) -> (C, N), evaluated on the side where it is accurate."""
        lower = self.logits_cumulative((v - 0.5).unsqueeze(1)).squeeze(1)
        upper = self.logits_cumulative((v + 0.5).unsqueeze(1)).squeeze(1)
        sign = -torch.sign(lower + upper).detach()  # compare the small tails, not 1 - 1
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def aux_loss(self) -> torch.Tensor:
        """sum |logit c(q) - target|: drives the quantiles to the tail_mass / 2 tails and the median (scalar).
        Only the quantiles get a gradient (the density's parameters are detached)."""
        logits = self.logits_cumulative(self.quantiles, stop_gradient=True)  # (C, 1, 3)
        return torch.abs(logits - self.target).sum()


def channels_first(y: torch.Tensor) -> torch.Tensor:
    """(B, D) or (B, C, H, W) -> (C, B * H * W): every value of a channel in one row."""
    if y.dim() == 2:
        return y.t()
    return y.transpose(0, 1).reshape(y.shape[1], -1)


def from_channels_first(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dim() == 2:
        return v.t()
    b, c, h, w = like.shape
    return v.reshape(c, b, h, w).transpose(0, 1)


def _project(linear: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """y = W h + b: (B, F) -> (B, D), or per position (B, F, H, W) -> (B, D, H, W) (the same weights)."""
    if h.dim() == 4:
        return F.conv2d(h, linear.weight[:, :, None, None], linear.bias)
    return linear(h)


def uniform_noise(y: torch.Tensor) -> torch.Tensor:
    return y + (torch.rand_like(y) - 0.5)


def bits(likelihood: torch.Tensor) -> torch.Tensor:
    """-log2 of the (lower-bounded) probabilities summed over all but the batch: (B, ...) -> (B,)."""
    p = lower_bound(likelihood, LIKELIHOOD_BOUND)
    return -torch.log2(p).flatten(1).sum(1)


def straight_through_round(y: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """round(y - offset) + offset in the forward pass, bit for bit (y - y.detach() adds an exact zero), with the
    identity gradient (the straight-through estimator)."""
    return (torch.round(y - offset) + offset).detach() + (y - y.detach())


def _offsets(density: FactorizedDensity, y: torch.Tensor) -> torch.Tensor:
    m = density.medians.detach()
    return m.view(1, -1) if y.dim() == 2 else m.view(1, -1, 1, 1)


@BOTTLENECKS.register("entropy")
class EntropyBottleneck(nn.Module):
    """Rate-trained code with a learned factorized density per channel: uniform noise in training, rounding at test.
    Balle, Laparra & Simoncelli 2017, End-to-end optimized image compression; Balle et al. 2018 (the density)."""

    provides = frozenset({"code", "discrete", "rate", "spatial_bottleneck"})
    examples = ({}, {"lmbda": 0.01, "filters": [2]})
    rate_terms = ("rate",)

    def __init__(self, *, in_features: int, latent_dim: int, lmbda: float = 1.0, filters: list[int] = (3, 3, 3),
                 init_scale: float = 10.0) -> None:
        super().__init__()
        self.lmbda = _check_lmbda("entropy", lmbda)
        if not (isinstance(init_scale, (int, float)) and init_scale > 0):
            raise ConfigError(f"bottleneck 'entropy' init_scale must be a positive number; got {init_scale!r}.")
        self.linear = nn.Linear(in_features, latent_dim)  # (B, F) -> (B, D); per position for (B, F, H, W)
        self.density = FactorizedDensity(latent_dim, filters=filters, init_scale=float(init_scale))
        self.latent_dim = latent_dim

    @property
    def distortion_weight(self) -> float:
        """The likelihood's (distortion's) weight in the model's loss: R + lmbda * D."""
        return self.lmbda

    def analysis(self, h: torch.Tensor) -> torch.Tensor:
        return _project(self.linear, h)

    def symbols(self, y: torch.Tensor) -> torch.Tensor:
        """The integers the coder writes: round(y - median) (int64, y's shape)."""
        return torch.round(y - _offsets(self.density, y)).to(torch.int64)

    def dequantize(self, q: torch.Tensor, *, dtype=torch.float32) -> torch.Tensor:
        """y^ = q + median, as in eval (bit-identical to forward's rounding)."""
        return q.to(dtype) + _offsets(self.density, q).to(dtype)

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        return from_channels_first(self.density.box_probability(channels_first(y)), y)

    def forward(self, h: torch.Tensor) -> Code:
        y = self.analysis(h)  # (B, D) or (B, D, H, W)
        y_hat = straight_through_round(y, _offsets(self.density, y))
        y_code = uniform_noise(y) if self.training else y_hat
        return Code(z=y_code, mean=y_hat, aux_losses={"rate": bits(self.likelihood(y_code))})

    def aux_parameters(self) -> list[nn.Parameter]:
        """The parameters only aux_loss() trains (the density's quantiles)."""
        return [self.density.quantiles]

    def aux_loss(self) -> torch.Tensor:
        return self.density.aux_loss()


def gaussian_box_probability(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(|Y - v| < 1/2) for Y ~ N(0, scale^2) at v = y: Phi((1/2 - |y|)/s) - Phi((-1/2 - |y|)/s) (the accurate tail)."""
    v = torch.abs(y)
    const = -(2 ** -0.5)
    upper = 0.5 * torch.erfc(const * (0.5 - v) / scale)
    lower = 0.5 * torch.erfc(const * (-0.5 - v) / scale)
    return upper - lower


def scale_table(dtype=torch.float64) -> torch.Tensor:
    """The SCALE_LEVELS coding scales, log-spaced from SCALE_MIN to SCALE_MAX (Balle et al. 2018)."""
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64)).to(dtype)


@BOTTLENECKS.register("hyperprior")
class HyperpriorBottleneck(nn.Module):
    """Spatial code y with a zero-mean Gaussian per element whose scale a second, factorized code z = h_a(|y|) predicts.
    Balle et al. 2018, Variational image compression with a scale hyperprior."""

    provides = frozenset({"code", "discrete", "rate", "spatial_bottleneck"})
    requires = frozenset({"spatial_code"})
    examples = ({}, {"hyper_channels": 2, "lmbda": 0.01})
    rate_terms = ("rate_y", "rate_z")

    def __init__(self, *, in_features: int, latent_dim: int, lmbda: float = 1.0, hyper_channels: int | None = None,
                 filters: list[int] = (3, 3, 3)) -> None:
        super().__init__()
        self.lmbda = _check_lmbda("hyperprior", lmbda)
        n = latent_dim if hyper_channels is None else hyper_channels
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"bottleneck 'hyperprior' hyper_channels must be a positive integer; got {n!r}.")
        self.linear = nn.Linear(in_features, latent_dim)  # per position: (B, F, H, W) -> (B, C, H, W)
        c = latent_dim
        # h_a: |y| (B, C, H, W) -> z (B, N, ceil(H/4), ceil(W/4))
        self.hyper_analysis = nn.Sequential(
            nn.Conv2d(c, n, 3, padding=1), nn.ReLU(), nn.Conv2d(n, n, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(n, n, 3, stride=2, padding=1))
        # h_s: z^ -> scales (B, C, H, W), transposed convolutions told y's size
        self.up1 = nn.ConvTranspose2d(n, n, 3, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(n, n, 3, stride=2, padding=1)
        self.scale_out = nn.Conv2d(n, c, 3, padding=1)
        self.hyper_density = FactorizedDensity(n, filters=filters)
        self.latent_dim, self.hyper_channels = latent_dim, n

    @property
    def distortion_weight(self) -> float:
        return self.lmbda

    def analysis(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4:
            raise ConfigError("bottleneck 'hyperprior' needs spatial features (B, C, H, W): use backbone "
                              "conv:fully_convolutional=true.")
        return _project(self.linear, h)

    def hyper(self, y: torch.Tensor) -> torch.Tensor:
        return self.hyper_analysis(torch.abs(y))

    def scales(self, z_hat: torch.Tensor, size) -> torch.Tensor:
        """sigma (B, C, H, W) >= SCALE_MIN from z^ (B, N, h, w); size: y's (H, W)."""
        h1 = ((size[0] - 1) // 2 + 1, (size[1] - 1) // 2 + 1)
        t = F.relu(self.up1(z_hat, output_size=h1))
        t = F.relu(self.up2(t, output_size=tuple(size)))
        return SCALE_MIN + F.softplus(self.scale_out(t))

    def symbols(self, y: torch.Tensor) -> torch.Tensor:
        return torch.round(y).to(torch.int64)

    def hyper_symbols(self, z: torch.Tensor) -> torch.Tensor:
        return torch.round(z - _offsets(self.hyper_density, z)).to(torch.int64)

    def hyper_dequantize(self, q: torch.Tensor, *, dtype=torch.float32) -> torch.Tensor:
        return q.to(dtype) + _offsets(self.hyper_density, q).to(dtype)

    def forward(self, h: torch.Tensor) -> Code:
        y = self.analysis(h)  # (B, C, H, W)
        z = self.hyper(y)  # (B, N, h, w)
        z_hat = straight_through_round(z, _offsets(self.hyper_density, z))
        z_code = uniform_noise(z) if self.training else z_hat
        scales = self.scales(z_code, y.shape[-2:])
        y_hat = straight_through_round(y, torch.zeros((), dtype=y.dtype, device=y.device))
        y_code = uniform_noise(y) if self.training else y_hat
        rate_z = bits(from_channels_first(self.hyper_density.box_probability(channels_first(z_code)), z_code))
        rate_y = bits(gaussian_box_probability(y_code, scales))
        return Code(z=y_code, mean=y_hat, aux_losses={"rate_y": rate_y, "rate_z": rate_z})

    def aux_parameters(self) -> list[nn.Parameter]:
        return [self.hyper_density.quantiles]

    def aux_loss(self) -> torch.Tensor:
        return self.hyper_density.aux_loss()
