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
