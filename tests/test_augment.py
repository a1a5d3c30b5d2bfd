"""Augmentation: labelled synthetic samples from a VAE (aekit.tasks.augment and `aekit augment`).

The posterior method at temperature 0 must give exactly the reconstructions of its source samples,
with their labels, each source used floor(n/N) or ceil(n/N) times: that pins down the sampling of
sources and the labels kept. Prior samples of a cvae are balanced and decode the prior draws.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import aekit
from aekit.tasks.augment import augment
from aekit.data import load_data
from cli_helpers import cli

K = 3


def cvae():
    return aekit.build("cvae", input_shape=(1, 4, 4), hidden=[16], latent_dim=3, num_classes=K, seed=0).eval()


def vae():
    return aekit.build("vae", input_shape=(1, 4, 4), hidden=[16], latent_dim=3, seed=0).eval()


def labelled(n: int = 7):
    x = torch.rand((n, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    return x, torch.tensor([0, 1, 2, 0, 1, 2, 2])[:n]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_prior_samples_of_a_cvae_are_balanced_and_decode_the_prior_draws():
    model = cvae()
    x, y = augment(model, 10, generator=gen())
    assert x.shape == (10, 1, 4, 4) and y.dtype == torch.int64
    assert np.bincount(y.numpy()).tolist() == [4, 3, 3]
    z = model.bottleneck.sample_prior(10, generator=gen())
    assert_close(x, model.decode(z, y=y))
    x3, y3 = augment(model, 5, label=2, temperature=0.0, generator=gen())
    assert (y3 == 2).all()
    assert_close(x3, model.decode(torch.zeros(5, 3), y=y3))  # temperature 0: the prior's mean, all alike


def test_posterior_samples_keep_their_source_labels_and_use_every_source_evenly():
    model = vae()
    x, y = labelled()
    xs, ys = augment(model, 17, x=x, y=y, temperature=0.0, generator=gen())
    recon = model.reconstruct(x).detach()  # temperature 0: the decoded posterior means
    sources = []
    for xi, yi in zip(xs, ys):
        match = [i for i in range(len(x)) if torch.allclose(xi, recon[i])]
        assert len(match) == 1
        assert int(y[match[0]]) == int(yi)
        sources.append(match[0])
    counts = np.bincount(sources, minlength=len(x))
    assert counts.min() >= 17 // 7 and counts.max() <= -(-17 // 7)


def test_posterior_perturbation_stays_within_the_posterior():
    model = vae()
    x, y = labelled()
    code, _ = model.encode_code(x)
    xs, ys = augment(model, 7, x=x, y=y, temperature=0.5, generator=gen())
    assert not torch.allclose(xs, model.reconstruct(x))  # perturbed
    # rebuild the draws by hand: the same generator gives the source order, then eps
    g = gen()
    order = torch.randperm(7, generator=g)
    eps = torch.randn((7, 3), generator=g)
    mu, std = code.posterior.mu[order], code.posterior.std[order]
    assert_close(xs, model.decode(mu + 0.5 * std * eps).detach())
    assert torch.equal(ys, y[order])


def test_label_selects_the_sources_of_one_class_and_cvae_posterior_uses_labels():
    x, y = labelled()
    _, ys = augment(vae(), 9, x=x, y=y, label=2, generator=gen())
    assert (ys == 2).all()
    xs, ys = augment(cvae(), 9, x=x, y=y, method="posterior", generator=gen())
    assert xs.shape == (9, 1, 4, 4) and set(ys.tolist()) <= {0, 1, 2}


def test_same_seed_same_samples_other_seed_other_samples():
    x, y = labelled()
    for model, kw in ((cvae(), {}), (vae(), {"x": x, "y": y})):
        a = augment(model, 8, generator=gen(3), **kw)
        b = augment(model, 8, generator=gen(3), **kw)
        c = augment(model, 8, generator=gen(4), **kw)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.allclose(a[0], c[0])


def test_errors():
    x, y = labelled()
    with pytest.raises(aekit.ConfigError, match="needs a VAE"):
        augment(aekit.build("ae", input_shape=(1, 4, 4), hidden=[8], latent_dim=2), 4, x=x, y=y)
    with pytest.raises(aekit.ConfigError, match="conditional VAE"):
        augment(vae(), 4, method="prior")
    with pytest.raises(aekit.DataError, match="labels y"):
        augment(vae(), 4, x=x)
    with pytest.raises(aekit.DataError, match=r"label 5 has no samples.*\[0, 1, 2\]"):
        augment(vae(), 4, x=x, y=y, label=5)
    with pytest.raises(aekit.ConfigError, match=r"label must be class indices in 0\.\.2"):
        augment(cvae(), 4, label=3)
    with pytest.raises(aekit.ConfigError, match="n must be a positive integer"):
        augment(cvae(), 0)
    with pytest.raises(aekit.ConfigError, match="temperature"):
        augment(cvae(), 4, temperature=-1.0)
    with pytest.raises(aekit.ConfigError, match="Did you mean 'prior'"):
        augment(cvae(), 4, method="prio")


# ---------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    for variant in ("cvae", "vae", "ae"):
        code, _, err = cli("train", variant, "--data", "digits", "--out", root / variant, "--epochs", "1",
                           "--hidden", "32", "--latent-dim", "3", "--quiet")
        assert code == 0, err
    return root


def test_cli_augment_from_a_cvae_writes_balanced_labelled_samples_in_data_units(runs, tmp_path):
    out = tmp_path / "syn.npz"
    code, _, err = cli("augment", runs / "cvae", "-n", "30", "--seed", "1", "--out", out)
    assert code == 0, err
    with np.load(out, allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    assert x.shape == (30, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [3] * 10
    model = aekit.load(runs / "cvae")
    expected, _ = augment(model, 30, generator=gen(1))
    assert_close(torch.from_numpy(x), expected * 16.0)  # digits' units: 0..16
    again = tmp_path / "again.npz"
    assert cli("augment", runs / "cvae", "-n", "30", "--seed", "1", "--out", again)[0] == 0
    with np.load(again) as f:
        assert np.array_equal(f["x"], x)
    ds = load_data(str(out))  # the output is a data source with labels
    assert ds.y_whole is not None and ds.whole.shape == (30, 1, 8, 8)


def test_cli_augment_from_a_vae_perturbs_training_samples(runs, tmp_path):
    out = tmp_path / "syn.npz"
    code, _, err = cli("augment", runs / "vae", "-n", "12", "--label", "7", "--temperature", "0.5", "--out", out)
    assert code == 0, err
    with np.load(out) as f:
        assert f["x"].shape == (12, 1, 8, 8) and (f["y"] == 7).all()


def test_cli_augment_errors(runs, tmp_path):
    out = tmp_path / "syn.npz"
    code, _, err = cli("augment", runs / "cvae", "-n", "5", "--label", "10", "--out", out)
    assert code == 2 and "0..9" in err
    code, _, err = cli("augment", runs / "ae", "-n", "5", "--out", out)
    assert code == 2 and "VAE" in err and len(err.strip().splitlines()) == 1
    unlabelled = tmp_path / "x.npy"
    np.save(unlabelled, np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32))
    code, _, err = cli("augment", runs / "vae", "-n", "5", "--data", unlabelled, "--out", out)
    assert code == 1 and "x.npy" in err and "labels" in err
    code, _, err = cli("augment", runs / "vae", "-n", "5", "--out", tmp_path / "syn.npy")
    assert code == 2 and ".npz" in err
    code, _, err = cli("augment", runs / "vae", "-n", "5", "--method", "prior", "--out", out)
    assert code == 2 and "conditional" in err
    code, _, err = cli("augment", runs / "vae", "--out", out)
    assert code == 2 and "-n" in err
