"""Structural check of a MATLAB v5 (.mat) file before SciPy parses it.

SciPy's compiled .mat reader trusts the element tags: a damaged file (one flipped byte in an
element's type, size or array flags) can make it read past its buffer and crash the whole
process with a segmentation fault, or reserve the size a tag declares. `check_mat5` walks the
element tree first (the layout of MATLAB's "MAT-File Format", level 5) and raises a DataError
when a tag is unknown, a size runs past its parent, an array's dimensions are negative or
absurd, or a numeric / char array's data do not hold exactly prod(dims) values. Compressed
elements are inflated with a bound. Files that are not level 5 (v4, v7.3 / HDF5) are left to
SciPy, which refuses or reads them without these crashes.
"""

from __future__ import annotations

import math
import struct
import zlib

from aekit.errors import DataError
from aekit.memory_budget import array_cost, check_budget

MAX_ARRAY_BYTES = 4 * 1024**3  # as for .npy / IDX
# miType -> item size (bytes); 14 miMATRIX and 15 miCOMPRESSED are containers
MI_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}
MI_MATRIX, MI_COMPRESSED, MI_INT32, MI_UINT32 = 14, 15, 5, 6
NUMERIC_CLASSES = set(range(6, 16))  # double, single, int8 ... uint64
CHAR_CLASS = 4
CLASS_ITEMSIZE = {6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4, 14: 8, 15: 8, 4: 2}
MAX_DEPTH = 32


def check_mat5(data: bytes, *, source: str) -> None:
    """Raise DataError if `data` (a whole .mat file) is a level-5 file with a damaged element tree."""
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        return  # not level 5 (v4 has no 128-byte header; v7.3 is HDF5): SciPy decides
    if data[124:126] not in (b"\x00\x01", b"\x01\x00"):
        raise DataError(f"{source}: damaged .mat header: unknown version bytes {data[124:126]!r}.")
    endian = "<" if data[126:128] == b"IM" else ">"
    _Walker(endian, source).elements(data, 128, len(data), depth=0, top=True)


class _Walker:
    def __init__(self, endian: str, source: str):
        self.e, self.source = endian, source

    def fail(self, what: str) -> None:
        raise DataError(f"{self.source}: damaged .mat file: {what}.")

    def tag(self, buf: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
        """(type, nbytes, data start, next element) of the element at pos."""
        if pos + 8 > end:
            self.fail(f"an element tag at byte {pos} runs past the end of its parent")
        first, second = struct.unpack_from(self.e + "II", buf, pos)
        if first >> 16:  # small data element: type and size share 4 bytes, data in the next 4
            mtype, nbytes = first & 0xFFFF, first >> 16
            if nbytes > 4:
                self.fail(f"a small element at byte {pos} declares {nbytes} bytes (at most 4)")
            return mtype, nbytes, pos + 4, pos + 8
        mtype, nbytes = first, second
        start = pos + 8
        padded = nbytes if mtype == MI_COMPRESSED else nbytes + (-nbytes % 8)
        if start + nbytes > end:
            self.fail(f"the element at byte {pos} declares {nbytes} bytes; its parent holds {end - start}")
        return mtype, nbytes, start, min(start + padded, end)

    def elements(self, buf: bytes, pos: int, end: int, *, depth: int, top: bool = False) -> list:
        out = []
        while pos < end:
            if top and end - pos < 8 and not any(buf[pos:end]):
                break  # trailing padding
            mtype, nbytes, start, nxt = self.tag(buf, pos, end)
            if mtype == MI_COMPRESSED:
                self.compressed(buf[start:start + nbytes], depth=depth)
            elif mtype == MI_MATRIX:
                self.matrix(buf, start, start + nbytes, depth=depth + 1)
            elif mtype in MI_ITEMSIZE:
                if nbytes % MI_ITEMSIZE[mtype]:
                    self.fail(f"the element at byte {pos} holds {nbytes} bytes, not a whole number of "
                              f"{MI_ITEMSIZE[mtype]}-byte values")
            else:
                self.fail(f"unknown element type {mtype} at byte {pos}")
            out.append((mtype, nbytes, start))
            pos = nxt
        return out

    def compressed(self, payload: bytes, *, depth: int) -> None:
        """Inflate a compressed element no further than the size its own first tag declares (and the budget)."""
        dec = zlib.decompressobj()
        try:
            head = dec.decompress(payload, 8)  # the inner element's tag: its type and size
            if len(head) < 8:
                self.fail("a compressed element holds less than one element tag")
            first, second = struct.unpack_from(self.e + "II", head, 0)
            declared = 8 if first >> 16 else 8 + second + (-second % 8)
            if declared > MAX_ARRAY_BYTES:
                self.fail(f"a compressed element declares {declared} bytes, more than {MAX_ARRAY_BYTES}")
            # inflated here once, and once more by SciPy
            check_budget(2 * declared, what=f"{self.source}: a compressed .mat element of {declared} bytes")
            raw = head + dec.decompress(dec.unconsumed_tail, declared - 8 + 1)
        except zlib.error as exc:
            self.fail(f"a compressed element is corrupted ({exc})")
        if len(raw) > declared:
            self.fail(f"a compressed element inflates to more than the {declared} bytes its tag declares")
        self.elements(raw, 0, len(raw), depth=depth)

    def matrix(self, buf: bytes, start: int, end: int, *, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.fail(f"arrays nested more than {MAX_DEPTH} deep")
        if start == end:
            return  # an empty array (e.g. an empty cell)
        subs = self.elements(buf, start, end, depth=depth)
        if len(subs) < 3 or subs[0][0] != MI_UINT32 or subs[0][1] != 8 or subs[1][0] != MI_INT32:
            self.fail("an array does not start with its flags, dimensions and name")
        flags = struct.unpack_from(self.e + "I", buf, subs[0][2])[0]
        cls, is_complex = flags & 0xFF, bool(flags & 0x800)
        n_dims = subs[1][1] // 4
        if n_dims < 2:
            self.fail(f"an array declares {n_dims} dimensions (at least 2)")
        dims = struct.unpack_from(self.e + f"{n_dims}i", buf, subs[1][2])
        if min(dims) < 0:
            self.fail(f"an array declares negative dimensions {dims}")
        count = math.prod(dims)
        if count * CLASS_ITEMSIZE.get(cls, 1) > MAX_ARRAY_BYTES:
            self.fail(f"an array declares dimensions {dims}, more than {MAX_ARRAY_BYTES} bytes")
        check_budget(array_cost(count, CLASS_ITEMSIZE.get(cls, 1)), what=f"{self.source}: an array of dimensions {dims}")
        if cls in NUMERIC_CLASSES or cls == CHAR_CLASS:
            parts = subs[3:]
            if len(parts) != 1 + is_complex:
                self.fail(f"a numeric array holds {len(parts)} data elements; expected {1 + is_complex}")
            for mtype, nbytes, _ in parts:
                if mtype not in MI_ITEMSIZE or nbytes // MI_ITEMSIZE[mtype] != count:
                    self.fail(f"an array of dimensions {dims} holds {nbytes} bytes of type {mtype}, "
                              f"not {count} values")
