"""Learned priors: the VampPrior, a mixture of the posteriors of learned pseudo-inputs.

    p(z) = 1/K sum_k q(z | u_k),   u_k (K, *input_shape) learned with the model,

(Tomczak & Welling 2018, "VAE with a VampPrior"). The KL to it has no closed form, so the
regularizer `kl_vamp` is the one-sample estimate E_q[log q(z | x) - log p(z)] at the code the
decoder saw (a sample of q(z | x) in training, its mean in eval). model.sample draws from the
mixture: a component k uniformly, then z ~ q(z | u_k).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import REGULARIZERS
from .regularizers import RegContext, Regularizer


@REGULARIZERS.register("kl_vamp")
class KLVamp(Regularizer):
    """KL(q(z | x) || VampPrior) estimated by one sample, weighted by beta; K learned pseudo-inputs.
    Tomczak & Welling 2018, VAE with a VampPrior."""

    name = "kl_vamp"
    requires = frozenset({"posterior", "elbo_path"})
    examples = ({"components": 3},)

    def __init__(self, *, input_shape: tuple[int, ...] | None = None, components: int = 500,
                 beta: float = 1.0) -> None:
        super().__init__(weight=beta)
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ConfigError(f"kl_vamp components must be a positive integer; got {components!r}.")
        self.components, self.beta = components, float(beta)
        if input_shape is not None:
            # pseudo-inputs start as uniform noise in [0, 1), the range of image data (the paper learns them freely)
            self.pseudo_inputs = nn.Parameter(torch.rand(components, *[int(s) for s in input_shape]))  # (K, *shape)

    def configure(self, provided: frozenset[str]) -> None:
        if "conditional" in provided:
            raise ConfigError("regularizer 'kl_vamp' cannot join a conditional model (num_classes): its pseudo-inputs "
                              "carry no label; use kl_prior.")

    def components_posterior(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | u_k), each (K, D), through the model's own encoder and bottleneck."""
        h, _ = model.encoder(self.pseudo_inputs)  # (K, F)
        code = model.bottleneck(h)
        return code.posterior.mu, code.posterior.logvar

    def log_prior(self, z: torch.Tensor, model) -> torch.Tensor:
        """log p(z) = logsumexp_k log N(z; mu_k, diag exp(logvar_k)) - log K; z (B, D) -> (B,)."""
        mu, logvar = self.components_posterior(model)  # (K, D) each
        zz = z.unsqueeze(1)  # (B, 1, D)
        comp = -0.5 * (math.log(2 * math.pi) + logvar + (zz - mu).pow(2) * torch.exp(-logvar))  # (B, K, D)
        return torch.logsumexp(comp.sum(-1), dim=1) - math.log(self.components)

    def forward(self, ctx: RegContext) -> torch.Tensor:
        z = ctx.code.z  # (B, D)
        return ctx.code.posterior.log_prob(z) - self.log_prior(z, ctx.model)  # (B,)

    @torch.no_grad()
    def sample_prior(self, n: int, *, model, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of the mixture: k ~ U{1..K}, z ~ q(z | u_k); (n, D)."""
        mu, logvar = self.components_posterior(model)
        k = torch.randint(0, self.components, (n,), generator=generator, device=mu.device)
        eps = torch.randn((n, mu.shape[1]), generator=generator, device=mu.device, dtype=mu.dtype)
        return mu[k] + torch.exp(0.5 * logvar[k]) * eps
