"""The family benchmark's own measures (benchmarks/family.py): sample-quality scores by hand, and the
recipe list that skips, with a note, a recipe that is not registered."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import family  # noqa: E402


class FixedLogits(nn.Module):
    """A 'classifier' whose logits are the first 10 pixels of each image."""

    def forward(self, x):
        return x.flatten(1)[:, :10] * 100.0


def test_sample_quality_by_hand():
    # 50 images, each a near one-hot on class c: 25 of class 0, 24 of class 1, 1 of class 2
    classes = [0] * 25 + [1] * 24 + [2]
    imgs = torch.zeros(50, 1, 28, 28)
    for i, c in enumerate(classes):
        imgs.view(50, -1)[i, c] = 1.0
    q = family.sample_quality(FixedLogits(), imgs)
    p_max = 1.0 / (1.0 + 9.0 * math.exp(-100.0))  # softmax of logits (100, 0, ..., 0)
    assert q["confidence"] == pytest.approx(p_max)
    assert q["classes_2pct"] == 3  # 1/50 = 2 % still counts
    hist = [0.5, 0.48, 0.02]
    assert q["effective_classes"] == pytest.approx(math.exp(-sum(h * math.log(h) for h in hist)))


def test_unregistered_recipes_are_skipped_not_failed():
    run, missing = family.recipes("vae,no_such_recipe,rae")
    assert run == ["vae", "rae"] and missing == ["no_such_recipe"]
    every, expected_missing = family.recipes(None)
    assert "vq_vae" in every and set(expected_missing) <= set(family.EXPECTED)
    assert not set(expected_missing) & set(every)


def test_the_pythae_worker_bounds_nll_with_aekits_estimator():
    """family_pythae_worker.iwae_nll on a pythae-shaped wrapper of an aekit VAE equals -aekit.metrics.iwae_bound
    (same seed, same draws), so the anchors' NLL columns measure the same quantity."""
    from types import SimpleNamespace

    import aekit
    import family_pythae_worker as worker
    from aekit.metrics import iwae_bound

    model = aekit.build("vae", input_shape=(1, 28, 28), backbone={"mlp": {"hidden": [8]}}, latent_dim=3, seed=0)
    model.eval()

    class Wrapped(nn.Module):  # the attributes the worker reads from a pythae model
        def __init__(self):
            super().__init__()
            self.inner = model

        def encoder(self, x):
            post = model.encode_code(x)[0].posterior
            return SimpleNamespace(embedding=post.mu, log_covariance=post.logvar)

        def decoder(self, z):
            return SimpleNamespace(reconstruction=torch.sigmoid(model.decoder(z, [])).reshape(-1, 1, 28, 28))

    x = torch.bernoulli(torch.full((6, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(1))
    ours = -iwae_bound(model, x, k=20, seed=0)
    theirs = worker.iwae_nll(Wrapped(), "VAE", x, 20, seed=0)
    assert theirs == pytest.approx(ours, rel=1e-4)
