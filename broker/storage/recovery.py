"""Replaying the journal at start: which messages each queue holds, in order.

Segments are read oldest first and their records applied in order:
PUBLISH adds a message (a second PUBLISH with the same msg_id, a compaction
copy, replaces the first) with its expiry if the record has one (an absolute
wall-clock time, turned back into this process's monotonic clock), ACK
removes it, DELIVER marks it delivered (it comes
back with redelivered set), QUEUE_DELETE removes every message of that queue
seen so far (and its deduplication entries); DEDUP records rebuild the
deduplication caches of durable exchanges and queues. A PUBLISH flagged
`FLAG_DELAYED` is a message held by a delayed exchange (its due time in the
expiry field): it goes to `Recovered.delayed`. What is left, per queue and sorted by msg_id, is the queue's
content in arrival order.

Damage never stops recovery:

- a torn record at the end of the newest segment (a crash mid-write) is cut
  off: the file is truncated to the end of the last whole record, and logged;
- a damaged stretch anywhere else is skipped and logged with how many records
  it held (the gap in record sequence numbers): publishes among them are
  lost, acks among them make acknowledged messages come back;
- a record with a valid checksum but an undecodable payload is skipped and
  counted the same way.

The work is one pass over the bytes, so recovery time grows linearly with
the journal's size.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.core.message import QueuedMessage
from broker.logging import get_logger
from broker.storage import records as r
from broker.storage.entries import PagedEntry
from broker.storage.segments import list_segments, segment_path

__all__ = ["Recovered", "recover"]

log = get_logger("warren.journal")


@dataclass
class Recovered:
    """The result of replaying a journal directory."""

    #: Per (vhost, queue), its messages as `PagedEntry` objects in arrival
    #: order; their `_source` is that key until the journal adopts them, `seq` unset.
    queues: dict[tuple[str, str], list[PagedEntry]] = field(default_factory=dict)
    segments: list[int] = field(default_factory=list)
    #: PUBLISH records per segment (live or not), for compaction decisions.
    published: dict[int, int] = field(default_factory=dict)
    #: (vhost, queue) of queues with at least one recovered message that has an expiry.
    expiring: set[tuple[str, str]] = field(default_factory=set)
    #: Per (vhost, delayed exchange), the messages it held, as `PagedEntry`
    #: objects (`expires_at`: when due, monotonic seconds) in due order.
    delayed: dict[tuple[str, str], list[PagedEntry]] = field(default_factory=dict)
    #: msg_id -> the message's `priority` property, for the recovered
    #: messages that have one above 0 (a priority queue puts each in its level).
    priorities: dict[int, int] = field(default_factory=dict)
    #: Deduplication cache entries of durable exchanges and queues, per
    #: (kind, vhost, name): key -> (expiry in wall-clock ms or None, segment),
    #: oldest first (DEDUP records replayed; a later record of a key moves it last).
    dedup: dict[tuple[str, str, str], dict[bytes, tuple[int | None, int]]] = field(
        default_factory=dict
    )
    next_msg_id: int = 1
    next_seq: int = 1
    bytes_read: int = 0
    records: int = 0
    #: Records lost in damaged stretches (an upper bound on messages lost).
    records_lost: int = 0
    damaged_stretches: int = 0
    torn_bytes_cut: int = 0
    seconds: float = 0.0

    @property
    def message_count(self) -> int:
        return sum(len(m) for m in self.queues.values())


def recover(directory: Path) -> Recovered:
    """Replay every segment in `directory` (see the module docstring)."""
    started = time.monotonic()
    result = Recovered()
    messages: dict[int, PagedEntry] = {}
    #: msg_ids of PUBLISH records of held messages (FLAG_DELAYED).
    delayed_ids: set[int] = set()
    priorities = result.priorities
    # One (vhost, queue) tuple per queue, shared by its messages' `_source`.
    keys: dict[tuple[str, str], tuple[str, str]] = {}
    segments = list_segments(directory)
    result.segments = segments
    last_seq: int | None = None
    max_id = 0
    # Journalled expiries are wall-clock times; queues time expiry on the
    # monotonic clock, which restarted with the process. One offset for the
    # whole recovery (broker.core.features.ttl.expiry_from_wall_clock, read once).
    clock = time.monotonic() - time.time()
    for index, number in enumerate(segments):
        path = segment_path(directory, number)
        data = path.read_bytes()
        result.bytes_read += len(data)
        scanned = r.scan(data)
        newest = index == len(segments) - 1
        for damage in scanned.damage:
            if damage.tail and newest:
                # Torn write at the very end: cut it so the next start is clean.
                result.torn_bytes_cut += damage.end - damage.start
                os.truncate(path, damage.start)
                log.warning(
                    "journal.torn_tail_cut",
                    segment=path.name,
                    offset=damage.start,
                    bytes=damage.end - damage.start,
                )
            else:
                result.damaged_stretches += 1
        for record in scanned.records:
            if last_seq is not None and record.seq > last_seq + 1:
                lost = record.seq - last_seq - 1
                result.records_lost += lost
                log.error(
                    "journal.damage_skipped",
                    segment=path.name,
                    offset=record.offset,
                    records_lost=lost,
                    note="lost publishes are lost messages; lost acks redeliver messages",
                )
            if last_seq is None or record.seq > last_seq:
                last_seq = record.seq
            result.records += 1
            if record.type == r.PUBLISH or record.type == r.DEDUP:
                result.published[number] = result.published.get(number, 0) + 1
            try:
                if record.type == r.DEDUP:
                    _apply_dedup(record, number, result.dedup)
                    continue
                max_id = _apply(
                    record, number, messages, keys, max_id, clock, priorities, result.dedup,
                    delayed_ids,
                )
            except ValueError as error:
                result.records_lost += 1
                log.error(
                    "journal.record_skipped",
                    segment=path.name,
                    offset=record.offset,
                    error=str(error),
                )
        # Damage at the end of an older segment: the gap shows at the next record.
        for damage in scanned.damage:
            if not (damage.tail and newest) and damage.tail:
                log.error(
                    "journal.damage_skipped",
                    segment=path.name,
                    offset=damage.start,
                    bytes=damage.end - damage.start,
                )
        del data, scanned
    expiring = result.expiring
    for message in messages.values():
        if message.msg_id in delayed_ids:
            result.delayed.setdefault(message._source, []).append(message)
            continue
        result.queues.setdefault(message._source, []).append(message)
        if message.expires_at is not None:
            expiring.add(message._source)
    messages.clear()
    if priorities:
        live = {id_ for entries in result.queues.values() for id_ in (e.msg_id for e in entries)}
        for msg_id in [i for i in priorities if i not in live]:
            del priorities[msg_id]
    for queue_messages in result.queues.values():
        queue_messages.sort(key=_by_msg_id)
    for held in result.delayed.values():
        held.sort(key=_by_due)
    result.next_msg_id = max_id + 1
    result.next_seq = (last_seq or 0) + 1
    result.seconds = time.monotonic() - started
    return result


def _by_msg_id(entry: PagedEntry) -> int:
    return entry.msg_id


def _by_due(entry: PagedEntry) -> tuple[float, int]:
    return (entry.expires_at or 0.0), entry.msg_id


def _recovered(
    msg_id: int,
    queue: tuple[str, str],
    segment: int,
    offset: int,
    size: int,
    expires_at: float | None,
) -> PagedEntry:
    entry = PagedEntry.__new__(PagedEntry)
    for name in QueuedMessage.__slots__:
        setattr(entry, name, None)  # seq is set on restore
    entry.redelivered = False
    entry.expires_at = expires_at
    entry.msg_id = msg_id
    entry.segment = segment
    entry.live = True
    entry.delivered = False
    entry.offset = offset
    entry.size = size
    entry._source = queue
    return entry


def _apply(
    record: r.Record,
    segment: int,
    messages: dict[int, PagedEntry],
    keys: dict[tuple[str, str], tuple[str, str]],
    max_id: int,
    clock: float,
    priorities: dict[int, int],
    dedup: dict[tuple[str, str, str], dict[bytes, Any]],
    delayed_ids: set[int],
) -> int:
    kind = record.type
    if kind == r.PUBLISH:
        msg_id, vhost, queue, size, expires = r.publish_summary(record.payload, record.flags)
        if record.flags & r.FLAG_DELAYED:
            # Held by delayed exchange `queue` until `expires`.
            if expires is None:
                raise ValueError("held message record without a due time")
            key = keys.setdefault((vhost, "\x00delayed\x00" + queue), (vhost, queue))
            entry = _recovered(msg_id, key, segment, record.offset, size, expires / 1000 + clock)
            messages[msg_id] = entry
            delayed_ids.add(msg_id)
            return max(max_id, msg_id)
        priority = r.publish_priority(record.payload, record.flags)
        if priority:
            priorities[msg_id] = priority
        else:
            priorities.pop(msg_id, None)
        key = keys.setdefault((vhost, queue), (vhost, queue))
        old = messages.get(msg_id)
        expires_at = None if expires is None else expires / 1000 + clock
        entry = _recovered(msg_id, key, segment, record.offset, size, expires_at)
        entry.delivered = bool(record.flags & r.FLAG_DELIVERED) or (
            old is not None and old.delivered
        )
        messages[msg_id] = entry
        return max(max_id, msg_id)
    if kind == r.ACK:
        ids = r.decode_ids(record.payload)
        for msg_id in ids:
            messages.pop(msg_id, None)
        # Ids are never reused, even those whose publish is in a deleted segment.
        return max(max_id, max(ids, default=0))
    if kind == r.DELIVER:
        for msg_id in r.decode_ids(record.payload):
            message = messages.get(msg_id)
            if message is not None:
                message.delivered = True
        return max_id
    if kind == r.QUEUE_DELETE:
        deleted = r.decode_queue_delete(record.payload, record.flags)
        for msg_id in [
            i for i, m in messages.items() if m._source == deleted and i not in delayed_ids
        ]:
            del messages[msg_id]
        dedup.pop(("queue", *deleted), None)
        return max_id
    return max_id


def _apply_dedup(
    record: r.Record, segment: int, dedup: dict[tuple[str, str, str], dict[bytes, Any]]
) -> None:
    entry = r.decode_dedup(record.payload, record.flags)
    owner = (entry.kind, entry.vhost, entry.name)
    if entry.key is None:
        dedup.pop(owner, None)
        return
    keys = dedup.setdefault(owner, {})
    keys.pop(entry.key, None)  # a compaction copy or a re-insert: now the newest
    keys[entry.key] = (entry.expires, segment)
