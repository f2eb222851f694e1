"""The model's statistics counters, without a server: what is counted, what is derived.

The hot path counts with integer increments only where it must (a
consumer's deliveries, an exchange's messages, a channel's publishes) and
derives the rest (a queue's publishes from its arrival sequence, acks from
what is unacknowledged and what was returned); these tests pin the
derivations down at the queue, where every settling path meets.
"""

from __future__ import annotations

from broker.core.message import Message, QueuedMessage
from broker.core.queue import Queue
from broker.core.stats import QueueCounters
from broker.core.vhost import VHost
from broker.core.vhosts import VHostRegistry
from protocol.properties import BasicProperties


class StubConsumer:
    """A consumer with unlimited credit that keeps what it is handed."""

    def __init__(self, tag: str, no_ack: bool = False) -> None:
        self.tag = tag
        self.no_ack = no_ack
        self.delivered = 0
        self.redelivered = 0
        self.got: list[QueuedMessage] = []

    def has_credit(self) -> bool:
        return True

    def deliver(self, queue: Queue, entry: QueuedMessage) -> None:
        self.got.append(entry)

    def cancelled_by_queue(self) -> None:
        pass


def _message(routing_key: str = "q") -> Message:
    return Message("", routing_key, BasicProperties().encode(), b"x")


def test_deliveries_acks_requeues_and_rejects_add_up() -> None:
    vhost = VHost("/")
    queue = vhost.declare_queue(None, "q")
    for _ in range(5):
        queue.enqueue(_message())
    consumer = StubConsumer("c")
    queue.add_consumer(consumer, exclusive=False)
    assert (consumer.delivered, queue.unacked_count) == (5, 5)
    a, b, c, d, e = consumer.got
    queue.ack(a)
    queue.requeue([b])            # redelivered at once to the consumer
    queue.reject([c])             # dropped (no dead-letter exchange)
    assert consumer.delivered == 6 and consumer.redelivered == 1
    assert queue.counters() == QueueCounters(publish=5, deliver=6, redeliver=1, ack=1)
    for entry in (d, e, consumer.got[-1]):
        queue.ack(entry)
    assert queue.counters().ack == 4
    # The consumer goes: its deliveries stay the queue's.
    queue.remove_consumer(consumer)
    assert queue.counters() == QueueCounters(publish=5, deliver=6, redeliver=1, ack=4)


def test_gets_and_no_ack_consumers_are_counted_apart() -> None:
    vhost = VHost("/")
    queue = vhost.declare_queue(None, "q")
    for _ in range(4):
        queue.enqueue(_message())
    entry = queue.get()
    assert entry is not None
    queue.handed_out(entry, no_ack=False)
    auto = queue.get()
    assert auto is not None
    queue.handed_out(auto, no_ack=True)
    queue.requeue([entry])
    again = queue.get()
    assert again is entry and again.redelivered
    queue.handed_out(again, no_ack=False)
    queue.ack(again)
    fast = StubConsumer("fast", no_ack=True)
    queue.add_consumer(fast, exclusive=False)
    assert queue.get() is None
    assert queue.counters() == QueueCounters(
        publish=4, get=2, get_no_ack=1, get_empty=1, deliver_no_ack=2, redeliver=1, ack=1
    )
    assert queue.counters().deliver_get == 5


def test_dead_letters_and_recovered_messages_are_not_publishes() -> None:
    registry = VHostRegistry()
    vhost, _ = registry.create("/")
    vhost.declare_queue(None, "dlq")
    queue = vhost.declare_queue(None, "q", arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    queue.enqueue(_message())
    entry = queue.get()
    assert entry is not None
    queue.handed_out(entry, no_ack=False)
    queue.reject([entry])
    dlq = vhost.queues["dlq"]
    assert dlq.message_count == 1 and dlq.counters().publish == 0
    assert queue.counters().publish == 1
    assert registry.counters.dead_lettered["rejected"] == 1


def test_a_dead_letter_a_full_queue_refuses_is_not_counted() -> None:
    # reject-publish: the dead letter does not join the queue, so it is
    # neither a publish nor an arrival (RabbitMQ drops it, counting nothing).
    registry = VHostRegistry()
    vhost, _ = registry.create("/")
    dlq = vhost.declare_queue(None, "dlq", arguments={
        "x-max-length": 1, "x-overflow": "reject-publish"})
    queue = vhost.declare_queue(None, "q", arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    dlq.enqueue(_message("dlq"))  # full now
    for _ in range(3):
        queue.enqueue(_message())
    for _ in range(3):
        entry = queue.get()
        assert entry is not None
        queue.handed_out(entry, no_ack=False)
        queue.reject([entry])
    assert dlq.message_count == 1
    assert dlq.counters().publish == 1  # the one published to it, nothing else
    assert queue.counters().publish == 3


def test_a_vhost_keeps_closed_channels_exchange_counts_while_the_exchange_lives() -> None:
    vhost = VHost("/")
    vhost.declare_exchange("x", "fanout")
    vhost.retire_exchange_counts("x", 3, 6)
    vhost.retire_exchange_counts("x", 1, 2)
    vhost.retire_exchange_counts("gone", 1, 1)  # no such exchange: nothing kept
    assert vhost.retired_exchanges == {"x": [4, 8]}
    vhost.delete_exchange("x")
    assert vhost.retired_exchanges == {}


def test_churn_is_counted_for_the_whole_broker() -> None:
    registry = VHostRegistry()
    one, _ = registry.create("one")
    two, _ = registry.create("two")
    one.declare_queue(None, "q")
    one.declare_queue(None, "q")  # declared again: declared, not created
    two.declare_queue(None, "r")
    two.delete_queue(None, "r")
    assert registry.counters.churn()["queue_declared"] == 3
    assert registry.counters.churn()["queue_created"] == 2
    assert registry.counters.churn()["queue_deleted"] == 1
    assert one.counters is two.counters is registry.counters


def test_a_channel_forgets_deleted_queues_one_by_one_but_not_their_counts() -> None:
    """A long-lived channel getting from many short-lived queues stays small."""
    import trio

    from broker.auth.access import AccessControl
    from broker.session.channel import QUEUE_USE_LIMIT, Channel
    from broker.session.output import Output

    class Owner:
        output = Output(trio.testing.MemorySendStream())
        frame_max = 131072
        user = "guest"
        consumer_cancel_notify = True
        held_bytes = 0
        peer_text = "test"

        def send_method(self, channel: int, method: object) -> None: ...

        def note_backlog(self, queue: Queue) -> None: ...

        def owe_confirms(self, channel: Channel) -> None: ...

        def release_soon(self, channel: Channel) -> None: ...

    from protocol import methods as m

    vhost = VHost("/")
    access = AccessControl.with_default_user().access("guest", "/")
    channel = Channel(1, Owner(), vhost, access, None)
    for n in range(QUEUE_USE_LIMIT * 2):
        queue = vhost.declare_queue(None, f"temp-{n}")
        queue.enqueue(_message(f"temp-{n}"))
        channel.on_basic_get(m.BasicGet(queue=f"temp-{n}", no_ack=True))
        vhost.delete_queue(None, f"temp-{n}")
    assert len(channel.queue_use) <= QUEUE_USE_LIMIT
    assert channel.counters().totals.get_no_ack == QUEUE_USE_LIMIT * 2
