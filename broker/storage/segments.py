"""Segment files: naming, listing, and the writer that runs in a worker thread.

The journal is a directory of segment files named by a 16-digit number,
`0000000000000001.wj`, `0000000000000002.wj`, ... Records are only ever
appended, to the newest segment; a segment is closed once it passes the
segment size and never written again. Deleting whole segments is how space
comes back (see `broker.storage.journal`).

`SegmentWriter` is the only code that touches the files while the broker
runs, and it runs in a worker thread (`trio.to_thread.run_sync`) so that
neither write() nor fsync ever blocks the event loop. It is given a batch of
(segment number, bytes) chunks, writes them in order, and fsyncs every file it
wrote (and the directory when it created or deleted a file) before returning:
when `write_batch` returns, the batch is on disk.

If a write fails (ENOSPC on a full disk, EIO), every file touched by the
batch is truncated back to its size before the batch, so the journal never
holds half a batch, and the error is raised; the caller keeps the batch and
tries again later.
"""

from __future__ import annotations

import os
from pathlib import Path

from broker.storage.fsync import fsync_directory

__all__ = ["SEGMENT_SUFFIX", "SegmentWriter", "list_segments", "segment_path"]

SEGMENT_SUFFIX = ".wj"


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:016d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[int]:
    """The segment numbers present in `directory`, oldest first."""
    numbers = []
    for path in directory.iterdir():
        if path.suffix == SEGMENT_SUFFIX and path.stem.isdigit():
            numbers.append(int(path.stem))
    return sorted(numbers)


def _fsync(fd: int) -> None:
    # fdatasync flushes the data and the size (what recovery needs) without
    # the inode's timestamps.
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


class SegmentWriter:
    """Appends batches to segment files; used from one worker thread at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._number: int | None = None
        self._fd: int | None = None
        self.fsyncs = 0

    def _open(self, number: int) -> tuple[bool, int]:
        """Make `number` the open segment; (created, size before writing)."""
        if self._number == number and self._fd is not None:
            return False, os.fstat(self._fd).st_size
        self._close_current()
        path = segment_path(self.directory, number)
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._number = number
        return created, os.fstat(self._fd).st_size

    def _close_current(self) -> None:
        if self._fd is not None:
            _fsync(self._fd)
            self.fsyncs += 1
            os.close(self._fd)
            self._fd = None
            self._number = None

    def write_batch(self, chunks: list[tuple[int, bytes]], delete: list[int]) -> None:
        """Write `chunks` in order, fsync, then delete the segments in `delete`."""
        sizes: dict[int, int] = {}
        new_file = False
        try:
            for number, data in chunks:
                created, size = self._open(number)
                sizes.setdefault(number, size)
                new_file = new_file or created
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]  # type: ignore[arg-type]
            if self._fd is not None and chunks:
                _fsync(self._fd)
                self.fsyncs += 1
            if new_file:
                fsync_directory(self.directory)
        except OSError:
            self._undo(sizes)
            raise
        if delete:
            for number in delete:
                try:
                    os.unlink(segment_path(self.directory, number))
                except FileNotFoundError:
                    pass
            fsync_directory(self.directory)

    def _undo(self, sizes: dict[int, int]) -> None:
        """Cut every file of a failed batch back to where the batch started."""
        self._close_quietly()
        for number, size in sizes.items():
            try:
                os.truncate(segment_path(self.directory, number), size)
            except OSError:
                pass

    def _close_quietly(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
            self._number = None

    def close(self) -> None:
        self._close_current()
