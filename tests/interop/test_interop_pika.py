"""pika (BlockingConnection) drives the broker end to end."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest


@pytest.fixture
def connection(interop_url):
    connection = pika.BlockingConnection(pika.URLParameters(interop_url))
    yield connection
    if connection.is_open:
        connection.close()


def test_topology_confirms_consume_and_ack(connection, unique_name):
    channel = connection.channel()
    exchange, queue = unique_name("x"), unique_name("q")
    channel.exchange_declare(exchange, "topic", auto_delete=True)
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "orders.*")
    channel.confirm_delivery()
    for i in range(100):
        channel.basic_publish(
            exchange,
            "orders.created",
            f"order-{i}".encode(),
            pika.BasicProperties(content_type="text/plain", headers={"seq": i}, delivery_mode=2),
        )
    channel.basic_qos(prefetch_count=10)
    received = []
    for method, properties, body in channel.consume(queue, inactivity_timeout=5):
        assert method is not None, "timed out waiting for messages"
        received.append((body, properties.headers["seq"], properties.content_type))
        channel.basic_ack(method.delivery_tag)
        if len(received) == 100:
            break
    channel.cancel()
    assert received == [(f"order-{i}".encode(), i, "text/plain") for i in range(100)]
    assert channel.queue_delete(queue).method.message_count == 0


def test_basic_get_reject_and_redelivery(connection, unique_name):
    channel = connection.channel()
    queue = unique_name()
    channel.queue_declare(queue, auto_delete=True)
    channel.basic_publish("", queue, b"retry me")
    method, _, body = channel.basic_get(queue)
    assert (body, method.redelivered) == (b"retry me", False)
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"retry me", True)
    channel.queue_delete(queue)


def test_unroutable_mandatory_raises_in_confirm_mode(connection, unique_name):
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("", unique_name("missing"), b"x", mandatory=True)


def test_channel_error_reports_reply_code(connection, unique_name):
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        channel.queue_declare(unique_name("missing"), passive=True)
    assert exc.value.reply_code == 404
    assert connection.channel().is_open
