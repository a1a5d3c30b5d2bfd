"""Metrics against references: SSIM vs scikit-image, the IWAE bound vs the ELBO and an exact
log-likelihood, active units, probes; and the evaluate flags that expose them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit.metrics import (active_units, elbo_terms, iwae_bound, knn_accuracy, linear_probe_accuracy,
                           reconstruction_metrics, ssim)
from cli_helpers import cli


def test_ssim_matches_scikit_image_on_28x28():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ours = ssim(x, y, reduction="none")
    ref = [skimage_metrics.structural_similarity(x[i, 0].numpy(), y[i, 0].numpy(), data_range=1.0,
                                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
           for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, y) < 0.99


def test_reconstruction_metrics_by_hand():
    x = torch.tensor([[0.0, 1.0, 0.5, 0.5]])
    x_hat = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    m = reconstruction_metrics(x, x_hat)
    sq = (0.01 + 0.01 + 0.0 + 0.04)
    assert m["sse_per_image"] == pytest.approx(sq)
    assert m["mse_per_pixel"] == pytest.approx(sq / 4)
    assert m["psnr"] == pytest.approx(10 * math.log10(1 / (sq / 4)))
    p = x_hat.clamp(1e-7, 1 - 1e-7)
    bce = float(-(x * p.log() + (1 - x) * (1 - p).log()).sum())
    assert m["bce_per_image"] == pytest.approx(bce, rel=1e-6)


def test_iwae_bound_converges_to_the_exact_log_likelihood():
    # a VAE with a linear Gaussian decoder: x = W z + b + noise, so log p(x) = log N(x; b, W W^T + s^2 I)
    torch.manual_seed(0)
    model = aekit.build(input_shape=(3,), hidden=[], activation="identity", bottleneck="gaussian", latent_dim=1,
                        regularizers={"kl_prior": {}}, likelihood="gaussian", sigma=0.5).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    w = model.decoder.net[-1].weight.detach()  # (3, 1)
    b = model.decoder.net[-1].bias.detach()
    cov = w @ w.T + 0.25 * torch.eye(3, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x).mean().item()
    elbo = elbo_terms(model, x, samples=200)["elbo"]
    k1 = iwae_bound(model, x, k=1, seed=1)
    k5000 = iwae_bound(model, x, k=5000, seed=1)
    assert elbo <= exact + 1e-6  # a lower bound
    assert k5000 <= exact + 0.05  # still a (stochastic) lower bound
    assert k5000 > elbo  # tighter than the ELBO
    assert abs(k5000 - exact) < 0.1 * abs(exact - elbo) + 0.05
    assert k1 == pytest.approx(elbo, abs=3 * abs(elbo) / math.sqrt(5) + 1.0)  # K = 1 is a one-sample ELBO


def test_active_units_counts_varying_means():
    model = aekit.build("vae", input_shape=(6,), hidden=[], latent_dim=3, seed=0)
    with torch.no_grad():  # unit 0 follows the input, units 1-2 are constant
        model.bottleneck.mu.weight.zero_()
        model.bottleneck.mu.weight[0, 0] = 1.0
    x = torch.rand(200, 6)
    out = active_units(model, x)
    assert out["active_units"] == 1
    assert out["unit_variance"][0] == pytest.approx(float(x[:, 0].var(unbiased=False)), rel=1e-5)


def test_probes_separate_separable_codes():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    z = torch.randn(200, 4, generator=g) + 4.0 * y[:, None]  # two well-separated clusters
    assert linear_probe_accuracy(z[:100], y[:100], z[100:], y[100:]) > 0.95
    assert knn_accuracy(z[:100], y[:100], z[100:], y[100:]) > 0.95
    noise = torch.randn(200, 4, generator=g)
    assert linear_probe_accuracy(noise[:100], y[:100], noise[100:], y[100:]) < 0.8


def test_evaluate_iwae_and_probe_flags(tmp_path, no_fsync):
    run = tmp_path / "vae"
    code, _, err = cli("train", "vae", "--data", "digits", "--max-samples", "200", "--epochs", "2", "--hidden", "16",
                       "--latent-dim", "3", "--quiet", "--out", run)
    assert code == 0, err
    code, out, err = cli("evaluate", run, "--json", "--iwae-k", "20", "--probe")
    assert code == 0, err
    result = json.loads(out)
    assert {"nll_iwae", "active_units", "probe_accuracy", "knn_accuracy", "ssim"} <= set(result)
    assert result["nll_iwae"] <= -result["elbo"] + 1.0  # the IWAE bound is at least as tight (up to noise)
    assert 0 <= result["active_units"] <= 3
    assert 0.0 <= result["probe_accuracy"] <= 1.0
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "200", "--epochs", "1", "--hidden", "16",
                       "--latent-dim", "3", "--quiet", "--out", tmp_path / "ae")
    code, _, err = cli("evaluate", tmp_path / "ae", "--iwae-k", "10")
    assert code == 2 and "--iwae-k needs a VAE" in err


def _small_trained_vae():
    from aekit.data import load_data

    ds = load_data("digits", seed=0)
    model = aekit.build("vae", input_shape=(1, 8, 8), hidden=[32], latent_dim=4, seed=0)
    aekit.Trainer(model, aekit.TrainConfig(epochs=5, seed=0, progress=False)).fit(ds.train, None)
    return model.eval(), ds.test[:200]


def test_iwae_at_k1_is_a_single_sample_elbo():
    model, x = _small_trained_vae()
    per_image = iwae_bound(model, x, k=1, seed=3, return_per_sample=True)  # (N,)
    # the same draw by hand: log p(x|z) + log p(z) - log q(z|x) with z = mu + std * eps
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        code, skips = model.encode_code(x)
        post = code.posterior
        eps = torch.randn((1, *post.mu.shape), generator=gen)[0]
        z = post.mu + post.std * eps
        normal = torch.distributions.Normal(0.0, 1.0)
        by_hand = (-model.likelihood.nll(x, model.decoder(z, skips)) + normal.log_prob(z).sum(-1)
                   - torch.distributions.Normal(post.mu, post.std).log_prob(z).sum(-1))
    np.testing.assert_allclose(per_image.numpy(), by_hand.double().numpy(), rtol=1e-5, atol=1e-4)
    # and in expectation it is the ELBO (closed-form KL): average many K = 1 draws per image
    draws = torch.stack([iwae_bound(model, x, k=1, seed=s, return_per_sample=True) for s in range(200)])  # (200, N)
    elbo = elbo_terms(model, x, samples=200, seed=7)["elbo"]
    stderr = float(draws.mean(0).std() / math.sqrt(x.shape[0])) + float(draws.std(0).mean() / math.sqrt(200 * x.shape[0]))
    assert float(draws.mean()) == pytest.approx(elbo, abs=4 * stderr + 0.05)


def test_iwae_bound_increases_with_k():
    model, x = _small_trained_vae()
    bounds = [iwae_bound(model, x, k=k, seed=0) for k in (1, 10, 100, 1000)]
    assert all(b < c for b, c in zip(bounds, bounds[1:])), bounds
    assert bounds[-1] - bounds[0] > 0.1  # a real tightening, not noise
