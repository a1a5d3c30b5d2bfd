"""Shared test setup: one CPU thread, a fixed seed before every test, small helpers."""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch spins up its thread pools

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)

SEED = 0


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same RNG state, whatever ran before it."""
    torch.manual_seed(SEED)
    yield


@pytest.fixture
def no_fsync(monkeypatch):
    """Durability is not under test where this is used (tests/test_train.py covers atomic writes); fsync is slow on VMs."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
