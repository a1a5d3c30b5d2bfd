"""An append-only, memory-mapped on-disk store of activations, and the shuffling buffer that trains from it.

A sparse autoencoder is trained on many more activation vectors than fit in memory (Bricken et
al. 2023, "Towards Monosemanticity", train on billions of tokens; Gao et al. 2024, "Scaling and
evaluating sparse autoencoders", on tens of billions). The store keeps them on disk as one raw
row-major file read through numpy.memmap, and the buffer gives training near-iid batches by
mixing rows from many random chunks in memory, the way SAELens' ActivationsStore and
dictionary_learning's ActivationBuffer do, without ever loading the whole store.

    STORE/header.json       {"format": "aekit-activations", "version": 1, "dtype": "float32"|"float16",
                             "d": int, "count": int, "data_crc32": int, "meta": {...}, "header_sha256": str}
    STORE/activations.bin   count * d values of dtype, row-major, no padding

Rows are written in chunks (`append`); the header is rewritten atomically after every chunk, so
a store interrupted mid-write reopens with the rows of its last complete chunk (trailing bytes
are cut off). Every chunk is bounded before it is written: by the store's `max_bytes` and by the
free space of the disk. `header_sha256` covers the header itself; `data_crc32` (CRC-32 of the
data bytes, updated chunk by chunk) lets `verify()` check the data when asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ...checkpoint import atomic_write_json
from ...errors import CheckpointError, ConfigError, DataError
from ...memory_budget import check_budget, human

FORMAT = "aekit-activations"
VERSION = 1
HEADER_NAME = "header.json"
DATA_NAME = "activations.bin"
DTYPES = {"float32": np.float32, "float16": np.float16}
MAX_HEADER_BYTES = 2**16
DISK_RESERVE = 64 * 2**20  # bytes always left free on the disk after a chunk


def header_sha256(header: dict) -> str:
    """SHA-256 of the canonical JSON of every header key but header_sha256 itself."""
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ActivationStore:
    """Rows of d activations on disk; `ActivationStore.create(path, d=...)` to write, `ActivationStore(path)` to read.

    Reading: `len(store)`, `store.read(start, stop) -> (stop - start, d) float32 ndarray`,
    `store.rows -> (count, d) read-only memmap` (no copy). Writing: `store.append(chunk)` with a
    (n, d) array or tensor; `max_bytes` bounds the data file's size (None: only the disk's free space).
    """

    def __init__(self, path: str | os.PathLike, *, max_bytes: int | None = None):
        self.path = Path(path)
        header_path = self.path / HEADER_NAME
        if not header_path.is_file():
            raise CheckpointError(f"{str(self.path)!r} is not an activation store ({HEADER_NAME} missing).")
        if header_path.stat().st_size > MAX_HEADER_BYTES:
            raise CheckpointError(f"{str(header_path)!r} is {header_path.stat().st_size} bytes; a store header is under "
                                  f"{MAX_HEADER_BYTES}.")
        try:
            header = json.loads(header_path.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{str(header_path)!r} is not readable JSON ({exc}).") from None
        self._check_header(header, header_path)
        self.header = header
        self.dtype = np.dtype(DTYPES[header["dtype"]])
        self.d = int(header["d"])
        self.max_bytes = max_bytes
        data_path = self.path / DATA_NAME
        size = data_path.stat().st_size if data_path.is_file() else -1
        if size < self.nbytes:
            raise CheckpointError(f"{str(data_path)!r} holds {max(size, 0)} bytes; the header declares "
                                  f"{header['count']} rows of {self.d} {header['dtype']} ({self.nbytes} bytes).")
        self._map = None

    @staticmethod
    def _check_header(header, where) -> None:
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CheckpointError(f"{str(where)!r} is not an aekit activation store header.")
        if header.get("version") != VERSION:
            raise CheckpointError(f"{str(where)!r} has version {header.get('version')!r}; this aekit reads {VERSION}.")
        if header.get("header_sha256") != header_sha256(header):
            raise CheckpointError(f"{str(where)!r} fails its checksum (header_sha256); the header was changed or damaged.")
        if header.get("dtype") not in DTYPES:
            raise CheckpointError(f"{str(where)!r} has dtype {header.get('dtype')!r}; expected one of {sorted(DTYPES)}.")
        for key in ("d", "count", "data_crc32"):
            value = header.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "d" else 0):
                raise CheckpointError(f"{str(where)!r} has {key}={value!r}; expected a non-negative integer.")

    @classmethod
    def create(cls, path: str | os.PathLike, *, d: int, dtype: str = "float32", max_bytes: int | None = None,
               overwrite: bool = False, meta: dict | None = None) -> "ActivationStore":
        """Make an empty store for rows of d values of dtype ('float32' or 'float16') at path (a new folder).

        meta: a JSON-serialisable dict kept in the header (capture records the layer, the layout and
        the positions per input there)."""
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ConfigError(f"d must be a positive integer (values per row); got {d!r}.")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}; got {dtype!r}.")
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
            raise ConfigError(f"max_bytes must be a positive integer or None; got {max_bytes!r}.")
        try:
            meta = json.loads(json.dumps(meta or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"meta must be a JSON-serialisable dict ({exc}).") from None
        if not isinstance(meta, dict):
            raise ConfigError(f"meta must be a dict; got {type(meta).__name__}.")
        path = Path(path)
        if (path / HEADER_NAME).exists() and not overwrite:
            raise ConfigError(f"{str(path)!r} already holds an activation store; pass overwrite=True to replace it.")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"store path {str(path)!r} is a file; give a folder.")
        path.mkdir(parents=True, exist_ok=True)
        (path / DATA_NAME).write_bytes(b"")
        cls._write_header(path, {"format": FORMAT, "version": VERSION, "dtype": dtype, "d": d, "count": 0, "data_crc32": 0,
                                 "meta": meta})
        return cls(path, max_bytes=max_bytes)

    @staticmethod
    def _write_header(path: Path, header: dict) -> dict:
        header = dict(header)
        header["header_sha256"] = header_sha256(header)
        atomic_write_json(path / HEADER_NAME, header)
        return header

    # reading -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.header["count"])

    @property
    def meta(self) -> dict:
        """What the writer recorded about the rows (capture: layer, layout, positions per input)."""
        meta = self.header.get("meta")
        return dict(meta) if isinstance(meta, dict) else {}

    def update_meta(self, **values) -> None:
        """Set keys of the header's meta (JSON values), rewriting the header atomically."""
        meta = dict(self.meta, **values)
        try:
            meta = json.loads(json.dumps(meta))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"meta values must be JSON-serialisable ({exc}).") from None
        self.header = self._write_header(self.path, dict(self.header, meta=meta))

    @property
    def row_bytes(self) -> int:
        return self.d * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    @property
    def rows(self) -> np.ndarray:
        """(count, d) read-only memmap of the stored rows (no copy; an empty array when count is 0)."""
        if len(self) == 0:
            return np.zeros((0, self.d), dtype=self.dtype)
        if self._map is None or self._map.shape[0] != len(self):
            self._map = np.memmap(self.path / DATA_NAME, dtype=self.dtype, mode="r", shape=(len(self), self.d))
        return self._map

    def read(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, d) float32 copy of rows start..stop-1 (0 <= start <= stop <= len)."""
        if not (isinstance(start, (int, np.integer)) and isinstance(stop, (int, np.integer)) and 0 <= start <= stop <= len(self)):
            raise ConfigError(f"read(start, stop) needs 0 <= start <= stop <= {len(self)}; got ({start!r}, {stop!r}).")
        check_budget((stop - start) * self.d * 4, what=f"reading {stop - start} rows of {self.d} values",
                     hint="read fewer rows at a time")
        return np.array(self.rows[start:stop], dtype=np.float32)  # a copy, writable

    def sample(self, n: int, *, seed: int = 0) -> np.ndarray:
        """(min(n, len), d) float32 copy of a seeded random choice of rows, in stored order (reads only those rows)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"n must be a positive integer; got {n!r}.")
        if len(self) == 0:
            raise DataError(f"the activation store {str(self.path)!r} is empty.")
        check_budget(min(n, len(self)) * (self.d * 4 + 16), what=f"a sample of {min(n, len(self))} rows of {self.d} values",
                     hint="sample fewer rows")
        pick = np.sort(np.random.default_rng(seed).choice(len(self), size=min(n, len(self)), replace=False))
        return np.array(self.rows[pick], dtype=np.float32)

    def verify(self) -> None:
        """Recompute the data's CRC-32 (streaming, bounded memory); raise CheckpointError on a mismatch."""
        crc, step = 0, max(1, (16 * 2**20) // self.row_bytes)
        for start in range(0, len(self), step):
            crc = zlib.crc32(np.ascontiguousarray(self.rows[start:start + step]).tobytes(), crc)
        if crc != self.header["data_crc32"]:
            raise CheckpointError(f"{str(self.path / DATA_NAME)!r} fails its checksum (data_crc32); the data was changed or damaged.")

    # writing -----------------------------------------------------------------------------------
    def append(self, chunk) -> int:
        """Append a (n, d) chunk (ndarray or tensor, any float dtype, cast to the store's); return the new count."""
        if isinstance(chunk, torch.Tensor):
            chunk = chunk.detach().to("cpu", torch.float32).numpy()
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[1] != self.d:
            raise DataError(f"a chunk must have shape (n, {self.d}); got {tuple(chunk.shape)}.")
        if not np.issubdtype(chunk.dtype, np.floating):
            raise DataError(f"a chunk must hold floating-point values; got dtype {chunk.dtype}.")
        if self.dtype == np.float16 and chunk.size and np.abs(np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0)).max() > 65504:
            raise DataError("a chunk holds values beyond float16's range (65504); store it as float32.")
        data = np.ascontiguousarray(chunk, dtype=self.dtype)
        add = data.nbytes
        if self.max_bytes is not None and self.nbytes + add > self.max_bytes:
            raise DataError(f"appending {chunk.shape[0]} rows would make the store {human(self.nbytes + add)}, "
                            f"above its max_bytes of {human(self.max_bytes)}.")
        free = shutil.disk_usage(self.path).free
        if add + DISK_RESERVE > free:
            raise DataError(f"appending {chunk.shape[0]} rows ({human(add)}) would leave less than "
                            f"{human(DISK_RESERVE)} free on the disk of {str(self.path)!r} ({human(free)} free).")
        data_path = self.path / DATA_NAME
        with open(data_path, "r+b") as f:
            f.truncate(self.nbytes)  # drop the bytes of a chunk whose header never got written
            f.seek(self.nbytes)
            f.write(data.tobytes())
            f.flush()
            os.fsync(f.fileno())
        header = dict(self.header, count=len(self) + chunk.shape[0],
                      data_crc32=zlib.crc32(data.tobytes(), self.header["data_crc32"]))
        self.header = self._write_header(self.path, header)
        self._map = None
        return len(self)


class ShufflingBuffer:
    """Near-iid (batch_size, d) float32 batches from a store, holding at most buffer_rows rows in memory
    (the buffer, plus up to as many again while a round is given out; checked against the memory budget).

    Each epoch visits the store's chunks of chunk_rows consecutive rows in a seeded random order.
    The buffer is filled with whole chunks up to buffer_rows and a random half of it is given
    out as batches; the kept half mixes with the next chunks (SAELens' ActivationsStore mixing).
    At the end of an epoch the rest is shuffled and given out, so every row is yielded exactly
    once per epoch (the last batch is smaller unless drop_last). The order depends only
    on (seed, epoch): iterating again gives the next epoch; `epoch(e)` gives epoch e.
    """

    def __init__(self, store: ActivationStore, *, batch_size: int, buffer_rows: int = 65536, chunk_rows: int = 4096,
                 seed: int = 0, drop_last: bool = False):
        for name, value in (("batch_size", batch_size), ("buffer_rows", buffer_rows), ("chunk_rows", chunk_rows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        if buffer_rows < chunk_rows or buffer_rows < batch_size:
            raise ConfigError(f"buffer_rows ({buffer_rows}) must be at least chunk_rows ({chunk_rows}) and batch_size ({batch_size}).")
        check_budget(buffer_rows * store.d * 4 * 2 + batch_size * store.d * 4,
                     what=f"a shuffling buffer of {buffer_rows} rows of {store.d} values", hint="lower buffer_rows",
                     error=ConfigError)
        self.store, self.batch_size, self.buffer_rows, self.chunk_rows = store, batch_size, buffer_rows, chunk_rows
        self.seed, self.drop_last, self._next_epoch = int(seed), bool(drop_last), 0

    @property
    def rows(self) -> int:
        """Rows per epoch (the trainer reads a ShufflingBuffer as a batch source: epoch(e), len, rows, batch_size)."""
        return len(self.store) // self.batch_size * self.batch_size if self.drop_last else len(self.store)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.store)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        return self.epoch(epoch)

    def epoch(self, epoch: int) -> Iterator[torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        n, d = len(self.store), self.store.d
        starts = list(rng.permutation(np.arange(0, n, self.chunk_rows)))
        buffer = np.empty((self.buffer_rows, d), dtype=np.float32)  # rows [0, held) are held
        held = 0
        carry = np.empty((0, d), dtype=np.float32)  # rows short of a whole batch, given out next round
        while starts or held:
            while starts and held + min(self.chunk_rows, n - starts[-1]) <= self.buffer_rows:
                start = int(starts.pop())
                stop = min(start + self.chunk_rows, n)
                buffer[held:held + stop - start] = self.store.rows[start:stop]  # straight from the memmap
                held += stop - start
            order = rng.permutation(held)
            give = held if not starts else max(held // 2, 1)
            out = np.concatenate([carry, buffer[order[:give]]])  # a random half goes out ...
            buffer[:held - give] = buffer[order[give:]]  # ... the rest stays, to mix with the next chunks
            held -= give
            whole = out.shape[0] // self.batch_size * self.batch_size
            for i in range(0, whole, self.batch_size):
                yield torch.from_numpy(out[i:i + self.batch_size])  # (batch_size, d), a view of this round's rows
            carry = out[whole:]
        if carry.shape[0] and not self.drop_last:
            yield torch.from_numpy(carry)  # (< batch_size, d): the end of the epoch


__all__ = ["ActivationStore", "ShufflingBuffer", "header_sha256"]
