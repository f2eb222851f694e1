"""A data directory as a stream of file operations, to copy it to followers (docs/cluster.md).

Warren replicates its data directory, not its queues: every byte the storage
layer writes (journal segments, stream segments, `definitions.bin`) is also
described by a `FileOp`, and a follower that applies the same operations in the
same order holds the same files. When it takes over, it starts from those files
as any broker starts after a crash: recovery replays the journal
(docs/durability.md). This is how LavinMQ 2.x replicates, and it needs no
second format: the journal already is an append-only log.

Three parts, all plain file I/O (no network, no trio):

- `ReplicationTap`: the writers outside the journal's group commit (the
  definitions store, a new stream's directory) report what they wrote; the
  journal takes those operations with each batch (`take`), in order, before
  the batch's own.
- `Manifest` and `SnapshotSource`: catching up. A follower describes what it has
  (each file's size and the CRC-32 of its contents); the leader, at a moment
  when its disk holds every batch up to some point, opens every file, and sends
  only what differs: the rest of a file the follower has a prefix of, the whole
  file otherwise, and a deletion for whatever the follower has that the leader
  does not.
- `Applier`: the follower's side. Applies operations, and `sync()` makes
  everything applied so far durable (fsync of each written file, of each
  directory whose entries changed) before the follower acknowledges.

Not replicated (`is_local`): the data directory's lock, the paging directory
(transient messages, RabbitMQ also loses them), the journal's clean-shutdown
marker (a follower that takes over recovers as after a crash, so every message
it had is marked redelivered: the only honest answer to "was it delivered
before?"), temporary files and the node's own cluster state.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from broker.storage.fsync import fsync_directory, write_atomically

__all__ = [
    "Applier", "FileOp", "Manifest", "ReplicationTap", "SnapshotSource", "decode_ops",
    "encode_ops", "is_local", "CHUNK", "CLUSTER_STATE",
    "WRITE", "RESET", "REPLACE", "DELETE", "RENAME", "RMTREE", "MKDIR",
]

#: pwrite `data` at `offset`; skipped when the file's directory does not exist
#: (the leader skips it too: a stream deleted while its batch was in flight).
WRITE = 1
#: truncate to `offset` (creating the file and its directories), then write
#: `data` there: catching up a file.
RESET = 2
#: replace the whole file atomically (`definitions.bin`).
REPLACE = 3
#: unlink a file, if present.
DELETE = 4
#: rename `path` to `data` (UTF-8), if `path` is present (a deleted stream's directory).
RENAME = 5
#: remove a directory tree, if present.
RMTREE = 6
#: make a directory and its parents.
MKDIR = 7
_KINDS = frozenset((WRITE, RESET, REPLACE, DELETE, RENAME, RMTREE, MKDIR))

#: Catch-up sends files in pieces of at most this many bytes.
CHUNK = 1 << 20
#: The node's own cluster state in its data directory (never replicated).
CLUSTER_STATE = "cluster-state.json"
_LOCAL_NAMES = frozenset((".lock", CLUSTER_STATE))
_LOCAL_DIRS = frozenset(("paging",))
_CLEAN_MARKER = "journal/clean-shutdown"

_OP = struct.Struct(">BHQI")  # kind, path length, offset, data length


@dataclass(frozen=True, slots=True)
class FileOp:
    """One operation on a file of the data directory, `path` relative to it (POSIX)."""

    kind: int
    path: str
    offset: int = 0
    data: bytes = b""


def is_local(relative: str) -> bool:
    """True for what stays on its node (see the module's docstring)."""
    if relative == _CLEAN_MARKER or relative.endswith(".tmp"):
        return True
    head, _sep, _rest = relative.partition("/")
    return relative in _LOCAL_NAMES or head in _LOCAL_DIRS


def encode_ops(ops: list[FileOp]) -> bytes:
    """Operations as bytes: for each, kind, path length, offset, data length, path, data."""
    parts: list[bytes] = []
    for op in ops:
        path = op.path.encode()
        parts.append(_OP.pack(op.kind, len(path), op.offset, len(op.data)))
        parts.append(path)
        parts.append(op.data)
    return b"".join(parts)


def decode_ops(data: bytes | memoryview) -> list[FileOp]:
    """The inverse of `encode_ops`; ValueError on anything malformed (a path
    that leaves the data directory included)."""
    view = memoryview(data)
    ops: list[FileOp] = []
    at = 0
    end = len(view)
    while at < end:
        if at + _OP.size > end:
            raise ValueError("truncated file operation")
        kind, path_len, offset, data_len = _OP.unpack_from(view, at)
        at += _OP.size
        if kind not in _KINDS or at + path_len + data_len > end:
            raise ValueError(f"malformed file operation (kind {kind})")
        path = bytes(view[at : at + path_len]).decode()
        at += path_len
        data = bytes(view[at : at + data_len])
        at += data_len
        if kind == RENAME:
            _checked(data.decode())  # the target too
        ops.append(FileOp(kind, _checked(path), offset, data))
    return ops


def _checked(path: str) -> str:
    """`path` if it names something inside the data directory, else ValueError."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"file operation outside the data directory: {path!r}")
    return path


class ReplicationTap:
    """Where writers outside the journal's batches report their writes.

    Inactive (the default, and on a single node) it records nothing: each
    writer pays one attribute test. The leader activates it; the journal
    takes the recorded operations with its next batch.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.active = False
        self._pending: list[FileOp] = []

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def replaced(self, path: Path, data: bytes) -> None:
        """`path` was replaced atomically by `data`."""
        if self.active:
            self._pending.append(FileOp(REPLACE, self.relative(path), 0, data))

    def wrote(self, path: Path, offset: int, data: bytes) -> None:
        if self.active:
            self._pending.append(FileOp(WRITE, self.relative(path), offset, data))

    def made_directory(self, path: Path) -> None:
        if self.active:
            self._pending.append(FileOp(MKDIR, self.relative(path)))

    def renamed(self, source: Path, target: Path) -> None:
        if self.active:
            self._pending.append(
                FileOp(RENAME, self.relative(source), 0, self.relative(target).encode())
            )

    def take(self) -> list[FileOp]:
        """The operations recorded since the last call, oldest first."""
        taken, self._pending = self._pending, []
        return taken


# -- catching up -------------------------------------------------------------------------


@dataclass
class Manifest:
    """What a data directory holds: files (size, CRC-32 of the contents) and directories."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    directories: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, root: Path) -> Manifest:
        """Read `root` (a worker thread's job: it reads every replicated file)."""
        manifest = cls()
        for relative, path, is_dir in _walk(root):
            if is_dir:
                manifest.directories.append(relative)
                continue
            try:
                with path.open("rb") as file:
                    crc = 0
                    size = 0
                    while chunk := file.read(CHUNK):
                        crc = zlib.crc32(chunk, crc)
                        size += len(chunk)
            except FileNotFoundError:
                continue
            manifest.files[relative] = (size, crc)
        return manifest

    def to_json(self) -> dict[str, object]:
        return {"files": [[p, s, c] for p, (s, c) in self.files.items()], "dirs": self.directories}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Manifest:
        files = data.get("files", [])
        dirs = data.get("dirs", [])
        if not isinstance(files, list) or not isinstance(dirs, list):
            raise ValueError("malformed manifest")
        manifest = cls()
        for entry in files:
            path, size, crc = entry
            manifest.files[_checked(str(path))] = (int(size), int(crc))
        manifest.directories = [_checked(str(d)) for d in dirs]
        return manifest


def _walk(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """(relative path, path, is a directory) for everything replicated under `root`,
    parents before their contents."""
    if not root.exists():
        return
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(directory.iterdir())
        except FileNotFoundError:
            continue
        for path in entries:
            relative = path.relative_to(root).as_posix()
            if is_local(relative):
                continue
            if path.is_dir():
                yield relative, path, True
                stack.append(path)
            elif path.is_file():
                yield relative, path, False


class SnapshotSource:
    """The leader's files at one moment, held open so that what a follower is sent
    is exactly that moment even while later batches append, replace or delete
    (an open descriptor keeps a replaced or deleted file's contents on POSIX).

    Made on the event loop between two batches (`open`), read in a worker thread
    (`ops_for`), closed when sent.
    """

    def __init__(self, files: dict[str, tuple[int, int]], directories: list[str]) -> None:
        self._files = files  # relative path -> (fd, size)
        self.directories = directories

    @classmethod
    def open(cls, root: Path) -> SnapshotSource:
        files: dict[str, tuple[int, int]] = {}
        directories: list[str] = []
        for relative, path, is_dir in _walk(root):
            if is_dir:
                directories.append(relative)
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            files[relative] = (fd, os.fstat(fd).st_size)
        return cls(files, directories)

    def close(self) -> None:
        for fd, _size in self._files.values():
            os.close(fd)
        self._files = {}

    def _read(self, fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        at = start
        while at < end:
            data = os.pread(fd, min(CHUNK, end - at), at)
            if not data:
                raise OSError(f"file shrank while being sent (at {at} of {end})")
            yield at, data
            at += len(data)

    def _crc(self, fd: int, size: int) -> int:
        crc = 0
        for _at, data in self._read(fd, 0, size):
            crc = zlib.crc32(data, crc)
        return crc

    def ops_for(self, follower: Manifest) -> Iterator[FileOp]:
        """What turns the follower's directory into this snapshot, in pieces:
        deletions first, then directories, then each file (only its missing
        tail when the follower's copy is a prefix of ours, by CRC-32)."""
        ours = set(self._files) | set(self.directories)
        for relative in sorted(follower.files):
            if relative not in self._files:
                yield FileOp(DELETE, relative)
        for relative in sorted(follower.directories, reverse=True):
            if relative not in ours:
                yield FileOp(RMTREE, relative)
        for relative in self.directories:
            yield FileOp(MKDIR, relative)
        for relative, (fd, size) in self._files.items():
            theirs = follower.files.get(relative)
            keep = 0
            if theirs is not None:
                their_size, their_crc = theirs
                if their_size <= size and self._crc(fd, their_size) == their_crc:
                    keep = their_size
            if keep == size and theirs is not None and theirs[0] == size:
                continue  # identical
            first = True
            for at, data in self._read(fd, keep, size):
                yield FileOp(RESET if first else WRITE, relative, at, data)
                first = False
            if first:  # nothing to send but the follower's copy is longer or differs
                yield FileOp(RESET, relative, keep, b"")


# -- the follower's side -----------------------------------------------------------------


class Applier:
    """Applies operations to a data directory; `sync()` makes them durable.

    Used from one worker thread at a time. Every operation is idempotent, so a
    catch-up that repeats what a batch also carries is harmless.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._fds: dict[str, int] = {}
        self._dirs: set[Path] = set()

    def _fd(self, relative: str, create_parents: bool) -> int | None:
        fd = self._fds.get(relative)
        if fd is not None:
            return fd
        path = self.root / relative
        if not path.parent.exists():
            if not create_parents:
                return None
            self._mkdirs(path.parent)
        if not path.exists():
            self._dirs.add(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self._fds[relative] = fd
        return fd

    def _mkdirs(self, path: Path) -> None:
        missing = []
        at = path
        while not at.exists():
            missing.append(at)
            at = at.parent
        path.mkdir(parents=True, exist_ok=True)
        for made in missing:
            self._dirs.add(made.parent)

    def _drop_fd(self, relative: str) -> None:
        fd = self._fds.pop(relative, None)
        if fd is not None:
            os.close(fd)

    def apply(self, ops: list[FileOp]) -> None:
        for op in ops:
            kind = op.kind
            if kind == WRITE or kind == RESET:
                fd = self._fd(op.path, create_parents=kind == RESET)
                if fd is None:
                    continue
                if kind == RESET:
                    os.ftruncate(fd, op.offset)
                view = memoryview(op.data)
                at = op.offset
                while view:
                    written = os.pwrite(fd, view, at)
                    view = view[written:]
                    at += written
            elif kind == REPLACE:
                self._drop_fd(op.path)
                path = self.root / op.path
                self._mkdirs(path.parent)
                write_atomically(path, op.data)
            elif kind == DELETE:
                self._drop_fd(op.path)
                path = self.root / op.path
                try:
                    path.unlink()
                    self._dirs.add(path.parent)
                except FileNotFoundError:
                    pass
            elif kind == RENAME:
                source = self.root / op.path
                target = self.root / _checked(op.data.decode())
                self._drop_under(op.path)
                if source.exists():
                    os.replace(source, target)
                    self._dirs.add(source.parent)
                    self._dirs.add(target.parent)
            elif kind == RMTREE:
                self._drop_under(op.path)
                path = self.root / op.path
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                    self._dirs.discard(path)
                    self._dirs.add(path.parent)
            elif kind == MKDIR:
                self._mkdirs(self.root / op.path)

    def _drop_under(self, relative: str) -> None:
        prefix = relative + "/"
        for name in [n for n in self._fds if n.startswith(prefix)]:
            self._drop_fd(name)
        self._dirs = {d for d in self._dirs if d.exists()}

    def sync(self) -> None:
        """Everything applied so far on disk: fsync each written file (and close
        it), then each directory whose entries changed."""
        fds, self._fds = self._fds, {}
        try:
            for fd in fds.values():
                (getattr(os, "fdatasync", None) or os.fsync)(fd)
        finally:
            for fd in fds.values():
                os.close(fd)
        dirs, self._dirs = self._dirs, set()
        for directory in dirs:
            if directory.exists():
                fsync_directory(directory)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def forget_clean_marker(self) -> None:
        """A follower's data is never a clean shutdown (module docstring)."""
        marker = self.root / _CLEAN_MARKER
        if marker.exists():
            marker.unlink()
            fsync_directory(marker.parent)
