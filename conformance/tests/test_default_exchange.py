"""The default exchange "" (spec 3.1.3.1): every queue bound by its own name."""

from __future__ import annotations

from conformance.helpers import channel_closed_with, get, publish, sync

AREA = "default exchange"


def test_routes_by_queue_name(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"hello")
    delivery = get(channel, queue, auto_ack=True)
    assert delivery.body == b"hello"
    assert delivery.exchange == ""
    assert delivery.routing_key == queue


def test_unknown_routing_key_is_dropped(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue + ".other", b"lost")
    sync(channel)
    assert get(channel, queue) is None


def test_routing_key_is_case_sensitive(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue.upper(), b"lost")
    sync(channel)
    assert get(channel, queue) is None


def test_declare_of_default_exchange_is_403(channel):
    # RabbitMQ refuses every exchange operation naming "", even a passive declare.
    with channel_closed_with(403):
        channel.exchange_declare("", passive=True)


def test_bind_to_default_exchange_is_403(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    with channel_closed_with(403):
        channel.queue_bind(queue, "", "other-key")


def test_unbind_from_default_exchange_is_403(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    with channel_closed_with(403):
        channel.queue_unbind(queue, "", queue)


def test_delete_default_exchange_is_403(channel):
    with channel_closed_with(403):
        channel.exchange_delete("")


def test_publish_to_missing_exchange_is_404(channel, names):
    channel.basic_publish(names.exchange(), "k", b"x")
    with channel_closed_with(404):
        sync(channel)


def test_amq_default_is_not_a_name_for_the_default_exchange(channel, names):
    # Older AMQP drafts called it "amq.default"; RabbitMQ 3.x knows no such exchange.
    queue = names.queue()
    channel.queue_declare(queue)
    channel.basic_publish("amq.default", queue, b"x")
    with channel_closed_with(404):
        sync(channel)
