"""Regularizers: penalties on the code, each `Regularizer(ctx) -> Tensor[B]`.

The model multiplies each by its weight and adds it to the per-sample loss; the output's
`terms` holds the unweighted batch means and `weights` the multipliers, so the weighted sum of
terms is the loss.

- l1_activity(weight): sum_j |z_j| (sparse autoencoder with an L1 activity penalty).
- kl_sparsity(rho, weight): sum_j KL(rho || rho_hat_j) where rho_hat_j is the batch-mean
  activation of sigmoid code unit j (Ng, "Sparse autoencoder", CS294A notes 2011). It is a batch
  quantity; it is returned broadcast to (B,) so that the batch mean equals it.
- contractive(weight, method): ||J_f(x)||_F^2, the squared Frobenius norm of the Jacobian of the
  code mean with respect to the input (Rifai et al. 2011). method:
    exact       one backward pass per latent unit (cost: D_latent backward passes);
    closed_form for one sigmoid layer z = s(Wx + b): sum_j (z_j (1 - z_j))^2 sum_i W_ji^2;
    hutchinson  unbiased estimate E_v ||J^T v||^2, v ~ N(0, I), n_samples backward passes;
    auto        closed_form when it applies, exact for codes up to 32 units, else hutchinson.
- kl_prior(beta, warmup_steps, free_bits): KL(q(z | x) || N(0, I)) in closed form, weighted by
  beta (beta-VAE, Higgins et al. 2017), with an optional linear warm-up of the weight from 0
  over `warmup_steps` training steps (Sonderby et al. 2016) and free bits lambda per unit:
  each unit's batch-mean KL counts as at least lambda nats (Kingma et al. 2016).
  With capacity C_max > 0 it is the capacity-annealed objective of Burgess et al. 2018
  ("Understanding disentangling in beta-VAE"): gamma * |KL - C| with gamma = beta, KL the
  batch mean of the summed KL and C rising linearly from 0 (or capacity_start) to C_max nats
  over `capacity_steps` training steps (then constant). The term is a batch quantity, returned
  broadcast to (B,); C = 0 gives the plain batch-mean KL. capacity_loss='hinge' makes it one-sided,
  gamma * max(0, KL - C): a cap with no push upwards. Below C the two-sided |KL - C| pushes the
  KL up with weight gamma, and the cheapest way up is input-independent: measured on dSprites
  (benchmarks/annealed_probe.py --trace, results/annealed_probe_trace.json), the encoder starts
  input-independent, the KL reaches C = 20 with 18.2 of its 20 nats in one offset of every
  posterior mean (sum_j mean(mu_j)^2 = 36.5) and Var_x[mu] = 0, the reconstruction's share of
  Adam's gradient scale in the encoder falls below 0.001 (the term's ~1) and half the encoder's
  ReLUs die; the same with a per-sample |KL_i - C|. capacity_on='information' (below) closes
  that route. Under the hinge the reconstruction alone moves the KL below C, and the cap binds
  as C rises.
  kl_weight > 0 adds the per-sample KL weighted kl_weight under the cap (two terms,
  'kl_prior.kl' and 'kl_prior.capacity'): with kl_weight = 1 and the hinge, the ELBO up to C
  and gamma per nat beyond it.
  capacity_on='information' measures C on the information part of the batch-mean KL instead of
  the whole KL: per unit, 0.5 (log V - mean log s^2) with V = var(mu) + mean(s^2) over the batch,
  and adds the rest, the aggregate posterior's moment mismatch KL(N(mean mu, V) || N(0, 1))
  ('marginal', >= 0, weighted gamma too); the two parts sum to the KL exactly
  (divergences.kl_information_split). An input-independent posterior has information 0 whatever
  its offset or variance, so the term's push towards C can only be met by codes that differ
  between inputs: gamma * (|I - C| + marginal), terms 'kl_prior.capacity' and 'kl_prior.marginal'.
  Where the aggregate posterior matches the prior it is the paper's gamma * |KL - C|.
- mmd(kernel, scale, weight, prior_samples): the unbiased MMD^2 between the batch's codes and
  max(B, prior_samples) draws of N(0, I) (Gretton et al. 2012), a batch quantity broadcast to
  (B,): WAE-MMD (Tolstikhin et al. 2018) and InfoVAE (Zhao et al. 2019).
- tc(alpha, beta, gamma, dataset_size): beta-TC-VAE's decomposition of the sampled KL into
  mutual information, total correlation and dimension-wise KL (Chen et al. 2018), three terms.
- dip(kind, lambda_od, lambda_d): DIP-VAE's covariance matching (Kumar et al. 2018).
- rae(beta, decoder_weight, penalty): RAE's ||z||^2 / 2 and a decoder penalty, the squared L2
  norm of its parameters or of its Jacobian (gp) (Ghosh et al. 2020), two terms.
- kl_vamp (axes/priors.py): the KL to a VampPrior (Tomczak & Welling 2018).

Several terms: a regularizer may return {part: (B,)} instead of one (B,) tensor; the model logs
each part as the term '<name>.<part>' with weight current_weight() * term_weights()[part], so
the loss stays exactly the weighted sum of the terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..registry import REGULARIZERS
from .divergences import dip_covariance, dip_penalty, kl_information_split, mmd_unbiased, tc_decomposition


@dataclass
class RegContext:
    """What a regularizer may look at for one forward pass."""

    x_in: torch.Tensor  # (B, *shape) the encoder's input (requires grad when a penalty needs it)
    code: "object"  # bottlenecks.Code
    model: nn.Module


class Regularizer(nn.Module):
    """Base class: a penalty (B,) weighted by `current_weight()`; `requires` names the capabilities it needs."""

    name = "base"
    needs_input_grad = False
    requires: frozenset[str] = frozenset({"code"})

    def __init__(self, *, weight: float) -> None:
        super().__init__()
        weight = float(weight)
        if not weight >= 0:
            raise ConfigError(f"{self.name} weight must be >= 0; got {weight!r}.")
        self.weight = weight

    def current_weight(self) -> float:
        return self.weight

    def term_weights(self) -> dict[str, float]:
        """Per-part multipliers of a regularizer that returns several terms {part: (B,)}."""
        return {}

    def configure(self, provided: frozenset[str]) -> None:
        """Told the capabilities of the model it joins (build calls it); a penalty may pick its method by them."""


@REGULARIZERS.register("l1_activity")
class L1Activity(Regularizer):
    """L1 penalty on the code activations, sum_j |z_j|.
    Goodfellow, Bengio & Courville 2016, ch. 14.2.1; Ranzato et al. 2007."""

    name = "l1_activity"
    provides = frozenset({"sparse_code"})

    def __init__(self, *, weight: float = 1e-3) -> None:
        super().__init__(weight=weight)

    def forward(self, ctx: RegContext) -> torch.Tensor:
        return ctx.code.mean.abs().flatten(1).sum(dim=1)  # (B, D) or a spatial (B, C, H, W) -> (B,)


@REGULARIZERS.register("kl_sparsity")
class KLSparsity(Regularizer):
    """sum_j KL(rho || rho_hat_j) on the batch-mean activation of code units in (0, 1).
    Ng 2011, CS294A lecture notes, Sparse autoencoder."""

    name = "kl_sparsity"
    provides = frozenset({"sparse_code"})
    requires = frozenset({"bounded_code"})

    def __init__(self, *, rho: float = 0.05, weight: float = 3.0) -> None:
        super().__init__(weight=weight)
        rho = float(rho)
        if not 0.0 < rho < 1.0:
            raise ConfigError(f"kl_sparsity rho must be in (0, 1); got {rho!r}.")
        self.rho = rho

    def forward(self, ctx: RegContext) -> torch.Tensor:
        z = ctx.code.mean  # (B, D) in (0, 1)
        rho_hat = z.mean(dim=0).clamp(1e-6, 1 - 1e-6)  # (D,) batch-mean activation per unit
        rho = self.rho
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))  # (D,)
        return kl.sum().expand(z.shape[0])  # batch quantity, broadcast to (B,)


@REGULARIZERS.register("contractive")
class Contractive(Regularizer):
    """Squared Frobenius norm of the Jacobian of the code with respect to the input.
    Rifai et al. 2011, Contractive auto-encoders: explicit invariance during feature extraction."""

    name = "contractive"
    needs_input_grad = True
    METHODS = ("auto", "exact", "closed_form", "hutchinson")
    CLOSED_FORM = frozenset({"linear_backbone", "sigmoid_code"})  # one sigmoid layer z = s(W x + b)
    may_require = CLOSED_FORM
    examples = ({"method": "auto"}, {"method": "closed_form"}, {"method": "hutchinson", "n_samples": 2})

    @classmethod
    def requires_for(cls, *, weight: float = 0.1, method: str = "auto", n_samples: int = 1) -> frozenset[str]:
        return frozenset({"code"} | (cls.CLOSED_FORM if method == "closed_form" else set()))

    def __init__(self, *, weight: float = 0.1, method: str = "auto", n_samples: int = 1) -> None:
        super().__init__(weight=weight)
        check_choice("contractive method", method, self.METHODS)
        if int(n_samples) < 1:
            raise ConfigError(f"contractive n_samples must be >= 1; got {n_samples!r}.")
        self.method, self.n_samples = method, int(n_samples)
        self._closed_ok = False

    def configure(self, provided: frozenset[str]) -> None:
        self._closed_ok = self.CLOSED_FORM <= provided  # one sigmoid layer z = s(W x + b)

    def resolved_method(self, latent_dim: int) -> str:
        """auto: closed_form when the model provides one sigmoid layer, exact up to 32 code units, else hutchinson."""
        if self.method != "auto":
            return self.method
        if self._closed_ok:
            return "closed_form"
        return "exact" if latent_dim <= 32 else "hutchinson"

    def forward(self, ctx: RegContext) -> torch.Tensor:
        z = ctx.code.mean.flatten(1)  # (B, D) (a spatial code flattened); the Jacobian of the deterministic code, mu for a VAE
        method = self.resolved_method(z.shape[1])
        if method == "closed_form":
            return closed_form_sigmoid_penalty(z, ctx.model.bottleneck.linear.weight)
        if method == "exact":
            return jacobian_frobenius_exact(z, ctx.x_in, create_graph=self.training)
        return jacobian_frobenius_hutchinson(z, ctx.x_in, n_samples=self.n_samples, create_graph=self.training)


def closed_form_sigmoid_penalty(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """||J||_F^2 for z = sigmoid(W x + b): sum_j (z_j (1 - z_j))^2 * sum_i W_ji^2; -> (B,)."""
    w_sq = weight.pow(2).sum(dim=1)  # (D_latent,)
    return ((z * (1 - z)).pow(2) * w_sq).sum(dim=1)


def jacobian_frobenius_exact(z: torch.Tensor, x: torch.Tensor, *, create_graph: bool = True) -> torch.Tensor:
    """sum_j ||d z_j / d x||^2 by one backward pass per latent unit; -> (B,)."""
    total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    for j in range(z.shape[1]):
        (g,) = torch.autograd.grad(z[:, j].sum(), x, create_graph=create_graph, retain_graph=True)
        total = total + g.pow(2).flatten(1).sum(dim=1)  # rows are independent across the batch
    return total


def jacobian_frobenius_hutchinson(z: torch.Tensor, x: torch.Tensor, *, n_samples: int = 1,
                                  create_graph: bool = True) -> torch.Tensor:
    """Unbiased estimate of ||J||_F^2 = E_v ||J^T v||^2 with v ~ N(0, I); -> (B,)."""
    total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    for _ in range(n_samples):
        v = torch.randn_like(z)
        (g,) = torch.autograd.grad((z * v).sum(), x, create_graph=create_graph, retain_graph=True)
        total = total + g.pow(2).flatten(1).sum(dim=1)
    return total / n_samples


@REGULARIZERS.register("kl_prior")
class KLPrior(Regularizer):
    """KL(q(z | x) || N(0, I)) weighted by beta, with warm-up, free bits or capacity annealing.
    Kingma & Welling 2014; Higgins et al. 2017 (beta); Burgess et al. 2018 (capacity)."""

    name = "kl_prior"
    requires = frozenset({"posterior", "elbo_path"})

    CAPACITY_LOSSES = ("abs", "hinge")
    CAPACITY_ON = ("kl", "information")

    def __init__(self, *, beta: float = 1.0, warmup_steps: int = 0, free_bits: float = 0.0,
                 capacity: float = 0.0, capacity_steps: int = 0, capacity_loss: str = "abs",
                 kl_weight: float = 0.0, capacity_on: str = "kl", capacity_start: float = 0.0) -> None:
        super().__init__(weight=beta)
        check_choice("kl_prior capacity_loss", capacity_loss, self.CAPACITY_LOSSES)
        check_choice("kl_prior capacity_on", capacity_on, self.CAPACITY_ON)
        self.capacity_on = capacity_on
        if not float(kl_weight) >= 0:
            raise ConfigError(f"kl_prior kl_weight must be >= 0; got {kl_weight!r}.")
        self.capacity_loss, self.kl_weight = capacity_loss, float(kl_weight)
        if int(warmup_steps) < 0:
            raise ConfigError(f"kl_prior warmup_steps must be >= 0; got {warmup_steps!r}.")
        if not float(free_bits) >= 0:
            raise ConfigError(f"kl_prior free_bits must be >= 0; got {free_bits!r}.")
        if not float(capacity) >= 0 or int(capacity_steps) < 0:
            raise ConfigError(f"kl_prior capacity (nats) and capacity_steps must be >= 0; got capacity={capacity!r}, "
                              f"capacity_steps={capacity_steps!r}.")
        if float(capacity) > 0 and float(free_bits) > 0:
            raise ConfigError("kl_prior capacity and free_bits are alternatives; set one of them to 0 "
                              f"(got capacity={capacity!r}, free_bits={free_bits!r}).")
        self.beta, self.warmup_steps, self.free_bits = float(beta), int(warmup_steps), float(free_bits)
        self.capacity, self.capacity_steps = float(capacity), int(capacity_steps)
        if not 0.0 <= float(capacity_start) <= max(self.capacity, 0.0):
            raise ConfigError(f"kl_prior capacity_start (nats) must be in [0, capacity={capacity!r}]; "
                              f"got {capacity_start!r}.")
        self.capacity_start = float(capacity_start)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))  # saved with the weights: resumes exactly

    def _split(self) -> bool:
        """Several terms: the capacity term weighted gamma, with the per-sample KL weighted kl_weight (kl_weight > 0)
        and the marginal part weighted gamma (capacity_on='information')."""
        return self.capacity > 0 and (self.kl_weight > 0 or self.capacity_on == "information")

    def _gamma(self) -> float:
        if self.warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, float(self.step) / self.warmup_steps)

    def current_weight(self) -> float:
        return 1.0 if self._split() else self._gamma()

    def term_weights(self) -> dict[str, float]:
        return {"kl": self.kl_weight, "capacity": self._gamma(), "marginal": self._gamma()}

    def current_capacity(self) -> float:
        """C in nats at the current step: C_0 + (C_max - C_0) * min(1, step / capacity_steps), C_0 = capacity_start
        (C_max at once without steps)."""
        if self.capacity_steps <= 0:
            return self.capacity
        c0 = self.capacity_start
        return c0 + (self.capacity - c0) * min(1.0, float(self.step) / self.capacity_steps)

    def schedule_note(self, total_steps: int) -> str | None:
        """A warning when the run ends before C reaches C_max (the trainer asks at the start of fit)."""
        if self.capacity <= 0 or self.capacity_steps <= 0 or int(self.step) + total_steps >= self.capacity_steps:
            return None
        c0 = self.capacity_start
        reached = c0 + (self.capacity - c0) * (int(self.step) + total_steps) / self.capacity_steps
        return (f"kl_prior capacity_steps={self.capacity_steps} is longer than this run ({total_steps} steps): "
                f"C reaches only {reached:.3g} of capacity={self.capacity:g} nats; set capacity_steps to about "
                f"{int(0.8 * total_steps)} (80% of the run) to anneal to C_max.")

    def forward(self, ctx: RegContext) -> torch.Tensor:
        kl = ctx.code.posterior.kl_per_unit()  # (B, D)
        if self.capacity > 0:
            c = self.current_capacity()  # C of this step, before counting it
            if self.training:
                self.step += 1
            parts = {}
            if self.capacity_on == "information":  # C bounds the information; the marginal part goes to 0
                post = ctx.code.posterior
                info, marginal = kl_information_split(post.mu.flatten(1), post.logvar.flatten(1))  # (D,) each
                measured = info.sum()
                parts["marginal"] = marginal.sum().expand(kl.shape[0])
            else:
                measured = kl.sum(dim=1).mean()  # () the batch-mean KL
            gap = measured - c  # () minus the target
            value = (gap.abs() if self.capacity_loss == "abs" else gap.clamp(min=0)).expand(kl.shape[0])
            if self._split():  # kl_weight * KL + gamma * capacity term [+ gamma * marginal], logged apart
                return {**({"kl": kl.sum(dim=1)} if self.kl_weight > 0 else {}), "capacity": value, **parts}
            return value  # batch quantity |KL - C| or max(0, KL - C), as (B,)
        if self.training:
            self.step += 1
        if self.free_bits > 0 and self.training:
            # a unit whose batch-mean KL is under lambda counts as lambda nats, with no gradient
            low = kl.mean(dim=0) < self.free_bits  # (D,)
            kl = torch.where(low, torch.full_like(kl, self.free_bits), kl)
        return kl.sum(dim=1)  # (B,)


@REGULARIZERS.register("mmd")
class MMD(Regularizer):
    """Unbiased MMD^2 between the batch's codes z and max(B, prior_samples) draws of N(0, I), kernel imq or rbf.
    Gretton et al. 2012; Tolstikhin et al. 2018 (WAE-MMD); Zhao, Song & Ermon 2019 (InfoVAE)."""

    name = "mmd"
    KERNELS = ("imq", "rbf")
    examples = ({}, {"kernel": "rbf", "scale": 2.0, "weight": 1.0})

    def __init__(self, *, kernel: str = "imq", scale: float = 1.0, weight: float = 10.0,
                 prior_samples: int = 256) -> None:
        super().__init__(weight=weight)
        check_choice("mmd kernel", kernel, self.KERNELS)
        if not float(scale) > 0:
            raise ConfigError(f"mmd scale must be > 0; got {scale!r}.")
        if isinstance(prior_samples, bool) or not isinstance(prior_samples, int) or prior_samples < 2:
            raise ConfigError(f"mmd prior_samples must be an integer >= 2; got {prior_samples!r}.")
        self.kernel, self.scale, self.prior_samples = kernel, float(scale), prior_samples

    def forward(self, ctx: RegContext) -> torch.Tensor:
        z = ctx.code.z  # (B, D): the codes the decoder saw (samples of q(z | x) for a VAE)
        if z.shape[0] < 2:  # the U-statistic needs two samples; a batch of one contributes nothing
            return z.flatten(1).sum(dim=1) * 0.0
        # in eval the draws come from a fixed seed (0): eval is deterministic, validation losses comparable
        gen = None if self.training else torch.Generator(device=z.device).manual_seed(0)
        post = ctx.code.posterior
        if post is not None and not self.training:  # q(z) is the aggregate posterior: samples, not the means
            z = post.mu + post.std * torch.randn(z.shape, generator=gen, device=z.device, dtype=z.dtype)
        z = z.flatten(1)  # a spatial code (B, C, H, W) is one vector per image: (B, C*H*W)
        m = max(z.shape[0], self.prior_samples)  # more prior draws than codes: a lower-variance estimate
        prior = torch.randn((m, z.shape[1]), generator=gen, device=z.device, dtype=z.dtype)  # (M, D) ~ N(0, I)
        return mmd_unbiased(z, prior, kernel=self.kernel, scale=self.scale).expand(z.shape[0])  # batch quantity


@REGULARIZERS.register("tc")
class TotalCorrelation(Regularizer):
    """beta-TC-VAE: the sampled KL split into index-code MI, total correlation and dimension-wise KL, weighted
    alpha, beta, gamma, by minibatch-weighted sampling with the data set's size N (None: N = the batch size).
    Chen, Li, Grosse & Duvenaud 2018, Isolating sources of disentanglement in variational autoencoders."""

    name = "tc"
    requires = frozenset({"posterior", "elbo_path"})
    examples = ({}, {"alpha": 1.0, "beta": 2.0, "gamma": 0.5, "dataset_size": 100})

    def __init__(self, *, alpha: float = 1.0, beta: float = 6.0, gamma: float = 1.0,
                 dataset_size: int | None = None) -> None:
        super().__init__(weight=1.0)
        for key, val in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if not float(val) >= 0:
                raise ConfigError(f"tc {key} must be >= 0; got {val!r}.")
        if dataset_size is not None and (isinstance(dataset_size, bool) or int(dataset_size) < 1):
            raise ConfigError(f"tc dataset_size must be a positive integer or None; got {dataset_size!r}.")
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.dataset_size = None if dataset_size is None else int(dataset_size)

    def term_weights(self) -> dict[str, float]:
        return {"mi": self.alpha, "tc": self.beta, "dwkl": self.gamma}

    def forward(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        """{'mi', 'tc', 'dwkl'}, each (B,), summing to log q(z|x) - log p(z) at the decoder's z.

        N only shifts the three values by constants (mi by log(N B), tc by (D - 1) log(N B), dwkl by
        -D log(N B)), never their gradients; dataset_size=None (N = B) logs the batch-as-data-set values."""
        post = ctx.code.posterior
        z = ctx.code.z  # (B, D): a sample in training, mu in eval
        n = self.dataset_size or z.shape[0]
        return tc_decomposition(z, post.mu, post.logvar, dataset_size=n)


@REGULARIZERS.register("dip")
class DIP(Regularizer):
    """DIP-VAE: lambda_od sum_{i!=j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2 on the batch covariance C of mu (kind i)
    or of q(z) (kind ii: plus the mean posterior variances); a batch quantity broadcast to (B,).
    Kumar, Sattigeri & Balakrishnan 2018, Variational inference of disentangled latent concepts (DIP-VAE)."""

    name = "dip"
    requires = frozenset({"posterior"})
    examples = ({}, {"kind": "ii", "lambda_od": 1.0, "lambda_d": 1.0})

    def __init__(self, *, kind: str = "i", lambda_od: float = 10.0, lambda_d: float = 100.0) -> None:
        super().__init__(weight=1.0)
        check_choice("dip kind", kind, ("i", "ii"))
        if not (float(lambda_od) >= 0 and float(lambda_d) >= 0):
            raise ConfigError(f"dip lambda_od and lambda_d must be >= 0; got {lambda_od!r}, {lambda_d!r}.")
        self.kind, self.lambda_od, self.lambda_d = kind, float(lambda_od), float(lambda_d)

    def forward(self, ctx: RegContext) -> torch.Tensor:
        post = ctx.code.posterior
        cov = dip_covariance(post.mu, post.logvar, kind=self.kind)  # (D, D)
        return dip_penalty(cov, lambda_od=self.lambda_od, lambda_d=self.lambda_d).expand(post.mu.shape[0])


@REGULARIZERS.register("rae")
class RAEPenalty(Regularizer):
    """RAE: beta ||z||^2 / 2 per input plus decoder_weight times a decoder penalty, two terms: penalty 'l2' the
    squared L2 norm of every decoder parameter (RAE-L2), 'gp' the squared Frobenius norm of the decoder's Jacobian
    at z (RAE-GP, one Hutchinson probe); with a deterministic code it replaces the VAE's noise and KL.
    Ghosh, Sajjadi, Vergari, Black & Schoelkopf 2020, From variational to deterministic autoencoders."""

    name = "rae"
    PENALTIES = ("l2", "gp")
    examples = ({}, {"beta": 0.1, "decoder_weight": 0.01, "penalty": "gp"})

    def __init__(self, *, beta: float = 1e-4, decoder_weight: float = 1e-7, penalty: str = "l2") -> None:
        super().__init__(weight=1.0)
        if not (float(beta) >= 0 and float(decoder_weight) >= 0):
            raise ConfigError(f"rae beta and decoder_weight must be >= 0; got {beta!r}, {decoder_weight!r}.")
        check_choice("rae penalty", penalty, self.PENALTIES)
        self.beta, self.decoder_weight, self.penalty = float(beta), float(decoder_weight), penalty
        self.needs_input_grad = penalty == "gp"  # the Jacobian needs a graph from the input, in eval too

    may_require = {"code_decoder": "penalty='gp'"}

    @classmethod
    def requires_for(cls, *, penalty: str = "l2", **_) -> frozenset[str]:
        return frozenset({"code_decoder"} if penalty == "gp" else ())  # the Jacobian of the decoder at z alone

    def configure(self, provided: frozenset[str]) -> None:
        if self.penalty == "gp" and {"skips", "conditional"} & provided:
            raise ConfigError("regularizer 'rae' penalty='gp' differentiates the decoder at the code alone; a decoder "
                              "with skip connections or labels cannot run so: use penalty='l2'.")

    def term_weights(self) -> dict[str, float]:
        return {"code": self.beta, "decoder": self.decoder_weight}

    def forward(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        z = ctx.code.z  # (B, D)
        code = 0.5 * z.flatten(1).pow(2).sum(dim=1)  # a spatial code (B, C, H, W) counts every position
        if self.penalty == "gp":
            return {"code": code, "decoder": decoder_jacobian_hutchinson(ctx.model.decoder, z, training=self.training)}
        l2 = sum(p.pow(2).sum() for p in ctx.model.decoder.parameters())  # () squared L2 norm of the decoder
        return {"code": code, "decoder": torch.as_tensor(l2, dtype=z.dtype).expand(z.shape[0])}


def decoder_jacobian_hutchinson(decoder, z: torch.Tensor, *, training: bool) -> torch.Tensor:
    """||d decoder(z) / d z||_F^2 per input by one probe: ||J^T v||^2, v ~ N(0, I) over the outputs (E = ||J||_F^2);
    in eval the probe is drawn from seed 0, so eval is deterministic. z: (B, D) in a graph -> (B,)."""
    out = decoder(z, [])  # (B, *shape)
    gen = None if training else torch.Generator(device=z.device).manual_seed(0)
    v = torch.randn(out.shape, generator=gen, device=out.device, dtype=out.dtype)
    (g,) = torch.autograd.grad((out * v).sum(), z, create_graph=training, retain_graph=True)  # (B, D) = J^T v
    return g.pow(2).sum(dim=1)
