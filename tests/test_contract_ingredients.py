"""The contract over the registries: every ingredient combination build accepts, and every variant.

The combinations are the product corruption x backbone x bottleneck x likelihood x regularizer
choice (none, one, or two different regularizers), each ingredient with its `examples` settings
(class attribute; an ingredient without one runs with its defaults, required parameters filled by
type). The product is thousands of models, so a fixed seeded sample is checked: accepted ones
for the loss identity (loss == sum_k weights[k] * terms[k] == mean of the per-sample losses),
finite gradients reaching every parameter, and a save/load round trip through the recorded
config; refused ones for a ConfigError that names a missing capability. A new ingredient
registered anywhere joins the product with no test code.

The variants (the conditional one included, with labels) get the same checks at test size.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
from torch.testing import assert_close

import aekit
from aekit.checkpoint import build_from_config
from aekit.ingredients import load_all
from aekit.registry import BACKBONES, BOTTLENECKS, CORRUPTIONS, LIKELIHOODS, REGULARIZERS, VARIANTS

load_all()
SHAPE = (1, 6, 6)  # an image: every backbone takes it
LATENT = 3
BATCH = 8
N_ACCEPTED, N_REFUSED = 40, 12


def _value_for(param):
    """A small valid value for a required parameter, by its type (an ingredient may give `examples` instead)."""
    kind = param.annotation
    if kind is int or kind == "int":
        return 2  # fits a code of LATENT = 3 units (k of a k-sparse code, levels, ...)
    if kind is float or kind == "float":
        return 0.1
    if kind is bool or kind == "bool":
        return False
    pytest.fail(f"cannot guess a value for the required parameter {param.name!r} ({kind}); "
                "give the ingredient an `examples` class attribute")


def example_specs(reg, name) -> list[dict]:
    """{name: params} for each of the ingredient's example settings (its defaults when it declares none)."""
    out = []
    for example in getattr(reg.get(name), "examples", None) or ({},):
        params = dict(example)
        for p in reg.params(name):
            if p.required and p.name not in params:
                params[p.name] = _value_for(p)
        out.append({name: reg.check_params(name, params)})
    return out


def regularizer_choices() -> list[dict]:
    singles = [spec for name in REGULARIZERS for spec in example_specs(REGULARIZERS, name)]
    pairs = [{**example_specs(REGULARIZERS, a)[0], **example_specs(REGULARIZERS, b)[0]}
             for a, b in itertools.combinations(REGULARIZERS, 2)]
    return [{}] + singles + pairs


AXES = {
    "corruption": [s for n in CORRUPTIONS for s in example_specs(CORRUPTIONS, n)],
    "backbone": [s for n in BACKBONES for s in example_specs(BACKBONES, n)],
    "bottleneck": [s for n in BOTTLENECKS for s in example_specs(BOTTLENECKS, n)],
    "likelihood": [s for n in LIKELIHOODS for s in example_specs(LIKELIHOODS, n)],
    "regularizers": regularizer_choices(),
}
TOTAL = math.prod(len(v) for v in AXES.values())


def combination(index: int) -> dict:
    out = {}
    for axis, choices in AXES.items():
        index, i = divmod(index, len(choices))
        out[axis] = choices[i]
    return out


def missing_capabilities(kw: dict) -> set[str]:
    """What the registries say the mix lacks (build must agree)."""
    regs = {"corruption": CORRUPTIONS, "backbone": BACKBONES, "bottleneck": BOTTLENECKS, "likelihood": LIKELIHOODS}
    chosen = [(regs[axis], *next(iter(kw[axis].items()))) for axis in regs]
    chosen += [(REGULARIZERS, name, params) for name, params in kw["regularizers"].items()]
    provided, required = {"image_input"}, set()
    for reg, name, params in chosen:
        provided |= reg.capabilities(name, params)
        required |= reg.requirements(name, params)
    return required - provided


def _ingredients(kw: dict) -> set[tuple[str, str]]:
    out = {(axis, next(iter(kw[axis]))) for axis in ("corruption", "backbone", "bottleneck", "likelihood")}
    return out | {("regularizer", name) for name in kw["regularizers"]}


def _sample():
    """A seeded sample in which every registered ingredient appears in at least one accepted mix."""
    order = list(range(TOTAL))
    random.Random(15).shuffle(order)
    accepted, refused, covered = [], [], set()
    for index in order:
        kw = combination(index)
        if missing_capabilities(kw):
            if len(refused) < N_REFUSED:
                refused.append(index)
        elif len(accepted) < N_ACCEPTED or not _ingredients(kw) <= covered:
            accepted.append(index)
            covered |= _ingredients(kw)
    return accepted, refused


ACCEPTED, REFUSED = _sample()


def _id(index: int) -> str:
    kw = combination(index)
    parts = [next(iter(kw[a])) for a in ("corruption", "backbone", "bottleneck", "likelihood")]
    return "-".join(parts + (list(kw["regularizers"]) or ["noreg"])) + f"-{index}"


def seeded(fn, *args):
    """fn(*args) with the global RNG seeded (a stochastic penalty, e.g. Hutchinson's estimate, draws in eval too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.no_grad():
            return fn(*args)


def data(n: int = BATCH, seed: int = 1) -> torch.Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))  # in [0, 1]: every likelihood


def test_the_product_is_large_and_every_ingredient_is_sampled():
    assert TOTAL > 1000 and len(ACCEPTED) >= N_ACCEPTED and len(REFUSED) == N_REFUSED
    covered = set().union(*(_ingredients(combination(i)) for i in ACCEPTED))
    registered = {(axis, n) for axis, reg in (("corruption", CORRUPTIONS), ("backbone", BACKBONES),
                                               ("bottleneck", BOTTLENECKS), ("likelihood", LIKELIHOODS),
                                               ("regularizer", REGULARIZERS)) for n in reg}
    assert covered == registered


@pytest.mark.parametrize("index", ACCEPTED, ids=_id)
def test_accepted_mix_keeps_the_contract(index, tmp_path):
    kw = combination(index)
    model = aekit.build(input_shape=SHAPE, latent_dim=LATENT, seed=0, **kw)
    model.train()
    x = data()
    out = model(x)
    # a fully convolutional backbone keeps the code spatial: (B, latent_dim, H_L, W_L)
    z_shape = tuple(out.z.shape[:2]) if model.provides("spatial_code") else tuple(out.z.shape)
    assert out.x_hat.shape == x.shape and z_shape == (BATCH, LATENT) and out.per_sample.shape == (BATCH,)
    assert set(out.terms) == set(out.weights)
    # every regularizer reports its term, or its parts as '<name>.<part>' (tc, rae)
    assert all(r in out.terms or any(k.startswith(r + ".") for k in out.terms) for r in model.regularizers)
    assert torch.isfinite(out.loss)
    assert_close(out.loss, sum(out.weights[k] * out.terms[k] for k in out.terms))
    assert_close(out.per_sample.mean(), out.loss)
    out.loss.backward()
    # an entropy model's quantiles are trained by their own loss (bottleneck.aux_loss), never by the model's
    aux = {id(p) for p in getattr(model.bottleneck, "aux_parameters", list)()}
    if aux:
        model.bottleneck.aux_loss().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"

    model.eval()
    before = seeded(model, x)
    aekit.save(model, tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert loaded.config == model.config and loaded.capabilities == model.capabilities
    after = seeded(loaded, x)
    assert torch.equal(after.x_hat, before.x_hat) and torch.equal(after.loss, before.loss)
    rebuilt = build_from_config(model.config, source="config")  # the config alone rebuilds the same architecture
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("index", REFUSED, ids=_id)
def test_refused_mix_names_the_missing_capability(index):
    kw = combination(index)
    missing = missing_capabilities(kw)
    with pytest.raises(aekit.ConfigError) as info:
        aekit.build(input_shape=SHAPE, latent_dim=LATENT, **kw)
    msg = str(info.value)
    assert any(f"'{cap}'" in msg for cap in missing), msg
    assert "provided by" in msg or "no registered ingredient" in msg, msg


# ----------------------------------------------------------------------------- the variants
def small(variant: str) -> dict:
    """The variant's own backbone at test size."""
    cfg = aekit.resolve_config(variant, input_shape=(1, 8, 8))
    (name, params), = cfg["backbone"].items()
    params = dict(params)
    known = {p.name for p in BACKBONES.params(name)}
    if "hidden" in known:
        widths = params.get("hidden", [256])
        params["hidden"] = [8] * min(len(widths), 2)
    if "channels" in known:
        params["channels"] = [4, 8]
    return {name: params}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_keeps_the_contract(variant, tmp_path):
    conditional = bool(aekit.resolve_config(variant, input_shape=(1, 8, 8))["num_classes"])
    kw = dict(input_shape=(1, 8, 8), backbone=small(variant), num_classes=3 if conditional else None, seed=0)
    try:
        model = aekit.build(variant, latent_dim=LATENT, **kw)
    except aekit.ConfigError:  # the recipe's bottleneck needs a wider code (a k-sparse code): its own width
        model = aekit.build(variant, **kw)
    x = torch.rand((BATCH, 1, 8, 8), generator=torch.Generator().manual_seed(2))
    y = torch.arange(BATCH) % 3 if conditional else None
    model.train()
    out = model(x, y)
    assert_close(out.loss, sum(out.weights[k] * out.terms[k] for k in out.terms))
    assert_close(out.per_sample.mean(), out.loss)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    before = seeded(model, x, y)
    aekit.save(model, tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert loaded.config == model.config and loaded.num_classes == model.num_classes
    with torch.no_grad():
        assert torch.equal(seeded(loaded, x, y).loss, before.loss)
        # a posterior's prior, or a regularizer's (kl_vamp's mixture, adversarial's N(0, I) an AAE matches)
        samplable = model.has_prior
        if samplable and not model.provides("skips"):
            kw = {"label": 1} if conditional else {}
            s = model.sample(4, generator=torch.Generator().manual_seed(0), **kw)
            assert s.shape == (4, 1, 8, 8) and torch.isfinite(s).all()
        else:
            with pytest.raises(aekit.ConfigError, match="posterior" if not samplable else ""):
                model.sample(2)


def test_the_conditional_variant_is_in_the_suite():
    assert any(aekit.resolve_config(v, input_shape=(1, 8, 8))["num_classes"] for v in VARIANTS)
