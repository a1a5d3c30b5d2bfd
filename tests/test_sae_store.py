"""The activation store (append, read, bounds, checksums) and the shuffling buffer (every row once per epoch)."""

import json

import numpy as np
import pytest
import torch

from aekit.errors import CheckpointError, ConfigError, DataError
from aekit.tasks.sae.store import ActivationStore, ShufflingBuffer


def _store(tmp_path, n=103, d=3, dtype="float32", chunk=17):
    store = ActivationStore.create(tmp_path / "acts", d=d, dtype=dtype)
    rows = np.arange(n * d, dtype=np.float32).reshape(n, d)
    for i in range(0, n, chunk):
        store.append(rows[i:i + chunk])
    return store, rows


def test_append_read_reopen(tmp_path):
    store, rows = _store(tmp_path)
    assert len(store) == 103 and store.d == 3
    np.testing.assert_array_equal(store.read(10, 40), rows[10:40])
    again = ActivationStore(tmp_path / "acts")
    assert len(again) == 103
    np.testing.assert_array_equal(again.rows, rows)
    again.verify()
    again.append(torch.ones(2, 3))  # a tensor chunk; the store grows
    assert len(ActivationStore(tmp_path / "acts")) == 105
    np.testing.assert_array_equal(again.read(103, 105), np.ones((2, 3), np.float32))
    again.update_meta(layer="encoder", positions=1)
    assert ActivationStore(tmp_path / "acts").meta == {"layer": "encoder", "positions": 1}  # kept, under the checksum
    with pytest.raises(ConfigError, match="JSON"):
        again.update_meta(bad=object())
    with pytest.raises(ConfigError, match="JSON"):
        ActivationStore.create(tmp_path / "other", d=2, meta={"bad": {1, 2}})
    pick = again.sample(5, seed=1)
    assert pick.shape == (5, 3) and np.array_equal(pick, again.sample(5, seed=1))


def test_float16_store_halves_the_bytes(tmp_path):
    store, rows = _store(tmp_path, n=10, d=2, dtype="float16")
    assert (tmp_path / "acts" / "activations.bin").stat().st_size == 10 * 2 * 2
    np.testing.assert_array_equal(store.read(0, 10), rows)  # small integers are exact in float16
    with pytest.raises(DataError, match="float16"):
        store.append(np.full((1, 2), 1e6, np.float32))


def test_bounds_before_writing(tmp_path):
    store = ActivationStore.create(tmp_path / "acts", d=4, max_bytes=4 * 4 * 10)
    store.append(np.zeros((10, 4), np.float32))
    with pytest.raises(DataError, match="max_bytes"):
        store.append(np.zeros((1, 4), np.float32))
    assert (tmp_path / "acts" / "activations.bin").stat().st_size == 160  # nothing was written
    with pytest.raises(DataError, match=r"shape \(n, 4\)"):
        store.append(np.zeros((3, 5), np.float32))
    with pytest.raises(ConfigError, match="read"):
        store.read(5, 11)
    with pytest.raises(ConfigError, match="already holds"):
        ActivationStore.create(tmp_path / "acts", d=4)


def test_reads_are_checked_against_the_memory_budget(tmp_path, monkeypatch):
    store, _ = _store(tmp_path, n=100, d=3)
    monkeypatch.setenv("AEKIT_MEMORY_BUDGET", "1000")  # bytes: 83 float32 rows of 3
    assert store.read(0, 80).shape == (80, 3)
    with pytest.raises(DataError, match="memory budget"):
        store.read(0, 100)
    with pytest.raises(DataError, match="memory budget"):
        store.sample(100)


def test_damaged_header_and_data_are_refused(tmp_path):
    store, _ = _store(tmp_path, n=20)
    header_path = tmp_path / "acts" / "header.json"
    header = json.loads(header_path.read_text())
    header_path.write_text(json.dumps(dict(header, count=10**9)))
    with pytest.raises(CheckpointError, match="header_sha256"):
        ActivationStore(tmp_path / "acts")
    header_path.write_text(json.dumps(header))
    with open(tmp_path / "acts" / "activations.bin", "r+b") as f:
        f.seek(8)
        f.write(b"\xff\xff")
    with pytest.raises(CheckpointError, match="data_crc32"):
        ActivationStore(tmp_path / "acts").verify()
    with open(tmp_path / "acts" / "activations.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(CheckpointError, match="declares"):
        ActivationStore(tmp_path / "acts")


def test_interrupted_chunk_is_cut_off_on_the_next_append(tmp_path):
    store, rows = _store(tmp_path, n=6, d=2, chunk=6)
    with open(tmp_path / "acts" / "activations.bin", "ab") as f:
        f.write(b"\x01" * 12)  # half a chunk written, header never updated
    again = ActivationStore(tmp_path / "acts")
    assert len(again) == 6
    again.append(np.full((1, 2), 7.0, np.float32))
    assert (tmp_path / "acts" / "activations.bin").stat().st_size == 7 * 2 * 4
    again.verify()
    np.testing.assert_array_equal(again.read(0, 7), np.concatenate([rows, np.full((1, 2), 7.0, np.float32)]))


def test_buffer_yields_every_row_once_per_epoch_reproducibly(tmp_path):
    store, rows = _store(tmp_path, n=103, d=3)
    buffer = ShufflingBuffer(store, batch_size=8, buffer_rows=32, chunk_rows=10, seed=3)
    first = list(buffer)
    assert len(first) == len(buffer) == 13 and all(b.shape == (8, 3) for b in first[:-1]) and first[-1].shape == (7, 3)
    seen = torch.cat(first)[:, 0].long() // 3  # row numbers
    assert sorted(seen.tolist()) == list(range(103))
    assert not torch.equal(seen, torch.arange(103))  # shuffled
    again = list(ShufflingBuffer(store, batch_size=8, buffer_rows=32, chunk_rows=10, seed=3))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    second = torch.cat(list(buffer))[:, 0].long() // 3  # the next epoch: every row once, another order
    assert sorted(second.tolist()) == list(range(103)) and not torch.equal(second, seen)
    other = torch.cat(list(ShufflingBuffer(store, batch_size=8, buffer_rows=32, chunk_rows=10, seed=4)))
    assert not torch.equal(other[:, 0].long() // 3, seen)
    dropped = list(ShufflingBuffer(store, batch_size=8, buffer_rows=32, chunk_rows=10, drop_last=True))
    assert len(dropped) == 12 and all(b.shape == (8, 3) for b in dropped)


def test_buffer_mixes_chunks():
    """A batch draws rows from several chunks (not one chunk's consecutive rows)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        store, _ = _store(Path(tmp), n=400, d=1, chunk=400)
        batches = list(ShufflingBuffer(store, batch_size=16, buffer_rows=200, chunk_rows=20, seed=0))
        chunks_per_batch = [len(set((b[:, 0].long() // 20).tolist())) for b in batches]
        assert np.mean(chunks_per_batch) > 5


def test_buffer_options_are_checked(tmp_path):
    store, _ = _store(tmp_path, n=10)
    with pytest.raises(ConfigError, match="buffer_rows"):
        ShufflingBuffer(store, batch_size=8, buffer_rows=4, chunk_rows=2)
    with pytest.raises(ConfigError, match="batch_size"):
        ShufflingBuffer(store, batch_size=0)
