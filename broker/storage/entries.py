"""Queue entries that know their journal record.

A durable queue holds `PersistedEntry` objects for its persistent messages:
a `QueuedMessage` (the queue's own fields, copied) plus the record's
`msg_id`, its `segment`, whether it is still `live` (not yet forgotten) and
whether a DELIVER mark was journalled for it.

A `PagedEntry` is a persistent message whose body is NOT kept in memory: a
long queue keeps only where the record is (`segment`, `offset`) and the body
size, and reads the message back from the journal when something needs it
(delivery, dead-lettering). That is what lets a queue of a million 1 KiB
messages live in a few hundred MB (docs/durability.md, "Memory").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.core.message import QueuedMessage

if TYPE_CHECKING:
    from broker.core.message import Message

__all__ = ["PagedEntry", "PersistedEntry"]


class PersistedEntry(QueuedMessage):
    """A queue entry whose message is in the journal under `msg_id`."""

    __slots__ = ("msg_id", "segment", "live", "delivered")

    @classmethod
    def of(cls, entry: QueuedMessage, msg_id: int, segment: int) -> PersistedEntry:
        """A copy of `entry` (every QueuedMessage field) that knows its journal record."""
        new = cls.__new__(cls)
        for name in QueuedMessage.__slots__:
            if hasattr(entry, name):
                setattr(new, name, getattr(entry, name))
        new.msg_id = msg_id
        new.segment = segment
        new.live = True
        new.delivered = False
        return new


class PagedEntry(PersistedEntry):
    """A persistent entry whose message is read back from the journal on use.

    `_source` is the journal that reads it (during recovery, before the
    journal exists, the queue name). Once read, the message is kept
    (`_loaded`) until the entry itself goes: that is only the messages being
    delivered or just requeued, not the long tail.
    """

    __slots__ = ("offset", "size", "_loaded", "_source")

    @classmethod
    def paged(
        cls, entry: QueuedMessage, msg_id: int, segment: int, offset: int, size: int, source: Any
    ) -> PagedEntry:
        new: PagedEntry = cls.of(entry, msg_id, segment)  # type: ignore[assignment]
        new._loaded = None  # `of` copied the message: drop it, that is the point
        new.offset = offset
        new.size = size
        new._source = source
        return new

    @property  # type: ignore[override]
    def message(self) -> Message:
        loaded = self._loaded
        if loaded is None:
            loaded = self._loaded = self._source.load(self.segment, self.offset)
        return loaded

    @message.setter
    def message(self, value: Message | None) -> None:
        self._loaded = value
