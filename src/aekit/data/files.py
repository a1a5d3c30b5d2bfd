"""Raw reading of array files: .npy, .npz, .csv/.tsv, .mat, IDX and image folders.

`load_array_file` returns the numbers as stored (any numeric dtype, any number of dims) plus the
labels, if the file has any; `arrays.py` checks and converts them, `load.py` splits them.

Safety: .npy/.npz are always read with allow_pickle=False, so a pickled object array is refused
with a DataError and never unpickled.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.data.csv_file import read_csv
from aekit.data.idx import is_idx_name, read_idx, sibling_labels
from aekit.data.image_folder import IMAGE_EXTENSIONS, read_image_folder
from aekit.data.mat_check import check_mat5
from aekit.data.npy_header import check_npy_stream
from aekit.errors import DataError

DATA_KEYS = ("x", "X", "data", "images")
LABEL_KEYS = ("y", "Y", "labels", "label", "targets", "target")
SUPPORTED = (
    ".npy", ".npz", ".csv", ".tsv", ".mat", ".idx / *-ubyte (optionally .gz)",
    "a folder of " + "/".join(IMAGE_EXTENSIONS) + " images",
)


@dataclass
class RawData:
    """What a file holds, before any checking or scaling."""

    x: np.ndarray                      # as stored, e.g. (N, D), (N, H, W), (N, C, H, W)
    y: np.ndarray | None = None        # (N,) labels as stored, or None
    classes: list[str] | None = None   # class names when labels came from text / folders


def check_regular_file(path: Path) -> None:
    """Refuse anything but a regular file (a device such as /dev/zero reads forever, a FIFO blocks)."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to /dev/zero is a device
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: not a regular file (a device, FIFO or socket); aekit reads data from regular "
                        "files only.")


def _check_magic(path: Path, magics: tuple[bytes, ...], what: str) -> None:
    """Refuse a file that does not start with one of `magics` (numpy would try to unpickle
    it)."""
    with open(path, "rb") as f:
        head = f.read(max(len(m) for m in magics))
    if not any(head.startswith(m) for m in magics):
        raise DataError(
            f"{path}: not a {what} file: expected it to start with {magics[0]!r}; got {head!r}. "
            "(Pickle files are refused: aekit never unpickles data files.)"
        )


def _load_npy(path: Path) -> np.ndarray:
    _check_magic(path, (b"\x93NUMPY",), ".npy")
    with open(path, "rb") as f:  # sizes and dtype first: numpy allocates what the header declares
        check_npy_stream(f, total_bytes=os.path.getsize(path), source=str(path))
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataError(
                f"{path}: holds a pickled (object) array; expected a plain numeric array. "
                "aekit never unpickles data files (allow_pickle=False)."
            ) from exc
        raise DataError(f"{path}: could not read .npy file: {exc}.") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: could not read .npy file: {exc}.") from exc


def _npz_get(npz, key: str, path: Path) -> np.ndarray:
    member = key if key in npz.zip.namelist() else key + ".npy"
    info = npz.zip.getinfo(member)
    with npz.zip.open(info) as f:  # the member's header against its declared (bounded) size
        check_npy_stream(f, total_bytes=info.file_size, source=f"{path} (array {key!r})")
    try:
        return npz[key]
    except ValueError as exc:  # object dtypes were refused from the header: the data ran short of what it declares
        raise DataError(
            f"{path}: array {key!r} is shorter than its header declares (the member is truncated or its "
            f"size field is damaged): {exc}."
        ) from exc


def _pick_keys(keys: list[str], *, path: Path, sizes: dict[str, int] | None = None
               ) -> tuple[str, str | None]:
    """Choose (data key, label key or None) among the arrays of an .npz / .mat file."""
    label_key = next((k for k in LABEL_KEYS if k in keys), None)
    data_key = next((k for k in DATA_KEYS if k in keys), None)
    if data_key is None:
        rest = [k for k in keys if k != label_key]
        if len(rest) == 1:
            data_key = rest[0]
        elif rest and sizes is not None:
            data_key = max(rest, key=lambda k: sizes[k])
        else:
            raise DataError(
                f"{path}: cannot tell which array holds the data; expected a key among "
                f"{', '.join(map(repr, DATA_KEYS))} or a single array; got "
                f"{', '.join(map(repr, keys)) or 'no arrays'}."
            )
    return data_key, label_key


def _load_npz(path: Path) -> RawData:
    _check_magic(path, (b"PK\x03\x04", b"PK\x05\x06"), ".npz (zip)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            data_key, label_key = _pick_keys(keys, path=path)
            x = _npz_get(npz, data_key, path)
            y = _npz_get(npz, label_key, path) if label_key else None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as exc:  # a damaged zip raises any of these
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: could not read .npz file ({type(exc).__name__}: {exc}).") from exc
    return RawData(x, y)


def _load_mat(path: Path) -> RawData:
    from scipy.io import loadmat

    data = path.read_bytes()
    check_mat5(data, source=str(path))  # SciPy's C reader can crash on a damaged element tree
    try:  # from memory: BytesIO.read(n) returns what exists, a file's read(n) first allocates n (huge sizes)
        mat = loadmat(io.BytesIO(data))
    except NotImplementedError as exc:     # MATLAB v7.3 files are HDF5
        raise DataError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported; expected a v4-v7.2 .mat "
            "file (re-save it with save(..., '-v7'))."
        ) from exc
    except Exception as exc:  # scipy's parser raises many types on damaged files (IndexError, KeyError, ...)
        raise DataError(f"{path}: could not read .mat file ({type(exc).__name__}: {exc}).") from exc
    arrays = {
        k: v for k, v in mat.items()
        if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "biuf"
    }
    data_key, label_key = _pick_keys(
        list(arrays), path=path, sizes={k: v.size for k, v in arrays.items()}
    )
    return RawData(arrays[data_key], arrays[label_key] if label_key else None)


def _label_column_from_array(raw: RawData, label_column: str | int, *, path: Path) -> RawData:
    """Take column `label_column` (an index) of a 2-D non-CSV array out as labels."""
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        raise DataError(
            f"{path}: label_column {label_column!r} is a name, but only CSV files have column "
            "names; pass a 0-based column index."
        )
    if raw.y is not None:
        raise DataError(f"{path}: the file already has labels; label_column must not be given.")
    if raw.x.ndim != 2:
        raise DataError(
            f"{path}: label_column needs a 2-D (N, D) table; got shape {raw.x.shape}."
        )
    n_cols = raw.x.shape[1]
    index = int(label_column)
    if not -n_cols <= index < n_cols:
        raise DataError(
            f"{path}: label_column index {index} is out of range; expected 0 to {n_cols - 1}."
        )
    index %= n_cols
    return RawData(np.delete(raw.x, index, axis=1), raw.x[:, index])


def read_file(
    path: str | Path, *, label_column: str | int | None = None,
    image_size: tuple[int, int] | None = None,
) -> RawData:
    """Read any supported file or image folder into RawData (see module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.")
    if path.is_dir():
        x, y, classes = read_image_folder(path, image_size=image_size)
        raw = RawData(x, y, classes)
    else:
        check_regular_file(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            raw = RawData(_load_npy(path))
        elif suffix == ".npz":
            raw = _load_npz(path)
        elif suffix in (".csv", ".tsv"):
            x, y, _ = read_csv(path, label_column=label_column)
            return RawData(x, y)
        elif suffix == ".mat":
            raw = _load_mat(path)
        elif is_idx_name(path):
            labels = sibling_labels(path)
            raw = RawData(read_idx(path), read_idx(labels) if labels else None)
        else:
            raise DataError(
                f"{path}: unknown file extension {path.suffix or '(none)'!r}; supported: "
                f"{', '.join(SUPPORTED)}."
            )
    if label_column is not None:
        raw = _label_column_from_array(raw, label_column, path=path)
    return raw


def load_array_file(
    path: str | Path, *, label_column: str | int | None = None,
    image_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a data file (or image folder) into (x as stored, labels or None)."""
    raw = read_file(path, label_column=label_column, image_size=image_size)
    return raw.x, raw.y
