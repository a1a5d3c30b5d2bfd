"""The autoregressive prior over discrete code indices (aekit/tasks/code_prior.py): it learns dependencies between
positions that the per-position categorical cannot, samples reproducibly from a seed, and is reachable from
`aekit sample --code-prior autoregressive`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import aekit
from aekit.tasks.code_prior import AutoregressiveCodePrior, CategoricalCodePrior, fit_code_prior

K, P = 6, 4


def chain(n: int, seed: int) -> torch.Tensor:
    """c_0 uniform; c_j = c_{j-1} + 1 (mod K) with probability 0.9, else uniform: (n, P) with strong dependencies."""
    g = torch.Generator().manual_seed(seed)
    c = [torch.randint(0, K, (n,), generator=g)]
    for _ in range(P - 1):
        keep = torch.rand(n, generator=g) < 0.9
        c.append(torch.where(keep, (c[-1] + 1) % K, torch.randint(0, K, (n,), generator=g)))
    return torch.stack(c, dim=1)


def test_the_autoregressive_prior_beats_the_categorical_on_dependent_positions():
    train, test = chain(2000, seed=0), chain(500, seed=1)
    cat = CategoricalCodePrior(K, smoothing=1.0).fit(train)
    ar = AutoregressiveCodePrior(K, hidden=32, epochs=15, seed=0).fit(train)
    nll_cat, nll_ar = -float(cat.log_prob(test).mean()), -float(ar.log_prob(test).mean())
    # the true entropy: log K + (P - 1) * H(0.9 + 0.1/K, then 0.1/K each of the other K - 1)
    p_hit = 0.9 + 0.1 / K
    h_step = -(p_hit * math.log(p_hit) + (K - 1) * (0.1 / K) * math.log(0.1 / K))
    truth = math.log(K) + (P - 1) * h_step
    assert nll_cat == pytest.approx(P * math.log(K), abs=0.1)  # uniform marginals: no gain per position
    assert nll_ar < nll_cat - 3.0 and nll_ar == pytest.approx(truth, abs=0.25), (nll_ar, truth)


def test_autoregressive_sampling_is_seeded_and_follows_the_chain():
    ar = AutoregressiveCodePrior(K, hidden=32, epochs=15, seed=0).fit(chain(2000, seed=0))
    a = ar.sample(400, generator=torch.Generator().manual_seed(5))
    b = ar.sample(400, generator=torch.Generator().manual_seed(5))
    c = ar.sample(400, generator=torch.Generator().manual_seed(6))
    assert a.shape == (400, P) and torch.equal(a, b) and not torch.equal(a, c)
    follows = ((a[:, 1:] - a[:, :-1]) % K == 1).float().mean()
    assert 0.85 < float(follows) < 0.97  # 0.9 + 0.1 / K = 0.917 in the data
    again = AutoregressiveCodePrior(K, hidden=32, epochs=15, seed=0).fit(chain(2000, seed=0))  # the fit is seeded
    assert torch.equal(again.sample(400, generator=torch.Generator().manual_seed(5)), a)


def test_a_flat_code_is_one_position_and_bad_settings_are_config_errors():
    ar = AutoregressiveCodePrior(3, hidden=8, epochs=40, lr=0.03, seed=0).fit(torch.tensor([0] * 80 + [2] * 20))
    draws = ar.sample(2000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (2000,) and abs(float((draws == 2).float().mean()) - 0.2) < 0.05
    with pytest.raises(aekit.ConfigError, match="hidden"):
        AutoregressiveCodePrior(3, hidden=0)
    with pytest.raises(aekit.ConfigError, match="not fitted"):
        AutoregressiveCodePrior(3).sample(2)
    with pytest.raises(aekit.ConfigError, match=r"\[0, 3\)"):
        AutoregressiveCodePrior(3).fit(torch.tensor([0, 3]))


def test_a_discrete_model_samples_through_the_autoregressive_prior(tmp_path):
    from cli_helpers import cli

    model = aekit.build("vq_vae", input_shape=(6,), hidden=[8], latent_dim=2,
                        bottleneck={"vq": {"num_codes": 8}}, seed=0)
    x = torch.rand(64, 6, generator=torch.Generator().manual_seed(0))
    prior = fit_code_prior(model, x, kind="autoregressive")
    assert isinstance(model.code_prior, AutoregressiveCodePrior) and prior.shape == ()
    s = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 6) and torch.equal(s, model.sample(5, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(aekit.ConfigError, match="code prior"):
        fit_code_prior(model, x, kind="pixelcnn")

    tiny = ["--data", "digits", "--max-samples", "120", "--epochs", "1", "--hidden", "16", "--quiet"]
    run = tmp_path / "vq"
    code, _, err = cli("train", "vq_vae", *tiny, "--latent-dim", "3", "--bottleneck", "vq:num_codes=16", "--out", run)
    assert code == 0, err
    outs = []
    for name in ("a.npy", "b.npy"):
        code, _, err = cli("sample", run, "-n", 6, "--code-prior", "autoregressive", "--seed", 3,
                           "--out", tmp_path / name)
        assert code == 0, err
        outs.append(np.load(tmp_path / name))
    assert outs[0].shape[0] == 6 and np.array_equal(outs[0], outs[1])
    rae = tmp_path / "rae"
    code, _, err = cli("train", "rae", *tiny, "--latent-dim", "2", "--out", rae)
    assert code == 0, err
    code, _, err = cli("sample", rae, "-n", 2, "--code-prior", "autoregressive", "--out", tmp_path / "r.npy")
    assert code != 0 and "discrete" in err
