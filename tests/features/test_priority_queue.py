"""Priority queues, consumer priorities and single active consumer at the queue level.

The queue is driven directly (no sockets): a hypothesis test checks that the
delivery order of a `PriorityQueue` equals a reference model's for random
sequences of publish / get / requeue / ack; the others pin the corners
(limits, TTL, delivery limit, the single active consumer's takeover).
"""

from __future__ import annotations

from typing import Any

import pika
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.core.features.priority import PriorityQueue, PriorityReady
from broker.core.message import Message, QueuedMessage
from broker.core.queue import Queue
from broker.core.vhost import VHost, new_queue
from protocol.properties import BasicProperties

MAX = 5


def message(body: str, priority: int | None = None, **properties: Any) -> Message:
    raw = BasicProperties(priority=priority, **properties).encode()
    return Message("", "q", raw, body.encode())


class FakeConsumer:
    """A QueueConsumer with a prefetch limit, recording what it got."""

    def __init__(self, tag: str, prefetch: int = 0) -> None:
        self.tag = tag
        self.no_ack = False
        self.prefetch = prefetch
        self.unacked: list[QueuedMessage] = []
        self.got: list[bytes] = []
        # What the queue counts on a consumer for statistics (QueueConsumer).
        self.delivered = 0
        self.redelivered = 0

    def has_credit(self) -> bool:
        return not self.prefetch or len(self.unacked) < self.prefetch

    def deliver(self, queue: Queue, entry: QueuedMessage) -> None:
        self.unacked.append(entry)
        self.got.append(entry.message.body)

    def cancelled_by_queue(self) -> None:
        pass


# -- the property test ---------------------------------------------------------

operation = st.one_of(
    st.tuples(st.just("publish"), st.one_of(st.none(), st.integers(0, 9))),
    st.tuples(st.just("get"), st.none()),
    st.tuples(st.just("requeue"), st.integers(0, 20)),
    st.tuples(st.just("requeue-all"), st.none()),
    st.tuples(st.just("ack"), st.integers(0, 20)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=60))
def test_delivery_order_equals_the_reference_model(operations: list[tuple[str, Any]]) -> None:
    """Model: each message has its level (priority, None = 0, capped at MAX)
    and its arrival number; the next delivered is the highest level's oldest
    arrival, and a requeued message keeps its arrival number."""
    queue = PriorityQueue("q", arguments={"x-max-priority": MAX})
    model_ready: dict[int, int] = {}  # arrival -> level
    unacked: list[tuple[int, QueuedMessage]] = []  # (arrival, entry) handed out
    arrivals = 0
    for kind, value in operations:
        if kind == "publish":
            level = min(value or 0, MAX)
            assert queue.enqueue(message(str(arrivals), value))
            model_ready[arrivals] = level
            arrivals += 1
        elif kind == "get":
            entry = queue.get()
            if not model_ready:
                assert entry is None
                continue
            expected = min(model_ready, key=lambda a: (-model_ready[a], a))
            assert entry is not None
            assert entry.message.body == str(expected).encode()
            del model_ready[expected]
            queue.handed_out(entry, False)
            unacked.append((expected, entry))
        elif kind in ("requeue", "requeue-all") and unacked:
            if kind == "requeue":
                chosen = [unacked.pop(value % len(unacked))]
            else:
                chosen, unacked = unacked, []
            queue.requeue([entry for _arrival, entry in chosen])
            for arrival, entry in chosen:
                model_ready[arrival] = min(entry.message.decoded_properties.priority or 0, MAX)
                assert entry.redelivered
        elif kind == "ack" and unacked:
            _arrival, entry = unacked.pop(value % len(unacked))
            queue.ack(entry)
        assert len(queue.ready) == len(model_ready)
        expected_order = sorted(model_ready, key=lambda a: (-model_ready[a], a))
        assert [int(e.message.body) for e in queue.ready] == expected_order


# -- priority queue corners ------------------------------------------------------


def test_plain_queue_without_max_priority_keeps_a_deque() -> None:
    assert type(new_queue("q")) is Queue
    assert type(new_queue("q", arguments={"x-max-priority": 0})) is Queue
    queue = new_queue("q", arguments={"x-max-priority": 3})
    assert isinstance(queue, PriorityQueue)
    assert isinstance(queue.ready, PriorityReady)


def test_levels_are_made_on_first_use() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 255})
    queue.enqueue(message("a", 7))
    ready: PriorityReady = queue.ready  # type: ignore[assignment]
    assert sum(level is not None for level in ready.levels) == 1
    assert ready.top == 7


def test_priority_queue_keeps_bare_messages() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 3})
    queue.enqueue(message("a", 2))
    assert type(next(iter(queue.ready))) is Message


def test_purge_empties_every_level() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 3})
    for p in (0, 1, 3, None):
        queue.enqueue(message("m", p))
    assert queue.purge() == 4
    assert not queue.ready and queue.ready_bytes == 0
    queue.enqueue(message("again", 1))
    assert queue.get().message.body == b"again"


def test_drop_head_drops_the_highest_priority() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 5, "x-max-length": 3})
    for body, p in [("h1", 5), ("l1", 1), ("h2", 5), ("l2", 1), ("m1", 3)]:
        queue.enqueue(message(body, p))
    assert [e.message.body for e in queue.ready] == [b"m1", b"l1", b"l2"]
    assert queue.ready_bytes == 6


def test_max_length_bytes_drop_head_on_priority_queue() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 5, "x-max-length-bytes": 4})
    for body, p in [("l1", 1), ("l2", 1), ("h1", 5)]:
        queue.enqueue(message(body, p))
    assert [e.message.body for e in queue.ready] == [b"l1", b"l2"]


def test_expiry_looks_at_the_highest_levels_head() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 5})
    queue.enqueue(message("h1", 5))
    queue.enqueue(message("l1", 1, expiration="0"))
    queue.expire(now=10**9)
    # h1 (no TTL) is the head: l1 waits behind it, as in RabbitMQ.
    assert [e.message.body for e in queue.ready] == [b"h1", b"l1"]
    assert queue.get().message.body == b"h1"
    assert not queue.ready  # dropped after the fetch


def test_delivery_limit_on_a_priority_queue() -> None:
    vhost = VHost()
    dead = vhost.declare_queue(None, "dead")
    queue = vhost.declare_queue(None, "q", arguments={
        "x-max-priority": 5, "x-delivery-limit": 1,
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead",
    })  # fmt: skip
    queue.enqueue(message("h", 5))
    queue.enqueue(message("l", 1))
    for _ in range(2):
        entry = queue.get()
        assert entry is not None and entry.message.body == b"h"
        queue.handed_out(entry, False)
        queue.requeue([entry])
    assert [e.message.body for e in queue.ready] == [b"l"]
    letter = dead.get()
    assert letter is not None and letter.message.body == b"h"
    assert letter.message.decoded_properties.priority == 5


def test_requeue_into_a_level_with_older_waiting_messages() -> None:
    queue = PriorityQueue("q", arguments={"x-max-priority": 5})
    for i in range(4):
        queue.enqueue(message(f"x{i}", 2))
    taken = [queue.get() for _ in range(3)]
    queue.requeue([taken[2]])  # x2 behind x3
    queue.requeue([taken[0]])  # x0 at the front
    queue.requeue([taken[1]])  # x1 between them
    assert [e.message.body for e in queue.ready] == [b"x0", b"x1", b"x2", b"x3"]


# -- consumer priorities and single active consumer --------------------------------


def test_consumer_priorities_prefer_higher_and_round_robin_equals() -> None:
    queue = Queue("q")
    low = FakeConsumer("low", prefetch=10)
    a = FakeConsumer("a", prefetch=2)
    b = FakeConsumer("b", prefetch=2)
    queue.add_consumer(low, False, priority=1)
    queue.add_consumer(a, False, priority=5)
    queue.add_consumer(b, False, priority=5)
    for i in range(6):
        queue.enqueue(message(f"m{i}"))
    assert (a.got, b.got, low.got) == ([b"m0", b"m2"], [b"m1", b"m3"], [b"m4", b"m5"])


def test_queue_returns_to_plain_round_robin_when_priorities_leave() -> None:
    queue = Queue("q")
    high = FakeConsumer("high")
    plain = FakeConsumer("plain")
    queue.add_consumer(plain, False)
    assert queue.dispatch_groups is None
    queue.add_consumer(high, False, priority=3)
    assert queue.dispatch_groups is not None
    queue.remove_consumer(high)
    assert queue.dispatch_groups is None
    queue.enqueue(message("m"))
    assert plain.got == [b"m"]


def test_single_active_consumer_takeover_requeues_unacked_first() -> None:
    queue = Queue("q", arguments={"x-single-active-consumer": True})
    first = FakeConsumer("first", prefetch=2)
    second = FakeConsumer("second")
    queue.add_consumer(first, False)
    queue.add_consumer(second, False)
    for i in range(4):
        queue.enqueue(message(f"m{i}"))
    assert (first.got, second.got) == ([b"m0", b"m1"], [])
    # The first one's channel closes: consumers go, then its unacked come back.
    queue.remove_consumer(first)
    queue.requeue(first.unacked)
    assert second.got == [b"m0", b"m1", b"m2", b"m3"]
    assert [e.redelivered for e in second.unacked] == [True, True, False, False]


@pytest.mark.parametrize(
    "queue_type, expected", [("classic", ["c0", "c2", "c1", "c3"]), ("quorum", ["c0", "c1", "c2", "c3"])]
)
def test_single_active_successor_by_queue_type(queue_type: str, expected: list[str]) -> None:
    queue = Queue("q", arguments={"x-single-active-consumer": True, "x-queue-type": queue_type})
    consumers = [FakeConsumer(f"c{i}") for i in range(4)]
    for consumer, priority in zip(consumers, [0, 5, 10, 5], strict=True):
        queue.add_consumer(consumer, False, priority=priority)
    order = []
    for i in range(4):
        queue.enqueue(message(f"t{i}"))
        active = [c for c in consumers if c.got and c.got[-1] == f"t{i}".encode()]
        assert len(active) == 1
        order.append(active[0].tag)
        queue.remove_consumer(active[0])
        consumers.remove(active[0])
    assert order == expected


def test_pika_priority_message_reads_back(channel: Any) -> None:
    """The priority property survives the broker untouched (through a socket)."""
    queue = channel.queue_declare("", exclusive=True, arguments={"x-max-priority": 3}).method.queue
    channel.basic_publish("", queue, b"x", pika.BasicProperties(priority=250))
    _method, properties, _body = channel.basic_get(queue, auto_ack=True)
    assert properties.priority == 250
