"""Tests of the 'mnist' / 'fashion-mnist' sources: folder resolution, reading, downloading.

The network is never used: `aekit.data.download._urlopen` is replaced in every test, and the
cache is a temporary folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.data import download as dl
from aekit.data import load_data
from aekit.data import mnist as mn
from aekit.errors import DataError

REAL_MNIST = Path(os.environ.get("AEKIT_MNIST_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
needs_real_mnist = pytest.mark.skipif(
    not (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file(), reason="no local MNIST copy"
)


def _no_network(url, timeout=None):
    raise AssertionError(f"test tried to reach the network: {url}")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(dl, "_urlopen", _no_network)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(mn.ENV_DATA_DIR, raising=False)


def idx_bytes(arr: np.ndarray) -> bytes:
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def fake_files(n_train: int = 20, n_test: int = 5, seed: int = 0) -> dict[str, bytes]:
    """The four .gz files of a tiny fake MNIST (4x4 images, labels 0..9)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 4)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 4)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    return {k + ".gz": gzip.compress(idx_bytes(v), mtime=0) for k, v in arrays.items()}


def write_fake(folder: Path, *, gz: bool = True, **kwargs) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    files = fake_files(**kwargs)
    for name, data in files.items():
        if gz:
            (folder / name).write_bytes(data)
        else:
            (folder / name.removesuffix(".gz")).write_bytes(gzip.decompress(data))
    return files


class FakeServer:
    """Stands in for urlopen: serves `files` by file name, records the calls."""

    def __init__(self, files: dict[str, bytes], fail_hosts: tuple[str, ...] = ()):
        self.files, self.fail_hosts, self.calls = files, fail_hosts, []

    def __call__(self, url, timeout=None):
        self.calls.append((url, timeout))
        if any(h in url for h in self.fail_hosts):
            raise urllib.error.URLError("connection refused")
        return io.BytesIO(self.files[url.rsplit("/", 1)[1]])


def use_checksums(monkeypatch, name: str, files: dict[str, bytes], algorithm: str) -> None:
    sums = {k: hashlib.new(algorithm, v).hexdigest() for k, v in files.items()}
    monkeypatch.setitem(mn.SOURCES[name], "checksums", sums)


# ---------------------------------------------------------------- local folders

def test_fake_folder_sizes_labels_and_scaling(tmp_path):
    write_fake(tmp_path / "m", n_train=40, n_test=10)
    ds = load_data("mnist", data_dir=str(tmp_path / "m"), val_fraction=0.25, seed=2)
    assert ds.shape == (1, 4, 4) and ds.kind == "image" and ds.scale == 255.0
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 10)
    assert ds.y_test.tolist() == list(range(10)) and ds.whole is None
    raw = ds.to_raw(ds.test)
    assert torch.equal(raw, raw.round()) and 0 <= float(raw.min()) and float(raw.max()) <= 255
    capped = load_data("mnist", data_dir=str(tmp_path / "m"), val_fraction=0.25, max_samples=15)
    assert (len(capped.train), len(capped.val), len(capped.test)) == (15, 5, 5)


def test_data_dir_subfolder_and_plain_files(tmp_path):
    write_fake(tmp_path / "root" / "fashion-mnist", gz=False)
    ds = load_data("fashion-mnist", data_dir=str(tmp_path / "root"))
    assert ds.name == "fashion-mnist" and len(ds.test) == 5


def test_env_var_resolution_and_precedence(tmp_path, monkeypatch):
    write_fake(tmp_path / "env" / "mnist", n_train=20)
    monkeypatch.setenv(mn.ENV_DATA_DIR, str(tmp_path / "env"))
    assert mn.resolve_folder("mnist") == tmp_path / "env" / "mnist"
    assert len(load_data("mnist", val_fraction=0.5).train) == 10
    write_fake(tmp_path / "arg", n_train=30)
    assert mn.resolve_folder("mnist", data_dir=tmp_path / "arg") == tmp_path / "arg"
    assert len(load_data("mnist", data_dir=str(tmp_path / "arg"), val_fraction=0.5).train) == 15


@needs_real_mnist
def test_real_mnist_from_local_folder():
    ds = load_data("mnist", data_dir=str(REAL_MNIST), max_samples=600, seed=0)
    assert ds.shape == (1, 28, 28) and ds.train.dtype == torch.float32
    assert len(ds.train) == 600 and len(ds.val) == round(6000 * 600 / 54000)
    assert len(ds.test) == int(np.ceil(10000 * 600 / 54000))
    assert float(ds.train.min()) == 0.0 and float(ds.train.max()) == 1.0
    assert set(ds.y_train.tolist()) == set(range(10)) and ds.num_classes == 10
    x, y = ds.split("all")
    assert len(x) == len(y) == 600 + len(ds.val) + len(ds.test)


@needs_real_mnist
def test_real_mnist_checksums_match_the_published_ones():
    for name, expected in mn.SOURCES["mnist"]["checksums"].items():
        assert dl.file_digest(REAL_MNIST / name, "sha256") == expected


# ---------------------------------------------------------------- downloading

def test_download_into_cache_with_good_checksums(tmp_path, monkeypatch):
    files = fake_files()
    use_checksums(monkeypatch, "fashion-mnist", files, "md5")
    server = FakeServer(files)
    monkeypatch.setattr(dl, "_urlopen", server)
    ds = load_data("fashion-mnist", val_fraction=0.5)
    cache = tmp_path / "cache" / "aekit" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(files)      # no .part left
    assert all((cache / k).read_bytes() == v for k, v in files.items())
    assert len(server.calls) == 4 and all(t == dl.TIMEOUT_S for _, t in server.calls)
    assert len(ds.train) == 10
    server.calls.clear()
    load_data("fashion-mnist")                                            # cached now
    assert server.calls == []


def test_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch):
    files = fake_files()
    use_checksums(monkeypatch, "mnist", files, "sha256")
    server = FakeServer(files, fail_hosts=("ossci-datasets",))
    monkeypatch.setattr(dl, "_urlopen", server)
    assert len(load_data("mnist").test) == 5
    assert any("storage.googleapis.com" in url for url, _ in server.calls)


def test_download_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    files = fake_files()
    use_checksums(monkeypatch, "mnist", files, "sha256")
    corrupt = {k: v + b"x" for k, v in files.items()}
    monkeypatch.setattr(dl, "_urlopen", FakeServer(corrupt))
    with pytest.raises(DataError, match=r"checksum mismatch.*--data-dir.*AEKIT_DATA_DIR"):
        load_data("mnist")
    cache = tmp_path / "cache" / "aekit" / "mnist"
    assert list(cache.iterdir()) == []


def test_download_network_failure_names_the_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_urlopen", FakeServer({}, fail_hosts=("http",)))
    monkeypatch.setenv("AEKIT_DATA_DIR", str(tmp_path / "nowhere"))  # searched, then the download is tried
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"mnist.*searched .*nowhere.*download failed.*--data-dir"):
        load_data("mnist")
    with pytest.raises(DataError, match=r"data_dir .*nowhere.* does not exist"):  # given explicitly: refused
        load_data("mnist", data_dir=str(tmp_path / "nowhere"))


def test_download_function_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    dest = tmp_path / "d" / "f.bin"
    monkeypatch.setattr(dl, "_urlopen", FakeServer({"f.bin": b"hello"}))
    dl.download("https://x/f.bin", dest, checksum=hashlib.sha256(b"hello").hexdigest())
    assert dest.read_bytes() == b"hello"
    with pytest.raises(DataError, match=r"https://x/f\.bin: checksum mismatch.*md5"):
        dl.download("https://x/f.bin", dest, checksum="0" * 32, algorithm="md5")
    assert dest.read_bytes() == b"hello" and sorted(p.name for p in dest.parent.iterdir()) == [
        "f.bin"]


@needs_real_mnist
def test_download_real_files_through_fake_server_with_real_checksums(monkeypatch):
    files = {p.name: p.read_bytes() for p in REAL_MNIST.glob("*.gz")}
    monkeypatch.setattr(dl, "_urlopen", FakeServer(files))
    ds = load_data("mnist", max_samples=100)
    assert ds.shape == (1, 28, 28) and len(ds.train) == 100
