"""The IWAE bound of a model trained with a learned prior (VampPrior) uses that prior's log density."""

from __future__ import annotations

import math

import torch

import aekit
from aekit.metrics import iwae_bound


def _vamp_model():
    return aekit.build("vampprior", input_shape=(6,), backbone={"mlp": {"hidden": [5]}}, latent_dim=2,
                       regularizers={"kl_vamp": {"components": 3}}, seed=0)


def test_iwae_k1_of_a_vampprior_model_is_the_one_sample_elbo_under_the_mixture_prior():
    model = _vamp_model()
    x = torch.rand(4, 6)
    got = iwae_bound(model, x, k=1, seed=3, return_per_sample=True)  # (4,)
    with torch.no_grad():
        code, skips = model.encode_code(x)
        post = code.posterior
        eps = torch.randn((1, *post.mu.shape), generator=torch.Generator().manual_seed(3))[0]  # the bound's draw
        z = post.mu + post.std * eps  # (4, 2)
        log_px_z = -model.likelihood.nll(x, model.decoder(z, skips))
        # the mixture prior by hand: 1/K sum_k N(z; mu_k, diag sigma_k^2) over the pseudo-inputs' posteriors
        mu_k, logvar_k = model.regularizers["kl_vamp"].components_posterior(model)  # (3, 2)
        comp = torch.stack([torch.distributions.Normal(mu_k[j], torch.exp(0.5 * logvar_k[j])).log_prob(z).sum(-1)
                            for j in range(3)])  # (3, 4)
        log_pz = torch.logsumexp(comp, dim=0) - math.log(3)
        want = log_px_z + log_pz - post.log_prob(z)
    assert torch.allclose(got.float(), want, atol=1e-4)
    standard = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(-1)
    assert not torch.allclose(log_pz, standard, atol=1e-3)  # the case separates the two priors
