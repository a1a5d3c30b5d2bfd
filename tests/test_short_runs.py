"""Short runs on small data: the warm-up is a share of the run, and a run too short to learn says so."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from cli_helpers import cli
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

import aekit
from aekit.errors import AekitWarning, ShortRunWarning
from aekit.training import trainer as train_module
from aekit.training.trainer import TrainConfig, make_schedule


@pytest.fixture(scope="module")
def wine():
    """A small standardized table: 178 rows x 13 features (mean 0, variance 1 per column)."""
    return torch.tensor(StandardScaler().fit_transform(load_wine().data), dtype=torch.float32)


def mse(model, x) -> float:
    model.eval()
    with torch.no_grad():
        return float((model.reconstruct(x) - x).pow(2).mean())


def lrs(cfg: TrainConfig, total: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_schedule(opt, cfg, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_the_warm_up_is_a_share_of_the_run():
    cfg = TrainConfig(lr=1.0)
    assert cfg.warmup_fraction == 0.4 and cfg.warmup_max_steps == 200 and cfg.warmup_steps is None
    assert cfg.warmup_for(20) == 8 and cfg.warmup_for(100) == 40 and cfg.warmup_for(10_000) == 200
    assert cfg.warmup_for(1) == 0
    seen = lrs(cfg, 20)  # 20 steps: an 8-step warm-up, then the cosine decay from the full lr
    assert seen[:8] == pytest.approx([(k + 1) / 8 for k in range(8)])
    assert seen[8] == pytest.approx(1.0) and seen[8:] == sorted(seen[8:], reverse=True) and seen[-1] < 0.1
    with pytest.raises(aekit.ConfigError, match="warmup_fraction"):
        TrainConfig(warmup_fraction=1.5)
    assert TrainConfig(warmup_max_steps=None).warmup_for(10_000) == 4000


def test_an_old_run_keeps_its_recorded_absolute_warm_up():
    recorded = {"epochs": 10, "batch_size": 128, "lr": 1.0, "schedule": "cosine", "warmup_steps": 200}  # no fraction
    cfg = TrainConfig.from_dict(recorded)
    assert cfg.warmup_for(1000) == 200
    assert lrs(cfg, 1000)[:3] == pytest.approx([1 / 200, 2 / 200, 3 / 200])


def test_a_small_table_warns_that_the_run_is_too_short(wine):
    """sparse_kl on wine with the defaults (10 epochs of batch 128: 20 steps) ends at the mean (mse ~ 1 on
    standardized data): that must not pass silently. Following the warning's advice, the model learns."""
    model = aekit.build("sparse_kl", input_shape=(13,), likelihood="gaussian", seed=0)
    with pytest.warns(ShortRunWarning, match=r"only 20 optimizer steps .* raise epochs \(to about 100, 200 steps\)"):
        aekit.fit(model, wine, progress=False)
    assert mse(model, wine) > 0.9  # the short run learned (almost) nothing: the mean predicts mse 1
    model = aekit.build("sparse_kl", input_shape=(13,), likelihood="gaussian", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortRunWarning)  # 100 epochs = 200 steps: no warning
        aekit.fit(model, wine, epochs=100, progress=False)
    assert mse(model, wine) < 0.6


def test_the_command_warns_in_one_line_and_records_the_fraction(wine, tmp_path):
    np.savetxt(tmp_path / "wine.csv", wine.numpy(), delimiter=",")
    # epochs given: the user's 10 epochs of 2 steps stand (without --epochs the data-aware defaults take
    # >= 1,000 steps: tests/test_data_defaults.py)
    code, _, err = cli("train", "ae", "--data", tmp_path / "wine.csv", "--likelihood", "gaussian", "--quiet",
                       "--epochs", "10", "--out", tmp_path / "r")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aekit: warning: ")
    assert "too few to learn" in lines[0] and f"fewer than {train_module.MIN_STEPS}" in lines[0]
    train = json.loads((tmp_path / "r" / "run.json").read_text())["train"]
    assert train["warmup_fraction"] == 0.4 and train["warmup_max_steps"] == 200 and train["warmup_steps"] is None


def test_a_batch_larger_than_the_data_is_said(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "100", "--epochs", "1", "--quiet",
                       "--batch-size", "100000000", "--out", tmp_path / "r")
    assert code == 0, err
    assert "aekit: warning: batch_size=100000000 is larger than the 100 training samples" in err
    x = torch.rand(10, 4)
    with pytest.warns(AekitWarning, match="larger than the 10 training samples"):
        aekit.fit(aekit.build("ae", input_shape=(4,), latent_dim=2, hidden=[8]), x, epochs=100, batch_size=64,
                  progress=False)
