"""Discriminators on codes in their own optimizer group: the AAE's prior matching and FactorVAE's total
correlation (aekit/axes/adversarial.py), checked by hand, against closed forms, through the trainer
(group structure, checkpoint and bit-exact resume) and from the command line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.testing import assert_close

import aekit
from aekit.axes.adversarial import code_rows, permute_dims, total_correlation_gaussian
from aekit.axes.regularizers import RegContext
from aekit.training.trainer import TrainConfig, Trainer


def images(n: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, 6, 6), generator=torch.Generator().manual_seed(seed))


def linear_disc(reg, w, b) -> None:
    """Make the discriminator the affine map z -> w . z + b."""
    lin = nn.Linear(len(w), 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w]))
        lin.bias.fill_(b)
    reg.discriminator.net = nn.Sequential(lin)


# ----------------------------------------------------------------------------- the permutation
def test_the_permutation_keeps_every_marginal_exactly_and_breaks_the_dependence():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 1, generator=g)
    z = torch.cat([a, a + 0.1 * torch.randn(4000, 1, generator=g), torch.randn(4000, 1, generator=g)], dim=1)
    p = permute_dims(z, generator=torch.Generator().manual_seed(1))
    assert p.shape == z.shape
    for j in range(3):  # each column holds exactly the same values
        assert torch.equal(p[:, j].sort().values, z[:, j].sort().values)
    assert torch.corrcoef(z.T)[0, 1] > 0.99 and abs(float(torch.corrcoef(p.T)[0, 1])) < 0.05
    assert not torch.equal(p[:, 0], z[:, 0])  # the rows moved


def test_a_spatial_code_is_one_row_per_position():
    z = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # (B, C, H, W)
    rows = code_rows(z)
    assert rows.shape == (8, 3) and torch.equal(rows[5], z[1, :, 0, 1])


# ----------------------------------------------------------------------------- AAE by hand
def test_the_adversarial_losses_by_hand_for_a_fixed_discriminator():
    model = aekit.build("aae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0)
    reg = model.regularizers["adversarial"]
    linear_disc(reg, [0.5, -1.0], 0.2)
    x = images(5).view(5, -1)[:, :6]
    model.train()
    out = model(x)
    z = out.z  # (5, 2) the deterministic codes
    d = 0.5 * z[:, 0] - z[:, 1] + 0.2
    assert_close(out.terms["adversarial"], torch.log1p(torch.exp(-d)).mean())  # -log sigmoid(D(z))
    assert_close(out.loss, out.terms["nll"] + 1.0 * out.terms["adversarial"])
    torch.manual_seed(3)
    step = model.training_step(x, group="adversarial_discriminator")
    torch.manual_seed(3)
    prior = torch.randn(5, 2)  # the draws the step made
    dp = 0.5 * prior[:, 0] - prior[:, 1] + 0.2
    real, fake = -torch.log(torch.sigmoid(dp)).mean(), -torch.log(1 - torch.sigmoid(d)).mean()
    assert_close(step.terms["real"], real.detach()) and assert_close(step.terms["fake"], fake.detach())
    assert_close(step.loss, real + fake)
    step.loss.backward()  # the codes are detached: L_D trains the discriminator only
    assert all(p.grad is None for p in model.encoder.parameters())
    assert reg.discriminator.net[0].weight.grad is not None


def test_the_optimal_discriminator_makes_the_generator_loss_log2_when_the_codes_are_the_prior():
    """D*(z) = log p(z) / q(z); with q = p, D* = 0 and both losses are log 2 (Goodfellow et al. 2014)."""
    model = aekit.build("aae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0)
    reg = model.regularizers["adversarial"]
    linear_disc(reg, [0.0, 0.0], 0.0)
    z = torch.randn(16, 2)
    code = type("C", (), {"z": z})()
    assert_close(reg(RegContext(x_in=z, code=code, model=model)), torch.full((16,), math.log(2)))
    loss, _ = reg.discriminator_loss(z)
    assert_close(loss, torch.tensor(2 * math.log(2)))


# ----------------------------------------------------------------------------- FactorVAE
def correlated(n: int, rho: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a, e = torch.randn(n, generator=g), torch.randn(n, generator=g)
    return torch.stack([a, rho * a + math.sqrt(1 - rho ** 2) * e], dim=1)  # N(0, [[1, rho], [rho, 1]])


class LogRatio(nn.Module):
    """The exact log q(z) / (q(z_1) q(z_2)) of N(0, [[1, rho], [rho, 1]]), or a learnable quadratic form."""

    def __init__(self, rho: float | None = None) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.zeros(4))  # z1^2 + z2^2, z1 z2, 1 (and a spare z1 + z2 term)
        if rho is not None:
            with torch.no_grad():
                s = 1 - rho ** 2
                self.coef.copy_(torch.tensor([-0.5 / s + 0.5, rho / s, -0.5 * math.log(s), 0.0]))

    def forward(self, z):
        feats = torch.stack([z.pow(2).sum(1), z[:, 0] * z[:, 1], torch.ones_like(z[:, 0]), z.sum(1)], dim=1)
        return (feats * self.coef).sum(1)


def test_the_tc_term_with_the_exact_density_ratio_is_the_gaussian_total_correlation():
    rho = 0.8
    model = aekit.build("factor_vae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0)
    reg = model.regularizers["factor_tc"]
    reg.discriminator.net = LogRatio(rho)
    z = correlated(200_000, rho, seed=0)
    code = type("C", (), {"z": z})()
    tc = total_correlation_gaussian(torch.tensor([[1.0, rho], [rho, 1.0]]))
    assert_close(tc, torch.tensor(-0.5 * math.log(1 - rho ** 2)))  # 0.511 nats
    with torch.no_grad():
        assert abs(float(reg(RegContext(x_in=z, code=code, model=model)).mean()) - float(tc)) < 0.01


def test_the_discriminator_trained_on_permuted_codes_learns_the_total_correlation():
    """Minimising L_D over a family that holds the exact log ratio recovers it: the estimate approaches TC."""
    rho = 0.8
    model = aekit.build("factor_vae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0)
    reg = model.regularizers["factor_tc"]
    reg.discriminator.net = LogRatio()
    opt = torch.optim.Adam(reg.parameters(), lr=0.05)
    torch.manual_seed(0)
    for step in range(300):
        loss, _ = reg.discriminator_loss(correlated(1024, rho, seed=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = correlated(100_000, rho, seed=10_000)
    with torch.no_grad():
        estimate = float(reg(RegContext(x_in=z, code=type("C", (), {"z": z})(), model=model)).mean())
    assert abs(estimate - (-0.5 * math.log(1 - rho ** 2))) < 0.05, estimate
    with torch.no_grad():  # the optimal discriminator's cross-entropy: below the untrained 2 log 2
        assert float(reg.discriminator_loss(z)[0]) < 2 * math.log(2) - 0.1


def test_factor_vae_loss_is_the_elbo_plus_gamma_times_the_discriminator_logit():
    model = aekit.build("factor_vae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0,
                        regularizers={"factor_tc": {"gamma": 3.0, "hidden": [4]}})
    reg = model.regularizers["factor_tc"]
    linear_disc(reg, [1.0, 2.0], -0.5)
    x = images(6).view(6, -1)[:, :6]
    model.train()
    out = model(x)
    assert_close(out.terms["factor_tc"], (out.z[:, 0] + 2 * out.z[:, 1] - 0.5).mean())
    assert out.weights["factor_tc"] == 3.0
    assert_close(out.loss, out.terms["nll"] + out.terms["kl_prior"] + 3.0 * out.terms["factor_tc"])
    step = model.training_step(x, group="factor_tc_discriminator")  # on the codes of the step above
    assert set(step.terms) == {"real", "fake"} and torch.isfinite(step.loss)
    assert_close(step.terms["real"], F.softplus(-(out.z[:, 0] + 2 * out.z[:, 1] - 0.5)).mean().detach())


# ----------------------------------------------------------------------------- groups, trainer, resume
@pytest.mark.parametrize("variant,group", [("aae", "adversarial_discriminator"),
                                           ("factor_vae", "factor_tc_discriminator")])
def test_the_discriminator_is_its_own_optimizer_group(variant, group):
    model = aekit.build(variant, input_shape=(1, 6, 6), hidden=[8], seed=0,
                        regularizers={next(iter(aekit.resolve_config(variant, input_shape=(4,))["regularizers"]
                                                .keys() - {"kl_prior"})): {"disc_steps": 2}})
    groups = model.optimizer_groups()
    assert [g.name for g in groups] == ["main", group] and groups[1].steps == 2
    reg = model._discriminator_groups()[group]
    disc = {id(p) for p in reg.discriminator.parameters()}
    assert {id(p) for p in groups[1].params} == disc and not disc & {id(p) for p in groups[0].params}
    assert len(groups[0].params) + len(groups[1].params) == len(list(model.parameters()))
    opt = groups[1].optimizer(groups[1].params)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["betas"] == (0.5, 0.9)
    before = {k: v.clone() for k, v in reg.discriminator.state_dict().items()}
    enc = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    with pytest.warns(aekit.errors.ShortRunWarning):
        Trainer(model, TrainConfig(epochs=1, batch_size=8, progress=False)).fit(images(24))
    assert any(not torch.equal(v, reg.discriminator.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, model.encoder.state_dict()[k]) for k, v in enc.items())


class _Stop(Exception):
    pass


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
@pytest.mark.parametrize("variant", ["aae", "factor_vae"])
def test_a_run_with_a_discriminator_resumes_bit_identical(variant, tmp_path, no_fsync):
    x = images(40)
    cfg = TrainConfig(epochs=2, batch_size=8, progress=False, checkpoint_every=2, lr=1e-2)
    make = lambda: aekit.build(variant, input_shape=(1, 6, 6), hidden=[8], seed=0)  # noqa: E731
    ref = Trainer(make(), cfg, out_dir=tmp_path / "ref")
    ref.fit(x, x[:8])
    count = [0]

    def hook(optimizer, args, kwargs):
        count[0] += 1
        if count[0] == 13:  # two optimizer steps per batch: inside the second epoch, after a checkpoint
            raise _Stop

    handle = register_optimizer_step_pre_hook(hook)
    try:
        with pytest.raises(_Stop):
            Trainer(make(), cfg, out_dir=tmp_path / "run").fit(x, x[:8])
    finally:
        handle.remove()
    again = Trainer(make(), cfg, out_dir=tmp_path / "run")
    again.fit(x, x[:8], resume=True)
    assert again.step == ref.step == 10
    for name, value in ref.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], value), name
    state = [o.state_dict()["state"] for o in again.optimizers]
    ref_state = [o.state_dict()["state"] for o in ref.optimizers]
    assert len(state) == 2 and all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"])
                                   for a, b in zip(state, ref_state) for i in b)
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in h]  # noqa: E731
    assert strip(again.history) == strip(ref.history)
    assert any(k.endswith("_discriminator_loss") for k in ref.history[-1])
    aekit.save(ref.model, tmp_path / "saved")
    loaded = aekit.load(tmp_path / "saved")  # a saved model holds its discriminator
    assert torch.equal(next(iter(loaded.regularizers.values())).discriminator.net[0].weight,
                       next(iter(ref.model.regularizers.values())).discriminator.net[0].weight)


# ----------------------------------------------------------------------------- errors and the command line
@pytest.mark.parametrize("reg,params,word", [("adversarial", {"hidden": [0]}, "hidden"),
                                             ("adversarial", {"disc_lr": 0.0}, "disc_lr"),
                                             ("factor_tc", {"disc_steps": 0}, "disc_steps"),
                                             ("factor_tc", {"gamma": -1.0}, "weight")])
def test_bad_discriminator_settings_are_one_line_errors(reg, params, word):
    variant = "aae" if reg == "adversarial" else "factor_vae"
    with pytest.raises(aekit.ConfigError, match=word):
        aekit.build(variant, input_shape=(6,), regularizers={reg: params})


def test_factor_tc_needs_a_posterior():
    with pytest.raises(aekit.ConfigError, match="posterior"):
        aekit.build("ae", input_shape=(6,), regularizers={"factor_tc": {}})


def test_the_command_line_trains_both_and_takes_the_reg_specs(tmp_path):
    from cli_helpers import cli

    from aekit.cli import make_parser
    from aekit.cli.options import build_kwargs

    code, out, err = cli("list")
    assert code == 0, err
    assert all(any(line.startswith(f"{n} ") for line in out.splitlines()) for n in ("adversarial", "factor_tc"))
    assert "aae" in out and "factor_vae" in out
    args = make_parser().parse_args(["train", "vae", "--reg", "factor_tc:gamma=6,hidden=16,disc_lr=0.001"])
    assert build_kwargs(args)["regularizers"] == {"factor_tc": {"gamma": 6.0, "hidden": [16], "disc_lr": 0.001}}
    tiny = ["--data", "digits", "--max-samples", "120", "--epochs", "1", "--hidden", "16", "--quiet"]
    for variant in ("aae", "factor_vae"):
        run = tmp_path / variant
        code, _, err = cli("train", variant, *tiny, "--latent-dim", "3", "--out", run)
        assert code == 0, err
        assert (Path(run) / "history.csv").exists() or any(Path(run).iterdir())


def test_an_aae_samples_from_the_prior_its_codes_are_matched_to():
    """model.sample on an AAE decodes N(0, I) draws of the code width: the same draws by hand give the same images."""
    model = aekit.build("aae", input_shape=(12,), latent_dim=3, hidden=[8],
                        regularizers={"adversarial": {"hidden": [8]}}, seed=0).eval()
    x = model.sample(5, generator=torch.Generator().manual_seed(7))
    assert x.shape == (5, 12)
    z = torch.randn((5, 3), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(x, model.decode(z))
    plain = aekit.build("ae", input_shape=(12,), latent_dim=3, hidden=[8], seed=0)
    with pytest.raises(aekit.ConfigError, match="needs a generative model"):
        plain.sample(2)
