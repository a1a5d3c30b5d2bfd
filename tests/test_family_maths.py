"""Analytic tests of the maths behind the rest of the family (MMD, TC decomposition, DIP-VAE, IWAE, VQ, FSQ, top-k)."""

from __future__ import annotations

import math

import pytest
import torch

from aekit.axes.divergences import (dip_covariance, dip_penalty, gaussian_log_density, imq_kernel, iwae_objective,
                                    mmd_unbiased, rbf_kernel, squared_distances, tc_decomposition)
from aekit.axes.quantizers import (FiniteScalarQuantizer, VectorQuantizer, batch_topk_mask, perplexity,
                                   topk_mask)
from aekit.errors import ConfigError


# ---------------------------------------------------------------------- MMD
def rbf_mmd2_gaussians(mu1, s1, mu2, s2, ell):
    """Closed form of the population MMD^2 with k = exp(-|x-y|^2 / (2 l^2)) between N(mu1, s1^2 I), N(mu2, s2^2 I).

    E k(X, Y) for X ~ N(a, A I), Y ~ N(b, B I) in D dims: (l^2 / (l^2 + A + B))^(D/2) exp(-|a-b|^2 / (2 (l^2 + A + B)))."""
    d = mu1.numel()

    def ek(a, va, b, vb):
        t = ell**2 + va + vb
        return (ell**2 / t) ** (d / 2) * math.exp(-float((a - b).pow(2).sum()) / (2 * t))

    return ek(mu1, s1**2, mu1, s1**2) + ek(mu2, s2**2, mu2, s2**2) - 2 * ek(mu1, s1**2, mu2, s2**2)


def test_mmd_matches_the_closed_form_for_two_gaussians():
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, -0.5], dtype=torch.float64)
    est = []
    for _ in range(40):
        x = torch.randn(400, 2, generator=g, dtype=torch.float64)
        y = mu2 + 0.7 * torch.randn(400, 2, generator=g, dtype=torch.float64)
        est.append(float(mmd_unbiased(x, y, kernel="rbf", scale=1.3)))
    want = rbf_mmd2_gaussians(mu1, 1.0, mu2, 0.7, 1.3)
    mean, se = sum(est) / len(est), torch.tensor(est).std().item() / math.sqrt(len(est))
    assert abs(mean - want) < 4 * se + 1e-4, (mean, want, se)


def test_mmd_is_unbiased_at_zero_for_one_distribution():
    g = torch.Generator().manual_seed(1)
    est = [float(mmd_unbiased(torch.randn(50, 3, generator=g, dtype=torch.float64),
                              torch.randn(60, 3, generator=g, dtype=torch.float64), kernel="imq"))
           for _ in range(300)]
    mean, se = sum(est) / len(est), torch.tensor(est).std().item() / math.sqrt(len(est))
    assert abs(mean) < 4 * se
    assert min(est) < 0  # an unbiased estimator of 0 must go negative sometimes


def test_kernels_by_hand():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    assert squared_distances(a, b).item() == pytest.approx(25.0)
    assert rbf_kernel(a, b, scale=5.0).item() == pytest.approx(math.exp(-0.5))
    assert imq_kernel(a, b, scale=1.0).item() == pytest.approx(4.0 / 29.0)  # C = 2 * D * s^2 = 4


# ---------------------------------------------------------------------- TC decomposition
def test_tc_terms_sum_to_the_sampled_kl_exactly():
    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(16, 4, generator=g, dtype=torch.float64), 0.3 * torch.randn(16, 4, generator=g,
                                                                                          dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(16, 4, generator=g, dtype=torch.float64)
    t = tc_decomposition(z, mu, logvar, dataset_size=1000)
    log_q = gaussian_log_density(z, mu, logvar).sum(1)
    log_p = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    assert torch.allclose(t["mi"] + t["tc"] + t["dwkl"], log_q - log_p)


def test_tc_of_one_factorised_posterior_is_zero_and_its_kl_the_closed_form():
    """With a single data point (N = B = 1) q(z) = q(z|x) factorises: TC = MI = 0 and dwkl = log q - log p;
    averaged over samples that is the closed-form KL."""
    mu, logvar = torch.tensor([[0.5, -1.0, 0.2]], dtype=torch.float64), torch.tensor([[-0.4, 0.3, 0.0]],
                                                                                      dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    dw = []
    for _ in range(4000):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(1, 3, generator=g, dtype=torch.float64)
        t = tc_decomposition(z, mu, logvar, dataset_size=1)
        assert abs(float(t["tc"])) < 1e-9 and abs(float(t["mi"])) < 1e-9
        dw.append(float(t["dwkl"]))
    kl = float(0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum())
    assert sum(dw) / len(dw) == pytest.approx(kl, abs=0.05)


# ---------------------------------------------------------------------- DIP-VAE
def test_dip_covariance_and_penalty_by_hand():
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    logvar = torch.log(torch.tensor([[0.5, 1.0]] * 4))
    cov1 = dip_covariance(mu, logvar, kind="i")
    assert torch.allclose(cov1, torch.tensor([[0.5, 0.0], [0.0, 2.0]]))
    cov2 = dip_covariance(mu, logvar, kind="ii")
    assert torch.allclose(cov2, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    assert float(dip_penalty(cov2, lambda_od=10.0, lambda_d=2.0)) == pytest.approx(2.0 * 4.0)
    off = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    assert float(dip_penalty(off, lambda_od=3.0, lambda_d=1.0)) == pytest.approx(3.0 * 0.5)


# ---------------------------------------------------------------------- IWAE
def test_iwae_with_one_sample_is_the_elbo_and_grows_with_k():
    log_w = torch.tensor([[-3.0, -1.0]])
    assert torch.equal(iwae_objective(log_w), log_w[0])
    g = torch.Generator().manual_seed(4)
    lw = torch.randn(50, 1000, generator=g, dtype=torch.float64)
    # Jensen: log mean exp >= mean, and the bound is monotone in K in expectation
    assert float(iwae_objective(lw).mean()) > float(lw.mean())
    assert float(iwae_objective(lw[:5]).mean()) < float(iwae_objective(lw).mean())
    assert float(iwae_objective(torch.zeros(7, 3)).abs().max()) < 1e-6  # equal weights 1: log 1 = 0


# ---------------------------------------------------------------------- VQ
def test_vq_picks_the_nearest_entry_and_passes_gradients_straight_through():
    vq = VectorQuantizer(num_codes=3, dim=2, ema_decay=None, beta=0.25)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]))
    z = torch.tensor([[0.9, 0.8], [-1.5, 0.1], [0.1, -0.1]], requires_grad=True)
    zq, idx, losses = vq.eval()(z)
    assert idx.tolist() == [1, 2, 0]
    assert torch.equal(zq.detach(), vq.codebook[idx].detach())
    (zq * torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).sum().backward()
    assert torch.equal(z.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))  # straight through
    want = 0.25 * (z.detach() - vq.codebook[idx].detach()).pow(2).sum(1)
    assert torch.allclose(losses["commitment"], want)
    assert torch.allclose(losses["codebook"], want / 0.25)


def test_vq_ema_with_no_decay_is_the_k_means_centroid_step():
    vq = VectorQuantizer(num_codes=3, dim=2, ema_decay=0.0, eps=0.0).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [4.0, 4.0], [10.0, 10.0]]))
    z = torch.tensor([[0.5, -0.5], [1.0, 0.5], [3.0, 5.0], [5.0, 4.0], [4.5, 3.0]])
    _, idx, _ = vq(z)
    assert idx.tolist() == [0, 0, 1, 1, 1]
    assert torch.allclose(vq.codebook[0], z[:2].mean(0))
    assert torch.allclose(vq.codebook[1], z[2:].mean(0))
    assert torch.equal(vq.codebook[2], torch.tensor([10.0, 10.0]))  # unused: stays


def test_vq_restarts_entries_idle_for_too_long():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=4, dim=2, ema_decay=0.9, restart_after=2).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]))
        vq.ema_sum.copy_(vq.codebook)
    z = torch.randn(8, 2) * 0.1
    vq(z)
    assert vq.idle_steps.tolist() == [0, 1, 1, 1]
    vq(z)  # second idle step: entries 1-3 restart at encoder outputs
    assert vq.codebook[1:].abs().max() < 1.0 and vq.idle_steps.tolist() == [0, 0, 0, 0]


def test_perplexity_bounds():
    assert float(perplexity(torch.zeros(10, dtype=torch.int64), 8)) == pytest.approx(1.0)
    assert float(perplexity(torch.arange(8).repeat(3), 8)) == pytest.approx(8.0)


# ---------------------------------------------------------------------- FSQ
@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [3, 4], [2, 2, 2]])
def test_fsq_codebook_is_the_product_of_levels_and_indices_invert(levels):
    fsq = FiniteScalarQuantizer(levels=levels)
    assert fsq.codebook_size == math.prod(levels)
    every = fsq.codes(torch.arange(math.prod(levels)))  # (prod L, d)
    assert every.unique(dim=0).shape[0] == math.prod(levels)
    z = torch.rand(20000, len(levels)) * 6 - 3
    q, idx = fsq(z)
    assert 0 <= int(idx.min()) and int(idx.max()) < math.prod(levels)
    for d, lv in enumerate(levels):
        assert q[:, d].unique().numel() == lv
    assert torch.allclose(fsq.codes(idx), q)


def test_fsq_rounds_with_a_straight_through_gradient():
    fsq = FiniteScalarQuantizer(levels=[5])
    z = torch.tensor([[0.3]], requires_grad=True)
    q, _ = fsq(z)
    q.sum().backward()
    b = fsq.bound(torch.tensor([[0.3]]))
    half_l = 4 * 1.001 / 2
    want = half_l * (1 - torch.tanh(torch.tensor(0.3)) ** 2) / 2  # d bound / dz, then / half_width (2)
    assert float(z.grad) == pytest.approx(float(want), rel=1e-5)
    assert float(q.detach()) == pytest.approx(float(torch.round(b)) / 2)


def test_fsq_refuses_bad_levels():
    with pytest.raises(ConfigError, match="levels"):
        FiniteScalarQuantizer(levels=[1, 5])


# ---------------------------------------------------------------------- top-k
def test_topk_keeps_exactly_k_per_row_and_batch_topk_b_times_k():
    a = torch.randn(6, 20)
    m = topk_mask(a, 3)
    assert m.sum(1).tolist() == [3] * 6
    assert torch.equal(a[m].reshape(6, 3).sort(1).values, a.topk(3, 1).values.sort(1).values)
    mb = batch_topk_mask(a, 3)
    assert int(mb.sum()) == 18
    assert float(a[mb].min()) >= float(a[~mb].max())
