"""Space: dead segments are deleted, long queues keep their bodies on disk.

These drive the journal directly with real `Queue` objects (no broker, no
socket) so that segment sizes and paging thresholds can be made small.
"""

from __future__ import annotations

from pathlib import Path

import trio

from broker.core.message import Message
from broker.core.queue import Queue
from broker.storage import Journal
from broker.storage.entries import PagedEntry, PersistedEntry
from broker.storage.recovery import recover
from broker.storage.segments import list_segments
from protocol.properties import BasicProperties

PERSISTENT = BasicProperties(delivery_mode=2).encode()


def message(i: int) -> Message:
    return Message("", "q", PERSISTENT, b"body-%05d-" % i + b"x" * 90)


async def synced(journal: Journal) -> None:
    while journal.synced < journal.appended or journal.has_pending():
        await trio.sleep(0.001)


def make_queue(journal: Journal) -> Queue:
    queue = Queue("q", durable=True)
    queue.journal = journal
    return queue


def test_fully_acknowledged_segments_are_deleted_oldest_first(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal(tmp_path, segment_size=4096)
        queue = make_queue(journal)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for i in range(300):
                queue.enqueue(message(i))
            await synced(journal)
            before = list_segments(tmp_path)
            assert len(before) > 8
            # Ack message 0 last: nothing can go while the oldest segment holds it.
            first = queue.get()
            taken = [queue.get() for _ in range(199)]
            for entry in taken:
                journal.forget(entry)
            await synced(journal)
            assert list_segments(tmp_path) == before
            journal.forget(first)
            await synced(journal)
            after = list_segments(tmp_path)
            assert after == journal.segments
            assert len(after) < len(before) / 2
            assert after[-1] == before[-1] + 1 or after[-1] == before[-1]
            await journal.close()
            nursery.cancel_scope.cancel()
        recovered = recover(tmp_path)
        bodies = [journal.load(e.segment, e.offset).body for e in recovered.queues[("/", "q")]]
        assert bodies == [message(i).body for i in range(200, 300)]

    trio.run(main)


def test_long_queue_keeps_bodies_on_disk_and_reads_them_back(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal(tmp_path, segment_size=64 * 1024)
        journal.page_after = 50
        queue = make_queue(journal)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for i in range(1000):
                queue.enqueue(message(i))
            entries = list(queue.ready)
            assert all(type(e) is PersistedEntry for e in entries[:50])
            assert all(type(e) is PagedEntry and e._loaded is None for e in entries[50:])
            assert queue.ready_bytes == sum(len(message(i).body) for i in range(1000))
            # Read back before the batch is written (from memory)...
            assert entries[999].message.body == message(999).body
            await synced(journal)
            # ...and after (from the segment files).
            got = []
            while (entry := queue.get()) is not None:
                got.append(entry.message.body)
                journal.forget(entry)
            assert got == [message(i).body for i in range(1000)]
            assert queue.ready_bytes == 0
            await journal.close()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_compaction_moves_the_last_live_messages_and_frees_the_old_segments(
    tmp_path: Path,
) -> None:
    from collections import deque

    async def main() -> None:
        journal = Journal(tmp_path, segment_size=4096)
        journal.page_after = 1  # the survivors are paged: compaction must read them back
        queue = make_queue(journal)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for i in range(300):
                queue.enqueue(message(i))
            await synced(journal)
            entries = list(queue.ready)
            keep = [entries[0], entries[5], entries[120]]
            for entry in entries:
                if entry not in keep:
                    journal.forget(entry)
            queue.ready = deque(keep)
            await synced(journal)
            oldest_before = list_segments(tmp_path)[0]
            assert journal.compact_oldest()
            while journal.compact_oldest():
                pass
            await synced(journal)
            remaining = list_segments(tmp_path)
            assert remaining[0] > oldest_before
            assert len(remaining) <= 2
            assert [e.message.body for e in queue.ready] == [message(i).body for i in (0, 5, 120)]
            assert journal.compactions >= 1
            await journal.close()
            nursery.cancel_scope.cancel()
        recovered = recover(tmp_path)
        found = recovered.queues[("/", "q")]
        assert [journal.load(e.segment, e.offset).body for e in found] == [
            message(i).body for i in (0, 5, 120)
        ]

    trio.run(main)


def test_compaction_waits_while_a_live_message_is_being_delivered(tmp_path: Path) -> None:
    async def main() -> None:
        journal = Journal(tmp_path, segment_size=4096)
        queue = make_queue(journal)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for i in range(300):
                queue.enqueue(message(i))
            in_flight = queue.get()  # delivered, not acknowledged
            for entry in list(queue.ready):
                journal.forget(entry)
            queue.purge()
            await synced(journal)
            before = list_segments(tmp_path)
            assert not journal.compact_oldest()
            await synced(journal)
            assert list_segments(tmp_path) == before
            journal.forget(in_flight)
            await synced(journal)
            assert len(list_segments(tmp_path)) == 1
            await journal.close()
            nursery.cancel_scope.cancel()

    trio.run(main)
