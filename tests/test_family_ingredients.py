"""The rest of the family as ingredients: each registered piece checked against its maths computed by hand.

vq / fsq / batch_topk bottlenecks, the mmd / tc / dip / rae / kl_vamp regularizers, the IWAE path of the
gaussian bottleneck, the code prior of discrete models, the ex-post Gaussian-mixture sampler, the code metrics
and the command-line options that reach them.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

import aekit
from aekit.axes.divergences import dip_covariance, dip_penalty, mmd_unbiased
from aekit.axes.regularizers import RegContext
from aekit.metrics import code_sparsity, codebook_usage
from aekit.metrics.codes import code_indices
from aekit.tasks.code_prior import CategoricalCodePrior, fit_code_prior
from aekit.tasks.ex_post import ExPostSampler

LOG_2PI = math.log(2 * math.pi)


def data(n: int = 8, d: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, d), generator=torch.Generator().manual_seed(seed))


def std_normal_logpdf(z: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1)


# ---------------------------------------------------------------------- IWAE
def test_iwae_with_one_sample_is_the_elbo_at_the_same_sample():
    model = aekit.build(input_shape=(6,), latent_dim=3, hidden=[8], bottleneck={"gaussian": {"iwae_k": 1}},
                        likelihood="bernoulli", seed=0).train()
    x = data()
    torch.manual_seed(5)
    out = model(x)
    post, z = out.code.posterior, out.z
    nll = model.likelihood.nll(x, model.decoder(z, []))  # -log p(x | z), (B,)
    elbo = -nll + std_normal_logpdf(z) - post.log_prob(z)  # one-sample ELBO at out.z
    assert_close(out.per_sample, -elbo)
    assert_close(out.loss, -elbo.mean())
    assert set(out.terms) == {"nll"} and out.weights == {"nll": 1.0}

    # the VAE with the same weights and the same draw: its NLL plus the sampled KL is the same number
    vae = aekit.build("vae", input_shape=(6,), latent_dim=3, hidden=[8], seed=0).train()
    missing = vae.load_state_dict(model.state_dict(), strict=False).missing_keys
    assert missing == ["regularizers.kl_prior.step"]
    torch.manual_seed(5)
    ref = vae(x)
    assert torch.equal(ref.z, z)
    assert_close(out.loss, ref.terms["nll"] + (post.log_prob(z) - std_normal_logpdf(z)).mean())


def test_iwae_with_k_samples_is_the_log_mean_weight_of_those_samples():
    k = 4
    model = aekit.build(input_shape=(6,), latent_dim=3, hidden=[8], bottleneck={"gaussian": {"iwae_k": k}},
                        likelihood="bernoulli", seed=1).eval()
    x = data(5)
    out = model(x)
    post = out.code.posterior
    eps = torch.randn((k, 5, 3), generator=torch.Generator().manual_seed(0))  # eval: the draws of seed 0
    zk = post.mu + post.std * eps
    log_w = torch.stack([-model.likelihood.nll(x, model.decoder(zk[i], [])) + std_normal_logpdf(zk[i])
                         - post.log_prob(zk[i]) for i in range(k)])  # (K, B)
    by_hand = -(torch.logsumexp(log_w, 0) - math.log(k))
    assert_close(out.per_sample, by_hand)
    assert_close(out.nll, by_hand)
    assert torch.equal(model(x).loss, out.loss)  # eval is deterministic


def test_an_importance_weighted_bottleneck_refuses_a_kl_regularizer():
    with pytest.raises(aekit.ConfigError, match="'elbo_path'.*iwae_k=None"):
        aekit.build(input_shape=(6,), bottleneck={"gaussian": {"iwae_k": 3}}, regularizers={"kl_prior": {}})
    with pytest.raises(aekit.ConfigError, match="iwae_k"):
        aekit.build(input_shape=(6,), bottleneck={"gaussian": {"iwae_k": 0}})
    assert aekit.build("iwae", input_shape=(6,)).config["bottleneck"] == {"gaussian": {"iwae_k": 5}}


# ---------------------------------------------------------------------- MMD
def test_the_mmd_regularizer_is_the_unbiased_estimate_against_prior_draws():
    model = aekit.build("wae_mmd", input_shape=(6,), hidden=[8], seed=0).train()
    x = data(10)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        out = model(x)
        z = out.z.detach()
        torch.manual_seed(3)  # nothing before the prior draws uses the generator (no corruption, deterministic code)
        prior = torch.randn((256, z.shape[1]))
    want = mmd_unbiased(z, prior, kernel="imq", scale=1.0)
    assert_close(out.terms["mmd"], want)
    assert out.weights["mmd"] == 10.0 and model.config["latent_dim"] == 8
    assert_close(out.loss, out.terms["nll"] + 10.0 * want)


def test_the_mmd_rbf_kernel_and_info_vae_weights():
    model = aekit.build("info_vae", input_shape=(6,), hidden=[8], seed=0)
    regs = model.config["regularizers"]
    alpha, lam = 0.0, 1000.0
    assert regs["kl_prior"]["beta"] == 1 - alpha and regs["mmd"]["weight"] == alpha + lam - 1
    reg = aekit.build(input_shape=(6,), latent_dim=2, bottleneck="gaussian",
                      regularizers={"mmd": {"kernel": "rbf", "scale": 0.5, "prior_samples": 2}}).regularizers["mmd"]
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))

    class C:  # a code without a posterior: the regularizer uses z itself
        posterior = None

    C.z = z
    reg.eval()
    prior = torch.randn((7, 2), generator=torch.Generator().manual_seed(0))  # eval: max(B, 2) draws of seed 0
    assert_close(reg(RegContext(x_in=None, code=C, model=None)), mmd_unbiased(z, prior, kernel="rbf", scale=0.5).expand(7))
    with pytest.raises(aekit.ConfigError, match="mmd kernel"):
        aekit.build(input_shape=(6,), regularizers={"mmd": {"kernel": "laplace"}})


# ---------------------------------------------------------------------- beta-TC-VAE
def test_the_three_tc_terms_sum_to_the_sampled_kl_and_weight_the_loss():
    model = aekit.build("beta_tc_vae", input_shape=(6,), hidden=[8], seed=0).train()
    x = data(9)
    out = model(x)
    post, z = out.code.posterior, out.z
    parts = model.regularizers["tc"](RegContext(x_in=x, code=out.code, model=model))
    assert set(parts) == {"mi", "tc", "dwkl"}
    sampled_kl = post.log_prob(z) - std_normal_logpdf(z)  # log q(z|x) - log p(z), (B,)
    assert_close(parts["mi"] + parts["tc"] + parts["dwkl"], sampled_kl)
    assert {k: out.weights[k] for k in ("tc.mi", "tc.tc", "tc.dwkl")} == {"tc.mi": 1.0, "tc.tc": 6.0, "tc.dwkl": 1.0}
    for p in ("mi", "tc", "dwkl"):
        assert_close(out.terms[f"tc.{p}"], parts[p].mean())
    assert_close(out.loss, out.terms["nll"] + parts["mi"].mean() + 6 * parts["tc"].mean() + parts["dwkl"].mean())
    assert_close(out.per_sample.mean(), out.loss)


def test_the_dataset_size_shifts_the_tc_terms_by_constants_only():
    b, d, n = 9, 10, 1000
    model = aekit.build("beta_tc_vae", input_shape=(6,), hidden=[8], seed=0).train()
    out = model(data(b))
    ctx = RegContext(x_in=None, code=out.code, model=model)
    none = model.regularizers["tc"](ctx)  # N = B
    model.regularizers["tc"].dataset_size = n
    full = model.regularizers["tc"](ctx)
    shift = math.log(n * b) - math.log(b * b)
    assert_close(full["mi"] - none["mi"], torch.full((b,), shift))
    assert_close(full["tc"] - none["tc"], torch.full((b,), (d - 1) * shift))
    assert_close(full["dwkl"] - none["dwkl"], torch.full((b,), -d * shift))


# ---------------------------------------------------------------------- DIP-VAE
@pytest.mark.parametrize("variant,kind", [("dip_vae_i", "i"), ("dip_vae_ii", "ii")])
def test_the_dip_regularizer_is_the_covariance_penalty(variant, kind):
    model = aekit.build(variant, input_shape=(6,), hidden=[8], seed=0).train()
    out = model(data(7))
    post = out.code.posterior
    cov = dip_covariance(post.mu, post.logvar, kind=kind)
    centred = post.mu - post.mu.mean(0)
    by_hand = centred.T @ centred / 7 + (torch.diag(post.logvar.exp().mean(0)) if kind == "ii" else 0)
    assert_close(cov, by_hand)
    lam_od, lam_d = (10.0, 100.0) if kind == "i" else (10.0, 10.0)
    off = cov - torch.diag(cov.diagonal())
    assert_close(out.terms["dip"], lam_od * off.pow(2).sum() + lam_d * (cov.diagonal() - 1).pow(2).sum())
    assert_close(out.terms["dip"], dip_penalty(cov, lambda_od=lam_od, lambda_d=lam_d))


# ---------------------------------------------------------------------- RAE
def test_the_rae_penalty_by_hand():
    model = aekit.build("rae", input_shape=(6,), hidden=[8], seed=0,
                        regularizers={"rae": {"beta": 0.3, "decoder_weight": 0.01}}).train()
    out = model(data(5))
    code = 0.5 * out.z.pow(2).sum(1).mean()
    dec = sum(float(p.detach().pow(2).sum()) for p in model.decoder.parameters())
    assert_close(out.terms["rae.code"], code)
    assert_close(float(out.terms["rae.decoder"].detach()), dec, rtol=1e-5, atol=1e-6)
    assert out.weights["rae.code"] == 0.3 and out.weights["rae.decoder"] == 0.01
    assert_close(out.loss, out.terms["nll"] + 0.3 * code + 0.01 * out.terms["rae.decoder"])
    out.loss.backward()  # the decoder penalty reaches the decoder's weights: 2 * 0.01 * W on top of the data term
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_the_ex_post_mixture_makes_a_deterministic_model_generative():
    torch.manual_seed(0)
    model = aekit.build("rae", input_shape=(6,), hidden=[8], latent_dim=2, seed=0)
    x = torch.rand(200, 6)
    sampler = ExPostSampler(n_components=10, seed=0).fit(model, x)
    codes = model.encode(x).detach()
    assert sampler.gmm.n_components == 10
    assert_close(torch.as_tensor(sampler.gmm.weights_ @ sampler.gmm.means_, dtype=torch.float32), codes.mean(0),
                 atol=1e-4, rtol=1e-4)  # EM's fixed point keeps the data mean: sum_k pi_k mu_k = mean of the codes
    z = sampler.sample_codes(4000)
    assert_close(z.mean(0), codes.mean(0), atol=0.05 * float(codes.std()) + 1e-3, rtol=0)
    s = sampler.sample(3)
    assert s.shape == (3, 6) and torch.isfinite(s).all()
    with pytest.raises(aekit.ConfigError, match="not fitted"):
        ExPostSampler().sample(2)


# ---------------------------------------------------------------------- VampPrior
def test_the_vampprior_density_is_the_mixture_of_the_pseudo_input_posteriors():
    model = aekit.build("vampprior", input_shape=(6,), hidden=[8], latent_dim=3, seed=0,
                        regularizers={"kl_vamp": {"components": 4}}).train()
    reg = model.regularizers["kl_vamp"]
    assert reg.pseudo_inputs.shape == (4, 6)
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    h, _ = model.encoder(reg.pseudo_inputs)
    mu, logvar = model.bottleneck.mu(h), model.bottleneck.logvar(h)  # (K, D)
    dens = torch.zeros(5)
    for k in range(4):
        comp = torch.distributions.Normal(mu[k], torch.exp(0.5 * logvar[k]))
        dens = dens + comp.log_prob(z).sum(-1).exp() / 4
    assert_close(reg.log_prior(z, model), dens.log())

    out = model(data(5))
    assert_close(out.terms["kl_vamp"], (out.code.posterior.log_prob(out.z) - reg.log_prior(out.z, model)).mean())
    out.loss.backward()
    assert reg.pseudo_inputs.grad is not None and reg.pseudo_inputs.grad.abs().sum() > 0
    model.eval()
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, model.sample(3, generator=torch.Generator().manual_seed(0))) and s.shape == (3, 6)


# ---------------------------------------------------------------------- discrete codes
def test_vq_takes_the_nearest_entry_and_passes_gradients_straight_through():
    model = aekit.build(input_shape=(6,), latent_dim=3, hidden=[8], bottleneck={"vq": {"num_codes": 5}}, seed=0)
    model.train()
    h = torch.randn(7, 8, generator=torch.Generator().manual_seed(0))
    bott = model.bottleneck
    z_e = bott.linear(h)
    book = bott.quantizer.codebook.clone()
    code = bott(h)  # one EMA step happens after the lookup
    assert torch.equal(code.indices, torch.cdist(z_e.detach(), book).argmin(1))
    assert_close(code.z, book[code.indices])
    assert_close(code.aux_losses["commitment"], 0.25 * (z_e - book[code.indices]).pow(2).sum(1))
    z_q, _, _ = bott.quantizer(z_e)
    up = torch.randn_like(z_q)
    (g,) = torch.autograd.grad((z_q * up).sum(), z_e)
    assert torch.equal(g, up)  # d z_q / d z_e = I
    assert model.provides("discrete") and model.provides("indices")


def test_fsq_codebook_is_the_product_of_its_levels_and_its_indices_invert():
    model = aekit.build("fsq_vae", input_shape=(6,), hidden=[8], seed=0)
    assert model.bottleneck.num_codes == 8 * 5 * 5 * 5 and model.latent_dim == 4
    with torch.no_grad():
        model.bottleneck.linear.weight.mul_(30)
    code, _ = model.encode_code(data(50))
    assert code.indices.min() >= 0 and code.indices.max() < 1000 and code.indices.unique().numel() > 1
    assert torch.equal(model.bottleneck.embed(code.indices), code.z)
    with pytest.raises(aekit.ConfigError, match="latent_dim must be len\\(levels\\)=4"):
        aekit.build("fsq_vae", input_shape=(6,), latent_dim=3)


def test_batch_topk_keeps_b_times_k_in_training_and_thresholds_in_eval():
    model = aekit.build(input_shape=(6,), latent_dim=10, hidden=[], bottleneck={"batch_topk": {"k": 3}}, seed=0)
    bott = model.bottleneck
    with torch.no_grad():
        bott.linear.bias.fill_(2.0)  # every activation positive: exactly B*k survive
    x = data(8)
    model.train()
    out = model(x)
    assert int((out.z != 0).sum()) == 8 * 3
    a = torch.relu(bott.linear(model.encoder(x)[0])).detach()
    assert_close(bott.threshold, a.flatten().topk(24).values.min())  # the first batch sets theta
    model.eval()
    full = model.encode(x)
    one = torch.cat([model.encode(x[i:i + 1]) for i in range(8)])
    assert torch.equal(full != 0, one != 0)  # batch-independent inference
    assert_close(full, one)
    assert torch.equal(full != 0, a > bott.threshold)


def test_the_code_prior_fits_counts_and_model_sample_decodes_its_draws():
    prior = CategoricalCodePrior(4).fit(torch.tensor([0, 1, 1, 3, 3, 3, 3, 3]))
    assert_close(prior.probs, torch.tensor([[1, 2, 0, 5]], dtype=torch.float64) / 8)
    draws = prior.sample(4000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (4000,) and not (draws == 2).any()
    assert abs(float((draws == 3).double().mean()) - 5 / 8) < 0.03
    two = CategoricalCodePrior(3, smoothing=1.0).fit(torch.tensor([[0, 2], [0, 2]]))
    assert_close(two.probs, torch.tensor([[3, 1, 1], [1, 1, 3]], dtype=torch.float64) / 5)
    assert two.sample(5).shape == (5, 2)

    model = aekit.build("vq_vae", input_shape=(6,), hidden=[8], seed=0,
                        bottleneck={"vq": {"num_codes": 16}}).eval()
    with pytest.raises(aekit.ConfigError, match="code prior"):
        model.sample(2)
    x = data(40)
    fitted = fit_code_prior(model, x)
    assert model.code_prior is fitted
    idx = code_indices(model, x)
    assert_close(fitted.probs[0], torch.bincount(idx, minlength=16).double() / 40)
    s = model.sample(5, generator=torch.Generator().manual_seed(1))
    want_idx = fitted.sample(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, model.decode(model.bottleneck.quantizer.codebook[want_idx]))


def test_codebook_usage_perplexity_and_sparsity_metrics():
    model = aekit.build("vq_vae", input_shape=(6,), hidden=[8], seed=0, bottleneck={"vq": {"num_codes": 16}})
    x = data(30)
    idx = code_indices(model, x)
    counts = torch.bincount(idx, minlength=16).double()
    p = counts[counts > 0] / 30
    usage = codebook_usage(model, x)
    assert usage["used_codes"] == int((counts > 0).sum()) and usage["usage"] == usage["used_codes"] / 16
    assert usage["perplexity"] == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    sparse = aekit.build("ksparse", input_shape=(6,), seed=0)
    stats = code_sparsity(sparse, x)
    z = sparse.encode(x)
    assert stats["l0"] == 25.0 and stats["dead_fraction"] == pytest.approx(float((~(z != 0).any(0)).double().mean()))


def test_the_command_line_reaches_the_new_ingredients(tmp_path):
    from cli_helpers import cli

    code, out, err = cli("list")  # the ingredients per axis, then the variants
    assert code == 0, err
    for name in ("vq", "fsq", "batch_topk", "mmd", "tc", "dip", "rae", "kl_vamp"):
        assert any(line.startswith(f"{name} ") for line in out.splitlines()), name
    code, out, err = cli("list")
    for name in ("vq_vae", "fsq_vae", "wae_mmd", "info_vae", "beta_tc_vae", "dip_vae_i", "dip_vae_ii", "iwae",
                 "vampprior", "rae", "batch_topk"):
        assert name in out
    from aekit.cli import make_parser
    from aekit.cli.options import build_kwargs

    args = make_parser().parse_args(["train", "vae", "--data", "digits", "--out", str(tmp_path / "r"),
                                     "--bottleneck", "vq:num_codes=32", "--reg", "mmd:weight=3",
                                     "--reg", "rae:beta=0.5"])
    over = build_kwargs(args)
    assert over["bottleneck"] == {"vq": {"num_codes": 32}}
    assert over["regularizers"] == {"mmd": {"weight": 3.0}, "rae": {"beta": 0.5}}
    model = aekit.build("ae", input_shape=(6,), **{k: v for k, v in over.items() if v is not None})
    assert model.config["bottleneck"] == {"vq": {"num_codes": 32}} and set(model.regularizers) == {"mmd", "rae"}
    args = make_parser().parse_args(["train", "vae", "--reg", "mmd:kernal=rbf"])
    with pytest.raises(aekit.ConfigError, match="kernel"):
        build_kwargs(args)


def test_train_evaluate_and_sample_discrete_and_deterministic_runs_from_the_command_line(tmp_path):
    import json

    import numpy as np
    from cli_helpers import cli

    tiny = ["--data", "digits", "--max-samples", "120", "--epochs", "1", "--hidden", "16", "--quiet"]
    run = tmp_path / "vq"
    code, _, err = cli("train", "vq_vae", *tiny, "--latent-dim", "3", "--bottleneck", "vq:num_codes=16",
                       "--out", run)
    assert code == 0, err
    code, out, err = cli("evaluate", run, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["num_codes"] == 16 and 1 <= result["used_codes"] <= 16 and 1.0 <= result["perplexity"] <= 16.0
    code, _, err = cli("sample", run, "-n", 5, "--out", tmp_path / "vq.npy")  # through the fitted code prior
    assert code == 0, err
    assert np.load(tmp_path / "vq.npy").shape[0] == 5

    run = tmp_path / "rae"
    code, _, err = cli("train", "rae", *tiny, "--latent-dim", "2", "--out", run)
    assert code == 0, err
    code, _, err = cli("sample", run, "-n", 4, "--out", tmp_path / "r.npy")
    assert code != 0 and "posterior" in err
    code, _, err = cli("sample", run, "-n", 4, "--ex-post", 3, "--out", tmp_path / "r.npy")
    assert code == 0, err
    assert np.load(tmp_path / "r.npy").shape[0] == 4


def test_fsq_standardizes_each_dimension_by_the_batch_in_training_and_by_running_averages_in_eval():
    model = aekit.build(input_shape=(6,), latent_dim=3, hidden=[8], bottleneck={"fsq": {"levels": [5, 5, 5]}}, seed=0)
    b = model.bottleneck.train()
    h = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    z_e = b.linear(h).detach()
    standardized = (z_e - z_e.mean(0)) / torch.sqrt(z_e.var(0, unbiased=False) + 1e-5)
    code = b(h)
    q, idx = b.quantizer(standardized)
    assert torch.equal(code.z, q) and torch.equal(code.indices, idx)
    assert_close(b.norm.running_mean, 0.1 * z_e.mean(0))  # momentum 0.1 from 0
    assert b(h[:1]).z.shape == (1, 3)  # a batch of one trains on the running statistics
    b.eval()
    rm, rv = b.norm.running_mean, b.norm.running_var
    q_eval, _ = b.quantizer((z_e - rm) / torch.sqrt(rv + 1e-5))
    assert torch.equal(b(h).z, q_eval)
    plain = aekit.build(input_shape=(6,), latent_dim=2, bottleneck={"fsq": {"levels": [3, 3], "normalize": False}})
    assert plain.bottleneck.norm is None


def test_the_rae_gradient_penalty_of_an_affine_decoder_by_hand():
    model = aekit.build("rae", input_shape=(6,), latent_dim=3, seed=0,
                        backbone={"mlp": {"hidden": [], "activation": "identity"}},
                        regularizers={"rae": {"penalty": "gp", "decoder_weight": 0.5}}).eval()
    x = data(5)
    out = model(x)
    w = next(m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)).weight  # (6, 3): J = W
    v = torch.randn((5, 6), generator=torch.Generator().manual_seed(0))  # eval: the probe of seed 0
    assert_close(out.terms["rae.decoder"], (v @ w).pow(2).sum(1).mean())  # ||J^T v||^2
    assert torch.equal(model(x).loss, out.loss)
    model.train()
    torch.manual_seed(0)
    est = torch.stack([model(x).terms["rae.decoder"].detach() for _ in range(400)]).mean()
    assert abs(float(est) - float(w.detach().pow(2).sum())) < 0.1 * float(w.detach().pow(2).sum())  # E ||J^T v||^2 = ||W||_F^2
    with pytest.raises(aekit.ConfigError, match="needs a 'code_decoder' capability.*unet' with skips=False"):
        aekit.build("rae", input_shape=(1, 8, 8), backbone="unet", regularizers={"rae": {"penalty": "gp"}})
