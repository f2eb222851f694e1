"""The deduplication cache on its own (broker.core.features.deduplication), and its
journal records: size bound, ttl, eviction order, segments freed by compaction."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from broker.core.features.deduplication import DUPLICATE, QUEUE, DedupCache, dedup_key, key_value
from broker.core.message import Message
from broker.core.queue import Queue
from broker.storage import Journal
from broker.storage.recovery import recover
from broker.storage.segments import list_segments
from protocol.properties import BasicProperties
from routing.deduplication import DedupArgumentError, DedupSettings, dedup_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def cache(size: int = 3, ttl: int | None = None, header: str = "x-deduplication-header",
          clock: Clock | None = None) -> DedupCache:  # fmt: skip
    return DedupCache(QUEUE, "/", "q", DedupSettings(size, ttl, header), clock or Clock())


def h(key: object, **more: object) -> dict[str, object]:
    return {"x-deduplication-header": key, **more}


def test_size_bounds_the_entries_and_the_oldest_goes_first() -> None:
    c = cache(size=3)
    for key in "abcd":
        assert not c.is_duplicate(h(key))
    assert len(c) == 3
    assert [key_value(k) for k, _ in c.items()] == ["b", "c", "d"]
    assert not c.is_duplicate(h("a"))  # pushed out: new again (and now pushes "b" out)
    assert c.is_duplicate(h("c")) and c.is_duplicate(h("d")) and c.is_duplicate(h("a"))
    assert not c.is_duplicate(h("b"))
    assert c.dropped == 3


def test_a_duplicate_does_not_refresh_its_place() -> None:
    # LavinMQ: contains? does not move a key; the order is that of insertion.
    c = cache(size=2)
    c.is_duplicate(h("a"))
    c.is_duplicate(h("b"))
    assert c.is_duplicate(h("a"))
    c.is_duplicate(h("c"))  # pushes "a" out, the oldest insert
    assert not c.is_duplicate(h("a"))


def test_ttl_from_the_settings_and_from_the_message() -> None:
    clock = Clock()
    c = cache(size=10, ttl=100, clock=clock)
    c.is_duplicate(h("a"))
    c.is_duplicate(h("long", **{"x-cache-ttl": 1000}))
    c.is_duplicate(h("none", **{"x-cache-ttl": 0}))  # remembered already expired
    c.is_duplicate(h("bad", **{"x-cache-ttl": "500"}))  # not an integer: the default
    clock.now += 99
    assert c.is_duplicate(h("a")) and c.is_duplicate(h("bad"))
    assert not c.is_duplicate(h("none"))
    clock.now += 1
    assert not c.is_duplicate(h("a"))  # expired exactly at its ttl; remembered again
    assert not c.is_duplicate(h("bad"))
    assert c.is_duplicate(h("long"))
    clock.now += 900
    assert not c.is_duplicate(h("long"))


def test_no_ttl_means_until_pushed_out() -> None:
    clock = Clock()
    c = cache(size=2, clock=clock)
    c.is_duplicate(h("a"))
    clock.now += 10**9
    assert c.is_duplicate(h("a"))


def test_keys_are_typed_values_and_missing_headers_pass() -> None:
    c = cache(header="id")
    assert not c.is_duplicate({"id": 1})
    assert not c.is_duplicate({"id": "1"})
    assert c.is_duplicate({"id": b"1"})  # the same long string on the wire
    assert not c.is_duplicate({"id": 1.0})
    assert c.is_duplicate({"id": 1})
    assert not c.is_duplicate(None) and not c.is_duplicate({}) and not c.is_duplicate({"x": 1})
    assert not c.is_duplicate({"id": None})  # a void value is no key
    assert len(c) == 3 and c.dropped == 2
    assert key_value(dedup_key({"nested": [1, 2]})) == {"nested": [1, 2]}


def test_check_then_remember_keeps_a_refused_message_out() -> None:
    c = cache()
    key = c.check(h("a"))
    assert key is not None and key != DUPLICATE
    assert c.check(h("a")) == key  # not remembered until `remember`
    c.remember(key, h("a"))
    assert c.check(h("a")) == DUPLICATE


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, None),
        ({"x-cache-size": 5}, None),  # without x-message-deduplication: nothing
        ({"x-message-deduplication": False}, None),
        ({"x-message-deduplication": True}, DedupSettings(128, None, "x-deduplication-header")),
        (
            {"x-message-deduplication": True, "x-cache-size": 5, "x-cache-ttl": 9,
             "x-deduplication-header": b"id"},
            DedupSettings(5, 9, "id"),
        ),
    ],
)
def test_settings(arguments: dict[str, object], expected: DedupSettings | None) -> None:
    assert dedup_settings(arguments) == expected


def test_bad_settings_are_refused_even_when_off() -> None:
    with pytest.raises(DedupArgumentError) as error:
        dedup_settings({"x-cache-ttl": -1})
    assert (error.value.key, error.value.why) == ("x-cache-ttl", "{value_negative,-1}")


PERSISTENT = BasicProperties(delivery_mode=2).encode()


def _message(i: int, key: str | None = None) -> Message:
    headers = {"x-deduplication-header": key} if key is not None else None
    props = BasicProperties(delivery_mode=2, headers=headers).encode()
    return Message("", "q", props, b"body-%05d-" % i + b"x" * 90)


async def _synced(journal: Journal) -> None:
    while journal.synced < journal.appended or journal.has_pending():
        await trio.sleep(0.001)


def test_journalled_keys_hold_their_segment_until_compaction_moves_them(tmp_path: Path) -> None:
    """A key that stays in the cache keeps its segment alive; compaction copies
    it to the newest segment so that the old one goes; recovery finds it there.
    Evicted keys free their segments as acknowledged messages do."""

    async def main() -> None:
        journal = Journal(tmp_path, segment_size=4096)
        journal._next_compaction = float("inf")  # compaction only when the test asks
        queue = Queue("q", durable=True, arguments={"x-message-deduplication": True,
                                                     "x-cache-size": 3})  # fmt: skip
        queue.journal = journal
        assert queue.dedup is not None
        queue.dedup.store = journal
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            queue.enqueue(_message(0, "keep"))  # the first segment holds this key
            for i in range(1, 200):
                queue.enqueue(_message(i, f"k{i}" if i < 3 else None))
            assert queue.enqueue(_message(999, "keep"))  # accepted (confirmed), not kept
            assert len(queue.ready) == 200
            for entry in list(queue.ready):
                journal.forget(entry)
            queue.purge()
            await _synced(journal)
            first = list_segments(tmp_path)[0]
            assert first == 1  # the keys of segment 1 are live: it stays
            assert journal.compact_oldest()
            await _synced(journal)
            assert list_segments(tmp_path)[0] > first
            assert journal.compactions == 1
            assert queue.dedup.is_duplicate({"x-deduplication-header": "keep"})
            # Three newer keys push the old ones out: nothing pins old segments.
            for key in ("n1", "n2", "n3"):
                queue.enqueue(_message(0, key))
            await journal.close()
            nursery.cancel_scope.cancel()
        recovered = recover(tmp_path)
        keys = recovered.dedup[("queue", "/", "q")]
        # Replayed oldest first (the compacted copies after the keys of their
        # time); restoring into a cache of 3 keeps the newest three.
        assert [key_value(k) for k in keys][-3:] == ["n1", "n2", "n3"]
        assert "keep" in [key_value(k) for k in keys]
        restored = cache(size=3)
        for key, (expires, _segment) in keys.items():
            restored.insert(key, expires, token=0)
        assert [key_value(k) for k, _ in restored.items()] == ["n1", "n2", "n3"]

    trio.run(main)
