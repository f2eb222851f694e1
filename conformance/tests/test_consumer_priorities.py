"""Consumer priorities: basic.consume's x-priority argument (RabbitMQ extension).

Higher-priority consumers get messages while they have credit, equal
priorities share round robin, lower ones get messages only while all higher
ones are blocked; the argument's 406 texts as RabbitMQ 3.10.8 writes them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from conformance.helpers import Consumer, channel_closed_with, publish, pump, sync

AREA = "consumer priorities"


def consumer(connection, queue, prefetch, priority=None):
    """A consumer on its own channel with basic.qos prefetch `prefetch`."""
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    arguments = {"x-priority": priority} if priority is not None else None
    return Consumer(channel, queue, arguments=arguments)


def fill(channel, queue, count, prefix="m"):
    for i in range(count):
        publish(channel, "", queue, f"{prefix}{i}")
    sync(channel)


def test_higher_priority_consumer_gets_messages_first(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    low = consumer(connection, queue, prefetch=10, priority=1)
    high = consumer(connection, queue, prefetch=10, priority=5)
    fill(channel, queue, 4)
    pump(connection)
    assert high.bodies == [b"m0", b"m1", b"m2", b"m3"]
    assert low.bodies == []


def test_lower_priority_gets_messages_only_when_higher_is_blocked(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    low = consumer(connection, queue, prefetch=10, priority=1)
    high = consumer(connection, queue, prefetch=2, priority=5)
    fill(channel, queue, 5)
    pump(connection)
    assert high.bodies == [b"m0", b"m1"]
    assert low.bodies == [b"m2", b"m3", b"m4"]


def test_equal_priorities_share_round_robin(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    low = consumer(connection, queue, prefetch=2, priority=1)
    first = consumer(connection, queue, prefetch=2, priority=5)
    second = consumer(connection, queue, prefetch=2, priority=5)
    fill(channel, queue, 7)
    pump(connection)
    assert first.bodies == [b"m0", b"m2"]
    assert second.bodies == [b"m1", b"m3"]
    assert low.bodies == [b"m4", b"m5"]


def test_higher_priority_consumer_gets_credit_back_first(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    low = consumer(connection, queue, prefetch=1, priority=0)
    high = consumer(connection, queue, prefetch=1, priority=9)
    fill(channel, queue, 4)
    pump(connection)
    assert (high.bodies, low.bodies) == ([b"m0"], [b"m1"])
    high.channel.basic_ack(high.deliveries[0].delivery_tag)
    pump(connection)
    assert high.bodies == [b"m0", b"m2"]
    low.channel.basic_ack(low.deliveries[0].delivery_tag)
    pump(connection)
    assert low.bodies == [b"m1", b"m3"]


def test_negative_priority_ranks_below_default(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    negative = consumer(connection, queue, prefetch=10, priority=-5)
    default = consumer(connection, queue, prefetch=1)
    fill(channel, queue, 3)
    pump(connection)
    assert default.bodies == [b"m0"]
    assert negative.bodies == [b"m1", b"m2"]


def test_large_priority_is_accepted(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    big = consumer(connection, queue, prefetch=10, priority=2**40)
    small = consumer(connection, queue, prefetch=10, priority=2**31)
    fill(channel, queue, 2)
    pump(connection)
    assert (big.bodies, small.bodies) == ([b"m0", b"m1"], [])


def test_cancelled_high_priority_consumer_hands_over(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    low = consumer(connection, queue, prefetch=10, priority=1)
    high = consumer(connection, queue, prefetch=10, priority=5)
    fill(channel, queue, 1, prefix="a")
    pump(connection)
    high.cancel()
    fill(channel, queue, 1, prefix="b")
    pump(connection)
    assert (high.bodies, low.bodies) == ([b"a0"], [b"b0"])


def test_consumer_priorities_on_a_priority_queue(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-priority": 5})
    low = consumer(connection, queue, prefetch=1, priority=1)
    high = consumer(connection, queue, prefetch=1, priority=5)
    fill(channel, queue, 2)
    pump(connection)
    assert (high.bodies, low.bodies) == ([b"m0"], [b"m1"])
    publish(channel, "", queue, "plain")
    publish(channel, "", queue, "urgent", priority=5)
    sync(channel)
    low.channel.basic_ack(low.deliveries[0].delivery_tag)
    pump(connection)
    high.channel.basic_ack(high.deliveries[0].delivery_tag)
    pump(connection)
    assert (high.bodies, low.bodies) == ([b"m0", b"plain"], [b"m1", b"urgent"])


@pytest.mark.parametrize(
    "value, kind",
    [("5", "longstr"), (True, "bool"), (None, "void"), (Decimal("1.5"), "decimal"), ([1], "array")],
)
def test_invalid_consumer_priority_is_406(connection, channel, names, value, kind):
    queue = names.queue()
    channel.queue_declare(queue)
    other = connection.channel()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' in vhost '/': "
        f'"expected integer, got {kind}"',
    ):
        other.basic_consume(queue, lambda *a: None, arguments={"x-priority": value})


def test_float_consumer_priority_is_406(py_amqp_channel, names):
    import amqp

    queue = names.queue()
    py_amqp_channel.queue_declare(queue)
    with pytest.raises(amqp.exceptions.PreconditionFailed) as raised:
        py_amqp_channel.basic_consume(queue, callback=lambda m: None, arguments={"x-priority": 2.5})
    assert raised.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' "
        "in vhost '/': \"expected integer, got double\""
    )


def test_unknown_consumer_argument_is_accepted(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    receiver = connection.channel()
    Consumer(receiver, queue, arguments={"x-foo": 1})


def test_invalid_cancel_on_ha_failover_is_406(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    other = connection.channel()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-cancel-on-ha-failover' for queue '{queue}' "
        "in vhost '/': {unacceptable_type,longstr}",
    ):
        other.basic_consume(queue, lambda *a: None, arguments={"x-cancel-on-ha-failover": "x"})


def test_stream_offset_on_classic_queue_is_406(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    other = connection.channel()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{queue}' "
        "in vhost '/' of queue type rabbit_classic_queue",
    ):
        other.basic_consume(queue, lambda *a: None, arguments={"x-stream-offset": 1})
