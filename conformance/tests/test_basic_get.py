"""basic.get, basic.get-ok, basic.get-empty (spec 1.8.3.10)."""

from __future__ import annotations

from conformance.helpers import channel_closed_with, get, publish, sync

AREA = "basic.get"


def test_get_on_empty_queue_is_get_empty(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    assert get(channel, queue) is None


def test_get_ok_reports_remaining_message_count(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    for i in range(3):
        publish(channel, "", queue, f"m{i}")
    sync(channel)
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"m0"
    assert method.message_count == 2
    method, _, _ = channel.basic_get(queue, auto_ack=True)
    assert method.message_count == 1


def test_get_ok_carries_exchange_routing_key_and_properties(channel, names):
    queue, exchange = names.queue(), names.exchange()
    channel.exchange_declare(exchange, "topic")
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "a.*")
    publish(channel, exchange, "a.b", b"x", content_type="text/plain", headers={"h": 1})
    delivery = get(channel, queue, auto_ack=True)
    assert (delivery.exchange, delivery.routing_key) == (exchange, "a.b")
    assert delivery.properties.content_type == "text/plain"
    assert delivery.headers == {"h": 1}
    assert delivery.redelivered is False


def test_get_is_fifo(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    for i in range(10):
        publish(channel, "", queue, f"m{i}")
    sync(channel)
    bodies = [get(channel, queue, auto_ack=True).body for _ in range(10)]
    assert bodies == [f"m{i}".encode() for i in range(10)]


def test_get_with_auto_ack_removes_message(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m")
    assert get(channel, queue, auto_ack=True) is not None
    channel.close()
    assert get(connection.channel(), queue) is None


def test_get_delivery_tags_increase_per_channel(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    for _ in range(3):
        publish(channel, "", queue, b"m")
    sync(channel)
    tags = [get(channel, queue).delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]


def test_get_on_missing_queue_is_404(channel, names):
    with channel_closed_with(404):
        channel.basic_get(names.queue())


def test_get_on_other_connections_exclusive_queue_is_405(connect, names):
    owner = connect().channel()
    queue = names.queue()
    owner.queue_declare(queue, exclusive=True)
    with channel_closed_with(405):
        connect().channel().basic_get(queue)
