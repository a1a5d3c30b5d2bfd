"""One writer per run folder: an exclusive advisory lock held while a training writes into it.

`RunLock(folder)` takes `fcntl.flock(LOCK_EX | LOCK_NB)` on `folder/.aekit.lock` and writes its
pid into the file; a second training into the same folder (another `aekit train --out`, a
`--resume`, an `--overwrite`) fails at once with a CheckpointError naming the holder's pid. The
kernel drops the lock when the holder exits in any way (also SIGKILL), so a crash never leaves a
stale lock; the file itself stays (removing it would let two processes lock two different files).
The lock file is opened with O_NOFOLLOW: a link planted in its place is refused, never followed.
Where fcntl does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import CheckpointError

LOCK_NAME = ".aekit.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunLock:
    """Context manager: hold the run folder's lock (created if needed) for the duration of the block."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            with open(self.path, "rb") as f:
                text = f.read(32).decode("ascii", "replace").strip()
        except OSError:
            text = ""
        return f"pid {text}" if text.isdigit() else "pid unknown"

    def __enter__(self) -> "RunLock":
        if fcntl is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CheckpointError(f"{str(self.path)!r} is a symbolic link; aekit never follows links in a run "
                                      "folder. Remove it.") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointError(f"{str(self.folder)!r} is in use by another training ({self.holder()}); wait for it "
                                  "to finish or stop it, or choose another --out.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


__all__ = ["LOCK_NAME", "RunLock"]
