"""Regularizers with a discriminator on the codes, trained in its own optimizer group.

- adversarial(weight, hidden, disc_lr, disc_steps): the adversarial autoencoder's prior matching
  (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016, Adversarial autoencoders). A discriminator
  D(z) (a logit) learns to tell prior draws z ~ N(0, I) (label 1) from the encoder's codes
  (label 0):
      L_D = E_p[softplus(-D(z))] + E_q[softplus(D(z))]          (binary cross-entropy)
  and the encoder is trained to fool it with the non-saturating generator loss, per input
      weight * softplus(-D(z)) = weight * -log sigmoid(D(z))      (Goodfellow et al. 2014).
- factor_tc(gamma, hidden, disc_lr, disc_steps): FactorVAE's total correlation estimate
  (Kim & Mnih 2018, Disentangling by factorising). A discriminator learns to tell codes of the
  joint q(z) (label 1) from codes whose dimensions were permuted independently across the batch,
  samples of prod_j q(z_j) (label 0; the permutation of Arcones & Gine 1992, Kim & Mnih's Alg. 1):
      L_D = E_q[softplus(-D(z))] + E_perm[softplus(D(z~))]
  At the optimum D(z) = log q(z) / prod_j q(z_j), so the per-input term D(z) estimates the total
  correlation KL(q(z) || prod_j q(z_j)) = E_q[log q(z) / prod_j q(z_j)]; it is weighted gamma and
  joins the VAE's KL (recipe factor_vae). The permuted codes come from the same batch
  (as disentanglement_lib does; the paper draws a second batch).

The discriminator's parameters form their own optimizer group '<name>_discriminator' (the model's
optimizer_groups; aekit.step): the trainer steps the model's group on the model's loss, then this
group `disc_steps` times on L_D, with Adam(disc_lr, betas (0.5, 0.9)) at a constant rate (Kim &
Mnih's discriminator optimizer). The group's loss uses the codes of the model's step on the same
batch, detached (the encoder is not trained by L_D). A spatial code (B, C, H, W) is one
C-dimensional code per position: the discriminator sees (B*H*W, C) rows and the per-input term is
the sum over positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import REGULARIZERS
from .regularizers import RegContext, Regularizer


def permute_dims(z: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each column of z (B, D) permuted by its own random permutation of the rows: samples of prod_j q(z_j).

    Every column keeps exactly its values (its empirical marginal); the dependence between columns is
    broken (Arcones & Gine 1992; Kim & Mnih 2018, Alg. 1). -> (B, D)."""
    b, d = z.shape
    keys = torch.rand((b, d), generator=generator, device=z.device)
    order = keys.argsort(dim=0)  # (B, D): an independent permutation of the rows per column
    return z.gather(0, order)


def code_rows(z: torch.Tensor) -> torch.Tensor:
    """Codes as rows: (B, D) as is; a spatial code (B, C, H, W) -> (B*H*W, C), one row per position."""
    if z.dim() == 2:
        return z
    return z.flatten(2).transpose(1, 2).reshape(-1, z.shape[1])


def per_input(values: torch.Tensor, batch: int) -> torch.Tensor:
    """Per-row values (B*P,) summed over each input's P positions -> (B,)."""
    return values.view(batch, -1).sum(dim=1)


class Discriminator(nn.Module):
    """An MLP on codes: (N, D) -> (N,) logits; LeakyReLU(0.2) between layers (Kim & Mnih 2018)."""

    def __init__(self, latent_dim: int, hidden) -> None:
        super().__init__()
        layers, width = [], int(latent_dim)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.LeakyReLU(0.2)]
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class DiscriminatorRegularizer(Regularizer):
    """Base: a penalty computed by a discriminator that trains in its own optimizer group on `discriminator_loss`."""

    def __init__(self, *, weight: float, latent_dim: int | None, hidden, disc_lr: float, disc_steps: int) -> None:
        super().__init__(weight=weight)
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"{self.name} hidden must be a list of positive integers; got {hidden!r}.")
        if not float(disc_lr) > 0:
            raise ConfigError(f"{self.name} disc_lr must be > 0; got {disc_lr!r}.")
        if isinstance(disc_steps, bool) or not isinstance(disc_steps, int) or disc_steps < 1:
            raise ConfigError(f"{self.name} disc_steps must be a positive integer; got {disc_steps!r}.")
        self.hidden, self.disc_lr, self.disc_steps = hidden, float(disc_lr), disc_steps
        # latent_dim: given by build (None: a check of the settings alone, which draws no random weights)
        self.discriminator = None if latent_dim is None else Discriminator(latent_dim, hidden)
        self._codes: torch.Tensor | None = None  # (N, D) the last training forward's code rows, detached

    def remember(self, rows: torch.Tensor) -> None:
        if self.training:
            self._codes = rows.detach()

    def last_codes(self) -> torch.Tensor | None:
        return self._codes

    def optimizer(self, params: list) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.disc_lr, betas=(0.5, 0.9))

    def discriminator_loss(self, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(L_D, {'real': ..., 'fake': ...}) with L_D = real + fake, on code rows (N, D) (detached)."""
        raise NotImplementedError


@REGULARIZERS.register("adversarial")
class AdversarialPrior(DiscriminatorRegularizer):
    """The adversarial autoencoder's prior matching: weight * softplus(-D(z)) per input, D trained to tell
    N(0, I) draws from codes in its own optimizer group.
    Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016, Adversarial autoencoders."""

    name = "adversarial"
    examples = ({"hidden": [8]}, {"hidden": [8, 8], "weight": 0.5, "disc_steps": 2})

    def __init__(self, *, latent_dim: int | None = None, weight: float = 1.0, hidden: list[int] = (256, 256),
                 disc_lr: float = 1e-3, disc_steps: int = 1) -> None:
        super().__init__(weight=weight, latent_dim=latent_dim, hidden=hidden, disc_lr=disc_lr, disc_steps=disc_steps)

    def forward(self, ctx: RegContext) -> torch.Tensor:
        z = ctx.code.z  # (B, D) or (B, C, H, W): the codes the decoder saw
        rows = code_rows(z)
        self.remember(rows)
        return per_input(F.softplus(-self.discriminator(rows)), z.shape[0])  # -log sigmoid(D(z)): (B,)

    def sample_prior(self, n: int, *, model, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of the prior the codes are matched to, N(0, I): (n, D) (model.sample decodes them)."""
        if self.discriminator is None:
            raise ConfigError("adversarial: sampling needs the code width (latent_dim), which this model did not give.")
        first = self.discriminator.net[0]  # nn.Linear(D, hidden[0])
        return torch.randn((n, first.in_features), generator=generator, device=first.weight.device,
                           dtype=first.weight.dtype)

    def discriminator_loss(self, rows):
        prior = torch.randn_like(rows)  # (N, D) ~ N(0, I), label 1
        real = F.softplus(-self.discriminator(prior)).mean()  # -log D(prior)
        fake = F.softplus(self.discriminator(rows)).mean()  # -log (1 - D(code))
        return real + fake, {"real": real.detach(), "fake": fake.detach()}


@REGULARIZERS.register("factor_tc")
class FactorTC(DiscriminatorRegularizer):
    """FactorVAE's total correlation, gamma * D(z) per input, D(z) ~ log q(z) / prod_j q(z_j) learned by a discriminator
    between codes and dimension-wise permuted codes in its own optimizer group.
    Kim & Mnih 2018, Disentangling by factorising."""

    name = "factor_tc"
    requires = frozenset({"posterior"})
    examples = ({"hidden": [8]}, {"hidden": [8, 8], "gamma": 2.0, "disc_steps": 2})

    def __init__(self, *, latent_dim: int | None = None, gamma: float = 10.0, hidden: list[int] = (256, 256, 256),
                 disc_lr: float = 1e-4, disc_steps: int = 1) -> None:
        super().__init__(weight=gamma, latent_dim=latent_dim, hidden=hidden, disc_lr=disc_lr, disc_steps=disc_steps)
        self.gamma = float(gamma)

    def forward(self, ctx: RegContext) -> torch.Tensor:
        z = ctx.code.z  # (B, D): samples of q(z | x) in training, the means in eval
        rows = code_rows(z)
        self.remember(rows)
        return per_input(self.discriminator(rows), z.shape[0])  # log q(z) / prod q(z_j) estimate: (B,)

    def discriminator_loss(self, rows):
        if rows.shape[0] < 2:
            raise ConfigError("factor_tc needs at least 2 codes per batch to permute; use a larger batch_size.")
        real = F.softplus(-self.discriminator(rows)).mean()  # joint q(z), label 1
        fake = F.softplus(self.discriminator(permute_dims(rows))).mean()  # prod_j q(z_j), label 0
        return real + fake, {"real": real.detach(), "fake": fake.detach()}


def total_correlation_gaussian(cov: torch.Tensor) -> torch.Tensor:
    """Closed-form TC of N(0, cov): sum_j 0.5 log cov_jj - 0.5 log det cov (nats)."""
    return 0.5 * torch.log(torch.diagonal(cov)).sum() - 0.5 * torch.logdet(cov)
