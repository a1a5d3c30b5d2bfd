"""Downloading a file with a checksum, a timeout, a size bound and an atomic write.

The network is reached only through the module-level `_urlopen`, so tests replace it
(monkeypatch `aekit.data.download._urlopen`) and never touch the network.

A file is streamed into a hidden temporary file in the destination folder, hashed on the way,
and moved into place with os.replace only when the checksum matches; on any failure the
temporary file is removed, so a half-written or corrupt file is never left behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from aekit.errors import DataError

_urlopen = urllib.request.urlopen        # replaced in tests
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
MAX_DOWNLOAD_BYTES = 512 * 1024**2       # no dataset file we fetch is anywhere near this


def cache_root() -> Path:
    """$XDG_CACHE_HOME/aekit if set, else ~/.cache/aekit."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aekit"


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file (algorithm 'sha256' or 'md5')."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str, dest: str | Path, *, checksum: str, algorithm: str = "sha256",
    timeout: float = TIMEOUT_S,
) -> Path:
    """Fetch url into dest atomically, verifying `checksum` (hex, of `algorithm`).

    Raises DataError naming the url and the problem (network error, size, checksum mismatch).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        from aekit.checkpoint import file_mode

        os.fchmod(fd, file_mode())  # a downloaded file is as readable as any other, not mkstemp's 0o600
        h = hashlib.new(algorithm)
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with _urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                        size += len(chunk)
                        if size > MAX_DOWNLOAD_BYTES:
                            raise DataError(
                                f"{url}: download is larger than {MAX_DOWNLOAD_BYTES} bytes; "
                                "refusing it."
                            )
                        h.update(chunk)
                        out.write(chunk)
            except DataError:
                raise
            except Exception as exc:          # URLError, HTTPError, timeout, reset, ...
                raise DataError(f"{url}: download failed: {exc}.") from exc
        if h.hexdigest() != checksum.lower():
            raise DataError(
                f"{url}: checksum mismatch: expected {algorithm} {checksum}; got "
                f"{h.hexdigest()} ({size} bytes). The file was not kept."
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
