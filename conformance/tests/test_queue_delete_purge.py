"""queue.purge, queue.delete (if-unused, if-empty), queue.bind/unbind errors (spec 1.7.2)."""

from __future__ import annotations

from conformance.helpers import Consumer, channel_closed_with, get, publish, sync, wait_for

AREA = "queue purge/delete/bind"


def fill(channel, queue, count):
    for i in range(count):
        publish(channel, "", queue, f"m{i}")
    sync(channel)


def test_purge_returns_count_and_empties(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 4)
    assert channel.queue_purge(queue).method.message_count == 4
    assert get(channel, queue) is None


def test_purge_keeps_unacked_messages(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 3)
    held = get(channel, queue)
    assert channel.queue_purge(queue).method.message_count == 2
    channel.basic_nack(held.delivery_tag, requeue=True)
    redelivered = get(channel, queue, auto_ack=True)
    assert redelivered.body == b"m0"
    assert redelivered.redelivered is True


def test_purge_missing_queue_is_404(channel, names):
    with channel_closed_with(404):
        channel.queue_purge(names.queue())


def test_delete_returns_message_count(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    assert channel.queue_delete(queue).method.message_count == 5
    with channel_closed_with(404):
        channel.queue_declare(queue, passive=True)


def test_delete_missing_queue_is_ok(channel, names):
    # RabbitMQ made queue.delete idempotent: delete-ok with message_count 0.
    assert channel.queue_delete(names.queue()).method.message_count == 0


def test_delete_if_unused_with_consumer_is_406(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    Consumer(connection.channel(), queue)
    with channel_closed_with(406):
        channel.queue_delete(queue, if_unused=True)


def test_delete_if_unused_without_consumer_is_ok(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 1)
    assert channel.queue_delete(queue, if_unused=True).method.message_count == 1


def test_delete_if_empty_with_messages_is_406(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 1)
    with channel_closed_with(406):
        channel.queue_delete(queue, if_empty=True)


def test_delete_if_empty_when_empty_is_ok(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    assert channel.queue_delete(queue, if_empty=True).method.message_count == 0


def test_delete_cancels_consumers_with_notification(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer_channel = connection.channel()
    cancelled = []
    consumer_channel.add_on_cancel_callback(lambda frame: cancelled.append(frame))
    consumer = Consumer(consumer_channel, queue)
    channel.queue_delete(queue)
    # consumer_cancel_notify: the broker sends basic.cancel to the consumer.
    assert wait_for(connection, lambda: cancelled, timeout=2)
    assert cancelled[0].method.consumer_tag == consumer.consumer_tag


def test_delete_removes_bindings(channel, names):
    queue, exchange = names.queue(), names.exchange()
    channel.exchange_declare(exchange, "fanout")
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "")
    channel.queue_delete(queue)
    channel.queue_declare(queue)
    publish(channel, exchange, "", b"m")
    sync(channel)
    assert get(channel, queue) is None


def test_bind_missing_queue_is_404(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    with channel_closed_with(404):
        channel.queue_bind(names.queue(), exchange, "")


def test_bind_missing_exchange_is_404(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    with channel_closed_with(404):
        channel.queue_bind(queue, names.exchange(), "")


def test_unbind_missing_queue_is_ok(channel, names):
    # RabbitMQ 3.x treats queue.unbind as idempotent, even for a missing queue.
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    channel.queue_unbind(names.queue(), exchange, "")
    assert channel.is_open


def test_purge_of_other_connections_exclusive_queue_is_405(connect, names):
    queue = names.queue()
    connect().channel().queue_declare(queue, exclusive=True)
    with channel_closed_with(405):
        connect().channel().queue_purge(queue)


def test_delete_of_other_connections_exclusive_queue_is_405(connect, names):
    queue = names.queue()
    connect().channel().queue_declare(queue, exclusive=True)
    with channel_closed_with(405):
        connect().channel().queue_delete(queue)
