"""Stream queues over AMQP 0-9-1 (`x-queue-type: stream`, RabbitMQ 3.9+).

A stream is an append-only log: consuming removes nothing, each consumer
starts where its `x-stream-offset` says (first, last, next, an offset, a
timestamp, an interval) and every delivery carries its offset as the header
`x-stream-offset` (a long); consumers need a prefetch and must ack (the ack
only gives credit back). Declared durable only; the classic and quorum
arguments are refused; basic.get, queue.purge, basic.nack/reject and no-ack
consumers are refused with RabbitMQ's codes. Texts read off RabbitMQ 3.10.8.
"""

from __future__ import annotations

import datetime
import time

import pika
import pika.compat
import pytest

from conformance.helpers import (
    Consumer,
    channel_closed_with,
    connection_closed_with,
    pump,
    wait_for,
)

AREA = "streams (x-queue-type stream)"

STREAM = {"x-queue-type": "stream"}


def declare(channel, name, **arguments):
    channel.queue_declare(name, durable=True, arguments={**STREAM, **arguments})


def publish_confirmed(channel, name, bodies):
    """Publish with confirms, one by one (each its own chunk on RabbitMQ)."""
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", name, body, pika.BasicProperties(delivery_mode=2))


def consume(connection, name, offset=None, prefetch=100, expected=None, quiet=0.5):
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    consumer = Consumer(
        channel, name, arguments={} if offset is None else {"x-stream-offset": offset}
    )
    if expected:
        consumer.wait(expected)
    pump(connection, quiet)
    return consumer


def offsets(consumer):
    return [d.headers["x-stream-offset"] for d in consumer.deliveries]


@pytest.fixture
def ten(connection, names):
    name = names.queue("s")
    channel = connection.channel()
    declare(channel, name)
    publish_confirmed(channel, name, [b"m%d" % i for i in range(10)])
    return name


@pytest.mark.parametrize(
    ("options", "word"),
    [({"durable": False}, "non-durable"), ({"durable": True, "exclusive": True}, "exclusive-owner"),
     ({"durable": True, "auto_delete": True}, "auto-delete")],
)  # fmt: skip
def test_stream_must_be_durable_and_not_exclusive_or_auto_delete(channel, names, options, word):
    name = names.queue("s")
    with channel_closed_with(
        406, f"PRECONDITION_FAILED - invalid property '{word}' for queue '{name}' in vhost '/'"
    ):
        channel.queue_declare(name, arguments=STREAM, **options)


@pytest.mark.parametrize(
    "arguments",
    [{"x-max-length-bytes": 1000}, {"x-max-age": "7D"}, {"x-max-age": "10m"},
     {"x-stream-max-segment-size-bytes": 1000}, {"x-initial-cluster-size": 1},
     {"x-queue-leader-locator": "balanced"}],
)  # fmt: skip
def test_stream_takes_its_arguments(channel, names, arguments):
    declare(channel, names.queue("s"), **arguments)


@pytest.mark.parametrize(
    ("key", "value"),
    [("x-max-length", 10), ("x-message-ttl", 10), ("x-dead-letter-exchange", "x"),
     ("x-expires", 1000), ("x-max-priority", 5), ("x-single-active-consumer", True),
     ("x-overflow", "drop-head"), ("x-delivery-limit", 1)],
)  # fmt: skip
def test_stream_refuses_other_queue_types_arguments(channel, names, key, value):
    name = names.queue("s")
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{name}' in vhost '/' "
        "of queue type rabbit_stream_queue",
    ):
        declare(channel, name, **{key: value})


def test_max_age_must_be_a_string(channel, names):
    name = names.queue("s")
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-age' for queue '{name}' in vhost '/': "
        "{unacceptable_type,signedint}",
    ):
        declare(channel, name, **{"x-max-age": 5})


def test_first_reads_the_whole_log_with_offsets(connection, ten):
    consumer = consume(connection, ten, "first", expected=10)
    assert consumer.bodies == [b"m%d" % i for i in range(10)]
    assert offsets(consumer) == list(range(10))
    assert not any(d.redelivered for d in consumer.deliveries)


def test_offset_header_is_a_long(connection, ten):
    # pika decodes a long-long ('l' or 'L') as its `long` class, other integers as int.
    consumer = consume(connection, ten, 3, expected=7)
    assert offsets(consumer) == [3, 4, 5, 6, 7, 8, 9]
    assert type(consumer.deliveries[0].headers["x-stream-offset"]) is pika.compat.long


def test_consuming_removes_nothing(connect, ten):
    assert len(consume(connect(), ten, "first", expected=10).deliveries) == 10
    assert len(consume(connect(), ten, "first", expected=10).deliveries) == 10


def test_last_starts_at_the_last_message(connection, ten):
    consumer = consume(connection, ten, "last", expected=1)
    assert offsets(consumer) == [9]


def test_next_waits_for_new_messages(connection, ten):
    consumer = consume(connection, ten, "next")
    assert consumer.deliveries == []
    publish_confirmed(connection.channel(), ten, [b"new"])
    consumer.wait(1)
    assert offsets(consumer) == [10] and consumer.bodies == [b"new"]


def test_the_default_offset_is_next(connection, ten):
    assert consume(connection, ten).deliveries == []


def test_numeric_offset(connection, ten):
    consumer = consume(connection, ten, 6, expected=4)
    assert offsets(consumer) == [6, 7, 8, 9]


def test_offset_before_the_start_is_the_first(connection, ten):
    consumer = consume(connection, ten, -1, expected=10)
    assert offsets(consumer) == list(range(10))


def test_timestamp_and_interval_offsets(connect, names):
    connection = connect()
    name = names.queue("s")
    channel = connection.channel()
    declare(channel, name)
    publish_confirmed(channel, name, [b"old"])
    time.sleep(3.1)
    since = datetime.datetime.fromtimestamp(int(time.time()), tz=datetime.UTC)
    publish_confirmed(channel, name, [b"new1", b"new2"])
    assert consume(connect(), name, "2s", expected=2).bodies == [b"new1", b"new2"]
    assert consume(connect(), name, since, expected=2).bodies == [b"new1", b"new2"]
    assert consume(connect(), name, "1h", expected=3).bodies == [b"old", b"new1", b"new2"]
    future = datetime.datetime.fromtimestamp(int(time.time()) + 100, tz=datetime.UTC)
    assert consume(connect(), name, future).deliveries == []


def test_prefetch_is_the_credit_and_an_ack_returns_it(connection, ten):
    consumer = consume(connection, ten, "first", prefetch=3, expected=3)
    assert offsets(consumer) == [0, 1, 2]
    consumer.channel.basic_ack(consumer.deliveries[-1].delivery_tag, multiple=True)
    consumer.wait(6)
    pump(connection)
    assert offsets(consumer) == [0, 1, 2, 3, 4, 5]


def test_consumers_read_at_their_own_offsets(connection, ten):
    a = consume(connection, ten, "first", expected=10)
    b = consume(connection, ten, 7, expected=3)
    assert offsets(a) == list(range(10))
    assert offsets(b) == [7, 8, 9]


def test_a_publishers_offset_header_is_replaced(connection, names):
    name = names.queue("s")
    channel = connection.channel()
    declare(channel, name)
    channel.confirm_delivery()
    channel.basic_publish(
        "", name, b"a", pika.BasicProperties(headers={"x-stream-offset": 999, "app": "kept"})
    )
    consumer = consume(connection, name, "first", expected=1)
    headers = consumer.deliveries[0].headers
    assert headers["x-stream-offset"] == 0 and headers["app"] in (b"kept", "kept")


def test_expiration_does_not_apply(connection, names):
    name = names.queue("s")
    channel = connection.channel()
    declare(channel, name)
    channel.confirm_delivery()
    channel.basic_publish("", name, b"x", pika.BasicProperties(expiration="1"))
    time.sleep(0.1)
    assert consume(connection, name, "first", expected=1).bodies == [b"x"]


@pytest.mark.parametrize("qos", [None, 0, "global"])
def test_consumer_without_prefetch_is_refused(connection, ten, qos):
    channel = connection.channel()
    if qos == "global":
        channel.basic_qos(prefetch_count=5, global_qos=True)
    elif qos is not None:
        channel.basic_qos(prefetch_count=qos)
    with channel_closed_with(
        406, f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{ten}' in vhost '/''"
    ):
        channel.basic_consume(ten, lambda *a: None)


def test_no_ack_consumer_is_refused(connection, ten):
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    with connection_closed_with(
        540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues "
        f"queue '{ten}' in vhost '/'",
    ):  # fmt: skip
        channel.basic_consume(ten, lambda *a: None, auto_ack=True)


def test_basic_get_is_refused(connection, ten):
    with connection_closed_with(
        540, f"NOT_IMPLEMENTED - basic.get not supported by stream queues queue '{ten}' in vhost '/'"
    ):
        connection.channel().basic_get(ten)


def test_purge_is_refused(connection, ten):
    with connection_closed_with(
        540, f"NOT_IMPLEMENTED - queue.purge not supported by stream queues queue '{ten}' in vhost '/'"
    ):
        connection.channel().queue_purge(ten)


@pytest.mark.parametrize("how", ["nack-requeue", "nack", "reject-requeue", "reject"])
def test_nack_and_reject_are_refused(connection, ten, how):
    consumer = consume(connection, ten, "first", prefetch=2, expected=2)
    tag = consumer.deliveries[0].delivery_tag
    with connection_closed_with(
        540, "NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues "
        f"queue '{ten}' in vhost '/'",
    ):  # fmt: skip
        if how.startswith("nack"):
            consumer.channel.basic_nack(tag, requeue=how.endswith("requeue"))
        else:
            consumer.channel.basic_reject(tag, requeue=how.endswith("requeue"))
        pump(connection, 1.0)
        consumer.channel.basic_qos(prefetch_count=2)


def test_retention_by_bytes_drops_the_oldest_segments(connect, names):
    connection = connect()
    name = names.queue("s")
    channel = connection.channel()
    declare(channel, name, **{"x-max-length-bytes": 30_000, "x-stream-max-segment-size-bytes": 10_000})
    publish_confirmed(channel, name, [b"%04d" % i + b"x" * 1020 for i in range(100)])

    def first_offset():
        consumer = consume(connect(), name, "first", quiet=0.2)
        return offsets(consumer)[:1]

    assert wait_for(connection, lambda: (first_offset() or [0])[0] > 0, timeout=10)
    consumer = consume(connect(), name, "first", expected=1, quiet=1.0)
    # The newest messages stay, in order, from a segment's start; RabbitMQ's
    # offsets under rolling segments are increasing, not always consecutive.
    got = offsets(consumer)
    assert got == sorted(set(got))
    bodies = [int(body[:4]) for body in consumer.bodies]
    assert 0 < bodies[0] and bodies == list(range(bodies[0], 100))


@pytest.mark.parametrize(
    "arguments", [{"x-priority": 5}, {"x-priority": "a"}, {"x-cancel-on-ha-failover": True}]
)
def test_consumer_priority_and_ha_arguments_are_refused(connection, ten, arguments):
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    key = next(iter(arguments))
    with channel_closed_with(
        406, f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{ten}' in vhost '/' "
        "of queue type rabbit_stream_queue",
    ):  # fmt: skip
        channel.basic_consume(ten, lambda *a: None, arguments=arguments)


def test_prefetch_is_checked_before_no_ack(connection, ten):
    with channel_closed_with(
        406, f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{ten}' in vhost '/''"
    ):
        connection.channel().basic_consume(ten, lambda *a: None, auto_ack=True)


def test_an_exclusive_consumer_does_not_lock_the_stream(connect, ten):
    first = consume(connect(), ten, "first", expected=10)
    first.channel.basic_cancel(first.consumer_tag)
    channel = connect().channel()
    channel.basic_qos(prefetch_count=10)
    exclusive = Consumer(channel, ten, exclusive=True, arguments={"x-stream-offset": "first"})
    exclusive.wait(10)
    other = consume(connect(), ten, "first", expected=10)
    assert len(other.deliveries) == 10 and len(exclusive.deliveries) == 10
