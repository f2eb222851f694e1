"""A durable priority queue's persistent messages across a restart.

Recovery reads each message's priority from its journal record, so the
recovered queue delivers in the order it would have: highest priority first,
arrival order within a priority; messages that were delivered and not
acknowledged come back redelivered, in their place; and the long tail that
the journal keeps on disk (paged entries) is put in its levels without being
read back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika

from broker.core.features.priority import PriorityReady
from broker.storage.entries import PagedEntry
from broker.storage.journal import PAGE_AFTER
from broker.testing import BrokerThread

ARGS = {"x-max-priority": 5}


@contextmanager
def broker_on(data_dir: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=data_dir)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def drain(url: str, queue: str) -> list[tuple[bytes, bool]]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        out = []
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((body, method.redelivered))
    finally:
        connection.close()


def publish_all(channel, queue: str, messages: list[tuple[bytes, int | None]]) -> None:
    for body, priority in messages:
        channel.basic_publish(
            "", queue, body, pika.BasicProperties(delivery_mode=2, priority=priority)
        )


def test_recovered_priority_queue_keeps_its_order(tmp_path: Path) -> None:
    messages = [(b"l1", 1), (b"h1", 5), (b"n1", None), (b"x1", 9), (b"l2", 1), (b"h2", 5)]
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("prio", durable=True, arguments=ARGS)
        publish_all(channel, "prio", messages)
        # h1 acknowledged: gone; x1 (priority 9 = 5) delivered, not acked.
        method, _p, body = channel.basic_get("prio")
        assert body == b"h1"
        channel.basic_ack(method.delivery_tag)
        method, _p, body = channel.basic_get("prio")
        assert body == b"x1"
        connection.close()  # x1 requeued, redelivered
    with broker_on(tmp_path) as thread:
        assert drain(thread.url, "prio") == [
            (b"x1", True), (b"h2", False), (b"l1", False), (b"l2", False), (b"n1", False),
        ]  # fmt: skip


def test_recovered_long_priority_queue_is_paged_and_ordered(tmp_path: Path) -> None:
    rng = random.Random(7)
    count = PAGE_AFTER + 500
    messages = [(b"%d" % i, rng.choice([None, 0, 1, 2, 3, 4, 5, 7])) for i in range(count)]
    expected = [
        body
        for body, _p in sorted(
            messages, key=lambda m: (-min(m[1] or 0, 5), int(m[0]))
        )
    ]
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("long", durable=True, arguments=ARGS)
        publish_all(channel, "long", messages)
        connection.close()
    with broker_on(tmp_path) as thread:
        queue = thread.run_sync(lambda: thread.broker.vhosts["/"].queues["long"])
        ready = queue.ready
        assert isinstance(ready, PriorityReady)
        assert len(ready) == count
        # Restored in place: not one body was read back to learn its level.
        assert all(isinstance(e, PagedEntry) and e._loaded is None for e in ready)
        assert [body for body, _r in drain(thread.url, "long")] == expected
