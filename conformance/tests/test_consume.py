"""basic.consume and basic.cancel (spec 1.8.3.3 - 1.8.3.6)."""

from __future__ import annotations

import amqp
import amqp.exceptions
import pika.exceptions
import pytest

from conformance.helpers import (
    Consumer,
    channel_closed_with,
    get,
    publish,
    pump,
    sync,
    wait_for,
)

AREA = "consume/cancel"


def test_consume_receives_in_order(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True)
    for i in range(20):
        publish(channel, "", queue, f"m{i}")
    consumer.wait(20)
    assert consumer.bodies == [f"m{i}".encode() for i in range(20)]


def test_consume_receives_messages_already_queued(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    for i in range(3):
        publish(channel, "", queue, f"m{i}")
    sync(channel)
    consumer = Consumer(channel, queue, auto_ack=True)
    assert [d.body for d in consumer.wait(3)] == [b"m0", b"m1", b"m2"]


def test_server_generates_consumer_tag(py_amqp_channel, names):
    # pika always makes its own tags; py-amqp sends an empty tag for the server to fill.
    queue = names.queue()
    py_amqp_channel.queue_declare(queue)
    tag = py_amqp_channel.basic_consume(queue, consumer_tag="", callback=lambda message: None)
    # RabbitMQ's tags are amq.ctag-<random>; the spec only asks for a unique non-empty tag.
    assert tag.startswith("amq.ctag-")
    other = py_amqp_channel.basic_consume(queue, consumer_tag="", callback=lambda message: None)
    assert other != tag


def test_client_consumer_tag_is_used_in_deliveries(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True, consumer_tag="conformance-tag")
    publish(channel, "", queue, b"m")
    assert consumer.wait(1)[0].consumer_tag == "conformance-tag"


def test_deliveries_carry_exchange_and_routing_key(channel, names):
    queue, exchange = names.queue(), names.exchange()
    channel.exchange_declare(exchange, "direct")
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "rk")
    consumer = Consumer(channel, queue, auto_ack=True)
    publish(channel, exchange, "rk", b"m")
    delivery = consumer.wait(1)[0]
    assert (delivery.exchange, delivery.routing_key, delivery.redelivered) == (
        exchange,
        "rk",
        False,
    )


def test_delivery_tags_increase_from_one(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True)
    for _ in range(5):
        publish(channel, "", queue, b"m")
    assert [d.delivery_tag for d in consumer.wait(5)] == [1, 2, 3, 4, 5]


def test_round_robin_between_consumers(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    first = Consumer(channel, queue, auto_ack=True)
    second = Consumer(channel, queue, auto_ack=True)
    for i in range(10):
        publish(channel, "", queue, f"m{i}")
    wait_for(connection, lambda: len(first.deliveries) + len(second.deliveries) >= 10)
    assert len(first.deliveries) == 5
    assert len(second.deliveries) == 5
    assert sorted(first.bodies + second.bodies) == sorted(f"m{i}".encode() for i in range(10))


def test_cancel_stops_deliveries(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True)
    publish(channel, "", queue, b"before")
    consumer.wait(1)
    consumer.cancel()
    publish(channel, "", queue, b"after")
    pump(connection)
    assert consumer.bodies == [b"before"]
    assert get(channel, queue, auto_ack=True).body == b"after"


def test_cancel_unknown_consumer_tag_is_ok(py_amqp_channel):
    # Spec 1.8.3.5: cancelling an unknown consumer is not an error; the server
    # answers basic.cancel-ok. (pika would not send it, py-amqp does and waits.)
    py_amqp_channel.basic_cancel("conformance-no-such-tag")
    assert py_amqp_channel.is_open


def test_duplicate_consumer_tag_on_channel_is_530(py_amqp_channel, names):
    # pika refuses a duplicate tag itself, so py-amqp sends it. RabbitMQ closes
    # the connection with 530 NOT_ALLOWED ("attempt to reuse consumer tag").
    queue = names.queue()
    py_amqp_channel.queue_declare(queue)
    py_amqp_channel.basic_consume(queue, consumer_tag="dup", callback=lambda message: None)
    with pytest.raises(amqp.exceptions.AMQPError) as exc:
        py_amqp_channel.basic_consume(queue, consumer_tag="dup", callback=lambda message: None)
    assert exc.value.reply_code == 530
    assert isinstance(exc.value, amqp.exceptions.ConnectionError)


def test_same_consumer_tag_on_other_channel_is_ok(connection, names):
    queue = names.queue()
    first, second = connection.channel(), connection.channel()
    first.queue_declare(queue)
    Consumer(first, queue, consumer_tag="shared")
    Consumer(second, queue, consumer_tag="shared")
    assert first.queue_declare(queue, passive=True).method.consumer_count == 2


def test_consume_on_missing_queue_is_404(channel, names):
    with channel_closed_with(404):
        Consumer(channel, names.queue())


def test_exclusive_consumer_when_queue_has_consumers_is_403(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    Consumer(channel, queue)
    with channel_closed_with(403):
        Consumer(connection.channel(), queue, exclusive=True)


def test_consumer_on_queue_with_exclusive_consumer_is_403(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    Consumer(channel, queue, exclusive=True)
    with channel_closed_with(403):
        Consumer(connection.channel(), queue)


def test_unacked_messages_of_cancelled_consumer_stay_unacked(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue)
    publish(channel, "", queue, b"held")
    delivery = consumer.wait(1)[0]
    consumer.cancel()
    # Still acknowledgeable after cancel (spec: cancel does not affect delivered messages).
    channel.basic_ack(delivery.delivery_tag)
    sync(channel)
    assert channel.is_open
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_no_local_is_accepted(py_amqp_channel, names):
    """RabbitMQ accepts no-local on basic.consume (and ignores it)."""
    queue = names.queue()
    py_amqp_channel.queue_declare(queue)
    tag = py_amqp_channel.basic_consume(
        queue, consumer_tag="", no_local=True, callback=lambda message: None
    )
    assert tag
    assert py_amqp_channel.is_open


def test_consumer_cancelled_on_queue_delete_gets_no_more_messages(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    cancelled = []
    channel.add_on_cancel_callback(cancelled.append)
    consumer = Consumer(channel, queue)
    channel.queue_delete(queue)
    assert wait_for(connection, lambda: cancelled, timeout=2)
    assert cancelled[0].method.consumer_tag == consumer.consumer_tag
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        channel.queue_declare(queue, passive=True)
