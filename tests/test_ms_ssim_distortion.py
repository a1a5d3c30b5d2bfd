"""D = H * W * (1 - MS-SSIM) as a training distortion (axes/distortions.py, likelihood 'ms_ssim'): its value, its
gradient, a reference implementation's number, and the loss R + lambda * D of a rate-trained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.metrics import ms_ssim
from aekit.metrics.ms_ssim import ms_ssim_per_image
from aekit.registry import LIKELIHOODS


def _pair(h=192, w=192, seed=20):
    """A smooth image with texture and a noisy copy, (1, 1, h, w) float64 in [0, 1] (numpy's PCG64: the same numbers
    in every numpy version, so a number computed elsewhere applies)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 192.0
    a = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.1 * rng.random((h, w))
    b = np.clip(a + 0.08 * rng.standard_normal((h, w)), 0, 1)
    return torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]


def test_identical_images_give_zero_distortion_and_zero_gradient():
    d = LIKELIHOODS.create("ms_ssim")
    x = torch.rand(3, 1, 40, 36, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_hat = x.clone().requires_grad_(True)
    value = d.nll(x, x_hat)  # (3,)
    assert value.shape == (3,) and torch.allclose(value, torch.zeros(3, dtype=torch.float64), atol=1e-9)
    value.sum().backward()  # MS-SSIM is largest (1) at x_hat = x: a stationary point
    assert x_hat.grad.abs().max() < 1e-9
    assert d.mean(x_hat) is x_hat


def test_value_is_pixels_times_one_minus_the_metric():
    x, y = _pair(64, 80)
    d = LIKELIHOODS.create("ms_ssim").nll(x, y)
    assert float(d) == pytest.approx(64 * 80 * (1 - ms_ssim(x, y)), rel=1e-9)
    x3 = torch.rand(2, 3, 30, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y3 = (x3 + 0.2).clamp(0, 1)
    per = LIKELIHOODS.create({"ms_ssim": {"scales": 1}}).nll(x3, y3)
    assert torch.allclose(per, 900 * (1 - ms_ssim(x3, y3, scales=1, reduction="none")), rtol=1e-9)


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 22, 23, generator=g, dtype=torch.float64)  # 2 scales, an odd column dropped by the pooling
    y = (x + 0.15 * torch.randn(1, 1, 22, 23, generator=g, dtype=torch.float64)).clamp(0.05, 0.95)
    y.requires_grad_(True)
    d = LIKELIHOODS.create({"ms_ssim": {"scales": 2}})
    assert torch.autograd.gradcheck(lambda t: d.nll(x, t), (y,), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_agrees_with_pytorch_msssim():
    """pytorch-msssim 1.0.0, ms_ssim(X, Y, data_range=1.0, size_average=False) on _pair() in float64, run once in the
    benchmark's side environment (/tmp/venv-compressai): 0.7638032322759852. It builds its Gaussian window in float32,
    hence 5e-6 and not 1e-12; aekit's number with a float64 window is 0.7638000781418008."""
    x, y = _pair()
    assert ms_ssim(x, y) == pytest.approx(0.7638032322759852, abs=5e-6)
    assert ms_ssim(x, y) == pytest.approx(0.7638000781418008, abs=1e-12)
    assert float(ms_ssim_per_image(x.float(), y.float(), dtype=torch.float32)[0]) == pytest.approx(0.7638, abs=1e-4)


def test_a_clipped_term_keeps_the_exact_value_and_a_gradient_that_lifts_it():
    """A negative-mean output: SSIM's luminance term < 0 is clipped, MS-SSIM is 0 (D = H * W), and the gradient
    still raises the output's mean (the metric alone would give none)."""
    x = torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64) + 0.1 * torch.rand(1, 1, 16, 16, dtype=torch.float64)
    y = torch.full((1, 1, 16, 16), -0.3, dtype=torch.float64, requires_grad=True)
    d = LIKELIHOODS.create("ms_ssim").nll(x, y)
    assert float(d.detach()) == pytest.approx(256.0, abs=1e-12) and float(ms_ssim(x, y.detach())) == 0.0
    d.sum().backward()
    assert torch.isfinite(y.grad).all() and float(y.grad.sum()) < 0  # descending raises y


def test_constant_images_hand_computed():
    # constant images: every cs term is 1, only the coarsest luminance (2ab + C1) / (a^2 + b^2 + C1) remains
    a, b, c1 = 0.2, 0.7, 0.01**2
    x, y = torch.full((1, 1, 50, 50), a, dtype=torch.float64), torch.full((1, 1, 50, 50), b, dtype=torch.float64)  # 3 scales: weights 0.0448, 0.2856, 0.3001
    lum = (2 * a * b + c1) / (a * a + b * b + c1)
    w3 = 0.3001 / (0.0448 + 0.2856 + 0.3001)
    assert float(LIKELIHOODS.create("ms_ssim").nll(x, y)) == pytest.approx(2500 * (1 - lum**w3), rel=1e-5)


def test_rate_trained_model_loss_is_rate_plus_lambda_distortion():
    model = aekit.build(input_shape=(1, 24, 24), latent_dim=4, seed=0, bottleneck={"entropy": {"lmbda": 8.0}},
                        likelihood="ms_ssim",
                        backbone={"conv": {"channels": [4, 4], "activation": "gdn", "fully_convolutional": True}})
    x = torch.rand(4, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    out = model(x)
    assert out.weights == {"nll": 8.0, "rate": 1.0}
    d = 576 * (1 - ms_ssim_per_image(x, out.x_hat, dtype=torch.float32))
    assert float(out.terms["nll"].detach()) == pytest.approx(float(d.mean().detach()), rel=1e-5)
    assert float(out.loss) == pytest.approx(float(out.terms["rate"] + 8.0 * out.terms["nll"]), rel=1e-6)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_training_lowers_the_distortion():
    torch.manual_seed(0)
    model = aekit.build(input_shape=(1, 16, 16), latent_dim=8, seed=0, likelihood="ms_ssim",
                        backbone={"conv": {"channels": [8]}})
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    x = torch.stack([(0.5 + 0.4 * torch.sin(6 * (xx * c + yy * (1 - c)))) for c in torch.linspace(0, 1, 16)])[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model(x).terms["nll"])
    for _ in range(60):
        opt.zero_grad()
        model(x).loss.backward()
        opt.step()
    assert float(model(x).terms["nll"].detach()) < 0.5 * first


def test_bad_parameters_and_inputs_are_one_line_errors():
    with pytest.raises(ConfigError, match="data_range"):
        LIKELIHOODS.create({"ms_ssim": {"data_range": 0.0}})
    with pytest.raises(ConfigError, match="scales"):
        LIKELIHOODS.create({"ms_ssim": {"scales": 6}})
    with pytest.raises(ConfigError, match="image inputs"):
        aekit.build(input_shape=(10,), latent_dim=3, likelihood="ms_ssim")
    with pytest.raises(ConfigError, match="scales=5 halves"):
        LIKELIHOODS.create({"ms_ssim": {"scales": 5}}).nll(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
