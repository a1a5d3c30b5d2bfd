"""The clipped-Gaussian bias correction used by benchmarks/denoising.py: closed form against
Monte Carlo, exact limits, and the inverse as a true inverse."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from clipped_noise import clipped_gaussian_mean, invert_clipped_mean  # noqa: E402


def test_mean_matches_monte_carlo():
    rng = np.random.default_rng(0)
    x = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    n = rng.normal(0.0, 0.5, size=(400_000, 1))
    mc = np.clip(x + n, 0, 1).mean(axis=0)
    np.testing.assert_allclose(clipped_gaussian_mean(x, 0.5), mc, atol=3e-3)


def test_mean_limits():
    # at x = 0 only the positive half survives: E[max(n, 0)] = s / sqrt(2 pi) when s << 1
    assert clipped_gaussian_mean(np.array(0.0), 0.01) == pytest.approx(0.01 / np.sqrt(2 * np.pi), rel=1e-6)
    # symmetry: f(1 - x) = 1 - f(x)
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(clipped_gaussian_mean(1 - x, 0.3), 1 - clipped_gaussian_mean(x, 0.3), atol=1e-12)
    # tiny noise: no bias in the interior
    assert clipped_gaussian_mean(np.array(0.5), 1e-4) == pytest.approx(0.5, abs=1e-9)


def test_inverse_round_trip_and_range():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(invert_clipped_mean(clipped_gaussian_mean(x, 0.5), 0.5), x, atol=1e-3)
    assert invert_clipped_mean(np.array([-1.0, 0.0]), 0.5).tolist() == [0.0, 0.0]  # below f(0): 0
    assert invert_clipped_mean(np.array([2.0]), 0.5).tolist() == [1.0]


def test_bad_sigma():
    with pytest.raises(ValueError, match="sigma"):
        clipped_gaussian_mean(np.zeros(2), 0.0)
