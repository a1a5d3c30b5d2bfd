"""Analytic checks: every closed form in the model core against an independent computation
(torch.distributions, autograd Jacobians, Monte Carlo with its standard error, hand formulas).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.testing import assert_close

import aekit
from aekit.axes.bottlenecks import Code, DiagonalGaussian, GaussianBottleneck
from aekit.axes.corruption import corruption_spec
from aekit.registry import CORRUPTIONS
from aekit.axes.likelihoods import BernoulliLikelihood, GaussianLikelihood
from aekit.axes.regularizers import (
    KLPrior,
    KLSparsity,
    RegContext,
    closed_form_sigmoid_penalty,
    jacobian_frobenius_exact,
    jacobian_frobenius_hutchinson,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def autograd_frobenius_sq(f, x: torch.Tensor) -> torch.Tensor:
    """sum_ij (d f(x_b)_i / d x_b,j)^2 for every row b, one full Jacobian per sample; -> (B,)."""
    out = []
    for b in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: f(v.unsqueeze(0))[0], x[b].detach())
        out.append(jac.pow(2).sum())
    return torch.stack(out)


# ----------------------------------------------------------------------------- Gaussian posterior
def test_gaussian_kl_closed_form_matches_monte_carlo():
    g = gen(1)
    mu = torch.randn(3, 2, generator=g, dtype=torch.float64)
    logvar = 0.8 * torch.randn(3, 2, generator=g, dtype=torch.float64)
    q = DiagonalGaussian(mu, logvar)
    n = 200_000
    eps = torch.randn(n, 3, 2, generator=g, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps  # (N, B, D)
    log_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_p = Normal(torch.zeros(()), torch.ones(())).log_prob(z).sum(-1)
    diff = log_q - log_p  # (N, B)
    mc, se = diff.mean(0), diff.std(0) / math.sqrt(n)
    kl = q.kl()
    assert kl.shape == (3,)
    assert (kl - mc).abs().max() < 5 * se.max(), (kl, mc, se)
    # per unit: the sum over units is the total and each unit matches the exact KL of two Normals
    exact = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    assert_close(q.kl_per_unit(), exact)
    assert_close(q.kl_per_unit().sum(1), kl)
    assert (q.kl_per_unit() >= 0).all()


def test_gaussian_kl_is_zero_at_the_prior():
    q = DiagonalGaussian(torch.zeros(2, 4), torch.zeros(2, 4))
    assert torch.equal(q.kl(), torch.zeros(2))


def test_diagonal_gaussian_log_prob_matches_torch_normal():
    g = gen(2)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64)
    q = DiagonalGaussian(mu, logvar)
    ref = Normal(mu, torch.exp(0.5 * logvar))
    z = torch.randn(4, 3, generator=g, dtype=torch.float64)
    assert_close(q.log_prob(z), ref.log_prob(z).sum(-1))
    zk = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)  # (K, B, D) -> (K, B)
    assert q.log_prob(zk).shape == (5, 4)
    assert_close(q.log_prob(zk), ref.log_prob(zk).sum(-1))
    assert q.rsample(7).shape == (7, 4, 3)


def test_reparameterised_samples_have_the_posterior_moments():
    bn = GaussianBottleneck(in_features=4, latent_dim=3)
    n = 100_000
    h = torch.randn(1, 4, generator=gen(3)).expand(n, 4)
    bn.train()
    code = bn(h)
    mu, std = code.posterior.mu[0].detach(), code.posterior.std[0].detach()
    z = code.z.detach()
    assert_close(code.mean, code.posterior.mu)
    assert ((z.mean(0) - mu).abs() < 5 * std / math.sqrt(n)).all(), (z.mean(0), mu)
    assert ((z.std(0) / std - 1).abs() < 5 / math.sqrt(2 * n)).all(), (z.std(0), std)
    # eval: the code is the mean, deterministically
    bn.eval()
    assert torch.equal(bn(h[:2]).z, bn(h[:2]).posterior.mu)


def test_reparameterisation_gradient_reaches_logvar():
    mu = torch.randn(5, 3, generator=gen(4)).requires_grad_(True)
    logvar = torch.randn(5, 3, generator=gen(5)).requires_grad_(True)
    z = DiagonalGaussian(mu, logvar).sample(generator=gen(6))
    z.sum().backward()
    # z = mu + exp(logvar / 2) eps: dz/dmu = 1, dz/dlogvar = exp(logvar / 2) eps / 2 = (z - mu) / 2
    assert_close(mu.grad, torch.ones_like(mu))
    assert_close(logvar.grad, 0.5 * (z - mu).detach())
    assert logvar.grad.abs().sum() > 0
    # and through the bottleneck module in training mode
    bn = GaussianBottleneck(in_features=4, latent_dim=3).train()
    bn(torch.randn(8, 4)).z.pow(2).sum().backward()
    assert bn.logvar.weight.grad is not None and bn.logvar.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- likelihoods
def test_bernoulli_nll_matches_bce_and_hand_formula():
    g = gen(7)
    logits = 2 * torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    x = torch.rand(4, 3, 5, generator=g, dtype=torch.float64)  # grey levels in [0, 1]
    lik = BernoulliLikelihood()
    nll = lik.nll(x, logits)
    assert nll.shape == (4,)
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy(p, x, reduction="none").flatten(1).sum(1)
    assert_close(nll, bce)
    hand = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)
    assert_close(nll, hand)
    assert_close(lik.mean(logits), p)


def test_bernoulli_nll_is_stable_for_large_logits():
    lik = BernoulliLikelihood()
    logits = torch.tensor([[60.0, -60.0]])
    assert_close(lik.nll(torch.tensor([[1.0, 0.0]]), logits), torch.zeros(1), atol=1e-12, rtol=0)
    assert_close(lik.nll(torch.tensor([[0.0, 1.0]]), logits), torch.tensor([120.0]))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_plain_model_loss_is_the_hand_computed_mean_nll(likelihood):
    """A plain autoencoder's fused loss (one summed reduction) equals the per-sample NLL by hand, averaged."""
    import aekit

    model = aekit.build("ae", input_shape=(6,), hidden=[5], latent_dim=2, backbone="mlp", likelihood=likelihood,
                        seed=0).double()
    x = torch.rand(4, 6, generator=gen(11), dtype=torch.float64)
    out = model(x)
    logits = out.params  # (4, 6): logits (bernoulli) or means (gaussian, sigma 1)
    if likelihood == "bernoulli":
        p = torch.sigmoid(logits)
        hand = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1)  # (4,)
        assert_close(out.x_hat, p)
    else:
        hand = 0.5 * (x - logits).pow(2).sum(1) + 3 * math.log(2 * math.pi)
        assert_close(out.x_hat, logits)
    assert_close(out.loss, hand.mean())
    assert_close(out.nll, hand)  # the per-sample NLL, computed when read
    out.loss.backward()  # the fused loss has the per-sample mean's gradient
    grads = [q.grad.clone() for q in model.parameters()]
    model.zero_grad()
    model.likelihood.nll(x, model(x).params).mean().backward()
    for g1, q in zip(grads, model.parameters()):
        assert_close(g1, q.grad)


def test_gaussian_nll_sigma_one_is_half_sse_plus_constant():
    g = gen(8)
    x = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    mu = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    d = 8
    nll = GaussianLikelihood(sigma=1.0).nll(x, mu)
    sse = (x - mu).pow(2).flatten(1).sum(1)
    assert_close(nll, 0.5 * sse + 0.5 * d * math.log(2 * math.pi))
    # a perfect reconstruction of 784 pixels costs only the constant, 392 log(2 pi) = 720.448 nats
    zero = GaussianLikelihood(sigma=1.0).nll(torch.zeros(1, 784), torch.zeros(1, 784))
    assert abs(float(zero) - 0.5 * 784 * math.log(2 * math.pi)) < 1e-3


@pytest.mark.parametrize("sigma", [0.3, 2.5])
def test_gaussian_nll_general_sigma_matches_torch_normal(sigma):
    g = gen(9)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    mu = torch.randn(3, 6, generator=g, dtype=torch.float64)
    lik = GaussianLikelihood(sigma=sigma).double()
    assert_close(lik.nll(x, mu), -Normal(mu, sigma).log_prob(x).sum(1))
    assert abs(lik.sigma - sigma) < 1e-6
    assert "log_sigma" not in dict(lik.named_parameters())  # fixed: a buffer, not trained


def test_learned_sigma_is_a_parameter_with_the_right_gradient():
    g = gen(10)
    x = torch.randn(5, 7, generator=g)
    mu = torch.randn(5, 7, generator=g)
    lik = GaussianLikelihood(sigma=0.5, learn_sigma=True)
    assert isinstance(lik.log_sigma, nn.Parameter)
    lik.nll(x, mu).sum().backward()
    # d nll_b / d log_sigma = -SSE_b exp(-2 log_sigma) + D
    sse = (x - mu).pow(2).sum(1)
    expected = (-sse / 0.25 + 7).sum()
    assert_close(lik.log_sigma.grad, expected)
    # inside a model it is trained with everything else
    model = aekit.build("ae", input_shape=(10,), hidden=[8], latent_dim=3, learn_sigma=True, seed=0)
    assert "likelihood.log_sigma" in dict(model.named_parameters())
    model(torch.rand(4, 10)).loss.backward()
    assert model.likelihood.log_sigma.grad is not None and float(model.likelihood.log_sigma.grad) != 0.0
    fixed = aekit.build("ae", input_shape=(10,), hidden=[8], latent_dim=3, seed=0)
    assert "likelihood.log_sigma" not in dict(fixed.named_parameters())


# ----------------------------------------------------------------------------- contractive
def _small_encoder() -> nn.Module:
    torch.manual_seed(11)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3), nn.Sigmoid())


def test_exact_jacobian_norm_matches_autograd_jacobian():
    enc = _small_encoder()
    x = torch.randn(4, 6, generator=gen(12)).requires_grad_(True)
    z = enc(x)
    got = jacobian_frobenius_exact(z, x, create_graph=False)
    assert got.shape == (4,)
    assert_close(got, autograd_frobenius_sq(enc, x))


def test_closed_form_sigmoid_penalty_matches_autograd_jacobian():
    torch.manual_seed(13)
    lin = nn.Linear(6, 3)
    x = torch.randn(5, 6, generator=gen(14))
    z = torch.sigmoid(lin(x))
    got = closed_form_sigmoid_penalty(z, lin.weight)
    assert_close(got, autograd_frobenius_sq(lambda v: torch.sigmoid(lin(v)), x))


def test_hutchinson_estimate_is_unbiased():
    enc = _small_encoder()
    base = torch.randn(3, 6, generator=gen(15))
    reps = 2000
    x = base.repeat_interleave(reps, dim=0).requires_grad_(True)  # rows are independent copies
    z = enc(x)
    est = jacobian_frobenius_hutchinson(z, x, n_samples=10, create_graph=False).view(3, reps).mean(1)
    exact = autograd_frobenius_sq(enc, base)
    # Var ||J^T v||^2 = 2 tr((J J^T)^2) for v ~ N(0, I): 5 standard errors of the mean
    se = []
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: enc(v.unsqueeze(0))[0], base[b])
        a = jac @ jac.T
        se.append(math.sqrt(2 * float(torch.trace(a @ a)) / (reps * 10)))
    se = torch.tensor(se)
    assert ((est - exact).abs() < 5 * se).all(), (est, exact, se)
    assert ((est - exact).abs() / exact < 0.05).all()


def test_contractive_term_of_cae_model_is_the_jacobian_norm_of_encode():
    model = aekit.build("cae", input_shape=(10,), latent_dim=4, seed=0)
    reg = model.regularizers["contractive"]
    assert reg.resolved_method(model.latent_dim) == "closed_form"
    x = torch.rand(6, 10, generator=gen(16))
    model.train()
    out = model(x)
    ref = autograd_frobenius_sq(model.encode, x)
    assert_close(out.terms["contractive"], ref.mean())
    assert_close(out.per_sample, out.nll + reg.weight * ref)


def test_contractive_auto_resolves_to_exact_for_deep_mlp_and_matches_autograd():
    model = aekit.build("cae", input_shape=(10,), latent_dim=4, hidden=[8], seed=0)
    reg = model.regularizers["contractive"]
    assert reg.resolved_method(model.latent_dim) == "exact"
    assert reg.resolved_method(33) == "hutchinson"  # large codes: the stochastic estimate
    x = torch.rand(6, 10, generator=gen(17))
    out = model(x)
    assert_close(out.terms["contractive"], autograd_frobenius_sq(model.encode, x).mean())
    # the penalty is trained: its gradient reaches the encoder through the double backward
    w = model.encoder.net[0].weight
    (g,) = torch.autograd.grad(out.terms["contractive"], w)
    assert g.abs().sum() > 0


# ----------------------------------------------------------------------------- sparsity
def _kl_sparsity_by_hand(codes: torch.Tensor, rho: float) -> float:
    total = 0.0
    for j in range(codes.shape[1]):
        rho_hat = float(codes[:, j].double().mean())
        total += rho * math.log(rho / rho_hat) + (1 - rho) * math.log((1 - rho) / (1 - rho_hat))
    return total


def test_kl_sparsity_matches_hand_computation():
    model = aekit.build("sparse_kl", input_shape=(10,), latent_dim=6, hidden=[8], seed=0)
    reg = model.regularizers["kl_sparsity"]
    x = torch.rand(12, 10, generator=gen(18))
    with torch.no_grad():
        out = model(x)
        codes = model.encode(x)
    assert ((codes > 0) & (codes < 1)).all()
    hand = _kl_sparsity_by_hand(codes, reg.rho)
    assert abs(float(out.terms["kl_sparsity"]) - hand) < 1e-4 * max(1.0, hand)
    assert_close(out.per_sample, out.nll + reg.weight * torch.full((12,), hand, dtype=torch.float32))


def test_kl_sparsity_is_zero_when_mean_activation_equals_rho():
    reg = KLSparsity(rho=0.2, weight=1.0)
    z = torch.tensor([[0.1, 0.3], [0.3, 0.1]])  # batch mean 0.2 in both units
    value = reg(RegContext(x_in=z, code=Code(z=z, mean=z), model=None))
    assert_close(value, torch.zeros(2), atol=1e-6, rtol=0)
    z2 = torch.tensor([[0.5, 0.3], [0.5, 0.1]])  # unit 0 at 0.5: a positive penalty
    value2 = reg(RegContext(x_in=z2, code=Code(z=z2, mean=z2), model=None))
    assert abs(float(value2[0]) - _kl_sparsity_by_hand(z2, 0.2)) < 1e-5 and float(value2[0]) > 0.1


@pytest.mark.parametrize("variant,overrides", [
    ("sparse_l1", {}),  # ReLU codes
    (None, {"regularizers": {"l1_activity": {"weight": 0.5}}}),  # linear codes: signs matter
])
def test_l1_activity_is_the_sum_of_absolute_codes(variant, overrides):
    model = aekit.build(variant, input_shape=(10,), latent_dim=6, hidden=[8], seed=0, **overrides)
    reg = model.regularizers["l1_activity"]
    x = torch.rand(5, 10, generator=gen(19))
    out = model(x)
    l1 = out.z.detach().abs().sum(1)
    if variant is None:
        assert (out.z < 0).any()
    assert_close(out.terms["l1_activity"], l1.mean())
    assert_close(out.per_sample, out.nll + reg.weight * l1)


# ----------------------------------------------------------------------------- kl prior
def test_kl_prior_weight_warms_up_linearly_over_training_forwards():
    beta, warmup = 2.0, 4
    model = aekit.build("vae", input_shape=(6,), latent_dim=2, hidden=[8], beta=beta,
                        regularizers={"kl_prior": {"warmup_steps": warmup}}, seed=0)
    x = torch.rand(4, 6, generator=gen(20))
    seen = []
    for k in range(7):
        if k == 2:  # eval forwards do not advance the schedule
            model.eval()
            model(x)
            model(x)
        model.train()
        out = model(x)
        seen.append(out.weights["kl_prior"])
        assert_close(out.loss, out.terms["nll"] + out.weights["kl_prior"] * out.terms["kl_prior"])
        assert_close(out.terms["kl_prior"], out.code.posterior.kl().mean())
    expected = [beta * min(1.0, k / warmup) for k in range(7)]
    assert seen == pytest.approx(expected)
    assert int(model.regularizers["kl_prior"].step) == 7


def test_free_bits_floor_units_with_low_batch_mean_kl():
    lam = 0.5
    reg = KLPrior(beta=1.0, free_bits=lam).train()
    # unit 0: KL 0.5 * 0.1^2 << lam in every sample; unit 1: KL 0.5 * mu^2 >> lam;
    # unit 2: batch-mean KL 0.64 > lam although the first sample's KL (0) is below it
    mu = torch.tensor([[0.1, 2.0, 0.0], [0.1, 3.0, 1.6]], requires_grad=True)
    logvar = torch.zeros(2, 3, requires_grad=True)
    code = Code(z=mu, mean=mu, posterior=DiagonalGaussian(mu, logvar))
    value = reg(RegContext(x_in=mu, code=code, model=None))
    kl = 0.5 * mu.detach() ** 2
    assert_close(value, lam + kl[:, 1] + kl[:, 2])
    value.sum().backward()
    assert torch.equal(mu.grad[:, 0], torch.zeros(2))
    assert torch.equal(logvar.grad[:, 0], torch.zeros(2))
    assert_close(mu.grad[:, 1:], mu.detach()[:, 1:])  # d/dmu 0.5 mu^2
    # without free bits the same posterior gives the plain closed-form KL
    plain = KLPrior(beta=1.0).train()(RegContext(x_in=mu, code=code, model=None))
    assert_close(plain, kl.sum(1))


# ----------------------------------------------------------------------------- corruption
N_CORRUPT = (200, 500)  # 100k entries


def _binomial_ok(frac: float, p: float, n: int) -> bool:
    return abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masking_zeroes_a_fraction_p(p):
    c = CORRUPTIONS.create(corruption_spec(f"masking:{p}")).train()
    x = torch.ones(N_CORRUPT)
    y = c(x)
    n = x.numel()
    frac = float((y == 0).float().mean())
    assert _binomial_ok(frac, p, n), frac
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    assert torch.equal(x, torch.ones(N_CORRUPT))  # the input is not modified in place


def test_salt_and_pepper_changes_a_fraction_p_half_to_each_extreme():
    p = 0.2
    c = CORRUPTIONS.create(corruption_spec(f"salt_and_pepper:{p}")).train()
    x = torch.full(N_CORRUPT, 0.5)
    y = c(x)
    n = x.numel()
    changed = y != 0.5
    frac = float(changed.float().mean())
    assert _binomial_ok(frac, p, n), frac
    assert set(torch.unique(y[changed]).tolist()) <= {0.0, 1.0}
    n_changed = int(changed.sum())
    assert _binomial_ok(float((y[changed] == 0).float().mean()), 0.5, n_changed)


def test_gaussian_corruption_adds_noise_of_the_given_std():
    std = 0.3
    c = CORRUPTIONS.create(corruption_spec(f"gaussian:{std}")).train()
    x = torch.rand(N_CORRUPT, generator=gen(21))
    noise = c(x) - x
    n = x.numel()
    assert abs(float(noise.mean())) < 5 * std / math.sqrt(n)
    assert abs(float(noise.std()) / std - 1) < 5 / math.sqrt(2 * n)


@pytest.mark.parametrize("kind,level", [("gaussian", 0.3), ("masking", 0.5), ("salt_and_pepper", 0.5)])
def test_corruption_is_identity_in_eval_mode(kind, level):
    c = CORRUPTIONS.create(corruption_spec(f"{kind}:{level}"))
    x = torch.rand(4, 9)
    assert not torch.equal(c.train()(x), x)
    assert torch.equal(c.eval()(x), x)


def test_model_scores_reconstruction_against_the_clean_input():
    model = aekit.build("ae", input_shape=(10,), hidden=[8], latent_dim=3, corruption="masking:1.0", seed=0)
    x = 0.5 + torch.rand(5, 10, generator=gen(22))
    model.train()
    out = model(x)
    # everything was masked: the decoder saw the code of an all-zero input...
    model.eval()
    from_zeros = model.decoder(model.encode(torch.zeros_like(x)), [])
    assert_close(out.params, from_zeros)
    # ...yet the target is the clean x
    assert_close(out.nll, model.likelihood.nll(x, out.params))
    assert not torch.allclose(out.nll, model.likelihood.nll(torch.zeros_like(x), out.params))


def test_sparse_kl_overcomplete_learns_sparse_codes():
    """sparse_kl with more code units than inputs (overcomplete): training drives the mean activation toward rho."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 16, generator=g)
    model = aekit.build("sparse_kl", input_shape=(16,), hidden=[32], latent_dim=48, seed=0)  # 48 > 16 inputs
    rho = model.regularizers["kl_sparsity"].rho
    before = float(model.encode(x).detach().mean())
    aekit.fit(model, x, epochs=60, batch_size=64, lr=1e-2, warmup_steps=0, progress=False, device="cpu")
    model.eval()
    after = float(model.encode(x).detach().mean())
    assert abs(after - rho) < 0.5 * abs(before - rho)  # pulled toward the target rate
    assert after < 0.2
    out = model(x)
    assert torch.isfinite(out.loss) and out.x_hat.shape == x.shape
