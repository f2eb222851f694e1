"""Priority queues: `x-max-priority` (RabbitMQ's rabbit_priority_queue).

A classic queue declared with `x-max-priority` N (1..255) keeps one FIFO
per priority level 0..N and delivers from the highest non-empty level
first. What RabbitMQ 3.10.8 does, and so Warren (each point checked against
the reference broker, see conformance/tests/test_priorities.py):

- a message's level is its `priority` property; none counts as 0, and one
  above N counts as N;
- within a level, arrival order (FIFO);
- a requeued message goes back to its original place in its level: before
  the newer messages of its priority, after the older ones;
- basic.get and consumers take the head of the highest non-empty level;
- `x-max-length` with drop-head: the message is enqueued, then the *head*
  is dropped while the queue is over its limit, that is the message that
  would be delivered next: the highest-priority one (not the lowest), which
  can be the message just published;
- TTL: messages expire at the head, and the head is the highest level's:
  expired messages of a lower level are dropped once every level above is
  empty (RabbitMQ's dropwhile stops at the first level whose head is live);
- `x-max-priority` 0 is accepted and means one level: an ordinary queue.

Memory and speed. An ordinary queue (no `x-max-priority`) is untouched: it
keeps bare messages in its `ready` deque (broker.core.message.QueuedMessage).
A priority queue is the subclass `PriorityQueue`, whose `ready` is a
`PriorityReady`: the same entries (bare messages in the common case) in one
deque per level, created on first use, behind the few deque operations the
queue uses (append, popleft, [0], len, iteration, clear). The level of a
new message is read from its raw properties (`protocol.properties.priority_of`)
once, when it is enqueued; recovery reads it from the journal record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from broker.core.message import Message, QueuedMessage
from broker.core.queue import OVERFLOW_DROP_HEAD, Queue, put_back
from protocol.properties import priority_of

__all__ = [
    "MAX_SUPPORTED_PRIORITY",
    "PriorityQueue",
    "PriorityReady",
    "max_priority_of",
    "message_priority",
]

#: RabbitMQ's ?MAX_SUPPORTED_PRIORITY: larger x-max-priority values are refused.
MAX_SUPPORTED_PRIORITY = 255

Entry = QueuedMessage | Message


def max_priority_of(arguments: dict[str, Any]) -> int:
    """The number of levels above 0 a queue with these (validated) arguments has."""
    value = arguments.get("x-max-priority")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return 0
    return min(value, MAX_SUPPORTED_PRIORITY)


def message_priority(message: Message, max_priority: int) -> int:
    """The level of `message` in a queue of `max_priority` (RabbitMQ's priority/2)."""
    priority = priority_of(message.envelope.properties)
    if priority is None:
        return 0
    return priority if priority < max_priority else max_priority


class PriorityReady:
    """The ready entries of a priority queue: one FIFO per level, highest first.

    Quacks like the `deque` a plain queue keeps in `ready`, for the
    operations the queue, the journal and the channel use: `append`,
    `popleft`, `[0]`, `len`, truth, iteration (delivery order) and `clear`.
    """

    __slots__ = ("levels", "top", "count", "max_priority", "incoming")

    def __init__(self, max_priority: int) -> None:
        self.max_priority = max_priority
        #: Per level, its FIFO; None until the level is first used.
        self.levels: list[deque[Entry] | None] = [None] * (max_priority + 1)
        #: The highest non-empty level, -1 when empty.
        self.top = -1
        self.count = 0
        #: The level of the message being enqueued (set by `PriorityQueue.enqueue`,
        #: so a paged journal entry need not be read back to learn it).
        self.incoming: int | None = None

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self.levels):
            if level:
                yield from level

    def __getitem__(self, index: int) -> Entry:
        if index != 0 or self.top < 0:
            raise IndexError(index)
        level = self.levels[self.top]
        assert level is not None
        return level[0]

    def level_of(self, entry: Entry) -> int:
        return message_priority(entry.message, self.max_priority)

    def _level(self, priority: int) -> deque[Entry]:
        level = self.levels[priority]
        if level is None:
            level = self.levels[priority] = deque()
        if priority > self.top:
            self.top = priority
        return level

    def append(self, entry: Entry) -> None:
        """A new entry at the tail of its level."""
        priority = self.incoming
        if priority is None:
            priority = self.level_of(entry)
        else:
            self.incoming = None
        level = self.levels[priority]  # _level(), inlined: once per message
        if level is None:
            level = self.levels[priority] = deque()
        level.append(entry)
        if priority > self.top:
            self.top = priority
        self.count += 1

    def append_at(self, entry: Entry, priority: int) -> None:
        """A new entry at the tail of level `priority` (recovery: level known)."""
        self._level(min(priority, self.max_priority)).append(entry)
        self.count += 1

    def popleft(self) -> Entry:
        """Take the head: the oldest entry of the highest non-empty level."""
        top = self.top
        if top < 0:
            raise IndexError("pop from an empty priority queue")
        level: deque[Entry] = self.levels[top]  # type: ignore[assignment]
        entry = level.popleft()
        self.count -= 1
        if not level:
            self._fall(top)
        return entry

    def _fall(self, top: int) -> None:
        levels = self.levels
        top -= 1
        while top >= 0 and not levels[top]:
            top -= 1
        self.top = top

    def put_back(self, entry: QueuedMessage) -> None:
        """A requeued entry, back at its original place in its level."""
        put_back(self._level(self.level_of(entry)), entry)
        self.count += 1

    def clear(self) -> None:
        self.levels = [None] * (self.max_priority + 1)
        self.top = -1
        self.count = 0


class PriorityQueue(Queue):
    """A classic queue with `x-max-priority` > 0 (see the module docstring).

    Everything but where an entry goes in `ready` is the plain queue's:
    limits, TTL, dead-lettering, the delivery limit, consumers.
    """

    __slots__ = ("max_priority", "_levels")

    #: Not paged: a paged-out run is read back in arrival order, and this
    #: queue delivers by level (memory pressure still raises the alarm).
    pageable = False

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.max_priority = max_priority_of(self.arguments)
        # A PriorityReady stands where a plain queue has its deque.
        self.ready = PriorityReady(self.max_priority)  # type: ignore[assignment]
        self._levels: dict[bytes, int] = {}  # raw properties -> level (enqueue)

    def enqueue(self, message: Message) -> bool:
        ready: PriorityReady = self.ready  # type: ignore[assignment]
        # The level, by the properties' bytes: consecutive publishes with the
        # same properties share one bytes object (their envelope's), whose
        # hash Python keeps, so this is one dict lookup, not a parse.
        raw = message.envelope.properties
        level = self._levels.get(raw)
        if level is None:
            if len(self._levels) >= 1024:
                self._levels.clear()
            level = self._levels[raw] = message_priority(message, self.max_priority)
        ready.incoming = level
        try:
            if self.overflow != OVERFLOW_DROP_HEAD or (
                self.max_length is None and self.max_length_bytes is None
            ):
                return super().enqueue(message)
            # drop-head: RabbitMQ enqueues, then drops from the head while
            # over the limit (maybe_drop_head). The plain queue makes room
            # first, which is the same for a FIFO; here the head may be the
            # new message itself, when it outranks everything waiting.
            limits = self.max_length, self.max_length_bytes
            self.max_length = self.max_length_bytes = None
            try:
                super().enqueue(message)
            finally:
                self.max_length, self.max_length_bytes = limits
            if self.ready and self._over_limit(0, 0):
                self._drop_head()
            return True
        finally:
            # Unused if the queue refused or dropped the message.
            ready.incoming = None

    def _put_back(self, entry: QueuedMessage) -> None:
        ready: PriorityReady = self.ready  # type: ignore[assignment]
        ready.put_back(entry)
