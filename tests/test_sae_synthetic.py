"""Superposition data with a known dictionary and the recovery metrics (fraction with cosine > 0.9, MMCS)."""

import pytest
import torch

from aekit.errors import ConfigError, ShapeError
from aekit.tasks.sae.synthetic import feature_recovery, max_cosines, superposition_data


def test_superposition_data_is_a_sparse_sum_of_unit_columns():
    x, dictionary, codes = superposition_data(2000, n_features=20, dim=6, p=0.05, seed=0)
    assert x.shape == (2000, 6) and dictionary.shape == (6, 20) and codes.shape == (2000, 20)
    assert torch.allclose(dictionary.norm(dim=0), torch.ones(20), atol=1e-6)
    assert torch.allclose(x, codes @ dictionary.T)
    assert abs(float((codes != 0).float().mean()) - 0.05) < 0.01  # active with probability p
    assert float(codes.min()) >= 0 and float(codes.max()) < 1  # uniform(0, 1) magnitudes
    _, _, exp_codes = superposition_data(2000, n_features=20, dim=6, p=0.5, magnitude="exponential", seed=0)
    assert abs(float(exp_codes[exp_codes != 0].mean()) - 1.0) < 0.05  # exponential(1): mean 1
    again = superposition_data(2000, n_features=20, dim=6, p=0.05, seed=0)
    assert torch.equal(again[0], x)
    with pytest.raises(ConfigError, match="magnitude"):
        superposition_data(10, n_features=4, dim=2, p=0.1, magnitude="gamma")
    with pytest.raises(ConfigError, match="p "):
        superposition_data(10, n_features=4, dim=2, p=0.0)


def test_true_dictionary_scores_one_and_a_random_one_scores_low():
    _, true, _ = superposition_data(10, n_features=32, dim=16, p=0.1, seed=1)
    assert feature_recovery(true, true) == pytest.approx({"fraction_recovered": 1.0, "mean_max_cosine": 1.0})
    # the same features, permuted, rescaled and among extra columns: still all recovered
    learned = torch.cat([true[:, torch.randperm(32)] * 3.0, torch.randn(16, 10)], dim=1)
    assert feature_recovery(learned, true)["fraction_recovered"] == 1.0
    random = torch.randn(16, 32, generator=torch.Generator().manual_seed(2))
    score = feature_recovery(random, true)
    assert score["fraction_recovered"] < 0.1 and score["mean_max_cosine"] < 0.7
    assert feature_recovery(-true, true)["fraction_recovered"] == 0.0  # opposite directions are not the features
    with pytest.raises(ShapeError, match="same d"):
        max_cosines(torch.randn(5, 3), true)


def test_max_cosine_of_a_known_rotation():
    true = torch.eye(2)
    angle = torch.tensor(0.3)
    learned = torch.stack([torch.stack([angle.cos(), angle.sin()]), torch.stack([-angle.sin(), angle.cos()])], dim=1)
    assert max_cosines(learned, true).tolist() == pytest.approx([float(angle.cos())] * 2, abs=1e-7)
