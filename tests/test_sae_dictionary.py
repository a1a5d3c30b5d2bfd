"""SAE training pieces against their formulas: unit decoder, gradient projection, encoder init, geometric
median, activation scale folding, AuxK (dead latents only), JumpReLU's straight-through threshold gradient."""

import math

import pytest
import torch

from aekit.errors import ConfigError, ShapeError
from aekit.tasks.sae.dictionary import (activation_scale, auxk_loss, fold_activation_scale, geometric_median,
                                        init_encoder_from_decoder_, jumprelu, normalize_decoder_, project_decoder_grad_,
                                        random_decoder, sae_forward, step)

G = torch.Generator().manual_seed(0)


def test_decoder_columns_renormalised_and_gradient_projected():
    w = torch.randn(5, 7, generator=G) * 3
    before = w.norm(dim=0).clone()
    returned = normalize_decoder_(w)
    assert torch.allclose(returned, before) and torch.allclose(w.norm(dim=0), torch.ones(7), atol=1e-6)
    w.requires_grad_(True)
    w.grad = torch.randn(5, 7, generator=G)
    g = w.grad.clone()
    project_decoder_grad_(w)
    expected = g - (g * w.detach()).sum(0, keepdim=True) * w.detach()  # g - (g . w) w per unit column
    assert torch.allclose(w.grad, expected, atol=1e-6)
    assert torch.allclose((w.grad * w.detach()).sum(0), torch.zeros(7), atol=1e-6)
    # a step along the projected gradient changes the norm only to second order: sqrt(1 + lr^2 |g|^2)
    lr = 0.01
    stepped = w.detach() - lr * w.grad
    assert torch.allclose(stepped.norm(dim=0), (1 + lr**2 * w.grad.norm(dim=0) ** 2).sqrt(), atol=1e-6)
    assert torch.allclose(random_decoder(4, 9, seed=1).norm(dim=0), torch.ones(9), atol=1e-6)


def test_encoder_starts_as_the_decoder_transpose():
    dec, enc = random_decoder(4, 6), torch.empty(6, 4)
    init_encoder_from_decoder_(enc, dec)
    assert torch.equal(enc, dec.T)
    with pytest.raises(ShapeError, match="transpose"):
        init_encoder_from_decoder_(torch.empty(4, 6), dec)


def test_geometric_median_is_the_fermat_point():
    # triangle (-1, 0), (1, 0), (0, 3): every angle < 120 degrees, so the median sees the base at 120
    # degrees: (0, 1/sqrt(3)); the mean is (0, 1). Embedded in 5-D with an offset.
    pts = torch.zeros(3, 5)
    pts[0, 0], pts[1, 0], pts[2, 1] = -1.0, 1.0, 3.0
    offset = torch.tensor([0.5, -2.0, 1.0, 0.0, 3.0])
    median = geometric_median(pts + offset)
    expected = offset + torch.tensor([0.0, 1 / math.sqrt(3), 0.0, 0.0, 0.0])
    assert torch.allclose(median, expected, atol=1e-4)
    # a point-symmetric cloud around c has median c even with one far point mirrored
    c = torch.tensor([1.0, 2.0])
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0], [30.0, 5.0]])
    assert torch.allclose(geometric_median(torch.cat([c + v, c - v])), c, atol=1e-4)
    # robust: four points at the corners of a unit square around the origin plus one far outlier stays near 0
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0], [100.0, 0.0]])
    assert float(geometric_median(square).norm()) < 0.7 < float(square.mean(0).norm())
    assert torch.equal(geometric_median(torch.ones(4, 3)), torch.ones(3))
    # a median on a data point: 0, 1, 10 on a line -> 1 (the mean is 11/3)
    on_line = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]]) @ torch.tensor([[0.6, 0.8], [-0.8, 0.6]])
    assert torch.allclose(geometric_median(on_line), on_line[1], atol=1e-4)
    # the mean is a data point but not the median (the others' unit vectors sum to norm sqrt(2) > 1):
    # plain Weiszfeld stays there; the Vardi-Zhang step leaves it, to where the unit vectors cancel
    stuck = torch.tensor([[0.0, 0.0], [-4.0, 0.0], [1.0, 1.0], [1.0, -1.0], [2.0, 0.0]])
    y = geometric_median(stuck).double()
    assert float(y[0]) > 0.1 and abs(float(y[1])) < 1e-5
    units = (stuck.double() - y) / (stuck.double() - y).norm(dim=1, keepdim=True)
    assert float(units.sum(0).norm()) < 1e-4
    # optimality on random clouds: away from the data the unit vectors towards the points sum to 0;
    # on a data point, those towards the other points sum to a vector of norm <= 1
    for seed in range(4):
        cloud = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed)).double() ** 3
        y = geometric_median(cloud).double()
        dist = (cloud - y).norm(dim=1)
        near = dist < 1e-4
        pull = ((cloud - y)[~near] / dist[~near, None]).sum(0).norm()
        assert float(pull) <= (1.0 + 1e-3 if near.any() else 1e-3)


def test_activation_scale_and_folding_it_into_the_weights():
    x = torch.randn(64, 4, generator=G) * 5 + 1
    s = activation_scale(x)
    assert float((s * x).pow(2).sum(1).mean()) == pytest.approx(4.0, rel=1e-5)  # E||s x||^2 = d
    m, d = 6, 4
    weights = {"encoder.weight": torch.randn(m, d, generator=G), "encoder.bias": torch.randn(m, generator=G),
               "decoder.weight": torch.randn(d, m, generator=G), "decoder.bias": torch.randn(d, generator=G)}
    threshold = torch.full((m,), 0.2)
    for act in (torch.relu, lambda h: jumprelu(h, threshold, bandwidth=0.1)):
        z, x_hat = sae_forward(x, weights, activation=act, scale=s)
        z2, x_hat2 = sae_forward(x, fold_activation_scale(weights, scale=s), activation=act)
        assert torch.allclose(z, z2, atol=1e-4) and torch.allclose(x_hat, x_hat2, atol=1e-4)
        assert float(z.abs().sum()) > 0
    with pytest.raises(ConfigError, match="scale"):
        fold_activation_scale(weights, scale=0.0)
    with pytest.raises(ConfigError, match="missing decoder.bias"):
        fold_activation_scale({k: v for k, v in weights.items() if k != "decoder.bias"}, scale=2.0)


def _auxk_setup():
    n, d, m = 10, 4, 8
    x = torch.randn(n, d, generator=G)
    enc = torch.randn(m, d, generator=G).requires_grad_(True)
    dec = random_decoder(d, m, seed=3).requires_grad_(True)
    pre = x @ enc.T + 1.0  # (N, m), positive enough that several dead latents are chosen
    x_hat = torch.relu(pre) @ dec.T * 0.1  # the main reconstruction (it would come from the live latents)
    return x, enc, dec, pre, x_hat


def test_auxk_gradient_reaches_only_dead_latents():
    x, enc, dec, pre, x_hat = _auxk_setup()
    dead = torch.tensor([False, True, False, False, True, True, False, False])
    loss = auxk_loss(x, x_hat, pre, dec, dead, k_aux=2)
    loss.backward()
    live_rows = enc.grad[~dead].abs().sum() + dec.grad[:, ~dead].abs().sum()
    assert float(live_rows) == 0.0
    assert bool((enc.grad[dead].abs().sum(1) > 0).all()) and bool((dec.grad[:, dead].abs().sum(0) > 0).all())


def test_auxk_value_with_one_dead_latent():
    x, enc, dec, pre, x_hat = _auxk_setup()
    dead = torch.zeros(8, dtype=torch.bool)
    dead[2] = True
    e = (x - x_hat).detach()
    expected = (torch.relu(pre[:, 2:3]) * dec[:, 2] - e).pow(2).sum(1).mean()
    assert torch.allclose(auxk_loss(x, x_hat, pre, dec, dead, k_aux=5, normalize=False), expected)
    normalised = auxk_loss(x, x_hat, pre, dec, dead, k_aux=5)
    assert torch.allclose(normalised, expected / (e - e.mean(0)).pow(2).sum(1).mean())
    none = auxk_loss(x, x_hat, pre, dec, torch.zeros(8, dtype=torch.bool), k_aux=2)
    assert float(none.detach()) == 0.0
    none.backward()  # no dead latent: a zero loss that still backpropagates
    assert float(enc.grad.abs().sum()) == 0.0
    with pytest.raises(ConfigError, match="k_aux"):
        auxk_loss(x, x_hat, pre, dec, dead, k_aux=0)


def test_jumprelu_values_and_straight_through_gradients():
    eps = 0.1
    theta = torch.tensor([0.5, 1.0]).requires_grad_(True)
    offsets = torch.tensor([-0.7, -0.3, 0.2, 0.45, 0.8]) * eps  # (5,) around the threshold
    z = (theta.detach() + offsets[:, None]).requires_grad_(True)  # (5, 2)
    out = jumprelu(z, theta, bandwidth=eps)
    assert torch.equal(out, torch.where(z > theta, z, torch.zeros_like(z)))
    upstream = torch.randn(5, 2, generator=G)
    out.backward(upstream)
    kernel = ((z.detach() - theta.detach()) / eps).abs() < 0.5  # rectangle K
    assert torch.allclose(z.grad, upstream * (z.detach() > theta.detach()))
    assert torch.allclose(theta.grad, -(theta.detach() / eps) * (upstream * kernel).sum(0))
    assert kernel.sum() == 6  # offsets -0.3, 0.2, 0.45 in both columns
    theta.grad = None
    z.grad = None
    h = step(z, theta, bandwidth=eps)
    assert torch.equal(h, (z > theta).float())
    h.backward(upstream)
    assert torch.equal(z.grad, torch.zeros_like(z))
    assert torch.allclose(theta.grad, -(1 / eps) * (upstream * kernel).sum(0))
    with pytest.raises(ConfigError, match="bandwidth"):
        jumprelu(z, theta, bandwidth=0)


def test_jumprelu_threshold_gradient_estimates_the_expected_derivative():
    """For z uniform on [0, 2] (density 1/2), d/dtheta E[z H(z - theta)] = -theta / 2 and d/dtheta E[H] = -1/2."""
    z = torch.linspace(0, 2, 200001)
    theta = torch.tensor([1.0]).requires_grad_(True)
    jumprelu(z[:, None], theta, bandwidth=0.05).mean().backward()
    assert float(theta.grad) == pytest.approx(-0.5, rel=1e-3)
    theta.grad = None
    step(z[:, None], theta, bandwidth=0.05).mean().backward()
    assert float(theta.grad) == pytest.approx(-0.5, rel=1e-3)
    theta2 = torch.tensor([1.5]).requires_grad_(True)
    jumprelu(z[:, None], theta2, bandwidth=0.05).mean().backward()
    assert float(theta2.grad) == pytest.approx(-0.75, rel=1e-3)
