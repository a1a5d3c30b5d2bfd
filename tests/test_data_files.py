"""Tests of file sources: .npy, .npz, .csv, .mat, IDX and image folders, and their errors."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from aekit.data import load_array_file, load_data
from aekit.data.idx import read_idx
from aekit.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def write_idx(path, arr: np.ndarray, *, code: int = 0x08, gz: bool = False, dims=None) -> None:
    """Hand-written IDX: magic 0x0000TTNN, big-endian uint32 dims, big-endian data."""
    dims = arr.shape if dims is None else dims
    be = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    data = struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    data += arr.astype(be).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


# ---------------------------------------------------------------- round trips

def test_npy_uint8_images_round_trip_exact(tmp_path):
    x = RNG.integers(0, 256, size=(30, 5, 6), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"), val_fraction=0.2, seed=3)
    assert ds.kind == "image" and ds.shape == (1, 5, 6) and ds.test is None
    assert len(ds.train) == 24 and len(ds.val) == 6 and ds.y_train is None
    assert ds.whole.shape == (30, 1, 5, 6)
    assert torch.equal(ds.to_raw(ds.whole)[:, 0], torch.from_numpy(x).float())
    assert float(ds.whole.max()) <= 1.0 and ds.scale == 255.0
    all_x, _ = ds.split("all")
    assert all_x is ds.whole


def test_npy_channel_layouts(tmp_path):
    last = RNG.random((4, 7, 9, 3)).astype(np.float32)             # (N, H, W, C)
    np.save(tmp_path / "last.npy", last)
    ds = load_data(str(tmp_path / "last.npy"))
    assert ds.shape == (3, 7, 9)
    assert torch.allclose(ds.whole, torch.from_numpy(last).permute(0, 3, 1, 2))
    first = RNG.random((4, 1, 7, 9))
    np.save(tmp_path / "first.npy", first)
    assert load_data(str(tmp_path / "first.npy"), flatten=True).shape == (63,)


def test_float_images_outside_unit_range_are_rescaled(tmp_path):
    x = RNG.normal(size=(10, 4, 4)) * 50
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"))
    assert ds.kind == "image" and float(ds.whole.min()) == 0.0 and float(ds.whole.max()) == 1.0
    assert torch.allclose(ds.to_raw(ds.whole)[:, 0].double(), torch.from_numpy(x), atol=1e-3)


def test_uint8_table_is_not_reshaped(tmp_path):
    x = RNG.integers(0, 256, size=(12, 16), dtype=np.uint8)        # 16 = 4x4, still a table
    np.save(tmp_path / "t.npy", x)
    ds = load_data(str(tmp_path / "t.npy"))
    assert ds.kind == "table" and ds.shape == (16,) and ds.image_shape is None
    assert torch.equal(ds.to_raw(ds.whole), torch.from_numpy(x).float())


def test_standardized_table_to_raw(tmp_path):
    x = RNG.normal(loc=[5.0, -3.0, 100.0], scale=[1.0, 0.1, 20.0], size=(200, 3))
    x[:, 1] = 7.0                                                   # constant column
    np.save(tmp_path / "t.npy", x)
    ds = load_data(str(tmp_path / "t.npy"), standardize=True, seed=1)
    assert ds.kind == "table" and ds.scale.shape == (3,) and ds.offset.shape == (3,)
    assert torch.allclose(ds.train.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(ds.train[:, [0, 2]].std(0, correction=0), torch.ones(2), atol=1e-4)
    assert torch.isfinite(ds.whole).all()
    assert torch.allclose(ds.to_raw(ds.whole).double(), torch.from_numpy(x), rtol=1e-5,
                          atol=1e-4)


def test_npz_keys_and_labels(tmp_path):
    x, y = RNG.random((20, 6)), RNG.integers(0, 3, size=20)
    np.savez(tmp_path / "a.npz", X=x, labels=y)
    ds = load_data(str(tmp_path / "a.npz"), val_fraction=0.25)
    assert torch.equal(ds.y_whole, torch.from_numpy(y)) and ds.num_classes == int(y.max()) + 1
    assert len(ds.y_train) == 15 and len(ds.y_val) == 5
    np.savez(tmp_path / "b.npz", something=x)                        # the only array
    xb, yb = load_array_file(tmp_path / "b.npz")
    assert np.array_equal(xb, x) and yb is None
    np.savez(tmp_path / "c.npz", images=x, targets=np.array(["b", "a"] * 10))
    ds = load_data(str(tmp_path / "c.npz"))
    assert ds.classes == ["a", "b"] and ds.y_whole[:2].tolist() == [1, 0]


def test_csv_with_and_without_header_and_label_column(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,species\n1,2,cat\n3,4.5,dog\n5,6,cat\n")
    ds = load_data(str(tmp_path / "h.csv"), label_column="species", val_fraction=0)
    assert ds.kind == "table" and ds.shape == (2,)
    assert ds.whole.tolist() == [[1, 2], [3, 4.5], [5, 6]]
    assert ds.y_whole.tolist() == [0, 1, 0] and ds.classes == ["cat", "dog"]
    (tmp_path / "n.csv").write_text("1,2,0\n3,4,1\n5,6,2\n")
    x, y = load_array_file(tmp_path / "n.csv")
    assert x.shape == (3, 3) and y is None
    x, y = load_array_file(tmp_path / "n.csv", label_column=-1)
    assert x.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [0, 1, 2]
    ds = load_data(str(tmp_path / "n.csv"), label_column="0", val_fraction=0)
    assert ds.y_whole.tolist() == [1, 3, 5] and ds.shape == (2,)


def test_mat_round_trip(tmp_path):
    from scipy.io import savemat

    x, y = RNG.random((15, 4)), np.arange(15) % 2
    savemat(tmp_path / "d.mat", {"X": x, "y": y.reshape(-1, 1), "note": np.array([1.0])})
    ds = load_data(str(tmp_path / "d.mat"))
    assert torch.allclose(ds.whole.double(), torch.from_numpy(x), atol=1e-6)
    assert ds.y_whole.tolist() == y.tolist()
    savemat(tmp_path / "e.mat", {"small": np.ones(3), "big": RNG.random((5, 8, 8))})
    xe, ye = load_array_file(tmp_path / "e.mat")
    assert xe.shape == (5, 8, 8) and ye is None


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_with_sibling_labels(tmp_path, gz):
    suffix = ".gz" if gz else ""
    x = RNG.integers(0, 256, size=(7, 3, 4), dtype=np.uint8)
    y = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, gz=gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y, gz=gz)
    ds = load_data(str(tmp_path / f"train-images-idx3-ubyte{suffix}"))
    assert ds.shape == (1, 3, 4) and ds.y_whole.tolist() == list(range(7))
    assert torch.equal(ds.to_raw(ds.whole)[:, 0], torch.from_numpy(x).float())
    f = RNG.random((3, 5)).astype(np.float32)
    write_idx(tmp_path / "f.idx", f, code=0x0D)
    assert np.array_equal(read_idx(tmp_path / "f.idx"), f)


def test_image_folder_gray_and_rgb_and_labels(tmp_path):
    from PIL import Image

    for cls, value in (("zebra", 200), ("ant", 10)):
        (tmp_path / "g" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((5, 4), value + i, np.uint8), "L").save(
                tmp_path / "g" / cls / f"{i}.png")
    ds = load_data(str(tmp_path / "g"), val_fraction=0)
    assert ds.shape == (1, 5, 4) and ds.classes == ["ant", "zebra"]
    assert ds.y_whole.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.to_raw(ds.whole)[:, 0, 0, 0].tolist() == [10, 11, 12, 200, 201, 202]
    (tmp_path / "c").mkdir()
    Image.fromarray(np.zeros((6, 6), np.uint8), "L").save(tmp_path / "c" / "a.png")
    Image.fromarray(np.full((6, 6, 3), [255, 0, 0], np.uint8), "RGB").save(tmp_path / "c" / "b.png")
    ds = load_data(str(tmp_path / "c"), val_fraction=0)
    assert ds.shape == (3, 6, 6) and ds.y_whole is None
    assert ds.whole[1, :, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_image_folder_mixed_sizes_and_resize(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((10, 6), np.uint8)).save(tmp_path / "b.jpg")
    with pytest.raises(DataError, match=r"mixed sizes: a\.png is 8x8.*b\.jpg is 6x10.*image_size"):
        load_data(str(tmp_path))
    ds = load_data(str(tmp_path), image_size=(4, 5))
    assert ds.shape == (1, 4, 5)


# ---------------------------------------------------------------- errors

def test_error_missing_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(str(tmp_path / "nope.npy"))
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"x\.parquet.*unknown file extension.*\.npy.*\.csv"):
        load_data(str(tmp_path / "x.parquet"))


def test_error_pickled_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(tmp_path / "o.npy", np.array([Evil(), 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        load_data(str(tmp_path / "o.npy"))
    np.savez(tmp_path / "o.npz", x=np.array([Evil()], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        load_data(str(tmp_path / "o.npz"))
    (tmp_path / "p.npy").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataError, match="p.npy"):
        load_data(str(tmp_path / "p.npy"))
    assert not marker.exists()


@pytest.mark.parametrize(
    "array, match",
    [
        (np.arange(5.0), r"wrong number of dimensions.*got 1"),
        (np.zeros((2, 3, 4, 5, 6)), r"wrong number of dimensions.*got 5"),
        (np.zeros((0, 4)), r"empty data.*\(0, 4\)"),
        (np.zeros((3, 0)), r"empty data"),
        (np.array([["a", "b"]]), r"numeric.*<U1"),
        (np.zeros((2, 5, 5, 7)), r"channel axis"),
    ],
)
def test_error_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=r"bad\.npy.*" + match):
        load_data(str(tmp_path / "bad.npy"))


def test_error_nan_and_inf_count_and_first_index(tmp_path):
    x = np.ones((4, 3))
    x[1, 2], x[3, 0] = np.nan, np.inf
    np.save(tmp_path / "n.npy", x)
    with pytest.raises(DataError, match=r"n\.npy.*2 NaN or inf.*first at index \(1, 2\)"):
        load_data(str(tmp_path / "n.npy"))


def test_error_label_length_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match=r"m\.npz.*label length mismatch.*expected 5.*got 4"):
        load_data(str(tmp_path / "m.npz"))


def test_error_csv_non_numeric_cell_and_bad_label_column(tmp_path):
    (tmp_path / "b.csv").write_text("a,b\n1,2\n\n3,oops\n")               # blank line 3
    with pytest.raises(DataError, match=r"b\.csv.*line 4, column 2 \('b'\).*'oops'"):
        load_data(str(tmp_path / "b.csv"))
    (tmp_path / "r.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match=r"r\.csv.*line 2 has 1 columns; expected 2"):
        load_data(str(tmp_path / "r.csv"))
    (tmp_path / "h.csv").write_text("alpha,beta\n1,2\n")
    with pytest.raises(DataError, match="Did you mean 'beta'"):
        load_data(str(tmp_path / "h.csv"), label_column="betta")
    (tmp_path / "e.csv").write_text("alpha,beta\n")
    with pytest.raises(DataError, match=r"e\.csv.*empty data"):
        load_data(str(tmp_path / "e.csv"))


def test_error_idx_size_mismatch_and_huge_header(tmp_path):
    x = np.zeros((4, 3, 3), np.uint8)
    write_idx(tmp_path / "short-ubyte", x, dims=(5, 3, 3))           # declares 45, holds 36
    with pytest.raises(DataError, match=r"short-ubyte.*size mismatch.*45.*36"):
        load_data(str(tmp_path / "short-ubyte"))
    write_idx(tmp_path / "short-ubyte.gz", x, dims=(5, 3, 3), gz=True)
    with pytest.raises(DataError, match=r"size mismatch"):
        load_data(str(tmp_path / "short-ubyte.gz"))
    write_idx(tmp_path / "huge-ubyte.gz", x[:1], dims=(100000, 100000, 100), gz=True)
    with pytest.raises(DataError, match=r"huge-ubyte\.gz.*refusing"):
        load_data(str(tmp_path / "huge-ubyte.gz"))
    (tmp_path / "junk.idx").write_bytes(b"\x08\x03\x00\x00")
    with pytest.raises(DataError, match=r"junk\.idx.*magic number"):
        load_data(str(tmp_path / "junk.idx"))


def test_error_table_options(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="image_size applies to images"):
        load_data(str(tmp_path / "t.npy"), image_size=8)
    with pytest.raises(DataError, match="only CSV files have column names"):
        load_data(str(tmp_path / "t.npy"), label_column="name")
