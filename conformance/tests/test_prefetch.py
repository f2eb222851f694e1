"""basic.qos prefetch, per consumer and per channel as RabbitMQ defines them.

RabbitMQ departs from the spec: global=false limits each consumer (spec: the
channel), global=true limits the whole channel (spec: the connection).
"""

from __future__ import annotations

from conformance.helpers import (
    Consumer,
    connection_closed_with,
    get,
    publish,
    pump,
    sync,
    wait_for,
)

AREA = "prefetch (basic.qos)"


def fill(channel, queue, count):
    for i in range(count):
        publish(channel, "", queue, f"m{i}")
    sync(channel)


def settle(connection, *consumers, expected):
    """Wait for `expected` deliveries in total, then a little longer for any extra."""
    wait_for(connection, lambda: sum(len(c.deliveries) for c in consumers) >= expected)
    pump(connection)
    return [len(c.deliveries) for c in consumers]


def test_per_consumer_prefetch_limits_unacked(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    channel.basic_qos(prefetch_count=2)
    consumer = Consumer(channel, queue)
    assert settle(connection, consumer, expected=2) == [2]


def test_ack_releases_credit(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    channel.basic_qos(prefetch_count=2)
    consumer = Consumer(channel, queue)
    settle(connection, consumer, expected=2)
    channel.basic_ack(consumer.deliveries[0].delivery_tag)
    assert settle(connection, consumer, expected=3) == [3]
    assert consumer.bodies == [b"m0", b"m1", b"m2"]


def test_multiple_ack_releases_all_credit(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 10)
    channel.basic_qos(prefetch_count=3)
    consumer = Consumer(channel, queue)
    settle(connection, consumer, expected=3)
    channel.basic_ack(consumer.deliveries[-1].delivery_tag, multiple=True)
    assert settle(connection, consumer, expected=6) == [6]


def test_each_consumer_has_its_own_limit(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 10)
    channel.basic_qos(prefetch_count=2)
    first, second = Consumer(channel, queue), Consumer(channel, queue)
    assert settle(connection, first, second, expected=4) == [2, 2]


def test_global_prefetch_is_shared_by_the_channel(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 10)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    first, second = Consumer(channel, queue), Consumer(channel, queue)
    counts = settle(connection, first, second, expected=3)
    assert sum(counts) == 3


def test_global_and_per_consumer_limits_combine(connection, names):
    channel = connection.channel()
    queue_a, queue_b = names.queue("a"), names.queue("b")
    for queue in (queue_a, queue_b):
        channel.queue_declare(queue)
        fill(channel, queue, 10)
    # The order of RabbitMQ's own example (consumer-prefetch guide).
    channel.basic_qos(prefetch_count=2)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    first, second = Consumer(channel, queue_a), Consumer(channel, queue_b)
    counts = settle(connection, first, second, expected=3)
    # Each consumer stops at 2, the channel as a whole at 3.
    assert sum(counts) == 3
    assert max(counts) == 2


def test_prefetch_zero_is_unlimited(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 50)
    channel.basic_qos(prefetch_count=0)
    consumer = Consumer(channel, queue)
    assert settle(connection, consumer, expected=50) == [50]


def test_qos_change_applies_to_new_consumers(connection, names):
    channel = connection.channel()
    queue_a, queue_b = names.queue("a"), names.queue("b")
    for queue in (queue_a, queue_b):
        channel.queue_declare(queue)
        fill(channel, queue, 10)
    channel.basic_qos(prefetch_count=1)
    old = Consumer(channel, queue_a)
    channel.basic_qos(prefetch_count=3)
    new = Consumer(channel, queue_b)
    assert settle(connection, old, new, expected=4) == [1, 3]


def test_auto_ack_consumer_ignores_prefetch(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 10)
    channel.basic_qos(prefetch_count=1)
    consumer = Consumer(channel, queue, auto_ack=True)
    assert settle(connection, consumer, expected=10) == [10]


def test_basic_get_ignores_prefetch(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 3)
    channel.basic_qos(prefetch_count=1)
    held = [get(channel, queue) for _ in range(3)]
    assert all(d is not None for d in held)


def test_requeue_releases_credit_and_redelivers(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 1)
    channel.basic_qos(prefetch_count=1)
    consumer = Consumer(channel, queue)
    settle(connection, consumer, expected=1)
    channel.basic_nack(consumer.deliveries[0].delivery_tag, requeue=True)
    settle(connection, consumer, expected=2)
    assert consumer.bodies == [b"m0", b"m0"]
    assert [d.redelivered for d in consumer.deliveries] == [False, True]


def test_prefetch_size_is_not_implemented_540(connection):
    channel = connection.channel()
    # RabbitMQ does not implement prefetch-size: connection.close 540.
    with connection_closed_with(540):
        channel.basic_qos(prefetch_size=1024, prefetch_count=1)
