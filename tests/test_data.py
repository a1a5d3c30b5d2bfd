"""Tests of aekit.data: the 'digits' source, the Dataset record, options and binarize."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit.data import (
    NAMED_SOURCES, Dataset, binarize, list_sources, load_data,
)
from aekit.errors import ConfigError, DataError

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_data("digits", seed=0)


def test_digits_shapes_ranges_labels(digits):
    assert digits.name == "digits" and digits.kind == "image"
    assert digits.shape == (1, 8, 8) and digits.image_shape == (1, 8, 8)
    n = len(digits.train) + len(digits.val) + len(digits.test)
    assert n == 1797
    assert len(digits.test) == round(0.2 * 1797)
    assert len(digits.val) == round(0.1 * (1797 - len(digits.test)))
    for x, y in (digits.split("train"), digits.split("val"), digits.split("test")):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert y.dtype == torch.int64 and y.shape == (len(x),)
    assert float(digits.train.max()) == 1.0
    assert set(digits.y_train.tolist()) == set(range(10)) and digits.num_classes == 10
    assert digits.test is not None and digits.whole is None


def test_digits_to_raw_gives_0_to_16_integers(digits):
    raw = digits.to_raw(digits.train)
    assert torch.equal(raw, raw.round()) and float(raw.max()) == 16.0


def test_digits_deterministic_with_seed_and_fixed_test(digits):
    again = load_data("digits", seed=0)
    other = load_data("digits", seed=1)
    assert torch.equal(again.train, digits.train) and torch.equal(again.y_val, digits.y_val)
    assert not torch.equal(other.train, digits.train)
    assert torch.equal(other.test, digits.test)                # the test split is fixed


def test_digits_split_all_concatenates(digits):
    x, y = digits.split("all")
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)


def test_split_typo_and_missing_test(digits, tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'train'"):
        digits.split("trian")
    path = tmp_path / "t.npy"
    np.save(path, np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(DataError, match="no 'test' split"):
        load_data(str(path)).split("test")


def test_flatten_and_max_samples(digits):
    ds = load_data("digits", flatten=True, max_samples=100, val_fraction=0.2)
    assert ds.shape == (64,) and ds.kind == "image" and ds.image_shape == (1, 8, 8)
    assert len(ds.train) == 100
    pool = 1797 - len(digits.test)                             # 1438 rows for train + val
    n_val = round(0.2 * pool)
    assert len(ds.val) == round(n_val * 100 / (pool - n_val))    # val:train ratio kept
    assert 0 < len(ds.test) < len(digits.test)


def test_image_size_resizes_named_images():
    ds = load_data("digits", image_size=16, max_samples=50)
    assert ds.shape == (1, 16, 16) and ds.image_shape == (1, 16, 16)
    assert 0.0 <= float(ds.train.min()) and float(ds.train.max()) <= 1.0


def test_standardize_images_needs_flatten():
    with pytest.raises(ConfigError, match="flatten=True"):
        load_data("digits", standardize=True)
    ds = load_data("digits", standardize=True, flatten=True, max_samples=200)
    assert ds.kind == "table" and isinstance(ds.scale, torch.Tensor)
    assert ds.scale.shape == (64,)
    raw = ds.to_raw(ds.train)
    assert torch.allclose(raw, raw.round(), atol=1e-3) and float(raw.max()) <= 16.001


def test_to_dict_is_json(digits):
    d = json.loads(json.dumps(digits.to_dict()))
    assert d["shape"] == [1, 8, 8] and d["sizes"]["test"] == len(digits.test)
    assert d["scale"] == 16.0 and d["kind"] == "image"
    ds = load_data("digits", standardize=True, flatten=True, max_samples=50)
    d = json.loads(json.dumps(ds.to_dict()))
    assert isinstance(d["scale"], list) and len(d["offset"]) == 64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(val_fraction=-0.1), "val_fraction"),
        (dict(max_samples=0), "max_samples"),
        (dict(image_size=(8,)), "image_size"),
        (dict(image_size=0), "image_size"),
        (dict(seed="x"), "seed"),
        (dict(label_column=0), "label_column"),
    ],
)
def test_bad_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_data("digits", **kwargs)


def test_named_sources_case_insensitive_and_typo_hint():
    assert load_data("Digits", max_samples=10).name == "digits"
    with pytest.raises(DataError, match="Did you mean 'mnist'"):
        load_data("mnst")
    with pytest.raises(DataError, match="no such file"):
        load_data("/nonexistent/data.npy")


def test_list_sources():
    sources = list_sources()
    assert sources[:5] == ["digits", "mnist", "fashion-mnist", "dsprites", "dsprites32"] == list(NAMED_SOURCES)
    assert any(".npy" in s for s in sources) and any("png" in s for s in sources)


def test_val_fraction_zero_and_tiny_data(tmp_path):
    path = tmp_path / "tiny.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(3, 2))
    ds = load_data(str(path), val_fraction=0.0)
    assert len(ds.train) == 3 and len(ds.val) == 0 and ds.val.shape == (0, 2)
    ds = load_data(str(path), val_fraction=0.1)
    assert len(ds.train) == 2 and len(ds.val) == 1
    np.save(path, np.ones((1, 2), dtype=np.float32))
    ds = load_data(str(path), val_fraction=0.5)
    assert len(ds.train) == 1 and len(ds.val) == 0


# ---------------------------------------------------------------- binarize

def test_binarize_dynamic_mean_close_and_resampled():
    x = torch.linspace(0, 1, 11).repeat(4000, 1)          # (4000, 11)
    g = torch.Generator().manual_seed(0)
    b1 = binarize(x, mode="dynamic", generator=g)
    b2 = binarize(x, mode="dynamic", generator=g)
    assert set(b1.unique().tolist()) <= {0.0, 1.0} and b1.dtype == x.dtype
    assert not torch.equal(b1, b2)
    assert torch.allclose(b1.mean(0), x[0], atol=0.03)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(binarize(x, mode="dynamic", generator=g1),
                       binarize(x, mode="dynamic", generator=g2))


def test_binarize_threshold_and_none():
    x = torch.tensor([[0.0, 0.3, 0.5, 0.51, 1.0]])
    assert binarize(x, mode="threshold").tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]
    assert binarize(x, mode="threshold", threshold=0.2).tolist() == [[0.0, 1.0, 1.0, 1.0, 1.0]]
    assert binarize(x, mode="none") is x


def test_binarize_errors():
    with pytest.raises(ConfigError, match="Did you mean 'dynamic'"):
        binarize(torch.zeros(2), mode="dinamic")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        binarize(torch.tensor([-1.0, 2.0]), mode="dynamic")
