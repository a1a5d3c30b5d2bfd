"""Reader for IDX files (the MNIST format), plain or gzip-compressed.

Layout: 2 zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values (big-endian) in C order. The declared size is checked against the
file length (plain files) or the decompressed length (gzip, read with a bound) and against
`MAX_IDX_BYTES` before any array is allocated, so a corrupt or hostile header cannot make us
allocate gigabytes.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from aekit.errors import DataError
from aekit.memory_budget import array_cost, check_budget

MAX_IDX_BYTES = 4 * 1024**3          # refuse declared payloads above 4 GiB
MAX_IDX_DIMS = 4
_CHUNK = 16 * 1024 * 1024

# type code -> big-endian numpy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def is_idx_name(path: str | Path) -> bool:
    """True for *.idx, *.idx.gz, *-ubyte, *-ubyte.gz, *.idxN-ubyte (the usual IDX names)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(".idx") or name.endswith("-ubyte") or name.endswith(".ubyte")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _parse_header(head: bytes, *, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (dtype, dims, header length) from the first bytes of an IDX stream."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(
            f"{source}: not an IDX file: expected the magic number 0x0000TTNN (2 zero bytes, "
            f"type, number of dims); got {head[:4].hex() or 'an empty file'}."
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise DataError(
            f"{source}: unknown IDX type code 0x{code:02X}; expected one of "
            f"{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}."
        )
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise DataError(
            f"{source}: IDX header declares {ndim} dimensions; expected 1 to {MAX_IDX_DIMS}."
        )
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DataError(
            f"{source}: truncated IDX header: expected {header_len} bytes; got {len(head)}."
        )
    dims = struct.unpack(f">{ndim}I", head[4:header_len])
    return IDX_DTYPES[code], tuple(int(d) for d in dims), header_len


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or .gz) into a native-endian array of the declared shape."""
    path = Path(path)
    source = str(path)
    gz = _is_gzip(path)
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4 + 4 * MAX_IDX_DIMS)
            dtype, dims, header_len = _parse_header(head, source=source)
            n_bytes = math.prod(dims) * dtype.itemsize  # Python ints: no int64 wrap-around to a small size
            if n_bytes > MAX_IDX_BYTES:
                raise DataError(
                    f"{source}: IDX header declares shape {dims} ({n_bytes} bytes); refusing "
                    f"more than {MAX_IDX_BYTES} bytes (corrupt header?)."
                )
            check_budget(array_cost(math.prod(dims), dtype.itemsize), what=f"{source}: the IDX array of shape {dims}")
            if not gz:
                actual = os.path.getsize(path) - header_len
                if actual != n_bytes:
                    raise DataError(
                        f"{source}: IDX size mismatch: header declares shape {dims} = {n_bytes} "
                        f"bytes of data; the file holds {actual}."
                    )
            # read at most one byte more than declared (an extra byte reveals trailing data), in
            # chunks: one read(n) would allocate n bytes up front, whatever the stream holds
            payload = bytearray(head[header_len:])
            while len(payload) <= n_bytes:
                chunk = f.read(min(_CHUNK, n_bytes + 1 - len(payload)))
                if not chunk:
                    break
                payload += chunk
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{source}: could not read IDX file: {exc}.") from exc
    if len(payload) != n_bytes:
        held = len(payload) if len(payload) <= n_bytes else "more"
        raise DataError(
            f"{source}: IDX size mismatch: header declares shape {dims} = {n_bytes} bytes of "
            f"data; the decompressed file holds {held}."
        )
    arr = np.frombuffer(payload, dtype=dtype).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def sibling_labels(path: str | Path) -> Path | None:
    """For '...-images-idx3-ubyte[.gz]' return the matching '...-labels-idx1-ubyte[.gz]' file
    next to it, if it exists."""
    path = Path(path)
    name = path.name
    for old, new in (("-images-idx3", "-labels-idx1"), ("-images.idx3", "-labels.idx1")):
        if old in name:
            stem = name.replace(old, new)
            for candidate in (stem, stem + ".gz", stem.removesuffix(".gz")):
                if (path.parent / candidate).is_file():
                    return path.parent / candidate
    return None
