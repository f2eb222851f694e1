"""Stream logs on disk: one directory of segment files per stream (broker.core.stream).

Layout: `DATA_DIR/streams/<sha1 of vhost and name>-<ns>/`, with a `name` file
(the vhost and the queue, for people) and segment files named by the first
offset they hold (`00000000000000000000.seg`). A segment holds records:

    crc32 (u32) | payload length (u32) | offset (i64) | timestamp ms (i64) | payload
    payload: exchange (u8 length + bytes) | routing key (u8 + bytes)
             | properties (u32 + bytes, carrying x-stream-offset) | body

(little-endian; the crc covers everything after itself). A segment rolls
when the next record would take it past the stream's
`x-stream-max-segment-size-bytes`; retention then deletes whole oldest
segments (`MemoryStreamLog` has the same rules).

Durability: appends are buffered in the event loop and written by the
journal's group commit (`SideWriter`: `take` in the loop, `write` in the
journal's worker thread, with `pwrite` at known positions so a retried batch
writes the same bytes, then one fsync per file touched, and of the
directory for a new file), and each append moves the journal's `appended`
on: a publisher confirm for a message on a stream waits for the fsync that
covers it, as for any journalled message. Recovery reads each segment,
checks every record's crc and offset, and cuts a torn or damaged tail (the
file is truncated there, later segments removed): what was confirmed was
fsynced, so only unconfirmed messages can be cut.

Reading: the newest messages (all that are not on disk yet, and a few MiB
more) are kept in memory; older ones are read back with `os.pread` in blocks
of `READ_BLOCK` bytes per consumer, from the page cache normally. Many
consumers read the one copy. These reads are synchronous in the event loop
(a cold disk read blocks it for that read; docs/streams.md).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import shutil
import struct
import time
import zlib
from array import array
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from broker.core.message import Message
from broker.core.stream import segments_to_drop
from broker.logging import get_logger
from broker.storage.fsync import fsync_directory
from broker.storage.replica import DELETE, RMTREE, WRITE, FileOp, ReplicationTap

__all__ = ["FileStreamLog", "StreamFiles"]

log = get_logger("warren.streams")

_HEADER = struct.Struct("<IIqq")
_CRC_PART = struct.Struct("<Iqq")
#: Bytes read at a time by a consumer reading old messages back.
READ_BLOCK = 256 * 1024
#: Newest bytes kept in memory beyond those not yet written.
RECENT_BYTES = 8 * 1024 * 1024
_SUFFIX = ".seg"


class JournalClock(Protocol):
    """What the streams need of the journal: its `appended` moved on, a commit soon."""

    def note_external(self, nbytes: int) -> None: ...


def encode_record(offset: int, timestamp_ms: int, message: Message) -> bytes:
    envelope = message.envelope
    exchange = envelope.exchange.encode("utf-8")
    key = envelope.routing_key.encode("utf-8")
    props = envelope.properties
    payload = b"".join((
        bytes((len(exchange),)), exchange, bytes((len(key),)), key,
        struct.pack("<I", len(props)), props, message.body,
    ))  # fmt: skip
    crc = zlib.crc32(payload, zlib.crc32(_CRC_PART.pack(len(payload), offset, timestamp_ms)))
    return _HEADER.pack(crc, len(payload), offset, timestamp_ms) + payload


def decode_payload(data: bytes | memoryview, start: int, end: int) -> Message:
    pos = start
    size = data[pos]
    exchange = bytes(data[pos + 1 : pos + 1 + size]).decode("utf-8")
    pos += 1 + size
    size = data[pos]
    key = bytes(data[pos + 1 : pos + 1 + size]).decode("utf-8")
    pos += 1 + size
    (size,) = struct.unpack_from("<I", data, pos)
    props = bytes(data[pos + 4 : pos + 4 + size])
    pos += 4 + size
    return Message(exchange, key, props, bytes(data[pos:end]))


class _Segment:
    __slots__ = ("first", "path", "positions", "stamps", "size", "fd", "body_bytes")

    def __init__(self, first: int, path: Path) -> None:
        self.first = first
        self.path = path
        self.positions = array("q")
        self.stamps = array("q")
        self.size = 0
        self.fd: int | None = None
        self.body_bytes = 0

    def read_fd(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Cursor:
    __slots__ = ("log", "offset", "_segment", "_block", "_block_start")

    def __init__(self, log: FileStreamLog, offset: int) -> None:
        self.log = log
        self.offset = offset
        self._segment: _Segment | None = None
        self._block = b""
        self._block_start = 0

    def read(self) -> Message | None:
        log = self.log
        offset = self.offset
        if offset < log.first_offset:
            offset = log.first_offset
        if offset >= log.next_offset:
            self.offset = offset
            return None
        self.offset = offset + 1
        if offset >= log.recent_start:
            return log.recent[offset - log.recent_start]
        segment = log.segment_of(offset)
        index = offset - segment.first
        position = segment.positions[index]
        end = segment.positions[index + 1] if index + 1 < len(segment.positions) else segment.size
        block = self._block
        start = self._block_start
        if self._segment is not segment or position < start or end > start + len(block):
            block = self._block = os.pread(segment.read_fd(), max(READ_BLOCK, end - position), position)
            start = self._block_start = position
            self._segment = segment
        return decode_payload(block, position - start + _HEADER.size, end - start)


#: Bytes read at a time when a segment is checked at start.
SCAN_BLOCK = 8 * 1024 * 1024


def _scan(path: Path, segment: _Segment, first: int) -> tuple[int, int, int]:
    """Read a segment's records into `segment` (positions, times, body bytes),
    checking each one's crc and offset; (where the valid records end, the
    next offset, the file's size). Read in blocks: a segment may be large."""
    pos = 0
    offset = first
    with open(path, "rb") as handle:
        file_size = os.fstat(handle.fileno()).st_size
        buffer = b""
        buffer_start = 0  # file position of buffer[0]
        while True:
            at = pos - buffer_start
            if at + _HEADER.size > len(buffer) or (
                at + _HEADER.size + _HEADER.unpack_from(buffer, at)[1] > len(buffer)
            ):
                # Not a whole record in the buffer: read on from `pos`.
                handle.seek(pos)
                need = SCAN_BLOCK
                if at + _HEADER.size <= len(buffer):
                    need = max(need, _HEADER.size + _HEADER.unpack_from(buffer, at)[1])
                buffer = handle.read(need)
                buffer_start = pos
                at = 0
                if len(buffer) < _HEADER.size:
                    break
            crc, length, record_offset, stamp = _HEADER.unpack_from(buffer, at)
            end = at + _HEADER.size + length
            if end > len(buffer) or record_offset != offset:
                break
            view = memoryview(buffer)
            check = zlib.crc32(view[at + _HEADER.size : end],
                               zlib.crc32(view[at + 4 : at + _HEADER.size]))  # fmt: skip
            view.release()
            if check != crc:
                break
            payload = at + _HEADER.size
            exchange_size = buffer[payload]
            key_size = buffer[payload + 1 + exchange_size]
            (props_size,) = struct.unpack_from("<I", buffer, payload + 2 + exchange_size + key_size)
            segment.positions.append(pos)
            segment.stamps.append(stamp)
            segment.body_bytes += length - (6 + exchange_size + key_size + props_size)
            pos += _HEADER.size + length
            offset += 1
    return pos, offset, file_size


class FileStreamLog:
    """The log of one stream on disk (see the module docstring)."""

    def __init__(self, files: StreamFiles, directory: Path, segment_size: int) -> None:
        self.files = files
        self.directory = directory
        self.segment_size = segment_size
        self.segments: list[_Segment] = []
        self._firsts: list[int] = []
        self.first_offset = 0
        self.next_offset = 0
        self.body_bytes = 0
        self.max_bytes: int | None = None
        self.max_age_s: int | None = None
        #: Messages from `recent_start` on, in memory (every one not yet on disk).
        self.recent: deque[Message] = deque()
        self.recent_start = 0
        self._recent_bytes = 0
        #: Offsets below this are on disk (fsynced).
        self.on_disk = 0
        # Not yet taken by the writer: segment -> (file position, bytes).
        self._pending: dict[_Segment, tuple[int, bytearray]] = {}
        self._new_files = False
        self._unlink: list[Path] = []
        self.deleted = False
        directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        self.recent_start = self.next_offset
        self.on_disk = self.next_offset

    # -- recovery ---------------------------------------------------------------

    def _recover(self) -> None:
        paths = sorted(self.directory.glob("*" + _SUFFIX))
        expected: int | None = None
        cut = False
        for path in paths:
            if cut:
                path.unlink()
                continue
            first = int(path.stem)
            if expected is not None and first != expected:
                log.warning("stream.segment_gap", directory=str(self.directory), segment=path.name)
                path.unlink()
                cut = True
                continue
            segment = _Segment(first, path)
            pos, offset, file_size = _scan(path, segment, first)
            if pos != file_size:
                log.warning("stream.tail_cut", directory=str(self.directory), segment=path.name,
                            kept=pos, dropped=file_size - pos)  # fmt: skip
                with open(path, "r+b") as handle:
                    handle.truncate(pos)
                    os.fsync(handle.fileno())
                cut = True
            segment.size = pos
            if not segment.positions and self.segments:
                path.unlink()  # an empty segment after others: nothing in it
                continue
            self.segments.append(segment)
            self._firsts.append(first)
            self.body_bytes += segment.body_bytes
            expected = offset
        if self.segments:
            self.first_offset = self.segments[0].first
            last = self.segments[-1]
            self.next_offset = last.first + len(last.positions)
        else:
            self._add_segment(0)

    def _add_segment(self, first: int) -> _Segment:
        segment = _Segment(first, self.directory / f"{first:020d}{_SUFFIX}")
        self.segments.append(segment)
        self._firsts.append(first)
        self._new_files = True
        return segment

    # -- appending (event loop) -----------------------------------------------------

    def append(self, message: Message, timestamp_ms: int) -> None:
        offset = self.next_offset
        record = encode_record(offset, timestamp_ms, message)
        segment = self.segments[-1]
        if segment.positions and segment.size + len(record) > self.segment_size:
            segment = self._add_segment(offset)
            self._retain()
        segment.positions.append(segment.size)
        segment.stamps.append(timestamp_ms)
        pending = self._pending.get(segment)
        if pending is None:
            self._pending[segment] = (segment.size, bytearray(record))
        else:
            pending[1].extend(record)
        segment.size += len(record)
        body = len(message.body)
        segment.body_bytes += body
        self.body_bytes += body
        self.next_offset = offset + 1
        self.recent.append(message)
        self._recent_bytes += body
        self._trim_recent()
        self.files.appended(self, len(record))

    def _trim_recent(self) -> None:
        recent = self.recent
        while self._recent_bytes > RECENT_BYTES and self.recent_start < self.on_disk and recent:
            self._recent_bytes -= len(recent.popleft().body)
            self.recent_start += 1

    def _retain(self) -> None:
        """Whole oldest segments go while over `max_bytes` or older than
        `max_age_s` (broker.core.stream.segments_to_drop)."""
        segments = self.segments
        drop = segments_to_drop(
            [(s.size, s.stamps[-1] if len(s.stamps) else None) for s in segments],
            self.max_bytes, self.max_age_s, time.time() * 1000,
        )
        for _ in range(drop):
            oldest = segments.pop(0)
            self._firsts.pop(0)
            self._pending.pop(oldest, None)
            oldest.close()
            self.body_bytes -= oldest.body_bytes
            self._unlink.append(oldest.path)
        if drop:
            self.first_offset = segments[0].first

    # -- reading ---------------------------------------------------------------

    def segment_of(self, offset: int) -> _Segment:
        return self.segments[bisect.bisect_right(self._firsts, offset) - 1]

    def cursor(self, offset: int) -> _Cursor:
        return _Cursor(self, max(offset, self.first_offset))

    def offset_at(self, timestamp_ms: int) -> int:
        for segment in self.segments:
            stamps = segment.stamps
            if len(stamps) and stamps[-1] >= timestamp_ms:
                return segment.first + bisect.bisect_left(stamps, timestamp_ms)
        return self.next_offset

    def set_retention(self, max_bytes: int | None, max_age_s: int | None) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s

    def delete(self) -> None:
        self.files.delete_log(self)

    # -- the writer (take: event loop; write: worker thread; written: event loop) --

    def take(self) -> tuple[list[tuple[Path, int, bytes]], list[Path], bool, int]:
        writes = [(segment.path, position, bytes(data))
                  for segment, (position, data) in self._pending.items()]  # fmt: skip
        self._pending = {}
        unlink, self._unlink = self._unlink, []
        new_files, self._new_files = self._new_files, False
        return writes, unlink, new_files, self.next_offset

    def close(self) -> None:
        for segment in self.segments:
            segment.close()


def _write(writes: list[tuple[Path, int, bytes]], unlink: list[Path], new_files: bool,
           directory: Path) -> None:  # fmt: skip
    for path, position, data in writes:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if not directory.exists():
                continue  # the stream was deleted meanwhile (its directory renamed)
            raise
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, position)
                view = view[written:]
                position += written
            os.fsync(fd)
        finally:
            os.close(fd)
    for path in unlink:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    if (new_files or unlink) and directory.exists():
        fsync_directory(directory)


class StreamFiles:
    """Every stream log of a broker, under `DATA_DIR/streams`; the journal's
    side writer (its group commit writes and fsyncs the logs' appends)."""

    def __init__(self, directory: str | Path) -> None:
        #: Made with the first stream (a data directory without streams has none).
        self.directory = Path(directory)
        self.journal: JournalClock | None = None
        #: Reports the writes made outside the journal's batches to followers.
        self.tap: ReplicationTap | None = None
        self.logs: dict[Path, FileStreamLog] = {}
        self._dirty: dict[FileStreamLog, None] = {}
        self._doomed: list[Path] = []
        self._deleted = 0

    @staticmethod
    def _key(vhost: str, name: str) -> str:
        return hashlib.sha1(f"{vhost}\x00{name}".encode()).hexdigest()

    def open_log(self, vhost: str, name: str, segment_size: int) -> FileStreamLog:
        """The log of a stream being made (or restored at start): its existing
        directory, else a new one. Each incarnation of a name has its own
        directory (`<key>-<ns>`), so that a batch still being written for a
        deleted stream can never land in a new stream of the same name."""
        key = self._key(vhost, name)
        tap = self.tap
        if not self.directory.exists():
            self.directory.mkdir(parents=True)
            fsync_directory(self.directory.parent)
            if tap is not None:
                tap.made_directory(self.directory)
        found = sorted(self.directory.glob(key + "-*"))
        new = not found
        directory = found[-1] if found else self.directory / f"{key}-{time.time_ns():x}"
        existing = self.logs.get(directory)
        if existing is not None and not existing.deleted:
            return existing
        stream_log = FileStreamLog(self, directory, segment_size)
        if new:
            text = f"{vhost}\n{name}\n".encode()
            (directory / "name").write_bytes(text)
            fsync_directory(self.directory)
            if tap is not None:
                tap.made_directory(directory)
                tap.wrote(directory / "name", 0, text)
        self.logs[directory] = stream_log
        return stream_log

    def forget_unused(self) -> None:
        """At start, after the definitions are restored: logs of streams that no
        longer exist (deleted before a crash finished the job) go."""
        if not self.directory.exists():
            return
        for path in self.directory.iterdir():
            if path.is_dir() and path not in self.logs:
                shutil.rmtree(path, ignore_errors=True)

    def appended(self, stream_log: FileStreamLog, nbytes: int) -> None:
        self._dirty[stream_log] = None
        if self.journal is not None:
            self.journal.note_external(nbytes)

    def delete_log(self, stream_log: FileStreamLog) -> None:
        """A stream was deleted: its directory is renamed now (so a stream of
        the same name starts empty) and removed by the writer."""
        stream_log.deleted = True
        stream_log.close()
        self._dirty.pop(stream_log, None)
        self.logs.pop(stream_log.directory, None)
        self._deleted += 1
        doomed = self.directory / f"deleted-{os.getpid()}-{self._deleted}-{stream_log.directory.name}"
        try:
            os.replace(stream_log.directory, doomed)
        except OSError as error:
            log.error("stream.delete_failed", directory=str(stream_log.directory), error=str(error))
            return
        if self.tap is not None:
            self.tap.renamed(stream_log.directory, doomed)
        self._doomed.append(doomed)
        if self.journal is not None:
            self.journal.note_external(0)

    # -- the journal's SideWriter ------------------------------------------------------

    def has_pending(self) -> bool:
        return bool(self._dirty or self._doomed)

    def take(self) -> Any:
        batches = [(stream_log, stream_log.take()) for stream_log in self._dirty]
        self._dirty = {}
        doomed, self._doomed = self._doomed, []
        return batches, doomed

    def write(self, taken: Any) -> None:
        """In the journal's worker thread: idempotent (pwrite at known positions)."""
        batches, doomed = taken
        for stream_log, (writes, unlink, new_files, _upto) in batches:
            _write(writes, unlink, new_files, stream_log.directory)
        if doomed:
            for path in doomed:
                shutil.rmtree(path, ignore_errors=True)
            fsync_directory(self.directory)

    def written(self, taken: Any) -> None:
        batches, _doomed = taken
        for stream_log, (_writes, _unlink, _new_files, upto) in batches:
            if upto > stream_log.on_disk:
                stream_log.on_disk = upto
                stream_log._trim_recent()

    def file_ops(self, taken: Any) -> list[FileOp]:
        """What `write(taken)` does, for followers (broker.storage.replica)."""
        tap = self.tap
        if tap is None:
            return []
        batches, doomed = taken
        ops: list[FileOp] = []
        for _stream_log, (writes, unlink, _new_files, _upto) in batches:
            ops.extend(FileOp(WRITE, tap.relative(path), position, data)
                       for path, position, data in writes)  # fmt: skip
            ops.extend(FileOp(DELETE, tap.relative(path)) for path in unlink)
        ops.extend(FileOp(RMTREE, tap.relative(path)) for path in doomed)
        return ops

    def close(self) -> None:
        for stream_log in self.logs.values():
            stream_log.close()
