"""Denoising: noise models, a trained tiny DAE beats its noisy input, the `aekit denoise` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.data import load_data
from aekit.tasks.denoise import add_noise, denoise, denoising_metrics
from aekit.errors import ConfigError, ShapeError
from cli_helpers import cli


def test_noise_models_are_in_pixel_units_and_reproducible():
    x = torch.full((200, 1, 16, 16), 0.5)
    g = add_noise(x, "gaussian:0.1", seed=3)
    assert (g - x).std().item() == pytest.approx(0.1, rel=0.03)  # std in pixel units, unclipped
    assert torch.equal(g, add_noise(x, "gaussian:0.1", seed=3)) and not torch.equal(g, add_noise(x, "gaussian:0.1", seed=4))
    c = add_noise(torch.zeros(100, 64), "gaussian_clipped:0.5", seed=0)
    assert c.min() >= 0 and c.max() <= 1
    # clipped at 0: E[max(0, n)] = sigma / sqrt(2 pi) for n ~ N(0, sigma^2)
    assert c.mean().item() == pytest.approx(0.5 / np.sqrt(2 * np.pi), rel=0.05)
    sp = add_noise(x, "salt_and_pepper:0.2", seed=0)
    hit = sp != 0.5
    assert hit.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert (sp[hit] == 1).float().mean().item() == pytest.approx(0.5, abs=0.03)
    m = add_noise(x, "masking:0.25", seed=0)
    assert (m == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)


def test_add_noise_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    a = torch.rand(3)
    torch.manual_seed(5)
    add_noise(torch.zeros(10, 4), "gaussian:1", seed=0)
    assert torch.equal(torch.rand(3), a)


def test_noise_errors():
    with pytest.raises(ConfigError, match="Did you mean 'gaussian'"):
        add_noise(torch.zeros(2, 4), "gausian:0.3")
    with pytest.raises(ConfigError, match="needs a corruption|noise must name"):
        add_noise(torch.zeros(2, 4), "none")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        add_noise(torch.zeros(2, 4), "salt_and_pepper:1.5")
    model = aekit.build("ae", input_shape=(4,), latent_dim=2, hidden=[8])
    with pytest.raises(ShapeError, match="expected"):
        denoise(model, torch.zeros(3, 5))


def test_trained_tiny_dae_improves_psnr_on_noisy_digits():
    ds = load_data("digits")
    model = aekit.build("dae", input_shape=ds.shape, latent_dim=16, hidden=[128], corruption="gaussian_clipped:0.3",
                        seed=0)
    aekit.fit(model, ds.train, ds.val, epochs=30, batch_size=64, progress=False)
    noisy = add_noise(ds.test, "gaussian_clipped:0.3", seed=1)
    m = denoising_metrics(ds.test, noisy, denoise(model, noisy))
    assert m["psnr_denoised"] > m["psnr_noisy"] + 3, m
    assert m["ssim_denoised"] > m["ssim_noisy"], m


def test_denoising_metrics_reference_values():
    x = torch.zeros(2, 1, 12, 12)
    noisy = x + 0.1  # mse 0.01 -> 20 dB
    den = x + 0.01  # mse 1e-4 -> 40 dB
    m = denoising_metrics(x, noisy, den)
    assert m["psnr_noisy"] == pytest.approx(20.0) and m["psnr_denoised"] == pytest.approx(40.0)


def test_cli_denoise_end_to_end(tmp_path):
    run = tmp_path / "dae"
    code, _, err = cli("train", "dae", "--data", "digits", "--out", run, "--noise", "salt_and_pepper:0.2",
                       "--epochs", "15", "--hidden", "64", "--latent-dim", "16", "--quiet")
    assert code == 0, err
    code, out, err = cli("denoise", run, "--data", "digits", "--out", tmp_path / "den.npy", "--noise",
                         "salt_and_pepper:0.2", "--save-noisy", tmp_path / "noisy.npy", "--json")
    assert code == 0, err
    m = json.loads(out)
    assert m["images"] == 359 and m["psnr_denoised"] > m["psnr_noisy"], m
    den, noisy = np.load(tmp_path / "den.npy"), np.load(tmp_path / "noisy.npy")
    assert den.shape == noisy.shape == (359, 1, 8, 8)
    assert noisy.max() == pytest.approx(16.0)  # written in the loaded data's raw units (digits: 0..16)
    # without --noise the given data are denoised as they are
    np.save(tmp_path / "in.npy", noisy[:10] / 16.0)
    code, _, err = cli("denoise", run, "--data", tmp_path / "in.npy", "--out", tmp_path / "den2.npy")
    assert code == 0, err
    assert np.load(tmp_path / "den2.npy").shape[0] == 10


def test_cli_denoise_errors(tmp_path):
    run = tmp_path / "dae"
    assert cli("train", "dae", "--data", "digits", "--out", run, "--epochs", "1", "--hidden", "16", "--quiet")[0] == 0
    code, _, err = cli("denoise", run, "--data", "digits", "--out", tmp_path / "x.npy", "--noise", "gausian:0.3")
    assert code == 2 and "Did you mean 'gaussian'" in err
    code, _, err = cli("denoise", run, "--data", "digits", "--out", tmp_path / "x.png")
    assert code == 2 and ".npy" in err
    code, _, err = cli("denoise", tmp_path / "nope", "--data", "digits", "--out", tmp_path / "x.npy")
    assert code == 1 and "does not exist" in err
    code, _, err = cli("denoise", run, "--out", tmp_path / "x.npy")
    assert code == 2 and "--data" in err
