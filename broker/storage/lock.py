"""The data directory's lock: one broker per data directory.

Two brokers on one data directory would each empty the other's page files
and append to the same journal. The first to start holds an exclusive
`flock` on `DATA_DIR/.lock` (with its pid written in it) for its whole life;
a second one fails at once, before it touches anything in the directory.

The lock belongs to the open file, so the kernel releases it when the
process dies, however it dies (SIGKILL included): a stale `.lock` file left
by a crashed broker never blocks the next start. The file itself is never
removed (removing it would let a third broker lock a new file while the
second still holds the old one).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_NAME", "DataDirInUse", "DataDirLock"]

LOCK_NAME = ".lock"


class DataDirInUse(Exception):
    """Another broker (or another `DataDirLock` of this process) holds the lock."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        super().__init__(directory, pid)


class DataDirLock:
    """An exclusive, non-blocking lock on `directory/.lock`.

    `acquire()` raises `DataDirInUse` (with the holder's pid when it could be
    read) or `OSError` (the file cannot be opened); `release()` gives it back.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # close-on-exec (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUse(self.directory, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # releases the lock
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
