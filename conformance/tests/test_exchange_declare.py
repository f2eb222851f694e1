"""exchange.declare / exchange.delete rules and their reply codes (spec 1.6, 3.1.3)."""

from __future__ import annotations

import pika.exceptions
import pytest

from conformance.helpers import channel_closed_with, connection_closed_with

AREA = "exchange declare/delete"


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_each_exchange_type(channel, names, kind):
    exchange = names.exchange(kind)
    channel.exchange_declare(exchange, kind)
    channel.exchange_declare(exchange, kind, passive=True)


def test_redeclare_with_same_arguments_is_ok(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.exchange_declare(exchange, "topic", durable=True)


def test_redeclare_with_other_type_is_406(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    with channel_closed_with(406):
        channel.exchange_declare(exchange, "fanout")


def test_redeclare_with_other_durability_is_406(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct", durable=False)
    with channel_closed_with(406):
        channel.exchange_declare(exchange, "direct", durable=True)


def test_redeclare_with_other_auto_delete_is_406(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct", auto_delete=False)
    with channel_closed_with(406):
        channel.exchange_declare(exchange, "direct", auto_delete=True)


def test_passive_declare_of_missing_exchange_is_404(channel, names):
    with channel_closed_with(404):
        channel.exchange_declare(names.exchange(), passive=True)


def test_passive_declare_ignores_type(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    # Spec: with passive set, all other arguments except the name are ignored.
    channel.exchange_declare(exchange, "direct", passive=True)


def test_declare_with_amq_prefix_is_403(channel):
    with channel_closed_with(403):
        channel.exchange_declare("amq.conformance-reserved", "direct")


def test_builtin_exchanges_exist(channel):
    for name, kind in [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ]:
        channel.exchange_declare(name, kind, passive=True)


def test_redeclare_builtin_exchange_with_same_type_is_ok(channel):
    channel.exchange_declare("amq.direct", "direct", durable=True)


def test_unknown_exchange_type_is_503(connection, names):
    channel = connection.channel()
    # An unknown type is a connection exception in RabbitMQ: 503 COMMAND_INVALID.
    with connection_closed_with(503):
        channel.exchange_declare(names.exchange(), "no-such-type")


def test_delete_exchange(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    channel.exchange_delete(exchange)
    with channel_closed_with(404):
        channel.exchange_declare(exchange, passive=True)


def test_delete_missing_exchange_is_ok(channel, names):
    # RabbitMQ made exchange.delete idempotent (errata: no 404 for a missing name).
    channel.exchange_delete(names.exchange())
    assert channel.is_open


def test_delete_if_unused_with_bindings_is_406(channel, names):
    exchange = names.exchange()
    queue = names.queue()
    channel.exchange_declare(exchange, "direct")
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "k")
    with channel_closed_with(406):
        channel.exchange_delete(exchange, if_unused=True)


def test_delete_if_unused_without_bindings_is_ok(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    channel.exchange_delete(exchange, if_unused=True)
    with channel_closed_with(404):
        channel.exchange_declare(exchange, passive=True)


def test_delete_builtin_amq_exchange_is_403(channel):
    with channel_closed_with(403):
        channel.exchange_delete("amq.direct")


def test_auto_delete_exchange_goes_when_last_binding_goes(channel, names):
    exchange = names.exchange()
    queue = names.queue()
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "k")
    # Still there while bound.
    channel.exchange_declare(exchange, passive=True)
    channel.queue_unbind(queue, exchange, "k")
    with channel_closed_with(404):
        channel.exchange_declare(exchange, passive=True)


def test_auto_delete_exchange_without_bindings_stays(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    channel.exchange_declare(exchange, passive=True)


def test_internal_exchange_refuses_publish_with_403(connection, names):
    channel = connection.channel()
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout", internal=True)
    channel.basic_publish(exchange, "", b"nope")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        channel.exchange_declare(exchange, passive=True)
    assert exc.value.reply_code == 403
