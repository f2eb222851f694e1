"""queue.declare: names, passive, durable, exclusive, auto-delete, arguments (spec 1.7.2.1)."""

from __future__ import annotations

import pytest

from conformance.helpers import Consumer, channel_closed_with, get, publish, sync

AREA = "queue declare"


def test_server_named_queue(channel, names):
    result = channel.queue_declare("", exclusive=True)
    name = names.track_queue(result.method.queue)
    # RabbitMQ names them amq.gen-<random>; the spec only requires a non-empty name.
    assert name
    assert name.startswith("amq.gen-")
    assert result.method.message_count == 0
    assert result.method.consumer_count == 0


def test_server_names_are_unique(channel, names):
    first = names.track_queue(channel.queue_declare("", exclusive=True).method.queue)
    second = names.track_queue(channel.queue_declare("", exclusive=True).method.queue)
    assert first != second


def test_declare_ok_reports_counts(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    for _ in range(3):
        publish(channel, "", queue, b"m")
    sync(channel)
    consumer_channel = channel.connection.channel()
    consumer_channel.basic_qos(prefetch_count=1)
    Consumer(consumer_channel, queue)
    result = channel.queue_declare(queue)
    assert result.method.queue == queue
    assert result.method.consumer_count == 1
    # The consumer may already hold one message (prefetch 1); the rest are ready.
    assert result.method.message_count in (2, 3)


def test_message_count_counts_ready_messages_only(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    for _ in range(3):
        publish(channel, "", queue, b"m")
    assert get(channel, queue) is not None  # one now unacknowledged
    assert channel.queue_declare(queue, passive=True).method.message_count == 2


def test_passive_declare_of_existing_queue(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=True)
    publish(channel, "", queue, b"m")
    sync(channel)
    result = channel.queue_declare(queue, passive=True)
    assert result.method.queue == queue
    assert result.method.message_count == 1


def test_passive_declare_of_missing_queue_is_404(channel, names):
    with channel_closed_with(404):
        channel.queue_declare(names.queue(), passive=True)


def test_passive_declare_ignores_other_flags(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=False)
    channel.queue_declare(queue, passive=True, durable=True, auto_delete=True)


def test_redeclare_with_same_flags_is_ok(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=True, arguments={"x-max-length": 10})
    channel.queue_declare(queue, durable=True, arguments={"x-max-length": 10})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"durable": False}, {"durable": True}),
        ({"durable": True}, {"durable": False}),
        ({"auto_delete": False}, {"auto_delete": True}),
        ({"arguments": {"x-max-length": 10}}, {"arguments": {"x-max-length": 11}}),
        ({"arguments": {"x-max-length": 10}}, {"arguments": {}}),
        ({"arguments": {"x-message-ttl": 1000}}, {"arguments": {"x-message-ttl": 2000}}),
    ],
    ids=["durable", "non-durable", "auto-delete", "argument-value", "argument-missing", "ttl"],
)
def test_redeclare_with_different_properties_is_406(channel, names, first, second):
    queue = names.queue()
    channel.queue_declare(queue, **first)
    with channel_closed_with(406):
        channel.queue_declare(queue, **second)


def test_declare_with_amq_prefix_is_403(channel):
    with channel_closed_with(403):
        channel.queue_declare("amq.conformance-reserved")


def test_exclusive_queue_is_locked_to_its_connection(connect, names):
    owner = connect().channel()
    queue = names.queue()
    owner.queue_declare(queue, exclusive=True)
    other = connect().channel()
    with channel_closed_with(405):
        other.queue_declare(queue)


def test_exclusive_queue_refuses_other_connection_consume_with_405(connect, names):
    owner = connect().channel()
    queue = names.queue()
    owner.queue_declare(queue, exclusive=True)
    other = connect().channel()
    with channel_closed_with(405):
        other.basic_consume(queue, lambda *a: None)


def test_exclusive_queue_is_usable_from_another_channel_of_its_connection(connection, names):
    queue = names.queue()
    connection.channel().queue_declare(queue, exclusive=True)
    second = connection.channel()
    publish(second, "", queue, b"m")
    assert get(second, queue, auto_ack=True).body == b"m"


def test_exclusive_queue_is_deleted_when_connection_closes(connect, names):
    owner = connect()
    queue = names.queue()
    owner.channel().queue_declare(queue, exclusive=True)
    owner.close()
    with channel_closed_with(404):
        connect().channel().queue_declare(queue, passive=True)


def test_auto_delete_queue_survives_until_a_consumer_came_and_went(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=True)
    # Never consumed from: it stays.
    channel.queue_declare(queue, passive=True)
    consumer = Consumer(channel, queue)
    second = Consumer(channel, queue)
    consumer.cancel()
    channel.queue_declare(queue, passive=True)  # one consumer left
    second.cancel()
    with channel_closed_with(404):
        channel.queue_declare(queue, passive=True)


def test_auto_delete_queue_goes_when_consumer_channel_closes(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=True)
    consumer_channel = connection.channel()
    Consumer(consumer_channel, queue)
    consumer_channel.close()
    with channel_closed_with(404):
        channel.queue_declare(queue, passive=True)


def test_empty_queue_name_means_last_declared_queue(channel, names):
    """Spec 1.7.2.3: an empty queue name refers to the channel's last declared queue."""
    queue = names.queue()
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    channel.queue_declare(queue)
    channel.queue_bind("", exchange, "")
    publish(channel, exchange, "", b"via-last-declared")
    assert get(channel, "", auto_ack=True).body == b"via-last-declared"


def test_empty_queue_name_without_a_declared_queue_is_404(connection):
    channel = connection.channel()
    # RabbitMQ: no queue was declared on this channel, so "" names nothing.
    with channel_closed_with(404):
        channel.queue_bind("", "amq.fanout", "")


def test_invalid_argument_type_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-max-length": "ten"})


def test_negative_max_length_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-max-length": -1})


def test_unknown_x_argument_is_accepted(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-conformance-unknown": "kept"})
    channel.queue_declare(queue, passive=True)
