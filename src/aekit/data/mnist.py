"""The named sources 'mnist' and 'fashion-mnist': finding, downloading and reading their files.

A folder qualifies when it holds the four standard IDX files, gzipped or not:
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
(the '.idx3-ubyte' spelling is accepted too).

Folder resolution, first match wins:
  1. data_dir (the argument / --data-dir), then data_dir/<name>; a data_dir given but missing,
     or without the four files, is an error (never skipped for a download)
  2. $AEKIT_DATA_DIR, then $AEKIT_DATA_DIR/<name>
  3. the cache, ~/.cache/aekit/<name> (or $XDG_CACHE_HOME/aekit/<name>)
  4. otherwise the missing .gz files are downloaded into the cache, checksum-verified.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aekit.data import download as _download
from aekit.data.idx import read_idx
from aekit.errors import DataError

ENV_DATA_DIR = "AEKIT_DATA_DIR"
FILES = {                                   # role -> file stem
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
SOURCES = {
    "mnist": {
        "mirrors": (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        "algorithm": "sha256",
        "checksums": {
            "train-images-idx3-ubyte.gz":
                "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
            "train-labels-idx1-ubyte.gz":
                "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
            "t10k-images-idx3-ubyte.gz":
                "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
            "t10k-labels-idx1-ubyte.gz":
                "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
        },
    },
    "fashion-mnist": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "algorithm": "md5",
        "checksums": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}


def find_file(folder: Path, stem: str) -> Path | None:
    """The file for `stem` in folder (.gz or plain, '-idx' or '.idx' spelling), or None."""
    for s in (stem, stem.replace("-idx", ".idx")):
        for name in (s + ".gz", s):
            if (folder / name).is_file():
                return folder / name
    return None


def _has_all(folder: Path) -> bool:
    return folder.is_dir() and all(find_file(folder, stem) for stem in FILES.values())


def candidate_folders(name: str, *, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched for the files of `name`, in order (see module docstring)."""
    folders = []
    for base in (data_dir, os.environ.get(ENV_DATA_DIR) or None):
        if base is not None:
            base = Path(base).expanduser()
            folders += [base, base / name]
    folders.append(_download.cache_root() / name)
    return folders


def _fetch(name: str, folder: Path, *, tried: list[Path]) -> None:
    """Download the missing files of `name` into folder, trying each mirror in turn."""
    spec = SOURCES[name]
    for filename, checksum in spec["checksums"].items():
        if find_file(folder, filename.removesuffix(".gz")):
            continue
        errors = []
        for mirror in spec["mirrors"]:
            try:
                _download.download(mirror + filename, folder / filename,
                                   checksum=checksum, algorithm=spec["algorithm"])
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            raise DataError(
                f"could not find or download the {name} file {filename}: searched "
                f"{', '.join(str(p) for p in tried)}; downloads failed: {' | '.join(errors)} "
                f"Put the four IDX files ({', '.join(s + '.gz' for s in FILES.values())}) in a "
                f"folder and pass it with --data-dir DIR (data_dir=) or set {ENV_DATA_DIR}=DIR."
            )


def resolve_folder(name: str, *, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the four files of `name`, downloading them into the cache if needed."""
    if name not in SOURCES:
        raise DataError(f"unknown IDX dataset {name!r}; expected one of {', '.join(SOURCES)}.")
    if data_dir is not None:  # an explicit folder is used or refused, never silently passed over
        base = Path(data_dir).expanduser()
        if not base.is_dir():
            raise DataError(f"data_dir {str(data_dir)!r} (--data-dir) does not exist; pass the folder that holds the "
                            f"{name} IDX files, or leave it out to use ${ENV_DATA_DIR} or the download cache.")
        for folder in (base, base / name):
            if _has_all(folder):
                return folder
        missing = [stem for stem in FILES.values() if not find_file(base, stem)]
        raise DataError(f"data_dir {str(data_dir)!r} (--data-dir) does not hold the {name} files: missing "
                        f"{', '.join(s + '.gz' for s in missing)} (also looked in {str(base / name)!r}).")
    folders = candidate_folders(name, data_dir=None)
    for folder in folders:
        if _has_all(folder):
            return folder
    cache = folders[-1]
    _fetch(name, cache, tried=folders)
    return cache


def read_idx_dataset(
    name: str, *, data_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Read the four arrays of `name`: train_x (60000, 28, 28) uint8, train_y (60000,),
    test_x (10000, 28, 28) uint8, test_y (10000,)."""
    folder = resolve_folder(name, data_dir=data_dir)
    return {role: read_idx(find_file(folder, stem)) for role, stem in FILES.items()}
