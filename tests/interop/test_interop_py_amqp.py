"""py-amqp (kombu's default transport) drives the broker end to end."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import amqp
import pytest


@pytest.fixture
def connection(interop_url):
    parts = urlsplit(interop_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(
        f"{parts.hostname}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        connect_timeout=10,
    )
    connection.connect()
    yield connection
    connection.close()


def test_confirmed_publish_get_and_consume(connection, unique_name):
    channel = connection.channel()
    channel.confirm_select()
    queue = unique_name()
    channel.queue_declare(queue, auto_delete=True)
    for i in range(10):
        channel.basic_publish(
            amqp.Message(f"m{i}", content_type="text/plain", application_headers={"i": i}),
            routing_key=queue,
        )
    message = channel.basic_get(queue, no_ack=True)
    assert message.body == "m0"
    assert message.headers == {"i": 0}

    received = []
    def on_message(message: amqp.Message) -> None:
        received.append(message.body)
        channel.basic_ack(message.delivery_tag)

    channel.basic_consume(queue, callback=on_message)
    while len(received) < 9:
        connection.drain_events(timeout=5)
    assert received == [f"m{i}" for i in range(1, 10)]


def test_exchange_to_exchange_and_headers(connection, unique_name):
    channel = connection.channel()
    source, target = unique_name("src"), unique_name("dst")
    channel.exchange_declare(source, "fanout", auto_delete=True)
    channel.exchange_declare(target, "headers", auto_delete=True)
    channel.exchange_bind(target, source)
    queue = unique_name()
    channel.queue_declare(queue, auto_delete=True)
    channel.queue_bind(queue, target, arguments={"x-match": "any", "kind": "a"})
    channel.basic_publish(amqp.Message("yes", application_headers={"kind": "a"}), source)
    channel.basic_publish(amqp.Message("no", application_headers={"kind": "b"}), source)
    # A synchronous method after the publishes: the channel has routed them.
    channel.exchange_declare(source, "fanout", passive=True)
    message = channel.basic_get(queue, no_ack=True)
    assert message is not None and message.body == "yes"
    assert channel.basic_get(queue, no_ack=True) is None
    channel.queue_delete(queue)


def test_soft_error_raises_with_reply_code(connection, unique_name):
    channel = connection.channel()
    with pytest.raises(amqp.exceptions.NotFound) as exc:
        channel.queue_declare(unique_name("missing"), passive=True)
    assert exc.value.reply_code == 404
