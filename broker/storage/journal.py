"""The write-ahead journal of persistent messages, with group commit.

The broker's queues call four hooks, all synchronous and cheap (they append
to an in-memory buffer; they never touch the disk):

- `persist(queue, entry)`: a message enters a durable queue. A persistent
  one (delivery_mode 2) gets a PUBLISH record and the queue keeps a
  `PersistedEntry` copy of the entry; a transient one stays as it is.
- `delivered(entry, no_ack)`: handed to a consumer. Remembered in a DELIVER
  record so that after a crash it comes back with redelivered set; with
  no_ack it is gone, as if acknowledged.
- `forget(entry)`: gone for good (basic.ack, reject/nack without requeue,
  purge, overflow drop-head, expiry, dead-lettering): an ACK record. Calling
  it twice for one entry is harmless.
- `queue_deleted(queue)`: a QUEUE_DELETE record.

Group commit. `run()` is one task in the broker's nursery. When records are
waiting it first yields (`trio.sleep(delay)`, 0 by default) so that every
connection with bytes ready handles them and appends its records, then takes
the whole buffer and hands it to a worker thread (`trio.to_thread.run_sync`)
that writes it and fsyncs once. While that thread waits on the disk, new
records gather in a fresh buffer: the busier the broker, the more publishes
share one fsync, and the event loop never waits on the disk.

Publisher confirms. `appended` counts bytes handed to the journal, `synced`
the bytes known to be on disk. A channel tags each owed confirm with the
value of `appended` when the message was routed, and sends only the confirms
whose tag is at most `synced` (`split_synced`); the others wait, and the
journal flushes them after the fsync that covers them. Confirms keep publish
order (a confirm never overtakes an earlier one), so `multiple=true` stays
exact. A transaction's commit-ok waits the same way, for `commit_point()`
(which first turns the pending acks into records: they are part of the
commit), woken by `wake_when_synced`.

Expiry. A PUBLISH record carries the message's deadline in its queue as an
absolute wall-clock time when it has one, so that recovery can restore it
and expire what ran out while the broker was down (`restore`).

Space. Each segment counts its live messages. A segment is deleted when it
and every older segment have none left: deleting only from the oldest end
keeps every ACK record whose PUBLISH record still exists. The deletion rides
on the next batch, in the worker thread.
"""

from __future__ import annotations

import bisect
import gc
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from broker.core.features.priority import PriorityReady
from broker.core.features.ttl import expiry_to_wall_clock
from broker.core.message import Message, QueuedMessage
from broker.logging import get_logger
from broker.storage import records as r
from broker.storage.entries import PagedEntry, PersistedEntry
from broker.storage.fsync import fsync_directory, write_atomically
from broker.storage.recovery import Recovered
from broker.storage.replica import DELETE, WRITE, FileOp, ReplicationTap
from broker.storage.segments import SegmentWriter, segment_path

if TYPE_CHECKING:
    from broker.core.delayed import DelayedMessages
    from broker.core.features.deduplication import DedupCache
    from broker.core.queue import Queue
    from broker.core.vhost import VHost

__all__ = ["Journal", "PagedEntry", "PersistedEntry", "SEGMENT_SIZE", "PAGE_AFTER", "SyncWaiter"]

log = get_logger("warren.journal")

#: A segment is closed once it passes this size (RabbitMQ's message store
#: uses 16 MiB files; larger segments mean fewer files, coarser deletion).
SEGMENT_SIZE = 64 * 1024 * 1024
#: A persistent message joining a durable queue that already has this many
#: ready messages keeps no body in memory (a `PagedEntry`): it is read back
#: from the journal when delivered. RabbitMQ 3.10's classic queues page to
#: disk under memory pressure; a fixed length is simpler and predictable.
PAGE_AFTER = 2048
#: Compaction: the oldest segment is rewritten when at least this many
#: segments exist and no more than 1 in COMPACT_DEAD_RATIO of its messages is
#: still live; at most once per COMPACT_INTERVAL seconds (it scans the ready
#: messages of the durable queues).
COMPACT_MIN_SEGMENTS = 3
COMPACT_DEAD_RATIO = 10
COMPACT_INTERVAL = 5.0
#: Recovering at least this many messages freezes the objects alive after
#: recovery (`gc.freeze()`): a long queue is not walked by every collection.
FREEZE_AFTER = 10_000
#: A current segment this large with no live message left is closed (and
#: deleted) at once rather than kept until it fills.
ROLL_WHEN_DEAD = 1024 * 1024
#: ACK/DELIVER ids per record (bounds one record's size to 512 KiB).
IDS_PER_RECORD = 65536
#: How long to wait before retrying a batch whose write failed (disk full).
RETRY_DELAY = 1.0
#: Written at a clean shutdown, removed at start. Without it (a crash), DELIVER
#: marks of the last moments may be missing, so every recovered message is
#: marked redelivered: the flag means "may have been delivered before" (spec
#: 1.8.3.9), and a false "no" would break consumers that rely on it.
CLEAN_MARKER = "clean-shutdown"


class SyncWaiter(Protocol):
    """Something waiting for an fsync (a session's channel with confirms or a
    tx.commit): woken once after the next batch is on disk."""

    def on_journal_synced(self) -> None: ...


def _wall_clock_ms(expires_at: float | None) -> int | None:
    """An entry's deadline (monotonic seconds) as epoch milliseconds, for its record."""
    wall = expiry_to_wall_clock(expires_at)
    return None if wall is None else round(wall * 1000)


class SideWriter(Protocol):
    """Files written and fsynced by the journal's group commit besides its own
    segments (the stream logs, broker.storage.streams): `take` in the event
    loop, `write` (idempotent: it may be retried) in the worker thread,
    `written` back in the event loop once fsynced."""

    def has_pending(self) -> bool: ...

    def take(self) -> Any: ...

    def write(self, taken: Any) -> None: ...

    def written(self, taken: Any) -> None: ...

    def file_ops(self, taken: Any) -> list[FileOp]:
        """What `write(taken)` writes, for followers (broker.storage.replica)."""
        ...

    def close(self) -> None: ...


class ReplicationSink(Protocol):
    """The leader's replication to its followers (broker.cluster.leader): the
    group commit ships each batch's file operations to it and lets confirms
    go only once `replicated` says enough followers have them on disk."""

    #: Set by the journal (`attach_replication`): runs a batch soon.
    kick: Callable[[], None]

    def admit(self) -> None:
        """Between two batches (the disk holds every batch shipped so far):
        followers waiting to join take their snapshot now."""
        ...

    def ship(self, ops: list[FileOp], last_seq: int) -> int:
        """Send a batch's operations (not waiting); its batch number."""
        ...

    async def replicated(self, batch: int) -> bool:
        """Wait until batch `batch` may be confirmed; False if it never will be
        (replication stopped: this node is no longer the leader). Called for
        each batch in order, while later batches are written."""
        ...


class Journal:
    """The journal of one broker (one directory of segments)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_size: int = SEGMENT_SIZE,
        delay: float = 0.0,
        recovered: Recovered | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_size = segment_size
        self.delay = delay
        self.appended = 0
        #: Bytes on our disk; `synced`: bytes that may be confirmed (on our
        #: disk, and on the followers' when this node leads a cluster).
        self.written = 0
        self.synced = 0
        #: When `appended` reaches this, `on_disk_check()` is called: the disk
        #: monitor looks at free space early under a fast write rate
        #: (broker.alarms.disk); one integer compare per record.
        self.disk_check_at = 1 << 62
        self.on_disk_check: Callable[[], None] | None = None
        #: +1 for every record appended or ack noted: tells whether some work
        #: (a transaction's commit) touched the journal at all.
        self.changes = 0
        self.batches = 0
        self.write_errors = 0
        self.compactions = 0
        # Durable queues that hold persisted entries (compaction looks there).
        self._queues: weakref.WeakSet[Queue] = weakref.WeakSet()
        # Deduplication caches with entries journalled here (compaction too).
        self._dedup_caches: weakref.WeakSet[DedupCache] = weakref.WeakSet()
        # Vhosts' held-message stores with journalled messages (compaction too).
        self._delayed_stores: weakref.WeakSet[DelayedMessages] = weakref.WeakSet()
        # PUBLISH records per segment (compaction's "mostly dead" test).
        self._published: dict[int, int] = dict(recovered.published) if recovered else {}
        self._next_compaction = 0.0
        self._writer = SegmentWriter(self.directory)
        existing = recovered.segments if recovered is not None else []
        self._next_msg_id = recovered.next_msg_id if recovered is not None else 1
        self._next_seq = recovered.next_seq if recovered is not None else 1
        # Live messages per segment, oldest first; new appends go to a new segment.
        self._live: dict[int, int] = {number: 0 for number in existing}
        self._segment = (existing[-1] + 1) if existing else 1
        self._live[self._segment] = 0
        self._segment_bytes = 0  # logical size of the current segment
        self._buffer = bytearray()  # records not yet handed to the writer
        self._buffer_start = 0  # where the buffer starts in the current segment
        # (segment, offset, bytes) handed off or waiting: readable until written.
        self._chunks: list[tuple[int, int, bytes]] = []
        self._inflight: list[tuple[int, int, bytes]] = []
        self._readers: dict[int, int] = {}  # segment -> read-only fd (paged messages)
        self.page_after = PAGE_AFTER
        self._acks: list[int] = []
        self._delivered: list[int] = []
        self._delete: list[int] = []
        self._waiting: dict[SyncWaiter, None] = {}
        #: Written and fsynced with each batch (the stream logs).
        self.side_writers: list[SideWriter] = []
        #: Writes outside the batches (definitions), and the followers a
        #: leader ships every batch to (None on a single node).
        self.tap: ReplicationTap | None = None
        self.replication: ReplicationSink | None = None
        # Written batches waiting for the followers: (batch, `appended` it covers).
        self._replicating: deque[tuple[int, int]] = deque()
        self._replicating_wake = trio.Event()
        self._dirty = trio.Event()
        self._stop = trio.CancelScope()
        self._stopped = trio.Event()
        self._closed = False
        self._running = False

    @property
    def unwritten_bytes(self) -> int:
        """Bytes appended that are not on disk yet (they will take disk space soon)."""
        return self.appended - self.written

    @property
    def fsyncs(self) -> int:
        return self._writer.fsyncs

    @property
    def segments(self) -> list[int]:
        """Segment numbers in use (not yet deleted), oldest first."""
        return list(self._live)

    # -- appending (event loop, synchronous) ---------------------------------

    def _append(self, type_: int, payload: bytes, flags: int = 0) -> tuple[int, int]:
        """Buffer one record; (segment, offset) where it goes."""
        record = r.encode_record(type_, self._next_seq, payload, flags)
        self._next_seq += 1
        self.changes += 1
        if self._segment_bytes and self._segment_bytes + len(record) > self.segment_size:
            self._roll()
        offset = self._segment_bytes
        self._buffer += record
        self._segment_bytes += len(record)
        self.appended += len(record)
        if self.appended >= self.disk_check_at and self.on_disk_check is not None:
            self.on_disk_check()
        self._dirty.set()
        return self._segment, offset

    def _roll(self) -> None:
        if self._buffer:
            self._chunks.append((self._segment, self._buffer_start, bytes(self._buffer)))
            self._buffer = bytearray()
        self._segment += 1
        self._live[self._segment] = 0
        self._segment_bytes = 0
        self._buffer_start = 0
        self._collect()

    def note_external(self, nbytes: int) -> None:
        """A side writer buffered `nbytes`: confirms routed from now on wait
        for the commit that writes them (it moves `appended` on)."""
        self.appended += nbytes
        self.changes += 1
        if self.appended >= self.disk_check_at and self.on_disk_check is not None:
            self.on_disk_check()
        self._dirty.set()

    def persist(self, queue: Queue, entry: QueuedMessage) -> QueuedMessage:
        """`entry` is about to join durable `queue`: journal it if it is persistent.

        Returns the entry the queue keeps: for a persistent message
        (delivery_mode 2) a `PersistedEntry`, or a `PagedEntry` (body left on
        disk) when the queue is already long; else `entry` itself.
        """
        message = entry.message
        if not message.persistent:
            return entry
        msg_id = self._next_msg_id
        self._next_msg_id = msg_id + 1
        # The deadline the queue gave it (x-message-ttl or expiration), absolute.
        expires = None if entry.expires_at is None else _wall_clock_ms(entry.expires_at)
        segment, offset = self._append_publish(msg_id, queue, message, expires)
        self._live[segment] += 1
        self._published[segment] = self._published.get(segment, 0) + 1
        self._queues.add(queue)
        if len(queue.ready) >= self.page_after:
            return PagedEntry.paged(entry, msg_id, segment, offset, len(message.body), self)
        return PersistedEntry.of(entry, msg_id, segment)

    def _append_publish(self, msg_id: int, queue: Queue, message: Message,
                        expires: int | None, delivered: bool = False) -> tuple[int, int]:
        """Buffer a PUBLISH record; its (segment, offset)."""
        vhost = queue.vhost_name
        payload = r.encode_publish(msg_id, queue.name, message.exchange, message.routing_key,
                                   message.properties, message.body, expires, vhost)
        return self._append(r.PUBLISH, payload,
                            r.publish_flags(delivered=delivered, expires=expires, vhost=vhost))

    def load(self, segment: int, offset: int) -> Message:
        """Read the message of the PUBLISH record at (segment, offset) back.

        The record may still be in memory (not yet written); otherwise it is
        read from the segment file with pread, on the event loop: one read
        of about the message's size, normally from the page cache.
        """
        flags, record = self._read_record(segment, offset)
        publish = r.decode_publish(record, flags)
        return Message(publish.exchange, publish.routing_key, publish.properties, publish.body)

    def _read_record(self, segment: int, offset: int) -> tuple[int, bytes]:
        """(flags, payload) of the record at (segment, offset)."""
        header = r.HEADER.size
        if segment == self._segment and offset >= self._buffer_start:
            start = offset - self._buffer_start
            _m, _t, flags, length, _c, _s = r.HEADER.unpack_from(self._buffer, start)
            return flags, bytes(self._buffer[start + header : start + header + length])
        for number, base, data in (*self._chunks, *self._inflight):
            if number == segment and base <= offset < base + len(data):
                start = offset - base
                _m, _t, flags, length, _c, _s = r.HEADER.unpack_from(data, start)
                return flags, data[start + header : start + header + length]
        fd = self._readers.get(segment)
        if fd is None:
            fd = self._readers[segment] = os.open(
                segment_path(self.directory, segment), os.O_RDONLY
            )
        head = os.pread(fd, header, offset)
        _m, _t, flags, length, _c, _s = r.HEADER.unpack(head)
        return flags, os.pread(fd, length, offset + header)

    # -- held by delayed-message exchanges (broker.core.delayed) -----------------

    def hold_delayed(
        self, vhost: str, exchange: str, message: Message, due_ms: int
    ) -> tuple[int, int, int]:
        """Journal a persistent message held by durable delayed exchange
        `exchange` until `due_ms` (epoch milliseconds): a PUBLISH record with
        `FLAG_DELAYED`, the exchange in its queue field. Its (msg_id, segment,
        offset): the store keeps only these and reads the message back when
        it is due (`load`). A confirm waits for its fsync like any publish's."""
        msg_id = self._next_msg_id
        self._next_msg_id = msg_id + 1
        segment, offset = self._append_held(vhost, exchange, msg_id, message, due_ms)
        self._live[segment] += 1
        self._published[segment] = self._published.get(segment, 0) + 1
        return msg_id, segment, offset

    def track_delayed(self, store: DelayedMessages) -> None:
        """`store` holds journalled messages: compaction moves them too."""
        self._delayed_stores.add(store)

    def _append_held(self, vhost: str, exchange: str, msg_id: int, message: Message,
                     due_ms: int) -> tuple[int, int]:
        payload = r.encode_publish(msg_id, exchange, message.exchange, message.routing_key,
                                   message.properties, message.body, due_ms, vhost)
        flags = r.publish_flags(expires=due_ms, vhost=vhost) | r.FLAG_DELAYED
        return self._append(r.PUBLISH, payload, flags)

    def forget_delayed(self, msg_id: int, segment: int) -> None:
        """A held message left its exchange (released or dropped): an ACK record."""
        self._acks.append(msg_id)
        self.changes += 1
        left = self._live[segment] - 1
        self._live[segment] = left
        if not left:
            self._collect()
        self._dirty.set()

    def delivered(self, entry: QueuedMessage, no_ack: bool) -> None:
        """`entry` was handed to a consumer (or basic.get)."""
        if not isinstance(entry, PersistedEntry):
            return
        if no_ack:
            self.forget(entry)
        elif not entry.delivered:  # type: ignore[attr-defined]
            entry.delivered = True  # type: ignore[attr-defined]
            self._delivered.append(entry.msg_id)  # type: ignore[attr-defined]
            self._dirty.set()

    def forget(self, entry: QueuedMessage) -> None:
        """`entry` left its queue for good: journal the removal."""
        if not isinstance(entry, PersistedEntry) or not entry.live:
            return
        entry.live = False  # type: ignore[attr-defined]
        self._acks.append(entry.msg_id)  # type: ignore[attr-defined]
        self.changes += 1
        segment = entry.segment  # type: ignore[attr-defined]
        left = self._live[segment] - 1
        self._live[segment] = left
        if not left:
            self._collect()
        self._dirty.set()

    def queue_deleted(self, queue: Queue) -> None:
        """A durable queue was deleted: none of its messages may come back."""
        vhost = queue.vhost_name
        self._append(
            r.QUEUE_DELETE, r.encode_queue_delete(queue.name, vhost), r.queue_delete_flags(vhost)
        )
        dedup = getattr(queue, "dedup", None)
        if dedup is not None:
            dedup.clear()  # its entries' records are dropped by the QUEUE_DELETE

    # -- deduplication caches (broker.core.features.deduplication's DedupStore) --

    def dedup_remember(self, cache: DedupCache, key: bytes, expires: int | None) -> int:
        """Journal a cache entry of a durable exchange or queue; its segment.

        Appended like a PUBLISH record, so the confirm of the message that
        put the key in waits for this record's fsync. The entry keeps its
        segment alive (counted in `_live`) until `dedup_release`.
        """
        segment = self._append_dedup(cache, key, expires)
        self._live[segment] += 1
        self._published[segment] = self._published.get(segment, 0) + 1
        self._dedup_caches.add(cache)
        return segment

    def _append_dedup(self, cache: DedupCache, key: bytes, expires: int | None) -> int:
        payload = r.encode_dedup(cache.kind, cache.vhost, cache.name, key, expires)
        segment, _offset = self._append(r.DEDUP, payload)
        return segment

    def dedup_release(self, token: int) -> None:
        """A journalled cache entry left its cache (evicted, expired, dropped)."""
        left = self._live.get(token)
        if left is None:
            return
        self._live[token] = left - 1
        if left == 1:
            self._collect()

    def dedup_dropped(self, cache: DedupCache) -> None:
        """The exchange of `cache` is deleted: its entries must not come back."""
        self._append(
            r.DEDUP, r.encode_dedup(cache.kind, cache.vhost, cache.name), r.FLAG_DEDUP_DROP
        )

    def _restore_dedup(self, recovered: Recovered, vhosts: Mapping[str, VHost]) -> int:
        """Put recovered cache entries back into their caches; how many.

        Entries whose time ran out while the broker was down are left out;
        those of an exchange or queue that is gone (or no longer durable or
        deduplicating) are dropped for good with a DEDUP_DROP record.
        """
        restored = 0
        now = int(time.time() * 1000)
        for (kind, vhost_name, name), entries in recovered.dedup.items():
            vhost = vhosts.get(vhost_name)
            cache = None
            if vhost is not None and kind == "exchange":
                x = vhost.topology.exchanges.get(name)
                if x is not None and x.durable:
                    cache = vhost.exchange_dedup(name)
            elif vhost is not None:
                queue = vhost.queues.get(name)
                if queue is not None and queue.durable:
                    cache = queue.dedup
            if cache is None or cache.store is not self:
                flags = r.FLAG_DEDUP_DROP
                self._append(r.DEDUP, r.encode_dedup(kind, vhost_name, name), flags)
                continue
            self._dedup_caches.add(cache)
            for key, (expires, segment) in entries.items():
                if expires is not None and expires <= now:
                    continue
                self._live[segment] += 1
                cache.insert(key, expires, token=segment)
                restored += 1
        recovered.dedup.clear()
        return restored

    def _collect(self) -> None:
        """Schedule deletion of the oldest segments that hold no live message."""
        live = self._live
        while True:
            oldest = next(iter(live))
            if live[oldest]:
                return
            if oldest == self._segment:
                # Every message is gone, the current segment's too: start a
                # new segment so that this one can be deleted now. Otherwise
                # its space would come back only with the next writes, and a
                # disk alarm (which blocks those writes) would never clear
                # after consumers drained everything.
                if self._segment_bytes >= ROLL_WHEN_DEAD:
                    self._roll()  # which collects the old segment
                return
            del live[oldest]
            self._published.pop(oldest, None)
            self._delete.append(oldest)
            fd = self._readers.pop(oldest, None)
            if fd is not None:
                os.close(fd)
            self._dirty.set()

    # -- compaction -------------------------------------------------------------

    def _maybe_compact(self) -> None:
        """Compact the oldest segment if it is mostly dead and holds others back."""
        live = self._live
        if len(live) < COMPACT_MIN_SEGMENTS:
            return
        oldest = next(iter(live))
        published = self._published.get(oldest, 0)
        if live[oldest] * COMPACT_DEAD_RATIO > published:
            return  # not mostly dead
        now = time.monotonic()
        if now < self._next_compaction:
            return
        self._next_compaction = now + COMPACT_INTERVAL
        self.compact_oldest()

    def compact_oldest(self) -> bool:
        """Copy the live messages of the oldest segment to the newest one.

        The copies keep their msg_id (recovery keeps the last record of an
        id), so once they are written the old segment holds nothing live and
        is deleted, in the same batch, after the fsync of the copies. Only
        ready messages, and messages held by delayed exchanges (with their
        due time), are found and moved; if some live message of the
        segment is being delivered (unacknowledged), nothing is done and the
        next attempt tries again. True if the segment was emptied.
        """
        oldest = next(iter(self._live))
        if oldest == self._segment:
            return False
        want = self._live[oldest]
        found: list[tuple[Queue, PersistedEntry]] = []
        for queue in list(self._queues):
            if queue.deleted:
                continue
            for entry in queue.ready:
                if isinstance(entry, PersistedEntry) and entry.segment == oldest and entry.live:
                    found.append((queue, entry))
        dedup: list[tuple[DedupCache, bytes, list[Any]]] = []
        for cache in list(self._dedup_caches):
            if cache.store is self:
                for key, item in cache.entries.items():
                    if item[1] == oldest:
                        dedup.append((cache, key, item))
        held: list[tuple[str, float, Any]] = [
            (store.owner.name, due, h)
            for store in list(self._delayed_stores)
            for due, h in store.held_in_segment(oldest)
        ]
        if len(found) + len(dedup) + len(held) != want:
            return False
        now = int(time.time() * 1000)
        for cache, key, item in dedup:
            self._live[oldest] -= 1
            if item[0] is not None and item[0] <= now:
                del cache.entries[key]  # expired: not copied, just gone
                continue
            # The copy is replayed after newer entries: after a restart this
            # key counts as newer than it is when the cache makes room.
            segment = self._append_dedup(cache, key, item[0])
            self._live[segment] += 1
            self._published[segment] = self._published.get(segment, 0) + 1
            item[1] = segment
        # Held messages keep their msg_id and absolute due time.
        wall_offset = time.time() - time.monotonic()
        for vhost, due, h in held:
            message = self.load(h.segment, h.offset)
            due_ms = round((due + wall_offset) * 1000)
            segment, offset = self._append_held(vhost, h.exchange, h.msg_id, message, due_ms)
            self._live[oldest] -= 1
            self._live[segment] += 1
            self._published[segment] = self._published.get(segment, 0) + 1
            h.segment, h.offset = segment, offset
        for queue, entry in found:
            paged = isinstance(entry, PagedEntry)
            message = entry.message
            expires = _wall_clock_ms(entry.expires_at)  # the copy keeps its deadline
            segment, offset = self._append_publish(entry.msg_id, queue, message, expires,
                                                   delivered=entry.delivered)
            self._live[oldest] -= 1
            self._live[segment] += 1
            self._published[segment] = self._published.get(segment, 0) + 1
            entry.segment = segment
            if paged:
                entry.offset = offset  # type: ignore[attr-defined]
                entry._loaded = None  # type: ignore[attr-defined]  # back to disk
        self.compactions += 1
        log.info("journal.compacted", segment=oldest, messages_moved=len(found),
                 dedup_entries=len(dedup), held_moved=len(held))
        self._collect()
        return True

    # -- confirms -------------------------------------------------------------

    def split_synced(
        self, waiter: SyncWaiter, confirms: list[tuple[int, bool, int]]
    ) -> tuple[list[tuple[int, bool, int]], list[tuple[int, bool, int]]]:
        """(confirms that may go now, confirms that wait); wakes `waiter` later.

        Each confirm is (publish seq, accepted, `appended` when it was routed).
        """
        count = bisect.bisect_right(confirms, self.synced, key=lambda c: c[2])
        if count < len(confirms):
            self._waiting[waiter] = None
        return confirms[:count], confirms[count:]

    def commit_point(self) -> int:
        """The position (`appended`) that covers everything done so far, acks included.

        For tx.commit. Acks and delivery marks normally become records only
        when the next batch is taken (losing one costs a redelivery, not a
        message); but tx.commit "commits all message publications and
        acknowledgments performed in the current transaction" (spec 1.9.2.3),
        so a transaction's acks are part of what commit-ok promises and are
        written now.
        """
        self._seal_ids()
        return self.appended

    def wake_when_synced(self, waiter: SyncWaiter) -> None:
        """Call `waiter.on_journal_synced()` after the next fsync."""
        self._waiting[waiter] = None

    # -- group commit (its own task) ----------------------------------------------

    def _seal_ids(self) -> None:
        """Turn the pending acks and delivery marks into records in the buffer."""
        for pending, type_ in ((self._acks, r.ACK), (self._delivered, r.DELIVER)):
            for start in range(0, len(pending), IDS_PER_RECORD):
                self._append(type_, r.encode_ids(pending[start : start + IDS_PER_RECORD]))
            pending.clear()

    def _take_batch(self) -> tuple[list[tuple[int, int, bytes]], list[int]]:
        self._seal_ids()
        chunks = self._chunks
        if self._buffer:
            chunks.append((self._segment, self._buffer_start, bytes(self._buffer)))
            self._buffer_start += len(self._buffer)
            self._buffer = bytearray()
        self._chunks = []
        delete, self._delete = self._delete, []
        return chunks, delete

    def has_pending(self) -> bool:
        return bool(
            self._buffer or self._chunks or self._acks or self._delivered or self._delete
            or any(writer.has_pending() for writer in self.side_writers)
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The group-commit loop; runs until `close()`."""
        self._running = True
        try:
            with self._stop:
                async with trio.open_nursery() as nursery:
                    if self.replication is not None:
                        nursery.start_soon(self._confirm_replicated, self.replication)
                    task_status.started()
                    while True:
                        await self._dirty.wait()
                        # Let every task with ready work (other connections' reads)
                        # run first, so that their records share this fsync.
                        await trio.sleep(self.delay)
                        await self._commit()
        finally:
            self._stopped.set()

    async def _confirm_replicated(self, replication: ReplicationSink) -> None:
        """A leader's confirms: each written batch, in order, once the followers
        have it (`replicated`). The group commit does not wait for this: while
        the followers write one batch, the next is written here and shipped, so
        the followers' delay hides behind our own next fsync."""
        while True:
            while not self._replicating:
                self._replicating_wake = trio.Event()
                await self._replicating_wake.wait()
            batch, target = self._replicating[0]
            if not await replication.replicated(batch):
                # No longer the leader: nothing from here on may be confirmed.
                await trio.sleep_forever()
            self._replicating.popleft()
            self._synced_to(target)

    def _synced_to(self, target: int) -> None:
        self.synced = target
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting:
            waiter.on_journal_synced()

    async def _commit(self) -> None:
        self._dirty = trio.Event()
        self._maybe_compact()
        target = None
        replication = self.replication
        if replication is not None:
            replication.admit()  # the disk holds every earlier batch, and nothing of this one
        chunks, delete = self._take_batch()
        side = [(writer, writer.take()) for writer in self.side_writers]
        target = self.appended
        batch = 0
        if replication is not None:
            # Shipped before our own write: the followers' fsyncs run beside ours.
            batch = replication.ship(self._file_ops(chunks, delete, side), self._next_seq - 1)
        self._inflight = chunks  # paged messages may be read from here meanwhile
        writes = [(number, data) for number, _offset, data in chunks]

        done = [False]  # the journal's part is written once, even when a side write is retried

        def write_all() -> None:
            if not done[0]:
                self._writer.write_batch(writes, delete)
                done[0] = True
            for writer, taken in side:
                writer.write(taken)

        while True:
            try:
                await trio.to_thread.run_sync(write_all)
                break
            except OSError as error:
                # Nothing of the batch stays on disk (the writer cut it back);
                # confirms keep waiting; try again (the disk alarm blocks publishers).
                self.write_errors += 1
                log.error("journal.write_failed", error=str(error), retry_in=RETRY_DELAY)
                await trio.sleep(RETRY_DELAY)
        self._inflight = []
        for writer, taken in side:
            writer.written(taken)
        self.written = target
        self.batches += 1
        if replication is not None:
            # Confirmed by `_confirm_replicated` once the followers have it.
            self._replicating.append((batch, target))
            self._replicating_wake.set()
            return
        self._synced_to(target)

    def _file_ops(
        self, chunks: list[tuple[int, int, bytes]], delete: list[int], side: list[tuple[SideWriter, Any]]
    ) -> list[FileOp]:
        """A batch as file operations, in the order they reach our disk: the
        writes made outside batches first (they are on disk already), then the
        segments, the side writers', and the deletions that follow the fsync."""
        tap = self.tap
        ops = tap.take() if tap is not None else []
        root = tap.root if tap is not None else self.directory.parent
        where = self.directory.relative_to(root).as_posix()
        for number, offset, data in chunks:
            ops.append(FileOp(WRITE, f"{where}/{segment_path(Path(), number).name}", offset, data))
        for writer, taken in side:
            ops.extend(writer.file_ops(taken))
        for number in delete:
            ops.append(FileOp(DELETE, f"{where}/{segment_path(Path(), number).name}"))
        return ops

    def kick(self) -> None:
        """Run a batch soon even with nothing to write (a follower waits to join)."""
        self._dirty.set()

    def attach_replication(self, sink: ReplicationSink) -> None:
        """Ship every batch to `sink` from now on (before `run()`), the writes
        outside batches included; `sink.kick` runs a batch when it needs one."""
        self.replication = sink
        sink.kick = self.kick
        if self.tap is not None:
            self.tap.active = True

    async def close(self) -> None:
        """Stop the group-commit task and write what is left (at shutdown)."""
        if self._closed:
            return
        self._closed = True
        self._stop.cancel()
        with trio.CancelScope(shield=True):
            if self._running:
                await self._stopped.wait()  # the task is gone: no commit in flight
            if self.has_pending():
                await self._commit()
            await trio.to_thread.run_sync(self._close_cleanly)

    def _close_cleanly(self) -> None:
        self._writer.close()
        for writer in self.side_writers:
            writer.close()
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        # Written last: its presence at start means every DELIVER mark made it.
        marker = self.directory / CLEAN_MARKER
        try:
            write_atomically(marker, b"clean\n")
        except OSError as error:
            # A full disk at shutdown: stop anyway. Without the marker the
            # next start recovers as after a crash (every message redelivered).
            marker.with_name(marker.name + ".tmp").unlink(missing_ok=True)
            log.error("journal.close_failed", error=str(error),
                      note="the next start recovers as after a crash")

    # -- recovery -----------------------------------------------------------------

    def restore(self, recovered: Recovered, vhosts: Mapping[str, VHost]) -> dict[str, int]:
        """Put recovered messages back into their queues, in order.

        Recovered messages stay on disk (`PagedEntry`): each is read back
        when delivered. Messages of a queue that no longer exists (or is not
        durable) are dropped, with a QUEUE_DELETE record so they stay
        dropped even if a queue of that name is declared later.

        Messages keep the deadline their record carries, timed from their
        original publish: those whose TTL ran out while the broker was down
        expire here (dead-lettered as `expired` if the queue has a
        dead-letter exchange, as RabbitMQ does at its recovery), the others
        when their time comes.
        """
        restored = dropped = 0
        live = self._live
        now = time.monotonic()
        expiring: list[Queue] = []
        for key in list(recovered.queues):
            entries = recovered.queues.pop(key)
            vhost_name, name = key
            vhost = vhosts.get(vhost_name)
            queue = vhost.queues.get(name) if vhost is not None else None
            if queue is None or not queue.durable or queue.journal is not self:
                dropped += len(entries)
                log.warning(
                    "journal.queue_missing", vhost=vhost_name, queue=name, messages=len(entries)
                )
                self._append(
                    r.QUEUE_DELETE,
                    r.encode_queue_delete(name, vhost_name),
                    r.queue_delete_flags(vhost_name),
                )
                continue
            # Straight into the ready list: no new record, no limits to apply
            # (the queue held them when the broker stopped).
            ready = queue.ready
            seq = queue._next_seq
            size = 0
            # A priority queue: each message into its level, known from its
            # record (recovery), so none is read back to learn it.
            levels = ready if isinstance(ready, PriorityReady) else None
            priorities = recovered.priorities
            for entry in entries:
                entry.seq = seq
                seq += 1
                entry.redelivered = entry.delivered
                entry._source = self
                live[entry.segment] += 1
                size += entry.size
                if levels is not None:
                    levels.append_at(entry, priorities.get(entry.msg_id, 0))
                else:
                    ready.append(entry)
            queue._next_seq = seq  # (recovery does not enqueue: no publishes counted)
            self._queues.add(queue)
            queue.ready_bytes += size
            restored += len(entries)
            ttl = queue.message_ttl
            if ttl is not None:
                # Records from before expiries were journalled have none: on a
                # TTL queue they are timed from now, or one at the head with
                # no deadline would hold back every message behind it.
                default = now + ttl / 1000
                for entry in entries:
                    if entry.expires_at is None:
                        entry.expires_at = default
            if ttl is not None or key in recovered.expiring:
                expiring.append(queue)
        restored_keys = self._restore_dedup(recovered, vhosts)
        delayed = self._restore_delayed(recovered, vhosts)
        self._collect()
        # Only once every queue is whole: a dead letter may go to another
        # recovered queue, and must land behind that queue's own messages.
        expired = 0
        for queue in expiring:
            queue._may_expire = True
            before = len(queue.ready)
            queue.expire(now)
            expired += before - len(queue.ready)
        return {"restored": restored, "dropped": dropped, "expired": expired,
                "dedup_keys": restored_keys, "delayed": delayed}

    def _restore_delayed(self, recovered: Recovered, vhosts: Mapping[str, VHost]) -> int:
        """Give the held messages back to their delayed exchanges, due time
        kept (those due while the broker was down go first, at once).
        Messages of an exchange that is gone, or is no longer a durable
        delayed exchange, are dropped (ACK records)."""
        from broker.core.delayed import Held
        from routing.exchanges.delayed import DelayedMessageExchange

        restored = 0
        for (vhost_name, exchange), entries in recovered.delayed.items():
            vhost = vhosts.get(vhost_name)
            x = vhost.topology.exchanges.get(exchange) if vhost is not None else None
            if vhost is None or not isinstance(x, DelayedMessageExchange) or not x.durable:
                log.warning("journal.delayed_exchange_missing", vhost=vhost_name,
                            exchange=exchange, messages=len(entries))
                for entry in entries:
                    self._acks.append(entry.msg_id)
                continue
            for entry in entries:
                self._live[entry.segment] += 1
            vhost.delayed.tracked_by(self)
            restored += vhost.delayed.restore(
                (entry.expires_at or 0.0, Held(exchange, None, entry.msg_id, entry.segment,
                                               entry.offset))
                for entry in entries
            )
        recovered.delayed.clear()
        if self._acks:
            self._dirty.set()
        return restored


def open_journal(data_dir: str | Path, vhosts: Mapping[str, VHost], **options: Any) -> Journal:
    """Recover the journal in `data_dir/journal` into `vhosts`; the running journal.

    The vhosts' durable queues must exist already (definitions restored).
    Logs `journal.recovered` with the time it took.
    """
    from broker.storage.recovery import recover

    started = time.monotonic()
    directory = Path(data_dir) / "journal"
    directory.mkdir(parents=True, exist_ok=True)
    # Recovery makes an object per message and frees none: the cyclic GC
    # would walk them all again and again (time growing faster than the
    # journal). Off while recovering; afterwards the survivors are frozen
    # (never scanned again; refcounting still frees them when acknowledged).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        recovered = recover(directory)
    except BaseException:
        if gc_was_enabled:
            gc.enable()
        raise
    marker = directory / CLEAN_MARKER
    clean = marker.exists() or not recovered.segments
    if marker.exists():
        marker.unlink()
        fsync_directory(directory)
    if not clean:
        for messages in recovered.queues.values():
            for message in messages:
                message.delivered = True
    journal = Journal(directory, recovered=recovered, **options)
    for vhost in vhosts.values():
        vhost.journal = journal
        for queue in vhost.queues.values():
            if queue.durable:
                queue.journal = journal
                if queue.dedup is not None:
                    queue.dedup.store = journal
    counts = journal.restore(recovered, vhosts)
    if counts["restored"] >= FREEZE_AFTER:
        gc.freeze()
    if gc_was_enabled:
        gc.enable()
    log.info(
        "journal.recovered",
        seconds=round(time.monotonic() - started, 3),
        scan_seconds=round(recovered.seconds, 3),
        messages=counts["restored"],
        dedup_keys=counts["dedup_keys"],
        expired_while_down=counts["expired"],
        delayed=counts["delayed"],
        clean_shutdown=clean,
        dropped_for_missing_queues=counts["dropped"],
        segments=len(recovered.segments),
        bytes=recovered.bytes_read,
        records=recovered.records,
        records_lost=recovered.records_lost,
        damaged_stretches=recovered.damaged_stretches,
        torn_bytes_cut=recovered.torn_bytes_cut,
    )
    return journal
