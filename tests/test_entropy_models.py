"""The rate-trained bottlenecks (axes/entropy_models.py) and GDN (backbones/gdn.py): the maths, analytically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import aekit
from aekit.axes.entropy_models import (EntropyBottleneck, FactorizedDensity, HyperpriorBottleneck,
                                       gaussian_box_probability, scale_table)
from aekit.backbones.gdn import GDN
from aekit.tasks.compression.learned import integer_frequencies

FC = {"conv": {"channels": [4, 4], "fully_convolutional": True}}


def _random_density(seed=0, channels=3):
    torch.manual_seed(seed)
    d = FactorizedDensity(channels, filters=(3, 3)).double()
    with torch.no_grad():
        for p in d.parameters():
            p.add_(torch.randn_like(p))  # any parameters: still a density
    return d


def test_the_factorized_density_integrates_to_one_and_its_cdf_is_monotone():
    d = _random_density()
    v = torch.arange(-3000, 3001, dtype=torch.float64).repeat(3, 1)  # (C, N) every integer of a wide range
    with torch.no_grad():
        p = d.box_probability(v)
        assert (p >= 0).all()
        assert torch.allclose(p.sum(1), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)
        # the same sum shifted by a fraction: a unit box partition of the line integrates the density to 1
        assert torch.allclose(d.box_probability(v + 0.37).sum(1), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)
        grid = torch.linspace(-60, 60, 20001, dtype=torch.float64).repeat(3, 1)
        c = d.cdf(grid)
        assert (c[:, 1:] >= c[:, :-1]).all() and c.min() >= 0 and c.max() <= 1
        # the box probability is the difference of the CDF (the stable branch agrees with the plain formula)
        x = torch.linspace(-5, 5, 41, dtype=torch.float64).repeat(3, 1)
        assert torch.allclose(d.box_probability(x), d.cdf(x + 0.5) - d.cdf(x - 0.5), atol=1e-12)


def test_the_aux_loss_trains_the_quantiles_alone_and_finds_the_median():
    torch.manual_seed(0)
    d = FactorizedDensity(2, filters=(3, 3))
    opt = torch.optim.Adam([d.quantiles], lr=0.5)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = d.aux_loss()
        first = first if first is not None else float(loss.detach())
        loss.backward()
        assert all(p.grad is None for n, p in d.named_parameters() if n != "quantiles")
        opt.step()
    assert float(loss.detach()) < first
    with torch.no_grad():
        assert torch.allclose(d.cdf(d.medians[:, None]).squeeze(1), torch.full((2,), 0.5), atol=0.01)


def test_the_gaussian_box_probability_is_the_normal_cdf_difference_and_sums_to_one():
    for s in (0.11, 0.7, 3.0, 40.0):
        for v in (-3.0, 0.0, 0.4, 2.0):
            phi = lambda t: 0.5 * (1 + math.erf(t / (s * math.sqrt(2))))  # noqa: E731
            got = float(gaussian_box_probability(torch.tensor(v, dtype=torch.float64), torch.tensor(s, dtype=torch.float64)))
            assert got == pytest.approx(phi(v + 0.5) - phi(v - 0.5), abs=1e-12)
        k = torch.arange(-2000, 2001, dtype=torch.float64)
        assert float(gaussian_box_probability(k, torch.tensor(s, dtype=torch.float64)).sum()) == pytest.approx(1, abs=1e-9)
    t = scale_table()
    assert t[0] == pytest.approx(0.11) and t[-1] == pytest.approx(256) and (t[1:] > t[:-1]).all()


def test_integer_frequencies_sum_to_the_precision_and_keep_every_symbol():
    p = np.array([0.5, 0.25, 1e-12, 0.25 - 1e-12, 0.0])
    f = integer_frequencies(p)
    assert f.sum() == 2 ** 16 and f.min() >= 1
    assert np.allclose(f / 2 ** 16, p, atol=6 / 2 ** 16)
    assert np.array_equal(integer_frequencies(p), f)  # deterministic


def test_the_entropy_rate_is_minus_log2_of_the_box_probability_and_the_loss_is_r_plus_lambda_d():
    model = aekit.build(input_shape=(1, 6, 6), latent_dim=3, backbone={"conv": {"channels": [4]}},
                        bottleneck="entropy:lmbda=0.25", seed=0)
    assert isinstance(model.bottleneck, EntropyBottleneck) and model.config["bottleneck"] == {"entropy": {"lmbda": 0.25}}
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    model.eval()
    out = model(x)
    b = model.bottleneck
    y = b.analysis(model.encoder(x)[0])
    y_hat = torch.round(y - b.density.medians) + b.density.medians
    assert torch.equal(out.code.mean, y_hat) and torch.equal(out.z, y_hat)
    p = b.density.box_probability(y_hat.t()).t()  # (B, D)
    assert torch.allclose(out.code.aux_losses["rate"], -torch.log2(p).sum(1))
    assert out.weights == {"nll": 0.25, "rate": 1.0}
    assert torch.allclose(out.loss, out.terms["rate"] + 0.25 * out.terms["nll"])
    assert torch.allclose(out.per_sample, out.code.aux_losses["rate"] + 0.25 * out.nll)
    model.train()
    torch.manual_seed(1)
    z1 = model(x).z
    assert not torch.equal(z1, y_hat) and (z1 - y).abs().max() <= 0.5  # additive uniform noise in training
    assert {id(p) for p in b.aux_parameters()} == {id(b.density.quantiles)}


def test_the_hyperprior_rate_is_bits_of_y_given_z_plus_bits_of_z():
    model = aekit.build(input_shape=(1, 8, 8), latent_dim=3, backbone=FC, bottleneck="hyperprior:hyper_channels=2",
                        seed=0)
    b = model.bottleneck
    assert isinstance(b, HyperpriorBottleneck)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    out = model(x)
    y = b.analysis(model.encoder(x)[0])
    z = b.hyper(y)
    z_hat = torch.round(z - b.hyper_density.medians.view(1, -1, 1, 1)) + b.hyper_density.medians.view(1, -1, 1, 1)
    s = b.scales(z_hat, y.shape[-2:])
    assert s.shape == y.shape and s.min() >= 0.11
    rate_y = -torch.log2(gaussian_box_probability(torch.round(y), s)).sum((1, 2, 3))
    assert torch.allclose(out.code.aux_losses["rate_y"], rate_y)
    assert torch.equal(out.code.mean, torch.round(y)) and out.z.shape == (4, 3, 2, 2)
    assert set(out.weights) == {"nll", "rate_y", "rate_z"} and out.weights["rate_z"] == 1.0
    assert torch.allclose(out.loss, out.terms["rate_y"] + out.terms["rate_z"] + out.terms["nll"])


def test_bad_specs_name_the_parameter():
    with pytest.raises(aekit.ConfigError, match="lmbda"):
        aekit.build(input_shape=(4,), latent_dim=2, bottleneck="entropy:lmbda=-1")
    with pytest.raises(aekit.ConfigError, match="spatial_code"):  # the hyperprior needs a spatial code
        aekit.build(input_shape=(1, 8, 8), latent_dim=2, backbone={"conv": {"channels": [4]}}, bottleneck="hyperprior")
    with pytest.raises(aekit.ConfigError, match="spatial_bottleneck"):  # a vector bottleneck on a spatial map
        aekit.build(input_shape=(1, 8, 8), latent_dim=2, backbone=FC, bottleneck="gaussian")
    with pytest.raises(aekit.ConfigError, match="hidden"):
        aekit.build(input_shape=(1, 8, 8), latent_dim=2, backbone={"conv": {"fully_convolutional": True, "hidden": [4]}},
                    bottleneck="entropy")
    with pytest.raises(aekit.ConfigError, match="gdn"):
        aekit.build(input_shape=(1, 8, 8), latent_dim=2, backbone={"conv": {"activation": "gdn", "hidden": [4]}})


# ----------------------------------------------------------------------------- GDN
def test_gdn_and_igdn_follow_their_formulas():
    torch.manual_seed(0)
    g = GDN(3)
    with torch.no_grad():
        g.beta.copy_(torch.rand(3) + 0.5)
        g.gamma.copy_(torch.rand(3, 3))
    x = torch.randn(2, 3, 4, 5)
    beta, gamma = g.effective()
    norm = torch.sqrt(beta.view(1, 3, 1, 1) + torch.einsum("ij,bjhw->bihw", gamma, x * x))
    assert torch.allclose(g(x), x / norm, atol=1e-6)
    ig = GDN(3, inverse=True)
    ig.load_state_dict(g.state_dict())
    assert torch.allclose(ig(x), x * norm, atol=1e-6)
    # at its initialisation (beta = 1, gamma = 0.1 I): x / sqrt(1 + 0.1 x^2), channel by channel
    fresh = GDN(3)
    assert torch.allclose(fresh(x), x / torch.sqrt(1 + 0.1 * x * x), atol=1e-6)


def test_gdn_keeps_beta_positive_and_gamma_nonnegative_and_still_learns_there():
    g = GDN(2, beta_min=1e-6)
    with torch.no_grad():
        g.beta.fill_(-3.0)
        g.gamma.fill_(-3.0)
    beta, gamma = g.effective()
    assert (beta >= 1e-6 * (1 - 1e-6)).all() and (gamma >= 0).all()
    (-beta.sum()).backward()  # a loss that wants beta larger: its gradient passes the bound
    assert (g.beta.grad != 0).all()


def test_the_fully_convolutional_conv_backbone_codes_any_image_size():
    model = aekit.build(input_shape=(3, 8, 8), latent_dim=2,
                        backbone={"conv": {"channels": [4, 4], "activation": "gdn", "fully_convolutional": True}},
                        bottleneck="entropy", seed=0)
    assert isinstance(model.encoder.net[1], GDN) and not model.encoder.net[1].inverse
    assert any(isinstance(m, GDN) and m.inverse for m in model.decoder.modules())
    for h, w in ((33, 47), (8, 8), (5, 2)):
        x = torch.rand(2, 3, h, w)
        feat, _ = model.encoder(x)
        assert feat.shape == (2, 4, math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2))
        y = model.bottleneck.analysis(feat)
        assert model.decoder(y, (), output_size=(h, w)).shape == (2, 3, h, w)
    with pytest.raises(aekit.ShapeError, match="does not decode"):
        model.decoder(torch.zeros(1, 2, 3, 3), (), output_size=(8, 8))


def test_a_spatial_code_decodes_flattened_and_interpolates():
    model = aekit.build(input_shape=(1, 8, 8), latent_dim=2, backbone=FC, bottleneck="entropy", seed=0)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = model.encode(x)  # (3, 2, 2, 2)
        assert z.shape == (3, 2, 2, 2)
        assert torch.equal(model.decode(z.flatten(1)), model.decode(z))  # (B, C * H * W), as diagnostics give
        assert model.interpolate(x[0], x[1], steps=3).shape == (3, 1, 8, 8)
    with pytest.raises(aekit.ShapeError, match="height, width"):
        model.decode(torch.zeros(1, 5))


def test_the_cli_reaches_the_bottleneck_and_lambda(tmp_path):
    from aekit.cli import main

    out = tmp_path / "run"
    code = main(["train", "ae", "--data", "digits", "--max-samples", "64", "--epochs", "1", "--quiet", "--out", str(out),
                 "--backbone", "conv:fully_convolutional=true,activation=gdn", "--latent-dim", "3",
                 "--bottleneck", "hyperprior:hyper_channels=2", "--lambda", "0.05"])
    assert code == 0
    model = aekit.load(out)
    assert model.config["bottleneck"] == {"hyperprior": {"hyper_channels": 2, "lmbda": 0.05}}
    assert model.config["backbone"]["conv"]["fully_convolutional"] is True
    assert main(["train", "ae", "--data", "digits", "--out", str(tmp_path / "r2"), "--bottleneck", "gaussian",
                 "--lambda", "0.5"]) != 0
