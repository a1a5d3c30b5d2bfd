"""Check a .npy header before numpy allocates anything: declared size, dtype, room in the file.

numpy's reader allocates the array the header declares before reading a byte of data, so a
20-byte file claiming shape (2**40, 4) asks for 16 TiB. `check_npy_stream` reads only the
header (numpy's own parser: `ast.literal_eval`, no code runs) and refuses, with a DataError:
object dtypes (their payload is a pickle), negative or non-integer dimensions, a payload larger
than what the file (or the .npz member) holds, and anything above `MAX_ARRAY_BYTES`.
"""

from __future__ import annotations

import math

import numpy as np

from aekit.errors import DataError
from aekit.memory_budget import array_cost, check_budget

MAX_ARRAY_BYTES = 4 * 1024**3  # 4 GiB: the same bound as IDX files (idx.MAX_IDX_BYTES)


def check_npy_stream(f, *, total_bytes: int, source: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read the header of the .npy stream f (positioned at its start) holding total_bytes bytes.

    Returns (shape, dtype); raises DataError when loading it would be unsafe or impossible.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # numpy's parser: ValueError, SyntaxError, tokenize.TokenError, EOFError, ...
        raise DataError(f"{source}: not a valid .npy array header ({type(exc).__name__}: {str(exc)[:200]}).") from None
    if dtype.hasobject:
        raise DataError(f"{source}: holds a pickled (object) array; expected a plain numeric array. "
                        "aekit never unpickles data files (allow_pickle=False).")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise DataError(f"{source}: .npy header declares an invalid shape {shape!r}.")
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > MAX_ARRAY_BYTES:
        raise DataError(f"{source}: .npy header declares shape {shape} ({n_bytes} bytes); refusing more than "
                        f"{MAX_ARRAY_BYTES} bytes (corrupt header?).")
    n_values = math.prod(shape)
    check_budget(array_cost(n_values, dtype.itemsize), what=f"{source}: the array of shape {tuple(shape)}")
    available = total_bytes - f.tell()
    if n_bytes > available:
        raise DataError(f"{source}: truncated .npy file: the header declares shape {shape} = {n_bytes} bytes of "
                        f"data; the file holds {max(available, 0)}.")
    return tuple(shape), dtype
