"""The deduplication cache of one exchange or queue (docs/deduplication.md).

LavinMQ's `Deduplication::MemoryCache` and `Deduper`
(src/lavinmq/deduplication.cr): a bounded map from the value of a message's
deduplication header to the time that value stops counting. A message whose
value is in the map (and not expired) is a duplicate; any other message with
the header puts its value in, pushing the oldest entry out when the map is
full (insertion order, as LavinMQ's `Hash#shift`). Messages without the
header are never duplicates and leave nothing behind.

Times are wall-clock milliseconds (`time.time()`), so that an entry written
to the journal keeps its deadline across a restart.

Durable exchanges and queues keep their cache in the journal: each insert
becomes a record (`DedupStore.remember`) appended with the group commit, so
the publisher confirm of the message that inserted a key waits for that
record's fsync, like a persistent message's. The store returns a token (the
journal's segment) that the entry keeps; `release` is called with it when
the entry leaves (evicted, expired, the cache dropped), so the journal knows
which segments still hold live entries.

The cost for everything else is one `is None` test per enqueue (queues) and
one integer test per publish (exchanges: `Topology.dedup_exchanges`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from protocol.fields import decode_table, encode_table
from routing.deduplication import DedupSettings, message_ttl

__all__ = ["DUPLICATE", "DedupCache", "DedupStore", "EXCHANGE", "QUEUE", "dedup_key", "key_value"]

#: `DedupCache.check`'s answer for a duplicate (no real key is empty: an
#: encoded field table is at least four bytes).
DUPLICATE = b""

#: What a cache belongs to (the journal's records say which).
EXCHANGE = "exchange"
QUEUE = "queue"


class DedupStore(Protocol):
    """Where a durable cache's entries are kept (the storage layer's `Journal`)."""

    def dedup_remember(self, cache: DedupCache, key: bytes, expires: int | None) -> int:
        """Record an insert; the token (segment) the entry keeps."""
        ...

    def dedup_release(self, token: int) -> None:
        """An entry recorded under `token` left the cache."""
        ...

    def dedup_dropped(self, cache: DedupCache) -> None:
        """`cache`'s exchange is deleted: none of its entries may come back
        (a queue's go with its QUEUE_DELETE)."""
        ...


def dedup_key(value: Any) -> bytes:
    """The cache key of a header value: its AMQP field encoding, so that the
    string "1" and the integer 1 are different keys (as in LavinMQ, which
    compares `AMQ::Protocol::Field`s) and any value type can be a key."""
    return encode_table({"k": value})


def key_value(key: bytes) -> Any:
    """The header value a cache key stands for (for display)."""
    table, _ = decode_table(key, 0)
    return table["k"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class DedupCache:
    """The keys one exchange or queue has seen, oldest first (see the module doc)."""

    __slots__ = ("kind", "vhost", "name", "settings", "header", "entries", "store",
                 "dropped", "clock", "__weakref__")  # fmt: skip

    def __init__(
        self,
        kind: str,
        vhost: str,
        name: str,
        settings: DedupSettings,
        clock: Any = _now_ms,
    ) -> None:
        self.kind = kind
        self.vhost = vhost
        self.name = name
        self.settings = settings
        self.header = settings.header
        #: key -> [expires (wall-clock ms) or None, store token]; dicts keep
        #: insertion order, so the first entry is the oldest.
        self.entries: dict[bytes, list[Any]] = {}
        #: Set for a durable exchange or queue with a journal.
        self.store: DedupStore | None = None
        #: Messages dropped as duplicates (statistics).
        self.dropped = 0
        self.clock = clock

    def __len__(self) -> int:
        return len(self.entries)

    def key_of(self, headers: Mapping[str, Any] | None) -> bytes | None:
        """The cache key of a message with `headers`, or None (no such header)."""
        if not headers:
            return None
        value = headers.get(self.header)
        if value is None:
            return None
        return dedup_key(value)

    def seen(self, key: bytes, now: int | None = None) -> bool:
        """Whether `key` is remembered and not expired (an expired entry goes)."""
        entry = self.entries.get(key)
        if entry is None:
            return False
        expires = entry[0]
        if expires is None or expires > (self.clock() if now is None else now):
            return True
        del self.entries[key]
        self._release(entry)
        return False

    def would_drop(self, headers: Mapping[str, Any] | None) -> bool:
        """Whether a message with `headers` would be dropped now (changes nothing:
        for the route tracer)."""
        key = self.key_of(headers)
        entry = self.entries.get(key) if key is not None else None
        return entry is not None and (entry[0] is None or entry[0] > self.clock())

    def check(self, headers: Mapping[str, Any] | None) -> bytes | None:
        """Look one message up: None if it has no key, `DUPLICATE` if it is a
        duplicate (counted in `dropped`), else its key, which `remember`
        keeps once the message is accepted."""
        key = self.key_of(headers)
        if key is None:
            return None
        if self.seen(key):
            self.dropped += 1
            return DUPLICATE
        return key

    def remember(self, key: bytes, headers: Mapping[str, Any] | None) -> None:
        """Remember the key of an accepted message, for its `x-cache-ttl`
        header's time or the default."""
        ttl = message_ttl(headers or {}, self.settings.ttl)
        if ttl is not None and ttl <= 0:
            return  # LavinMQ stores it already expired: nothing remembered
        self.insert(key, None if ttl is None else self.clock() + ttl)

    def is_duplicate(self, headers: Mapping[str, Any] | None) -> bool:
        """`check` and `remember` in one: True if the message is a duplicate
        (drop it); otherwise its key, if it has one, is remembered."""
        key = self.check(headers)
        if key is None:
            return False
        if key == DUPLICATE:
            return True
        self.remember(key, headers)
        return False

    def insert(self, key: bytes, expires: int | None, token: int | None = None) -> None:
        """Remember `key` until `expires` (None: until evicted), the oldest
        entries making room. Recorded in the store unless `token` is given
        (an entry restored from it)."""
        entries = self.entries
        old = entries.pop(key, None)
        if old is not None:
            self._release(old)
        size = self.settings.size
        while len(entries) >= size:
            oldest = next(iter(entries))
            self._release(entries.pop(oldest))
        if token is None:
            store = self.store
            token = store.dedup_remember(self, key, expires) if store is not None else 0
        entries[key] = [expires, token]

    def _release(self, entry: list[Any]) -> None:
        store = self.store
        if store is not None and entry[1]:
            store.dedup_release(entry[1])

    def clear(self) -> None:
        """Forget every key (the exchange or queue is gone)."""
        entries, self.entries = self.entries, {}
        for entry in entries.values():
            self._release(entry)

    def items(self) -> Iterator[tuple[bytes, list[Any]]]:
        """(key, [expires, token]) oldest first."""
        return iter(list(self.entries.items()))

    def describe(self, key: bytes, now: int | None = None) -> str:
        """Whether a message with `key` would be dropped now, in words."""
        value = key_value(key)
        entry = self.entries.get(key)
        now = self.clock() if now is None else now
        if entry is None or (entry[0] is not None and entry[0] <= now):
            return f"{self.header} = {value!r} not seen: passes, and is remembered"
        if entry[0] is None:
            return f"{self.header} = {value!r} seen before: dropped as a duplicate"
        left = entry[0] - now
        return (
            f"{self.header} = {value!r} seen before (remembered for {left} ms more): "
            "dropped as a duplicate"
        )
