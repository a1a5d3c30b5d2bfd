"""Procedural dSprites: the factor grid, index <-> factor mapping, rendering, subsets, load_data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aekit.data import dsprites as ds
from aekit.data import load_data
from aekit.errors import ConfigError, DataError


def test_grid_size_and_factor_values():
    assert ds.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert ds.NUM_COMBINATIONS == 737_280 == math.prod(ds.FACTOR_SIZES)
    first = ds.factor_values([[0, 0, 0, 0, 0]])[0]
    last = ds.factor_values([[2, 5, 39, 31, 31]])[0]
    assert first.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert last[:2].tolist() == [3.0, 1.0] and last[3:].tolist() == [1.0, 1.0]
    assert last[2] == pytest.approx(2 * math.pi * 39 / 40) and last[2] < 2 * math.pi
    scales = ds.factor_values([[0, s, 0, 0, 0] for s in range(6)])[:, 1]
    np.testing.assert_allclose(scales, np.linspace(0.5, 1.0, 6))


def test_index_factor_round_trip():
    # mixed radix with pos_y fastest, as in the original .npz
    assert ds.classes_to_index([[0, 0, 0, 0, 1]]).tolist() == [1]
    assert ds.classes_to_index([[0, 0, 0, 1, 0]]).tolist() == [32]
    assert ds.classes_to_index([[0, 0, 1, 0, 0]]).tolist() == [1024]
    assert ds.classes_to_index([[1, 0, 0, 0, 0]]).tolist() == [245_760]
    assert ds.classes_to_index([[2, 5, 39, 31, 31]]).tolist() == [737_279]
    idx = np.random.default_rng(0).integers(0, ds.NUM_COMBINATIONS, size=5000)
    classes = ds.index_to_classes(idx)
    assert classes.shape == (5000, 5) and (classes < np.array(ds.FACTOR_SIZES)).all()
    np.testing.assert_array_equal(ds.classes_to_index(classes), idx)
    with pytest.raises(ConfigError, match="737280"):
        ds.index_to_classes([ds.NUM_COMBINATIONS])
    with pytest.raises(ConfigError, match="sizes"):
        ds.classes_to_index([[3, 0, 0, 0, 0]])


@pytest.mark.parametrize("resolution", [64, 32])
def test_every_shape_renders_binary_and_inside_the_image(resolution):
    # the largest sprites at the four extreme positions, every orientation: nothing on the border
    classes = np.array([[s, 5, o, px, py] for s in range(3) for o in range(0, 40, 3) for px in (0, 31) for py in (0, 31)])
    x = ds.render_classes(classes, resolution=resolution)
    assert x.shape == (len(classes), 1, resolution, resolution) and x.dtype == torch.float32
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert (x.flatten(1).sum(1) > 0).all()
    border = x[:, 0, 0].sum() + x[:, 0, -1].sum() + x[:, 0, :, 0].sum() + x[:, 0, :, -1].sum()
    assert border == 0


def test_scale_orientation_and_position_change_the_image_as_expected():
    r = 64
    # area grows with the square of the scale (within the pixel rounding)
    areas = ds.render_classes([[1, s, 0, 16, 16] for s in range(6)], resolution=r).sum(dim=(1, 2, 3))
    assert (areas[1:] > areas[:-1]).all()
    assert float(areas[-1] / areas[0]) == pytest.approx(4.0, rel=0.1)
    # a square is symmetric under a quarter turn (10 of 40 steps), an ellipse under a half turn;
    # an eighth of a turn changes both
    sq = ds.render_classes([[0, 5, 0, 16, 16], [0, 5, 10, 16, 16], [0, 5, 5, 16, 16]], resolution=r)
    el = ds.render_classes([[1, 5, 0, 16, 16], [1, 5, 20, 16, 16], [1, 5, 5, 16, 16]], resolution=r)
    for im in (sq, el):
        assert (im[0] != im[1]).sum() <= 0.05 * im[0].sum()
        assert (im[0] != im[2]).sum() > 0.15 * im[0].sum()
    # the centre of mass follows pos_x along columns and pos_y along rows, as the grid says
    cols = torch.arange(r, dtype=torch.float32) + 0.5
    for px in (0, 10, 31):
        im = ds.render_classes([[1, 3, 0, px, 16]], resolution=r)[0, 0]
        cx = float((im.sum(0) * cols).sum() / im.sum())
        assert cx == pytest.approx(r * (ds.MARGIN + px / 31 * (1 - 2 * ds.MARGIN)), abs=0.5)
        im_t = ds.render_classes([[1, 3, 0, 16, px]], resolution=r)[0, 0]
        cy = float((im_t.sum(1) * cols).sum() / im_t.sum())
        assert cy == pytest.approx(r * (ds.MARGIN + px / 31 * (1 - 2 * ds.MARGIN)), abs=0.5)
    # the three shapes differ from one another
    shapes = ds.render_classes([[s, 5, 0, 16, 16] for s in range(3)], resolution=r)
    for a in range(3):
        for b in range(a + 1, 3):
            assert (shapes[a] != shapes[b]).sum() > 20


def test_random_subsets_are_seeded_and_distinct():
    a, b, c = ds.random_indices(1000, seed=3), ds.random_indices(1000, seed=3), ds.random_indices(1000, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 1000 and a.min() >= 0 and a.max() < ds.NUM_COMBINATIONS
    fixed = ds.sample_classes(50, rng=np.random.default_rng(0), fixed=(2, 7))
    assert (fixed[:, 2] == 7).all() and fixed.shape == (50, 5)


def test_map_style_dataset_renders_lazily():
    d = ds.DSprites(resolution=32, indices=[0, 245_760, 737_279], cache=True)
    assert len(d) == 3 and len(ds.DSprites(resolution=32)) == ds.NUM_COMBINATIONS
    image, classes = d[1]
    assert image.shape == (1, 32, 32) and classes.tolist() == [1, 0, 0, 0, 0]
    torch.testing.assert_close(image, ds.render([245_760], resolution=32)[0])
    torch.testing.assert_close(d[1][0], image)   # second read comes from the cache
    torch.testing.assert_close(d.batch([0, 2]), ds.render([0, 737_279], resolution=32))
    np.testing.assert_array_equal(d.factors(), ds.index_to_classes([0, 245_760, 737_279]))
    with pytest.raises(IndexError):
        d[3]


def test_split_sizes():
    assert ds.split_sizes(None, 0.1) == (ds.DEFAULT_SAMPLES, 2222, 2222)
    assert ds.split_sizes(900, 0.1) == (900, 100, 100)
    n_train, n_val, n_test = ds.split_sizes(ds.NUM_COMBINATIONS, 0.1)
    assert n_train + n_val + n_test <= ds.NUM_COMBINATIONS


def test_load_data_gives_seeded_disjoint_splits_with_factors():
    d = load_data("DSprites32", max_samples=180, seed=1)
    assert d.name == "dsprites32" and d.kind == "image" and d.shape == (1, 32, 32)
    assert (d.train.shape[0], d.val.shape[0], d.test.shape[0]) == (180, 20, 20)
    assert d.classes == ["square", "ellipse", "heart"] and d.num_classes == 3
    for split in ("train", "val", "test"):
        x, y = d.split(split)
        f = ds.split_factors(d, split)
        assert f.shape == (x.shape[0], 5)
        torch.testing.assert_close(x, ds.render_classes(f.numpy(), resolution=32))
        torch.testing.assert_close(y, f[:, 0])
    everything = ds.classes_to_index(ds.split_factors(d, "all").numpy())
    assert len(np.unique(everything)) == 220      # disjoint splits
    again = load_data("dsprites32", max_samples=180, seed=1)
    torch.testing.assert_close(again.train, d.train)
    other = load_data("dsprites32", max_samples=180, seed=2)
    assert not torch.equal(other.train, d.train)
    big = load_data("dsprites", max_samples=10, val_fraction=0.5)
    assert big.shape == (1, 64, 64) and big.val.shape[0] == 10
    flat = load_data("dsprites32", max_samples=10, flatten=True)
    assert flat.shape == (1024,) and flat.factors["train"].shape == (10, 5)


def test_factors_of_a_source_without_them_raise():
    from aekit.data import Dataset

    x = torch.zeros(4, 1, 8, 8)
    d = Dataset(name="digits", train=x, val=x, test=None, y_train=None, y_val=None, y_test=None, kind="image")
    with pytest.raises(DataError, match="dsprites"):
        ds.split_factors(d, "train")


def test_sources_are_listed_and_suggested():
    from aekit.data import list_sources

    assert {"dsprites", "dsprites32"} <= set(list_sources())
    with pytest.raises(DataError, match="dsprites32"):
        load_data("dsprits32")


def test_the_lazy_dataset_trains_through_the_streaming_path():
    import aekit

    data = ds.DSprites(resolution=32, indices=ds.random_indices(32, seed=0))
    model = aekit.build("beta_vae", input_shape=(1, 32, 32), backbone="conv", channels=[4, 8], latent_dim=3, seed=0)
    result = aekit.fit(model, data, epochs=1, batch_size=16, progress=False)
    assert result.history[0]["step"] == 2 and math.isfinite(result.history[0]["train_loss"])
