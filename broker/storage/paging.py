"""Paging: the bodies of messages deep in long queues wait on disk.

A queue whose ready messages cost more memory than its limit (a size,
`warren.paging.queue_bytes`, 64 MiB by default; `PRESSURE_QUEUE_BYTES`
while the broker's RSS is above `vm_memory_high_watermark_paging_ratio` of
the watermark, which is when RabbitMQ 3.10's classic queues page) hands each
new bare message (transient, or on a queue without a journal; no TTL, no
delivery count) to its `Pager`. The pager appends it to its queue's page
file and the queue keeps the shared `PAGED` marker instead: one pointer per
message, so a queue of ten million paged-out messages costs its deque and
nothing else. While any message of the queue is paged out every new bare
message is too, so that the paged-out messages stay in order behind the
ones in memory.

Reading back. The pager keeps `runs` of records, in the queue's order of
its PAGED entries. When the queue's departures reach `refill_at` (about
`READ_AHEAD` messages before the first PAGED entry reaches the head), the
queue asks for a refill; the store's task reads the next records of the
first run (up to `READ_BYTES`) in a worker thread and replaces the first
PAGED entries with the messages, so consumers find them in memory. A
consumer that catches up with the reads waits (dispatch stops at a PAGED
entry and the store dispatches again once it is read). basic.get,
x-max-length's drop-head and dead-lettering of a PAGED head read it at
once, on the event loop (`take`: a pread of one record, normally from the
page cache).

Writing. `page` encodes a small header and keeps the body as it is; the
store's task hands every file's pending records to a worker thread that
writes them with `pwritev` (no fsync: nothing here survives a restart), as
the journal's group commit does. Records not written yet are read from
memory.

Under memory pressure the store also pages out the messages already in
memory behind the first `READ_AHEAD` of each queue that is over
`PRESSURE_QUEUE_BYTES`, a slice at a time between its I/O batches, so that
RSS falls back below the paging threshold before it reaches the watermark.

Files: `DATA_DIR/paging/` with a data directory, else a temporary directory
(`warren-paging-PID-*` under the system's temporary directory, made on
first use); one file per queue at a time (`NNNNNNNN-NNNNNN.wp`, a new one
after `FILE_SIZE`), deleted once every message in it was read back. The
directory is emptied at start (transient messages do not survive a
restart) and removed at stop.
"""

from __future__ import annotations

import bisect
import os
import shutil
import struct
import tempfile
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from broker.core.memory import RELEASE_AFTER
from broker.core.message import PAGED, Envelope, Message
from broker.core.queue import MESSAGE_COST, NEVER
from broker.logging import get_logger

if TYPE_CHECKING:
    from broker.core.queue import Queue

__all__ = [
    "DEFAULT_QUEUE_BYTES",
    "PRESSURE_QUEUE_BYTES",
    "Pager",
    "PagingStore",
]

log = get_logger("warren.paging")

#: A record: this header (body length, properties length, exchange length,
#: routing key length), the exchange, the routing key, the raw properties
#: (as the publisher sent them), the body.
RECORD = struct.Struct("<IIBB")
#: A queue pages new messages out above this many bytes in memory (bodies
#: plus MESSAGE_COST each), by default (`warren.paging.queue_bytes`).
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
#: ... and above this many while memory is under pressure.
PRESSURE_QUEUE_BYTES = 4 * 1024 * 1024
#: A page file is closed once it passes this size; it is deleted once read back.
FILE_SIZE = 64 * 1024 * 1024
#: Messages kept read back ahead of the first paged-out one while the
#: queue is being consumed (a refill is asked for when fewer are left).
READ_AHEAD = 4096
#: ... but no more refills once this many body bytes are read ahead.
READ_AHEAD_BYTES = 16 * 1024 * 1024
#: Bytes read at a time (at least one whole record).
READ_BYTES = 2 * 1024 * 1024
#: Messages looked at per page-out step under pressure (one slice of one queue).
PAGE_OUT_SLICE = 4096
#: After a failed write (disk full), the next try.
RETRY_DELAY = 1.0
#: iovecs per pwritev call (Linux's IOV_MAX).
IOV_MAX = 1024
SUFFIX = ".wp"
TEMP_PREFIX = "warren-paging-"


class PageFile:
    """One page file of one queue; `unwritten` records are still in memory."""

    __slots__ = ("path", "fd", "size", "written", "unwritten", "live", "dead")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None  # opened by the worker thread at the first write
        self.size = 0  # bytes appended, written or not
        self.written = 0  # bytes on disk (records below it are read from the file)
        #: (offset, header, body) of the records not on disk yet, in order.
        self.unwritten: list[tuple[int, bytes, bytes]] = []
        self.live = 0  # records not read back (nor dropped) yet
        self.dead = False


class Run:
    """Consecutive records of one file, paged-out messages of a queue in its order."""

    __slots__ = ("file", "start", "end", "count")

    def __init__(self, file: PageFile, start: int, end: int, count: int) -> None:
        self.file = file
        self.start = start  # offset of the next record to read back
        self.end = end
        self.count = count


#: (the raw exchange, routing key and properties, the envelope made of them)
_Last = tuple[bytes, Envelope] | None


def _decode(data: bytes | memoryview, pos: int, last: _Last) -> tuple[Message, int, _Last]:
    """The message of the record at `pos` in `data`, the end of the record, and
    what `last` is for the next record: consecutive records with the same
    exchange, routing key and properties share one envelope, as they did
    when they were published (broker.core.message.Envelope)."""
    body_len, props_len, ex_len, rk_len = RECORD.unpack_from(data, pos)
    at = pos + RECORD.size
    meta_end = at + ex_len + rk_len + props_len
    meta = bytes(data[at:meta_end])
    body = bytes(data[meta_end : meta_end + body_len])
    if last is None or last[0] != meta:
        envelope = Envelope(meta[:ex_len].decode(), meta[ex_len : ex_len + rk_len].decode(),
                            meta[ex_len + rk_len :])
        last = (meta, envelope)
    return Message.sharing(last[1], body), meta_end + body_len, last


def _record_length(header: bytes | memoryview, pos: int = 0) -> int:
    body_len, props_len, ex_len, rk_len = RECORD.unpack_from(header, pos)
    length: int = RECORD.size + ex_len + rk_len + props_len + body_len
    return length


class _Read:
    """A refill: what to read (on the event loop) and what was read (in the thread)."""

    __slots__ = ("pager", "run", "file", "start", "count", "messages", "offsets", "end")

    def __init__(self, pager: Pager, run: Run) -> None:
        self.pager = pager
        self.run = run
        self.file = run.file
        self.start = run.start
        self.count = run.count
        self.messages: list[Message] = []
        self.offsets: list[int] = []
        self.end = run.start


class Pager:
    """The paged-out messages of one queue (the core's `QueuePager`)."""

    def __init__(self, store: PagingStore, queue: Queue, number: int) -> None:
        self.store = store
        self.queue = queue
        self.number = number
        self.runs: deque[Run] = deque()
        #: PAGED entries in the queue, and the bytes of their bodies.
        self.paged = 0
        self.paged_bytes = 0
        self.file: PageFile | None = None  # the one new records go to
        self._files_made = 0
        self.wanted = False  # a refill is asked for
        #: The queue asks for a refill once its `_next_seq` reaches this.
        self.refill_at = NEVER
        self._stalled = False  # a consumer waits for a refill
        self.requeued_total = 0
        # Where page-out under pressure continues (see `_frontier`).
        self._front: int | None = None
        self._front_seq = 0
        self._front_requeued = 0
        # The last envelope written and its encoded form.
        self._envelope: Envelope | None = None
        self._meta: tuple[int, bytes, int, int] = (0, b"", 0, 0)

    # -- writing (event loop) ---------------------------------------------------

    def _append(self, message: Message) -> tuple[PageFile, int, int]:
        """Append `message`'s record to the current file: (file, offset, size)."""
        envelope = message.envelope
        if envelope is not self._envelope:
            exchange = envelope.exchange.encode()
            routing_key = envelope.routing_key.encode()
            properties = envelope.properties
            self._envelope = envelope
            self._meta = (len(properties), exchange + routing_key + properties,
                          len(exchange), len(routing_key))
        props_len, meta, ex_len, rk_len = self._meta
        body = message.body
        header = RECORD.pack(len(body), props_len, ex_len, rk_len) + meta
        file = self.file
        if file is None or file.size >= FILE_SIZE:
            file = self._new_file()
        offset = file.size
        if not file.unwritten:
            self.store._writing[file] = None
        file.unwritten.append((offset, header, body))
        size = len(header) + len(body)
        file.size = offset + size
        file.live += 1
        store = self.store
        store.appended += size
        if store.appended >= store.disk_check_at and store.on_disk_check is not None:
            store.on_disk_check()
        return file, offset, size

    def _new_file(self) -> PageFile:
        old = self.file
        self._files_made += 1
        file = PageFile(self.store.path / f"{self.number:08d}-{self._files_made:06d}{SUFFIX}")
        self.file = file
        self.store._files.add(file)
        if old is not None and not old.live:
            self.store._kill(old)
        return file

    def page(self, message: Message) -> None:
        """`message` joins the queue paged out (the queue appends PAGED for it)."""
        file, offset, size = self._append(message)
        runs = self.runs
        if runs and runs[-1].file is file and runs[-1].end == offset:
            last = runs[-1]
            last.end = offset + size
            last.count += 1
        else:
            runs.append(Run(file, offset, offset + size, 1))
        if not self.paged:
            # The PAGED entry goes at index len(ready): ask for a refill when
            # the head is READ_AHEAD messages away from it.
            self._started(len(self.queue.ready))
        self.paged += 1
        self.paged_bytes += len(message.body)
        self.store._wake.set()

    def _started(self, first_paged: int) -> None:
        """The queue has paged-out messages from now on, the first at `first_paged`."""
        queue = self.queue
        queue.page_limit = -1  # every new bare message is paged out
        self.refill_at = queue._next_seq + max(0, first_paged - READ_AHEAD)
        self.store._active[self] = None

    # -- reading back ----------------------------------------------------------------

    def take(self) -> Message:
        """The message of the first PAGED entry, read now, on the event loop."""
        run = self.runs[0]
        message, size = self.store._read_one(run.file, run.start)
        self._consumed(run, 1, run.start + size, len(message.body))
        self.store.takes += 1
        return message

    def refill(self, stalled: bool = False) -> None:
        """Read the next paged-out messages back, in the store's next I/O batch.

        `stalled`: a consumer reached a message not read back yet (counted:
        read-ahead exists so that this is rare).
        """
        self.refill_at = NEVER  # until this refill is done
        if stalled and not self._stalled:
            self._stalled = True
            self.store.stalls += 1
        if self.paged and not self.wanted:
            self.wanted = True
            self.store._wanted[self] = None
            self.store._wake.set()

    def _consumed(self, run: Run, count: int, start: int, body_bytes: int) -> None:
        """`count` records at the start of the first run are back (or dropped)."""
        run.start = start
        run.count -= count
        file = run.file
        file.live -= count
        if not run.count:
            self.runs.popleft()
        if not file.live and file is not self.file:
            self.store._kill(file)
        self.paged -= count
        self.paged_bytes -= body_bytes
        if not self.paged:
            self._drained()

    def _drained(self) -> None:
        """Nothing paged out any more: new messages stay in memory again."""
        queue = self.queue
        self.store._limit(queue)
        self.refill_at = NEVER
        self._front = None
        file, self.file = self.file, None
        if file is not None and not file.live:
            self.store._kill(file)
        self.store._active.pop(self, None)

    def _apply(self, read: _Read) -> tuple[int, int]:
        """Put what `read` read back into the queue in place of the first PAGED
        entries: (entries now ahead of the first paged-out one, their body bytes)."""
        run = read.run
        if not self.runs or self.runs[0] is not run:
            return 0, 0  # taken or purged meanwhile
        skip = bisect.bisect_left(read.offsets, run.start)  # taken by `take` meanwhile
        messages = read.messages[skip:] if skip else read.messages
        if not messages:
            return 0, 0
        assert read.offsets[skip] == run.start, "page file out of step with its queue"
        count = len(messages)
        ready = self.queue.ready
        prefix = []
        replaced = 0
        ahead_bytes = 0
        popleft = ready.popleft
        while replaced < count:
            item = popleft()
            if item is PAGED:
                item = messages[replaced]
                replaced += 1
            if isinstance(item, Message):
                ahead_bytes += len(item.body)
            prefix.append(item)
        ready.extendleft(reversed(prefix))
        self._stalled = False
        self._consumed(run, count, read.end, sum(len(m.body) for m in messages))
        ahead = len(prefix)
        if self.paged:
            queue = self.queue
            # No bare message in memory is behind `ahead` (page-out's bound).
            self._set_frontier(ahead if self._front is None else max(self._frontier(), ahead))
            self.refill_at = queue._next_seq + max(0, ahead - READ_AHEAD)
        return ahead, ahead_bytes

    def requeued(self, count: int) -> None:
        self.requeued_total += count

    def purged(self) -> None:
        """Every ready message of the queue is gone: so are the paged-out ones."""
        for run in self.runs:
            run.file.live -= run.count
            if not run.file.live and run.file is not self.file:
                self.store._kill(run.file)
        self.runs.clear()
        self.paged = 0
        self.paged_bytes = 0
        self.wanted = False
        self.store._wanted.pop(self, None)
        self._drained()

    # -- paging out what is in memory (under pressure) ---------------------------------

    def _frontier(self) -> int:
        """An index of the queue's ready list at or after its last bare message in
        memory. Never too low (page-out converts messages below it and puts their
        run first: one left behind would be read back out of order); too high
        only costs a longer look."""
        queue = self.queue
        if not self.paged:
            return len(queue.ready)
        if self._front is None:
            return queue.ready.index(PAGED)  # every bare message in memory is before it
        front = (self._front - (queue._next_seq - self._front_seq)
                 + (self.requeued_total - self._front_requeued))
        return min(max(front, 0), len(queue.ready))

    def _set_frontier(self, front: int) -> None:
        self._front = front
        self._front_seq = self.queue._next_seq
        self._front_requeued = self.requeued_total

    def memory_cost(self) -> int:
        """What the queue's messages in memory cost (bodies and MESSAGE_COST each)."""
        queue = self.queue
        return (queue.ready_bytes - self.paged_bytes
                + MESSAGE_COST * (len(queue.ready) - self.paged))

    def page_out(self, limit: int) -> tuple[int, int]:
        """Page out the bare messages in memory among the last `limit` before the
        frontier, keeping the first READ_AHEAD: (messages, body bytes) paged out."""
        queue = self.queue
        ready = queue.ready
        front = self._frontier()
        low = max(READ_AHEAD, front - limit)
        if low >= front:
            return 0, 0
        ready.rotate(-low)
        chunk = [ready.popleft() for _ in range(front - low)]
        new_runs: list[Run] = []
        count = body_bytes = 0
        for index, item in enumerate(chunk):
            if isinstance(item, Message):
                file, offset, size = self._append(item)
                last = new_runs[-1] if new_runs else None
                if last is not None and last.file is file and last.end == offset:
                    last.end = offset + size
                    last.count += 1
                else:
                    new_runs.append(Run(file, offset, offset + size, 1))
                chunk[index] = PAGED
                count += 1
                body_bytes += len(item.body)
        ready.extendleft(reversed(chunk))
        ready.rotate(low)
        if count:
            # Before every message paged out so far: their run goes first.
            self.runs.extendleft(reversed(new_runs))
            if not self.paged:
                self._started(low)
            else:
                self.refill_at = min(self.refill_at,
                                      queue._next_seq + max(0, low - READ_AHEAD))
            self.paged += count
            self.paged_bytes += body_bytes
        self._set_frontier(low)
        return count, body_bytes


class PagingStore:
    """The broker's page files (the core's `QueuePaging`), and the task that
    writes and reads them (`run`).

    `directory` is where the files go (emptied by `prepare`); None: a
    temporary directory, made on first use. `queue_bytes` is the memory a
    queue may use before it pages (None: only under memory pressure).
    `on_freed(nbytes)` is told when page-out freed memory (the memory
    releaser may then give it back to the OS).
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        queue_bytes: int | None = DEFAULT_QUEUE_BYTES,
        on_freed: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.queue_bytes = queue_bytes if queue_bytes is not None else NEVER
        self.on_freed = on_freed
        self.pressure = False
        self._path: Path | None = self.directory
        self._queues: weakref.WeakSet[Queue] = weakref.WeakSet()
        self._pagers = 0
        # Pagers with paged-out messages, and those that asked for a refill.
        self._active: dict[Pager, None] = {}
        self._wanted: dict[Pager, None] = {}
        # Files with records to write; files to close and delete; every file made.
        self._writing: dict[PageFile, None] = {}
        self._dead: list[PageFile] = []
        self._files: set[PageFile] = set()
        self._wake = trio.Event()
        self._stop = trio.CancelScope()
        self._stopped = trio.Event()
        self._running = False
        self._closed = False
        self._write_failing = False
        # Under pressure: queues over PRESSURE_QUEUE_BYTES may be left to page out.
        self._page_out_due = False
        self._freed = 0  # bytes page-out freed, not told to `on_freed` yet
        #: Bytes appended to page files so far, written or not; when it
        #: reaches `disk_check_at`, `on_disk_check()` is called: the disk
        #: monitor looks at free space early under a fast write rate
        #: (broker.alarms.disk, its `DiskWriter`); one integer compare per record.
        self.appended = 0
        self.disk_check_at = 1 << 62
        self.on_disk_check: Callable[[], None] | None = None
        # Counters (tests, logs).
        self.records_written = 0
        self.bytes_written = 0
        self.write_errors = 0  # file writes that failed (ENOSPC...), each retried
        self.reads = 0
        self.records_read = 0
        self.takes = 0
        self.stalls = 0
        self.paged_out = 0
        self.batches = 0

    # -- what queues call (core's QueuePaging) --------------------------------------------

    @property
    def queue_limit(self) -> int:
        """The memory a queue with nothing paged out may use, now."""
        if self.pressure:
            return min(self.queue_bytes, PRESSURE_QUEUE_BYTES)
        return self.queue_bytes

    def _limit(self, queue: Queue) -> None:
        """Set the limit of `queue`, which has nothing paged out."""
        queue.page_limit = self.queue_limit

    def register(self, queue: Queue) -> None:
        self._queues.add(queue)
        self._limit(queue)

    def pager_for(self, queue: Queue) -> Pager:
        self._pagers += 1
        log.info("paging.queue_started", vhost=queue.vhost_name, queue=queue.name,
                 ready=len(queue.ready), ready_bytes=queue.ready_bytes,
                 limit_bytes=queue.page_limit, directory=str(self.path))
        return Pager(self, queue, self._pagers)

    @property
    def unwritten_bytes(self) -> int:
        """Bytes appended to page files and not written yet (they will take
        disk space soon; a file deleted meanwhile never writes its own)."""
        return sum(file.size - file.written for file in self._writing)

    @property
    def paged(self) -> int:
        """Messages paged out now, all queues."""
        return sum(pager.paged for pager in self._active)

    @property
    def paged_bytes(self) -> int:
        """The body bytes of the messages paged out now, all queues."""
        return sum(pager.paged_bytes for pager in self._active)

    @property
    def path(self) -> Path:
        """The directory of the page files (a temporary one is made on first use)."""
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        return self._path

    def set_pressure(self, on: bool) -> None:
        """Memory is (or no longer is) above the paging threshold (broker.alarms.memory)."""
        if on == self.pressure:
            return
        self.pressure = on
        for queue in list(self._queues):
            pager = queue.pager
            if not isinstance(pager, Pager) or not pager.paged:
                self._limit(queue)
        if on:
            # One pass pages out what is in memory; meanwhile no queue grows
            # past the lower limit (its new messages are paged out).
            self._page_out_due = True
            self._wake.set()

    # -- start and stop ---------------------------------------------------------------------

    def prepare(self) -> None:
        """At start: empty the paging directory (transient messages do not
        survive a restart), and remove the temporary paging directories of
        brokers that are gone."""
        if self.directory is not None:
            if self.directory.exists():
                files = [p for p in self.directory.iterdir() if p.is_file()]
                size = sum(p.stat().st_size for p in files)
                shutil.rmtree(self.directory)
                if files:
                    log.info("paging.cleaned", directory=str(self.directory),
                             files=len(files), bytes=size)
            self.directory.mkdir(parents=True)
        _remove_stale_temp_dirs()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write, read back and page out, in batches, until `close()`."""
        self._running = True
        try:
            with self._stop:
                task_status.started()
                while True:
                    await self._wake.wait()
                    await trio.sleep(0)  # let the connections with input go first
                    self._wake = trio.Event()
                    await self._cycle()
        finally:
            self._stopped.set()

    async def close(self) -> None:
        """Stop the task and remove every page file (at shutdown)."""
        if self._closed:
            return
        self._closed = True
        self._stop.cancel()
        with trio.CancelScope(shield=True):
            if self._running:
                await self._stopped.wait()
            await trio.to_thread.run_sync(self._remove_all)
        if self.records_written:
            log.info("paging.stopped", records_written=self.records_written,
                     bytes_written=self.bytes_written, reads=self.reads,
                     records_read=self.records_read, takes=self.takes, stalls=self.stalls,
                     paged_out_under_pressure=self.paged_out)

    def _remove_all(self) -> None:
        for file in self._files:
            if file.fd is not None:
                os.close(file.fd)
                file.fd = None
        self._files.clear()
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)

    # -- the task ------------------------------------------------------------------------------

    def _kill(self, file: PageFile) -> None:
        """`file` holds nothing any more: delete it in the next batch."""
        if not file.dead:
            file.dead = True
            file.unwritten = []
            self._writing.pop(file, None)
            self._dead.append(file)
            self._wake.set()

    async def _cycle(self) -> None:
        writes = []
        for file in self._writing:
            writes.append((file, len(file.unwritten), file.written, list(file.unwritten)))
        reads = []
        for pager in self._wanted:
            pager.wanted = False
            if pager.paged:
                reads.append(_Read(pager, pager.runs[0]))
        self._wanted.clear()
        dead, self._dead = self._dead, []
        if writes or reads or dead:
            path = self.path
            outcome = await trio.to_thread.run_sync(_io, path, writes, reads, dead)
            self.batches += 1
            self._written(outcome)
            for read in reads:
                self._refilled(read)
            if self._write_failing:
                await trio.sleep(RETRY_DELAY)
                self._wake.set()
        if self.pressure and self._page_out_due:
            self._page_out_step()

    def _written(self, outcome: list[tuple[PageFile, int, int, OSError | None]]) -> None:
        failing = False
        for file, count, end, error in outcome:
            if error is not None:
                failing = True
                self.write_errors += 1
                if not self._write_failing:
                    log.error("paging.write_failed", file=str(file.path), error=str(error),
                              retry_in=RETRY_DELAY)
                continue
            self.records_written += count
            self.bytes_written += end - file.written
            if file.dead:
                continue
            del file.unwritten[:count]
            file.written = end
            if not file.unwritten:
                self._writing.pop(file, None)
        if self._write_failing and not failing:
            log.info("paging.write_recovered")
        self._write_failing = failing

    def _refilled(self, read: _Read) -> None:
        pager = read.pager
        self.reads += 1
        self.records_read += len(read.messages)
        ahead, ahead_bytes = pager._apply(read)
        queue = pager.queue
        if queue.consumers and not queue.deleted:
            queue.dispatch()
            if pager.paged and (ahead < 2 * READ_AHEAD and ahead_bytes < READ_AHEAD_BYTES):
                pager.refill()  # keep reading until the window is full

    def _page_out_step(self) -> None:
        """Under pressure: page out one slice of each queue over PRESSURE_QUEUE_BYTES."""
        over = []
        for queue in list(self._queues):
            if queue.deleted or len(queue.ready) <= READ_AHEAD:
                continue
            pager = queue.pager
            cost = (pager.memory_cost() if isinstance(pager, Pager)
                    else queue.ready_bytes + MESSAGE_COST * len(queue.ready))
            if cost > PRESSURE_QUEUE_BYTES:
                over.append((cost, queue))
        if not over:
            self._page_out_due = False
            self._tell_freed()
            return
        over.sort(key=lambda item: item[0], reverse=True)
        total = freed = 0
        for _cost, queue in over:
            pager = queue.pager
            if not isinstance(pager, Pager):
                pager = queue.pager = self.pager_for(queue)
            count, nbytes = pager.page_out(PAGE_OUT_SLICE)
            total += count
            freed += nbytes + MESSAGE_COST * count
        self.paged_out += total
        self._freed += freed
        if self._freed >= RELEASE_AFTER:
            self._tell_freed()
        if total:
            log.debug("paging.paged_out", messages=total, bytes=freed, queues=len(over))
            self._wake.set()  # the next slice after this batch is written

    def _tell_freed(self) -> None:
        """Let the memory releaser give what page-out freed back to the OS (in
        amounts it acts on: a slice alone is too small)."""
        freed, self._freed = self._freed, 0
        if freed and self.on_freed is not None:
            self.on_freed(freed)

    # -- reading one record now (event loop) ----------------------------------------------

    def _read_one(self, file: PageFile, offset: int) -> tuple[Message, int]:
        """The message of the record at `offset` and the record's size."""
        if offset >= file.written:
            records = file.unwritten
            index = bisect.bisect_left(records, offset, key=lambda record: record[0])
            _offset, header, body = records[index]
            message, _end, _last = _decode(header + body, 0, None)
            return message, len(header) + len(body)
        assert file.fd is not None
        head = os.pread(file.fd, RECORD.size, offset)
        length = _record_length(head)
        data = head + os.pread(file.fd, length - RECORD.size, offset + RECORD.size)
        message, end, _last = _decode(data, 0, None)
        return message, end


def _io(path: Path, writes: list[tuple[PageFile, int, int, list[tuple[int, bytes, bytes]]]],
        reads: list[_Read], dead: list[PageFile]) -> list[tuple[PageFile, int, int, OSError | None]]:
    """One batch, in a worker thread: write, then read back, then delete."""
    written: dict[PageFile, int] = {}
    outcome: list[tuple[PageFile, int, int, OSError | None]] = []
    for file, count, offset, records in writes:
        try:
            if file.fd is None:
                path.mkdir(parents=True, exist_ok=True)
                file.fd = os.open(file.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            end = _write_records(file.fd, offset, records)
        except OSError as error:
            outcome.append((file, count, offset, error))
            continue
        written[file] = end
        outcome.append((file, count, end, None))
    for read in reads:
        _read_records(read, written.get(read.file, read.file.written))
    for file in dead:
        if file.fd is not None:
            os.close(file.fd)
            file.fd = None
        try:
            os.unlink(file.path)
        except FileNotFoundError:
            pass
    return outcome


def _write_records(fd: int, offset: int, records: list[tuple[int, bytes, bytes]]) -> int:
    """Write `records` at `offset` (pwritev, no copy of the bodies); the end offset."""
    for start in range(0, len(records), IOV_MAX // 2):
        iov: list[bytes] = []
        for _offset, header, body in records[start : start + IOV_MAX // 2]:
            iov.append(header)
            iov.append(body)
        total = sum(len(part) for part in iov)
        done = os.pwritev(fd, iov, offset)
        if done < total:  # short write: the rest the plain way
            rest = memoryview(b"".join(iov))[done:]
            at = offset + done
            while rest:
                n = os.pwrite(fd, rest, at)
                rest = rest[n:]
                at += n
        offset += total
    return offset


def _read_records(read: _Read, available: int) -> None:
    """Read up to READ_BYTES (at least one record) of `read`'s run, below
    `available` (the end of what is on disk), into `read.messages`."""
    file, start = read.file, read.start
    if file.fd is None or start >= available:
        return
    try:
        data = os.pread(file.fd, min(READ_BYTES, available - start), start)
        if len(data) >= RECORD.size and _record_length(data) > len(data):
            # One record larger than READ_BYTES: read it whole.
            data = os.pread(file.fd, _record_length(data), start)
    except OSError as error:
        log.error("paging.read_failed", file=str(file.path), error=str(error))
        return
    view = memoryview(data)
    pos = 0
    last: _Last = None
    messages, offsets = read.messages, read.offsets
    while len(messages) < read.count and pos + RECORD.size <= len(data):
        if pos + _record_length(view, pos) > len(data):
            break
        message, end, last = _decode(view, pos, last)
        messages.append(message)
        offsets.append(start + pos)
        pos = end
    read.end = start + pos


def _remove_stale_temp_dirs() -> None:
    """Remove `warren-paging-PID-*` directories whose broker process is gone."""
    base = Path(tempfile.gettempdir())
    try:
        entries = list(base.glob(f"{TEMP_PREFIX}*-*"))
    except OSError:
        return
    for entry in entries:
        pid_text = entry.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
            log.info("paging.stale_removed", directory=str(entry))
        except OSError:
            pass  # alive (another user's): not ours to touch
