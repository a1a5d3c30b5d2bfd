"""MS-SSIM (metrics/ms_ssim.py) and the Bjontegaard delta rate (tasks/compression/rd.py) against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aekit.metrics import ms_ssim, ms_ssim_scales, ssim
from aekit.metrics.ms_ssim import WEIGHTS
from aekit.tasks.compression.rd import bd_rate


def test_ms_ssim_of_identical_images_is_one_and_scales_follow_the_size():
    x = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(0))
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim_scales(40, 50) == 2 and ms_ssim_scales(176, 300) == 5 and ms_ssim_scales(175, 300) == 4
    assert ms_ssim_scales(8, 8) == 1


def test_ms_ssim_one_scale_is_skimage_ssim():
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 24, 24, generator=g)
    y = (x + 0.1 * torch.randn(1, 1, 24, 24, generator=g)).clamp(0, 1)
    ref = skm.structural_similarity(x[0, 0].numpy().astype(np.float64), y[0, 0].numpy().astype(np.float64),
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert ms_ssim(x, y, scales=1) == pytest.approx(ref, abs=1e-6)
    assert ssim(x, y) == pytest.approx(ref, abs=1e-6)


def test_ms_ssim_of_constant_images_is_the_luminance_term_to_the_last_weight():
    # constant images: every variance is 0, so cs = C2 / C2 = 1 at every scale, and only the coarsest scale's
    # luminance l = (2ab + C1) / (a^2 + b^2 + C1) remains, raised to its (normalised) weight
    a, b, c1 = 0.3, 0.6, 0.01**2
    x, y = torch.full((1, 1, 200, 200), a), torch.full((1, 1, 200, 200), b)
    lum = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ms_ssim(x, y) == pytest.approx(lum ** WEIGHTS[4], rel=1e-9)  # 5 scales: the published weights (sum 1.0001)
    w2 = WEIGHTS[1] / (WEIGHTS[0] + WEIGHTS[1])
    assert ms_ssim(x[..., :30, :30], y[..., :30, :30]) == pytest.approx(lum**w2, rel=1e-6)  # 2 scales, renormalised


def test_bd_rate_identical_curves_is_zero_and_halved_rates_is_minus_fifty():
    rate = np.array([0.2, 0.4, 0.8, 1.6])
    psnr = np.array([26.0, 29.5, 32.0, 35.5])
    assert bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rate, psnr, rate / 2, psnr) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(rate, psnr, rate * 2, psnr) == pytest.approx(100.0, abs=1e-9)
    assert math.isnan(bd_rate(rate, psnr, rate, psnr + 20))  # no common quality interval
