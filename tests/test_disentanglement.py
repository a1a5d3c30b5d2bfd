"""Disentanglement: the metrics on constructed codes, the capacity-annealed KL term, the command."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.testing import assert_close
from cli_helpers import cli

import aekit
from aekit.errors import ConfigError
from aekit.metrics import betavae_score, dci, factorvae_score, mig
from aekit.metrics.disentanglement import discretize, entropy, mutual_information
from aekit.axes.regularizers import KLPrior

SIZES = (3, 6, 10, 8)   # every factor <= 20 classes: a 20-bin code can hold all of it
HADAMARD = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0   # orthogonal, |entries| equal
N = 2000


@pytest.fixture(scope="module")
def codes():
    """Factors (N, 4) and codes of them: identity, rotations (random; evenly mixing), one and two factors ignored.

    A random rotation usually keeps one dominant unit per factor, which the FactorVAE and beta-VAE
    scores accept (they only need some unit to vary least); the Hadamard rotation mixes every
    factor into every unit with equal weight, so no score can find the factors.
    """
    rng = np.random.default_rng(0)
    f = np.stack([rng.integers(0, s, N) for s in SIZES], axis=1)
    z = (f - f.mean(0)) / f.std(0)                                  # (N, 4) one unit per factor
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    ignore1 = z.copy()
    ignore1[:, 2] = rng.normal(size=N)                              # unit 2 is noise: factor 2 is lost
    ignore2 = ignore1.copy()
    ignore2[:, 3] = rng.normal(size=N)
    return {"factors": f, "identity": z + 0.01 * rng.normal(size=z.shape), "random_rotation": z @ q,
            "rotated": z @ HADAMARD, "ignore1": ignore1, "ignore2": ignore2}


# ------------------------------------------------------------------ information theory pieces
def test_entropy_and_mutual_information_analytic():
    a = np.repeat(np.arange(4), 6)          # uniform over 4 values
    b = np.tile(np.arange(3), 8)            # uniform over 3, exactly independent of a
    assert entropy(a) == pytest.approx(math.log(4))
    assert mutual_information(a, a) == pytest.approx(math.log(4))
    assert mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(a, a // 2) == pytest.approx(math.log(2))   # a determines a // 2
    d = discretize(np.linspace(0, 1, 40)[:, None], bins=20)[:, 0]
    assert d.min() == 0 and d.max() == 19 and (np.bincount(d) == 2).all()


def test_mig_analytic_cases():
    f = np.stack([np.repeat(np.arange(4), 8), np.tile(np.arange(8), 4)], axis=1)   # (32, 2), independent
    assert mig(f.astype(float), f) == pytest.approx(1.0)
    # both units copy factor 0: its gap is 0; factor 1 is in no unit: its gap is 0 too
    dup = np.stack([f[:, 0], f[:, 0]], axis=1).astype(float)
    score, gaps = mig(dup, f, per_factor=True)
    assert score == pytest.approx(0.0) and gaps == pytest.approx([0.0, 0.0])


# ------------------------------------------------------------------ the constructed cases
def test_mig_constructed(codes):
    f = codes["factors"]
    ident, rot, rand, ign = (mig(codes[k], f) for k in ("identity", "rotated", "random_rotation", "ignore1"))
    assert ident > 0.95
    assert rot < 0.1 and rand < 0.4
    assert ign < ident - 0.1 and ign == pytest.approx(0.75 * ident, abs=0.03)   # one factor of four scores 0


def test_factorvae_constructed(codes):
    f = codes["factors"]
    score = {k: factorvae_score(codes[k], f, n_train=200, n_eval=100) for k in ("identity", "rotated", "ignore1")}
    assert score["identity"] > 0.97
    assert score["rotated"] < 0.7
    assert score["ignore1"] < score["identity"] - 0.05


def test_betavae_constructed(codes):
    f = codes["factors"]
    score = {k: betavae_score(codes[k], f, n_train=200, n_eval=100) for k in ("identity", "rotated", "ignore2")}
    assert score["identity"] > 0.97
    assert score["rotated"] < score["identity"] - 0.1
    # one ignored factor stays identifiable by elimination (no unit goes still); with two the
    # classifier cannot tell which of them was held fixed
    assert score["ignore2"] < score["identity"] - 0.1


def test_dci_constructed(codes):
    f = codes["factors"]
    out = {k: dci(codes[k], f, n_estimators=5) for k in ("identity", "rotated", "random_rotation", "ignore1")}
    assert set(out["identity"]) >= {"disentanglement", "completeness", "informativeness", "dci", "importance"}
    assert out["identity"]["dci"] > 0.9 and out["identity"]["completeness"] > 0.9
    assert out["identity"]["informativeness"] > 0.9
    assert out["rotated"]["dci"] < 0.3 and out["random_rotation"]["dci"] < 0.5
    assert out["ignore1"]["dci"] < out["identity"]["dci"] - 0.05
    assert out["ignore1"]["informativeness"] < out["identity"]["informativeness"]
    assert np.asarray(out["identity"]["importance"]).shape == (4, 4)


def test_sampler_mode_matches_the_protocol():
    """encode_factors: the metric draws factor classes with one held fixed; identity codes score 1."""
    seen = []

    def encode(classes):
        seen.append(classes.copy())
        return classes.astype(float)            # the code is the factors themselves

    assert betavae_score(encode_factors=encode, factor_sizes=SIZES, n_train=100, n_eval=50, batch_size=8) > 0.97
    assert factorvae_score(encode_factors=encode, factor_sizes=SIZES, n_train=100, n_eval=50, batch_size=8) > 0.97
    assert all(c.shape[1] == 4 and (c < np.array(SIZES)).all() for c in seen)
    scaled = np.sqrt(12.0 / (np.array(SIZES) ** 2 - 1.0))          # unit variance per factor: even mixing
    mixed = factorvae_score(encode_factors=lambda c: (c * scaled) @ HADAMARD, factor_sizes=SIZES,
                            n_train=100, n_eval=50, batch_size=8)
    assert mixed < 0.7


def test_a_constant_code_scores_zero_or_chance_without_errors(codes):
    """Full posterior collapse (the same code for every input) carries nothing: MIG and DCI are 0,
    the classifier scores fall to chance (the majority factor's share), and nothing raises."""
    f = codes["factors"]
    z = np.tile([[2.0, -1.0, 0.5]], (N, 1))                        # (N, 3) input-independent
    assert mig(z, f) == 0.0
    out = dci(z, f, n_estimators=5)
    assert out["dci"] == 0.0 and out["completeness"] == 0.0 and out["informativeness"] < 0.4
    assert factorvae_score(z, f, n_train=200, n_eval=200) < 0.4     # chance is 1/4
    assert betavae_score(z, f, n_train=200, n_eval=200) < 0.4
    with pytest.raises(ConfigError, match="every factor is constant"):
        dci(codes["identity"], np.zeros_like(f), n_estimators=3)


def test_metrics_are_deterministic_and_check_inputs(codes):
    f, z = codes["factors"], codes["rotated"]
    assert factorvae_score(z, f, n_train=50, n_eval=20, seed=3) == factorvae_score(z, f, n_train=50, n_eval=20, seed=3)
    assert betavae_score(z, f, n_train=50, n_eval=20, seed=3) == betavae_score(z, f, n_train=50, n_eval=20, seed=3)
    assert dci(z[:300], f[:300], n_estimators=3)["dci"] == dci(z[:300], f[:300], n_estimators=3)["dci"]
    with pytest.raises(ConfigError, match="same N"):
        mig(z[:10], f[:9])
    with pytest.raises(ConfigError, match="not both"):
        betavae_score(z, f, encode_factors=lambda c: c, factor_sizes=SIZES)
    with pytest.raises(ConfigError, match="factor_sizes"):
        factorvae_score(encode_factors=lambda c: c)
    with pytest.raises(ConfigError, match="integer"):
        mig(z, f + 0.5)


# ------------------------------------------------------------------ the capacity-annealed KL term
def _ctx(kl):
    """A context whose posterior reports the given per-unit KL (B, D)."""
    posterior = SimpleNamespace(kl_per_unit=lambda: kl)
    return SimpleNamespace(code=SimpleNamespace(posterior=posterior), x_in=None, model=None)


def test_annealed_kl_term_follows_the_capacity_schedule():
    kl = torch.tensor([[1.0, 2.0], [3.0, 6.0]], requires_grad=True)   # per-sample sums 3 and 9: mean 6
    reg = KLPrior(beta=10.0, capacity=8.0, capacity_steps=4).train()
    values = []
    for step in range(6):
        assert reg.current_capacity() == pytest.approx(8.0 * min(1.0, step / 4))
        values.append(reg(_ctx(kl)).detach())
    # C = 0, 2, 4, 6, 8, 8 at steps 0..5: |6 - C| broadcast over the batch
    assert [float(v[0]) for v in values] == pytest.approx([6, 4, 2, 0, 2, 2])
    assert all(v.shape == (2,) and v[0] == v[1] for v in values)
    assert int(reg.step) == 6 and reg.current_weight() == 10.0
    # below the target the gradient pushes the KL up (towards C), above it down
    (below,) = torch.autograd.grad(reg(_ctx(kl)).mean(), kl)     # KL 6 < C 8
    assert (below < 0).all()
    reg.eval()
    frozen = reg(_ctx(kl)).detach()                                       # evaluation does not advance the schedule
    assert int(reg.step) == 7 and float(frozen[0]) == pytest.approx(2.0)
    # capacity 0 is the plain per-sample KL, as before
    plain = KLPrior(beta=1.0).train()(_ctx(kl))
    assert plain.tolist() == [3.0, 9.0]


def test_annealed_loss_in_the_model_is_recon_plus_gamma_abs_kl_minus_c():
    # the paper's form, on the whole KL (the recipe's default caps the information with the hinge)
    recipe = aekit.resolve_config("annealed_vae", input_shape=(1, 8, 8))["regularizers"]["kl_prior"]
    assert recipe["capacity_on"] == "information" and recipe["capacity_loss"] == "hinge"
    model = aekit.build("annealed_vae", input_shape=(1, 8, 8), channels=[4, 8], latent_dim=3, seed=0,
                        regularizers={"kl_prior": {"beta": 50.0, "capacity": 5.0, "capacity_steps": 10,
                                                   "capacity_on": "kl", "capacity_loss": "abs"}})
    reg = model.regularizers["kl_prior"]
    reg.step.fill_(4)                                  # C = 2 nats
    model.train()
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(0)
    out = model(x)
    kl = out.code.posterior.kl_per_unit().sum(1).mean()
    assert float(out.terms["kl_prior"].detach()) == pytest.approx(abs(float(kl.detach()) - 2.0), rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(float(out.terms["nll"].detach()) + 50.0 * abs(float(kl.detach()) - 2.0), rel=1e-5)
    assert list(model.config["backbone"]) == ["conv"] and model.config["likelihood"] == {"bernoulli": {}}


def test_the_hinge_capacity_term_caps_the_kl_without_pushing_it_up():
    kl = torch.tensor([[1.0, 2.0], [3.0, 6.0]], requires_grad=True)   # batch-mean KL 6
    reg = KLPrior(beta=10.0, capacity=8.0, capacity_steps=4, capacity_loss="hinge").train()
    values = [float(reg(_ctx(kl))[0]) for _ in range(6)]               # C = 0, 2, 4, 6, 8, 8
    assert values == pytest.approx([6, 4, 2, 0, 0, 0])                 # max(0, KL - C)
    (below,) = torch.autograd.grad(reg(_ctx(kl)).mean(), kl)           # KL 6 < C 8: no gradient at all
    assert (below == 0).all()
    reg.step.fill_(1)                                                  # C = 2 < KL 6: the gradient pushes it down
    (above,) = torch.autograd.grad(reg(_ctx(kl)).mean(), kl)
    assert_close(above, torch.full((2, 2), 0.5))                       # d mean_b sum_d KL / d KL = 1 / B
    model = aekit.build("annealed_vae", input_shape=(1, 8, 8), channels=[4, 8], latent_dim=3, seed=0,
                        regularizers={"kl_prior": {"capacity_loss": "hinge"}})
    assert model.regularizers["kl_prior"].capacity_loss == "hinge"
    with pytest.raises(ConfigError, match="capacity_loss"):
        KLPrior(capacity=5.0, capacity_loss="square")


def test_the_kl_weight_under_the_cap_is_a_second_term():
    model = aekit.build("annealed_vae", input_shape=(1, 8, 8), channels=[4, 8], latent_dim=3, seed=0,
                        regularizers={"kl_prior": {"beta": 50.0, "capacity": 5.0, "capacity_steps": 10,
                                                   "capacity_loss": "hinge", "kl_weight": 1.0, "capacity_on": "kl"}})
    reg = model.regularizers["kl_prior"]
    reg.step.fill_(2)                                  # C = 1 nat
    model.train()
    torch.manual_seed(0)
    out = model(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    per_sample = out.code.posterior.kl_per_unit().sum(1)  # (B,)
    kl = per_sample.mean()
    assert set(out.terms) == {"nll", "kl_prior.kl", "kl_prior.capacity"}
    assert out.weights["kl_prior.kl"] == 1.0 and out.weights["kl_prior.capacity"] == 50.0
    assert_close(out.terms["kl_prior.kl"], kl)
    assert_close(out.terms["kl_prior.capacity"], (kl - 1.0).clamp(min=0))
    assert_close(out.loss, out.terms["nll"] + kl + 50.0 * (kl - 1.0).clamp(min=0))
    assert_close(out.per_sample, out.nll + per_sample + 50.0 * (kl - 1.0).clamp(min=0))
    with pytest.raises(ConfigError, match="kl_weight"):
        KLPrior(capacity=5.0, kl_weight=-1.0)


def test_the_kl_splits_exactly_into_information_and_marginal():
    from aekit.axes.divergences import kl_information_split
    from aekit.axes.bottlenecks import DiagonalGaussian

    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 4, generator=gen) * 2 + 1, torch.randn(50, 4, generator=gen)
    info, marginal = kl_information_split(mu, logvar)
    assert info.shape == marginal.shape == (4,) and (info >= 0).all() and (marginal >= 0).all()
    assert_close(info + marginal, DiagonalGaussian(mu, logvar).kl_per_unit().mean(0))   # the batch-mean KL, exactly
    # every input the same variance s^2: the information is the Gaussian channel's 0.5 log(1 + var(mu) / s^2)
    same = torch.full_like(logvar, math.log(0.25))
    info, _ = kl_information_split(mu, same)
    assert_close(info, 0.5 * torch.log(1 + mu.var(0, unbiased=False) / 0.25))
    # a posterior that ignores its input: no information, whatever its offset and variance; the KL is all marginal
    const_mu, const_lv = torch.tensor([[3.0, -1.0]]).expand(8, 2), torch.tensor([[1.5, -2.0]]).expand(8, 2)
    info, marginal = kl_information_split(const_mu, const_lv)
    assert_close(info, torch.zeros(2), atol=1e-6, rtol=0)
    assert_close(marginal, DiagonalGaussian(const_mu, const_lv).kl_per_unit()[0])
    # an offset of every mean moves the marginal part only: the information has no gradient along it
    mu.requires_grad_(True)
    info, _ = kl_information_split(mu, logvar)
    (grad,) = torch.autograd.grad(info.sum(), mu)
    assert_close(grad.sum(0), torch.zeros(4), atol=1e-5, rtol=0)


def test_the_capacity_on_the_information_term():
    model = aekit.build("annealed_vae", input_shape=(1, 8, 8), backbone={"conv": {"channels": [4, 8]}}, latent_dim=3,
                        seed=0, regularizers={"kl_prior": {"beta": 50.0, "capacity": 5.0, "capacity_steps": 10,
                                                           "capacity_on": "information", "capacity_loss": "abs"}})
    from aekit.axes.divergences import kl_information_split

    reg = model.regularizers["kl_prior"]
    reg.step.fill_(4)                                  # C = 2 nats
    model.train()
    torch.manual_seed(0)
    out = model(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    post = out.code.posterior
    info, marginal = kl_information_split(post.mu, post.logvar)
    assert set(out.terms) == {"nll", "kl_prior.capacity", "kl_prior.marginal"}
    assert out.weights["kl_prior.capacity"] == 50.0 and out.weights["kl_prior.marginal"] == 50.0
    assert_close(out.terms["kl_prior.capacity"], (info.sum() - 2.0).abs())
    assert_close(out.terms["kl_prior.marginal"], marginal.sum())
    assert_close(out.loss, out.terms["nll"] + 50.0 * ((info.sum() - 2.0).abs() + marginal.sum()))
    # an aggregate posterior at the prior (means +-a, variances 1 - a^2: mean 0, variance 1) has marginal 0, and
    # the term is the paper's |KL - C|
    a = torch.tensor([0.6, 0.9])
    at_prior = SimpleNamespace(mu=torch.stack([a, -a]), logvar=torch.log(1 - a**2).expand(2, 2))
    at_prior.kl_per_unit = lambda: 0.5 * (at_prior.mu**2 + 1 - a**2 - 1 - at_prior.logvar)
    ctx = SimpleNamespace(code=SimpleNamespace(posterior=at_prior), x_in=None, model=None)
    reg = KLPrior(beta=10.0, capacity=8.0, capacity_on="information").eval()
    parts = reg(ctx)
    assert_close(parts["marginal"], torch.zeros(2), atol=1e-6, rtol=0)
    assert_close(parts["capacity"], (at_prior.kl_per_unit().sum(1).mean() - 8.0).abs().expand(2))
    # kl_weight adds the per-sample KL as a third term; the hinge caps the information
    reg = KLPrior(beta=10.0, capacity=8.0, capacity_on="information", capacity_loss="hinge", kl_weight=1.0).train()
    ctx = SimpleNamespace(code=SimpleNamespace(posterior=post), x_in=None, model=None)
    parts = reg(ctx)
    assert set(parts) == {"capacity", "marginal", "kl"} and reg.term_weights()["kl"] == 1.0
    assert_close(parts["capacity"], (info.sum() - 8.0).clamp(min=0).expand(6))
    with pytest.raises(ConfigError, match="capacity_on"):
        KLPrior(capacity=5.0, capacity_on="mi")


def test_the_capacity_can_start_above_zero():
    reg = KLPrior(beta=10.0, capacity=8.0, capacity_steps=4, capacity_start=2.0).train()
    kl = torch.tensor([[1.0, 2.0], [3.0, 6.0]])                        # batch-mean KL 6
    caps, values = [], []
    for _ in range(6):
        caps.append(reg.current_capacity())
        values.append(float(reg(_ctx(kl))[0]))
    assert caps == pytest.approx([2.0, 3.5, 5.0, 6.5, 8.0, 8.0])       # C_0 + (C_max - C_0) * step / steps
    assert values == pytest.approx([4.0, 2.5, 1.0, 0.5, 2.0, 2.0])     # |6 - C|
    fresh = KLPrior(capacity=8.0, capacity_steps=4, capacity_start=2.0)
    assert "C reaches only 5 of capacity=8" in fresh.schedule_note(2)  # a run of 2 of the 4 steps: 2 + 6 / 2
    for bad in (-1.0, 9.0):
        with pytest.raises(ConfigError, match="capacity_start"):
            KLPrior(capacity=8.0, capacity_start=bad)


def test_a_capacity_schedule_longer_than_the_run_is_a_warning():
    from aekit.errors import AekitWarning
    from aekit.training.trainer import TrainConfig, Trainer

    model = aekit.build("annealed_vae", input_shape=(1, 8, 8), channels=[4, 8], latent_dim=3, seed=0,
                        regularizers={"kl_prior": {"capacity": 25.0, "capacity_steps": 1000}})
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.warns(AekitWarning, match=r"C reaches only 2 of capacity=25 nats; set capacity_steps to about 64"):
        Trainer(model, TrainConfig(epochs=10, batch_size=8, progress=False)).fit(x)  # 80 steps
    assert KLPrior(capacity=5.0, capacity_steps=80).schedule_note(80) is None


def test_capacity_options_are_checked():
    with pytest.raises(ConfigError, match="capacity"):
        KLPrior(capacity=-1.0)
    with pytest.raises(ConfigError, match="alternatives"):
        KLPrior(capacity=5.0, free_bits=0.1)


# ------------------------------------------------------------------ commands
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dis")
    code, out, err = cli("train", "annealed_vae", "--data", "dsprites32", "--max-samples", "64", "--epochs", "1",
                         "--channels", "4,8", "--latent-dim", "3", "--capacity", "5", "--capacity-steps", "10",
                         "--gamma", "20", "--quiet", "--out", root / "run")
    assert code == 0, err
    return root


def test_train_records_the_capacity_options(tiny_run):
    info = json.loads((tiny_run / "run" / "run.json").read_text())
    assert info["model"]["regularizers"]["kl_prior"] == {"beta": 20.0, "capacity": 5.0, "capacity_steps": 10,
                                                         "capacity_on": "information", "capacity_loss": "hinge"}  # the recipe's
    assert info["data"]["source"] == "dsprites32" and info["dataset"]["shape"] == [1, 32, 32]
    code, _, err = cli("train", "beta_vae", "--data", "dsprites32", "--max-samples", "8", "--gamma", "3",
                       "--beta", "4", "--out", tiny_run / "bad")
    assert code == 2 and "--gamma and --beta" in err


def test_disentangle_command_end_to_end(tiny_run):
    run = tiny_run / "run"
    args = ("--samples", "300", "--votes", "20", "--batch-size", "8")
    code, out, err = cli("disentangle", run, "--json", *args)
    assert code == 0, err
    scores = json.loads(out)
    for key in ("mig", "factorvae_score", "betavae_score", "dci"):
        assert 0.0 <= scores[key] <= 1.0
    assert set(scores["mig_per_factor"]) == {"shape", "scale", "orientation", "pos_x", "pos_y"}
    code, table, _ = cli("disentangle", run, *args)
    assert code == 0 and "factorvae_score" in table and "mig per factor" in table


def test_disentangle_refuses_data_without_factors(tmp_path):
    code, _, err = cli("train", "vae", "--data", "digits", "--max-samples", "50", "--epochs", "1", "--hidden", "8",
                       "--latent-dim", "2", "--quiet", "--out", tmp_path / "digits")
    assert code == 0, err
    code, _, err = cli("disentangle", tmp_path / "digits")
    assert code == 1 and "generative factors" in err and "dsprites32" in err
    assert err.count("\n") == 1


def test_traversals_ordered_by_kl(tiny_run):
    from aekit.training.runs import load_run
    from aekit.viz.kl_traversals import kl_order, plot_traversals_by_kl

    assert kl_order([0.1, 3.0, 0.0, 3.0]).tolist() == [1, 3, 0, 2]
    model, _ = load_run(tiny_run / "run")
    codes = torch.randn(20, 3)
    fig = plot_traversals_by_kl(model, codes, [0.5, 2.0, 0.0], steps=5)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].startswith("z[1]") and labels[-1].startswith("z[2]")


def test_the_command_line_reaches_the_hinge_and_the_kl_weight():
    from aekit.cli import make_parser
    from aekit.cli.options import build_kwargs

    args = make_parser().parse_args(["train", "annealed_vae", "--capacity", "10", "--capacity-steps", "4000",
                                     "--gamma", "100", "--reg", "kl_prior:capacity_loss=hinge,kl_weight=1"])
    assert build_kwargs(args)["regularizers"] == {"kl_prior": {"capacity_loss": "hinge", "kl_weight": 1.0,
                                                               "beta": 100.0, "capacity": 10.0,
                                                               "capacity_steps": 4000}}
