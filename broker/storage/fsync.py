"""Making writes durable: the fsync helpers the journal and the definitions store share.

POSIX makes a file's data durable with fsync, and a file's creation, rename
or deletion durable only with an fsync of its directory; an atomic replace
is write-to-temporary, fsync, rename, fsync the directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory", "write_atomically"]


def fsync_directory(path: Path) -> None:
    """Make a rename/creation/unlink in `path` durable (POSIX needs this)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data`: temp file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)
