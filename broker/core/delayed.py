"""Messages held by delayed-message exchanges (``x-delayed-message``) until due.

Routing (``routing.exchanges.delayed``, ``Topology.route_holding``) says that
a message stops at a delayed exchange and for how long; this module keeps it
until then and hands it back to the vhost to be routed (``release_delayed``),
in due order (publish order among messages due at the same time).

One heap per vhost of ``(due, seq, Held)``: ``due`` in monotonic seconds,
``seq`` the hold order. The vhost's scheduler (``broker.core.timers``) is asked
for one deadline, the earliest due message's, not one per message; a deadline
that is no longer the earliest (an earlier message came) simply finds nothing
due and sets the next.

Durability. A persistent message (delivery_mode 2) held by a durable
exchange is journalled (``DelayedJournal.hold_delayed``: a PUBLISH record
flagged as held by that exchange, with its due time as an absolute wall-clock
time) and the heap keeps only where the record is: its body is read back
when it is due. So a held message costs its index entry, not its body, and
the publisher's confirm waits for the fsync like any journalled publish.
After a restart, ``restore`` puts the recovered ones back with their
remaining delay; those due while the broker was down are released at once,
oldest due first. Transient messages, and messages held by a transient
exchange, are kept in memory and die with the broker, as with the plugin.

No I/O and no trio: the journal and the scheduler are seen as Protocols.
"""

from __future__ import annotations

import heapq
import struct
import time
from collections.abc import Iterable
from typing import Any, Protocol

from broker.core.headers import Raw, raw_header_fields, with_headers
from broker.core.message import Message, copy_properties
from broker.core.timers import Scheduler
from broker.logging import get_logger
from routing.exchanges.delayed import DELAY_HEADER, delay_of

__all__ = [
    "HELD",
    "DelayedJournal", "DelayedMessages", "DelayedOwner", "Held", "released_copy"]

log = get_logger("warren.delayed")

#: Messages released per timer callback: a million messages due at once
#: (after a long stop) are released in slices, the event loop running between.
RELEASE_BATCH = 2000
#: The pause between two slices of due messages (seconds).
RELEASE_PAUSE = 0.001

_i32 = struct.Struct(">i")
_i64 = struct.Struct(">q")


class DelayedJournal(Protocol):
    """The journal as the store sees it (``broker.storage.journal.Journal``)."""

    def hold_delayed(
        self, vhost: str, exchange: str, message: Message, due_ms: int
    ) -> tuple[int, int, int]:
        """Journal a held message; its (msg_id, segment, offset)."""
        ...

    def forget_delayed(self, msg_id: int, segment: int) -> None:
        """The held message left (released or dropped): journal its removal."""
        ...

    def track_delayed(self, store: DelayedMessages) -> None:
        """`store` holds journalled messages (compaction moves them too)."""
        ...

    def load(self, segment: int, offset: int) -> Message:
        """Read a journalled message back."""
        ...


class DelayedOwner(Protocol):
    """The vhost, as the store sees it."""

    name: str
    timers: Scheduler | None

    @property
    def delayed_journal(self) -> DelayedJournal | None: ...

    def release_delayed(self, exchange: str, message: Message) -> int:
        """Route a message whose delay is over from `exchange`; queues reached."""
        ...


class Held:
    """One held message: the exchange holding it and either the message
    itself (``message``) or where its journal record is (``msg_id``,
    ``segment``, ``offset``; ``message`` None)."""

    __slots__ = ("exchange", "message", "msg_id", "segment", "offset")

    def __init__(
        self,
        exchange: str,
        message: Message | None,
        msg_id: int = 0,
        segment: int = 0,
        offset: int = 0,
    ) -> None:
        self.exchange = exchange
        self.message = message
        self.msg_id = msg_id
        self.segment = segment
        self.offset = offset

    @property
    def journalled(self) -> bool:
        return self.message is None


def released_copy(message: Message) -> Message:
    """The message as it leaves its delayed exchange: ``x-delay`` set to minus
    the delay, so that no delayed exchange it reaches next holds it again and
    consumers can tell it was delayed (the plugin's ``swap_delay_header/1``,
    which writes a signed 32-bit int). Other headers keep their exact bytes."""
    headers = message.headers
    try:
        delay = delay_of(headers)
    except ValueError:
        delay = None
    if delay is None or headers is None:
        return message
    props = message.decoded_properties
    fields = raw_header_fields(message.properties)
    if -delay >= -(2**31):
        fields[DELAY_HEADER] = Raw(b"I" + _i32.pack(-delay))
    else:
        fields[DELAY_HEADER] = Raw(b"l" + _i64.pack(-delay))
    raw = with_headers(props, fields)
    copy = Message(message.exchange, message.routing_key, raw, message.body)
    plain = dict(headers)
    plain[DELAY_HEADER] = -delay
    copy.set_decoded(copy_properties(props, headers=plain))
    return copy


class DelayedMessages:
    """The messages held by one vhost's delayed exchanges (see the module doc)."""

    def __init__(self, owner: DelayedOwner) -> None:
        self.owner = owner
        self._heap: list[tuple[float, int, Held]] = []
        self._seq = 0
        #: Held messages per exchange (the management API's `messages_delayed`).
        self.counts: dict[str, int] = {}
        #: The earliest deadline asked of the scheduler and not yet run.
        self._armed_at: float | None = None
        #: Messages released so far (statistics).
        self.released = 0
        #: The journal that knows this store holds records in it (compaction).
        self._tracked_by: DelayedJournal | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def count(self, exchange: str) -> int:
        return self.counts.get(exchange, 0)

    # -- holding ------------------------------------------------------------------

    def hold(self, exchanges: Iterable[str], message: Message, delay: int, durable: set[str]) -> None:
        """Hold `message` for `delay` ms at each of `exchanges`; those named in
        `durable` journal it if it is persistent and there is a journal."""
        now = time.monotonic()
        due = now + delay / 1000
        journal = self.owner.delayed_journal
        for exchange in exchanges:
            if journal is not None and exchange in durable and message.persistent:
                self.tracked_by(journal)
                due_ms = round((time.time() + delay / 1000) * 1000)
                msg_id, segment, offset = journal.hold_delayed(
                    self.owner.name, exchange, message, due_ms
                )
                held = Held(exchange, None, msg_id, segment, offset)
            else:
                held = Held(exchange, message)
            self._push(due, held)
        self._arm()

    def tracked_by(self, journal: DelayedJournal) -> None:
        """Tell `journal` (once) that this store holds records in it."""
        if self._tracked_by is not journal:
            journal.track_delayed(self)
            self._tracked_by = journal

    def restore(self, entries: Iterable[tuple[float, Held]]) -> int:
        """Recovered held messages, as (due in monotonic seconds, Held) in
        due order; those already due are released by the next timer."""
        count = 0
        for due, held in entries:
            self._push(due, held)
            count += 1
        self._arm()
        return count

    def _push(self, due: float, held: Held) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, held))
        counts = self.counts
        counts[held.exchange] = counts.get(held.exchange, 0) + 1

    def _arm(self) -> None:
        """Ask the scheduler for the earliest due time, unless it is asked already."""
        timers = self.owner.timers
        if timers is None or not self._heap:
            return
        due = self._heap[0][0]
        if self._armed_at is not None and self._armed_at <= due:
            return
        self._armed_at = due
        timers.call_at(due, self._on_timer)

    # -- releasing ------------------------------------------------------------------

    def _on_timer(self, now: float) -> None:
        self._armed_at = None
        self.release_due(now)

    def release_due(self, now: float | None = None, limit: int = RELEASE_BATCH) -> int:
        """Release the messages due by `now` (at most `limit`); how many.

        Each is routed from its exchange by the bindings that exist now
        (``DelayedOwner.release_delayed``); then its journal record, if any,
        is forgotten. More due than `limit`: the rest go a moment later.
        """
        now = time.monotonic() if now is None else now
        heap = self._heap
        journal = self.owner.delayed_journal
        released = 0
        while heap and heap[0][0] <= now:
            if released >= limit:
                timers = self.owner.timers
                if timers is not None:
                    self._armed_at = now + RELEASE_PAUSE
                    timers.call_at(now + RELEASE_PAUSE, self._on_timer)
                return released
            _due, _seq, held = heapq.heappop(heap)
            self._uncount(held.exchange)
            message = held.message
            try:
                if message is None:
                    assert journal is not None
                    message = journal.load(held.segment, held.offset)
                self.owner.release_delayed(held.exchange, released_copy(message))
            except Exception:  # one bad record must not stop the others
                log.exception("delayed.release_failed", exchange=held.exchange)
            if held.message is None and journal is not None:
                journal.forget_delayed(held.msg_id, held.segment)
            released += 1
        self.released += released
        self._arm()
        return released

    def _uncount(self, exchange: str) -> None:
        counts = self.counts
        left = counts[exchange] - 1
        if left:
            counts[exchange] = left
        else:
            del counts[exchange]

    # -- dropping ---------------------------------------------------------------------

    def drop_exchange(self, exchange: str) -> int:
        """The exchange was deleted: its held messages go (journal records too)."""
        if exchange not in self.counts:
            return 0
        journal = self.owner.delayed_journal
        keep: list[tuple[float, int, Held]] = []
        dropped = 0
        for item in self._heap:
            held = item[2]
            if held.exchange == exchange:
                dropped += 1
                if held.message is None and journal is not None:
                    journal.forget_delayed(held.msg_id, held.segment)
            else:
                keep.append(item)
        heapq.heapify(keep)
        self._heap = keep
        del self.counts[exchange]
        log.info("delayed.dropped", exchange=exchange, messages=dropped, reason="exchange_deleted")
        return dropped

    def drop_all(self) -> int:
        """The vhost is being deleted: every held message goes."""
        dropped = 0
        for exchange in list(self.counts):
            dropped += self.drop_exchange(exchange)
        return dropped

    def held_in_segment(self, segment: int) -> list[tuple[float, Held]]:
        """(due, held) of the journalled held messages whose record is in
        `segment`, for compaction (a scan of the heap: rare, slow path)."""
        return [
            (due, held)
            for due, _seq, held in self._heap
            if held.message is None and held.segment == segment
        ]

    def snapshot(self) -> list[tuple[float, str, Any]]:
        """(due, exchange, message or None) in due order, for tests and tools (slow)."""
        return [(due, held.exchange, held.message) for due, _s, held in sorted(self._heap)]


class _HeldSink:
    """What ``VHost.route`` lists, in place of a queue, for a message a delayed
    exchange holds: the publish path "enqueues" it here (nothing to do, it is
    held already), so a held message counts as routed (no basic.return for
    a mandatory publish) and its confirm waits for the journal like any
    journalled publish."""

    __slots__ = ()
    name = ""
    ready: tuple[()] = ()
    consumers: tuple[()] = ()
    arrived = 0

    def enqueue(self, message: Message) -> bool:
        return True

    def arrived_not_published(self, count: int = 1) -> None:
        pass


#: The one sink (see `_HeldSink`).
HELD: Any = _HeldSink()
