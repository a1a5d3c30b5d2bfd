"""The model contract, checked for every registered variant x backbone x input shape.

Every model aekit can build must: produce outputs of the right shapes; report a finite loss
that is exactly the weighted sum of its terms and the mean of its per-sample losses; send a
gradient to every trainable parameter; be deterministic in eval mode; survive a save/load round
trip bit for bit; learn (the loss falls on a fixed batch); and refuse misuse (sampling from a
non-generative model, decoding a code alone through U-Net skips, inputs of the wrong shape)
with aekit's own errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

import aekit

BACKBONES = ("mlp", "conv", "unet")
SHAPES = ((12,), (1, 8, 8), (3, 7, 5))
LATENT = 3  # the code width at test size, unless a recipe's bottleneck needs more (checks use model.latent_dim)
BATCH = 16


# conditional variants (cvae) take labels with every call: their contract is in tests/test_contract_ingredients.py
UNCONDITIONAL = [v for v in sorted(aekit.VARIANTS) if not aekit.resolve_config(v, input_shape=(1, 8, 8))["num_classes"]]


def _cases():
    for variant in UNCONDITIONAL:
        for backbone in BACKBONES:
            for shape in SHAPES:
                if backbone != "mlp" and len(shape) != 3:
                    continue  # conv/unet need images; refusing them is tested in test_build_errors
                yield pytest.param(variant, backbone, shape, id=f"{variant}-{backbone}-{'x'.join(map(str, shape))}")


CASES = list(_cases())
contract = pytest.mark.parametrize("variant,backbone,shape", CASES)
# training is the expensive check: every variant x backbone, one input shape per backbone
TRAIN_SHAPE = {"mlp": (12,), "conv": (3, 7, 5), "unet": (1, 8, 8)}
TRAIN_CASES = [c for c in CASES if TRAIN_SHAPE[c.values[1]] == c.values[2]]


def make(variant: str, backbone: str, shape, **kw) -> aekit.Autoencoder:
    """The variant shrunk to test size; recipes without hidden layers (linear, cae) keep none."""
    (name, params), = aekit.resolve_config(variant, input_shape=(1, 8, 8))["backbone"].items()
    recipe_hidden = params.get("hidden", [256])
    hidden = [] if not recipe_hidden else ([16] if len(recipe_hidden) == 1 else [16, 8])
    spec = {"mlp": {"hidden": hidden}, "conv": {"channels": [4, 8]}, "unet": {"channels": [4, 8]}}[backbone]
    if "activation" in params:
        spec["activation"] = params["activation"]  # the recipe's (linear: identity) on every backbone
    try:
        model = aekit.build(variant, input_shape=shape, backbone={backbone: spec}, latent_dim=LATENT, seed=0, **kw)
    except aekit.ConfigError:  # the recipe's bottleneck needs a wider code (a k-sparse code): its own width
        model = aekit.build(variant, input_shape=shape, backbone={backbone: spec}, seed=0, **kw)
    if next(iter(model.config["bottleneck"].values())).get("activation") == "relu":
        # a small ReLU code can start with every unit dead (all biases negative); that
        # legitimately blocks every gradient to the encoder and makes decode() constant, so
        # start the units active
        with torch.no_grad():
            model.bottleneck.linear.bias.fill_(0.5)
    if {"fsq", "vq"} & set(model.config["bottleneck"]):
        # likewise the tiny test features vary so little between inputs that every input takes one code (the
        # codebook entry nearest 0; FSQ's middle levels, its batch variance under BatchNorm's eps); start the
        # projection at a scale that spreads the codes
        with torch.no_grad():
            model.bottleneck.linear.weight.mul_(20.0)
    return model


def data(shape, n: int = BATCH, seed: int = 1) -> torch.Tensor:
    """Values in [0, 1]: valid for Bernoulli and Gaussian likelihoods alike."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g)


def test_every_variant_is_covered():
    assert len(CASES) == 7 * len(UNCONDITIONAL)
    assert len(TRAIN_CASES) == 3 * len(UNCONDITIONAL)
    assert {"ae", "linear", "dae", "cae", "sparse_kl", "sparse_l1", "vae", "beta_vae"} <= set(aekit.VARIANTS)


@contract
def test_forward_shapes_loss_decomposition_and_gradients(variant, backbone, shape):
    model = make(variant, backbone, shape)
    model.train()
    x = data(shape)
    out = model(x)
    assert (out.z.detach() != 0).any()

    assert out.x_hat.shape == x.shape
    assert out.params.shape == x.shape
    assert out.z.shape == (BATCH, model.latent_dim)
    assert out.code.mean.shape == (BATCH, model.latent_dim)
    assert out.nll.shape == (BATCH,)
    assert out.per_sample.shape == (BATCH,)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    if model.provides("bounded_mean"):
        assert float(out.x_hat.detach().min()) >= 0.0 and float(out.x_hat.detach().max()) <= 1.0

    # the terms: nll, every regularizer by name, nothing unweighted or unreported
    assert set(out.terms) == set(out.weights)
    assert "nll" in out.terms and out.weights["nll"] == 1.0
    assert all(r in out.terms or any(k.startswith(r + ".") for k in out.terms) for r in model.regularizers)
    for name, value in out.terms.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    weighted = sum(out.weights[k] * out.terms[k] for k in out.terms)
    assert_close(out.loss, weighted)
    assert_close(out.per_sample.mean(), out.loss)
    assert_close(out.nll.mean(), out.terms["nll"])

    out.loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    for name, p in params:
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    if model.provides("fixed_sigma"):
        assert all("log_sigma" not in n for n, _ in params)


@contract
def test_eval_determinism_and_checkpoint_round_trip(variant, backbone, shape, tmp_path):
    model = make(variant, backbone, shape)
    x = data(shape)
    # move the weights (and the kl_prior step buffer) away from their initial values first
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(x).loss.backward()
        opt.step()

    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a.x_hat, b.x_hat)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.z, a.code.mean)  # eval uses the mean code
    r1, r2 = model.reconstruct(x), model.reconstruct(x)
    assert torch.equal(r1, r2)
    assert_close(r1, a.x_hat)

    aekit.save(model, tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert not loaded.training
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    own, other = model.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys()
    for key in own:
        assert torch.equal(own[key], other[key]), key
    c = loaded(x)
    assert torch.equal(c.x_hat, a.x_hat)
    assert torch.equal(c.loss, a.loss)
    assert torch.equal(c.z, a.z)
    assert torch.equal(loaded.reconstruct(x), r1)


@pytest.mark.parametrize("variant,backbone,shape", TRAIN_CASES)
def test_training_reduces_the_loss(variant, backbone, shape):
    model = make(variant, backbone, shape)
    x = data(shape)

    def eval_loss() -> float:
        # eval mode: no corruption, z = mu; the same objective without the sampling noise
        model.eval()
        with torch.no_grad():
            return float(model(x).loss)

    before = eval_loss()
    model.train()
    # the model's own group (a discriminator or an entropy model's quantiles train on their own losses)
    opt = torch.optim.Adam(model.optimizer_groups()[0].params, lr=1e-2)
    for _ in range(50):
        opt.zero_grad()
        loss = model(x).loss
        loss.backward()
        opt.step()
    assert math.isfinite(float(loss.detach()))
    after = eval_loss()
    assert after < before - 1e-3 * abs(before), (before, after)


@contract
@torch.no_grad()
def test_encode_decode_sample_interpolate(variant, backbone, shape):
    model = make(variant, backbone, shape).eval()
    x = data(shape, n=4)
    z = model.encode(x)
    assert z.shape == (4, model.latent_dim)
    assert model.reconstruct(x).shape == x.shape

    if model.uses_skips:
        with pytest.raises(aekit.ConfigError, match="skip"):
            model.decode(z)
        with pytest.raises(aekit.ConfigError):
            model.interpolate(x[0], x[1], steps=5)
    else:
        x_dec = model.decode(z)
        assert x_dec.shape == x.shape
        assert_close(x_dec, model.reconstruct(x))
        path = model.interpolate(x[0], x[1], steps=5)
        assert path.shape == (5, *shape)
        assert_close(path[0], model.decode(model.encode(x[:1]))[0])
        assert_close(path[-1], model.decode(model.encode(x[1:2]))[0])
        codes = model.encode_code(x[:2])[0].indices if model.provides("discrete") else None
        if codes is not None and codes[0] == codes[1]:
            assert torch.allclose(path[0], path[-1])  # two inputs of one discrete code: the path is one point
        else:
            assert not torch.allclose(path[0], path[-1])

    # a posterior's prior, or a regularizer's (kl_vamp's mixture, adversarial's N(0, I) that an AAE matches)
    samplable = model.has_prior
    if samplable and not model.uses_skips:
        s = model.sample(6, generator=torch.Generator().manual_seed(3))
        assert s.shape == (6, *shape) and torch.isfinite(s).all()
        again = model.sample(6, generator=torch.Generator().manual_seed(3))
        assert torch.equal(s, again)
        if model.provides("bounded_mean"):
            assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    else:  # not generative, or a generative model whose decoder needs skip maps
        with pytest.raises(aekit.ConfigError):
            model.sample(6)
    if not samplable:
        with pytest.raises(aekit.ConfigError, match="'posterior'"):
            model.sample(2)


@contract
def test_wrong_input_shape_raises_shape_error(variant, backbone, shape):
    model = make(variant, backbone, shape)
    bad_shapes = [(4, *shape[:-1], shape[-1] + 1), tuple(shape)]  # one size off; batch dimension missing
    if len(shape) == 3:
        bad_shapes.append((4, shape[0] + 1, *shape[1:]))  # wrong channel count
    for bad_shape in bad_shapes:
        bad = torch.rand(bad_shape)
        for call in (model, model.encode, model.reconstruct):
            with pytest.raises(aekit.ShapeError) as info:
                call(bad)
            msg = str(info.value)
            assert str(tuple(bad_shape)) in msg, msg
            assert str(tuple(shape)) in msg, msg
    with pytest.raises(aekit.ShapeError, match=rf"\(batch, {model.latent_dim}\)"):
        model.decode(torch.zeros(2, model.latent_dim + 1))
