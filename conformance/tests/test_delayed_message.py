"""Delayed-message exchanges: ``x-delayed-message``, RabbitMQ's plugin exchange type.

Not AMQP: RabbitMQ ships it as a separate plugin (rabbitmq-delayed-message-exchange),
not bundled. A broker without it answers the declare with 503 (unknown exchange
type, a connection error) or 406; then every test here is skipped, saying so.

The exchange routes like the type its ``x-delayed-type`` argument names, but a
message whose ``x-delay`` header is a positive number of milliseconds is held
that long first and then routed by the bindings that exist then; it arrives
with ``x-delay`` set to minus the delay. Only behaviour the plugin and Warren
share is here: where Warren decides otherwise (mandatory returns, redeclaring
with another ``x-delayed-type``, a non-numeric ``x-delay``) docs/compatibility.md
says so and tests/features/test_delayed_message.py tests it.
"""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest

from conformance.helpers import (
    Consumer,
    channel_closed_with,
    connection_closed_with,
    publish,
    sync,
)

AREA = "exchange: delayed message"
DELAYED = "x-delayed-message"


@pytest.fixture(scope="module")
def has_delayed_message(amqp_url: str) -> None:
    """Skip the module on a broker without the exchange type (503 or 406 on declare)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    name = "conformance.delayed-message.probe"
    try:
        connection.channel().exchange_declare(
            name, DELAYED, auto_delete=True, arguments={"x-delayed-type": "direct"}
        )
    except (
        pika.exceptions.ConnectionClosedByBroker,
        pika.exceptions.ChannelClosedByBroker,
    ) as closed:
        if closed.reply_code not in (503, 406):
            raise
        if connection.is_open:
            connection.close()
        pytest.skip(
            f"the broker has no {DELAYED} exchange type ({closed.reply_code}: "
            f"{closed.reply_text}); on RabbitMQ it is the separate plugin "
            "rabbitmq_delayed_message_exchange"
        )
    channel = connection.channel()
    channel.exchange_delete(name)
    connection.close()


@pytest.fixture
def delayed(channel, names, has_delayed_message):
    """delayed(kind) -> the name of a new x-delayed-message exchange routing as `kind`."""

    def make(kind: str = "direct", **kwargs) -> str:
        exchange = names.exchange()
        channel.exchange_declare(
            exchange, DELAYED, arguments={"x-delayed-type": kind}, **kwargs
        )
        return exchange

    return make


def _queue(channel, names, exchange: str, key: str = "", arguments=None) -> str:
    queue = names.queue()
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, exchange, key, arguments=arguments)
    return queue


def _delay(ms, **headers):
    return {"x-delay": ms, **headers} if ms is not None else (headers or None)


def test_declare_redeclare_and_passive(channel, delayed):
    exchange = delayed("direct")
    channel.exchange_declare(exchange, DELAYED, arguments={"x-delayed-type": "direct"})
    channel.exchange_declare(exchange, passive=True)


@pytest.mark.parametrize(
    "arguments, text",
    [
        ({}, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing "
             "exchange type"),
        ({"x-delayed-type": 1}, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must "
                                "be an existing exchange type"),
        ({"x-delayed-type": DELAYED}, "PRECONDITION_FAILED - Invalid argument, "
                                      "'x-delayed-message' can't be used for 'x-delayed-type'"),
    ],
)
def test_declare_needs_a_routing_type(connect, names, has_delayed_message, arguments, text):
    channel = connect().channel()
    with channel_closed_with(406, text):
        channel.exchange_declare(names.exchange(), DELAYED, arguments=arguments)


def test_an_unknown_routing_type_is_a_connection_error(connect, names, has_delayed_message):
    channel = connect().channel()
    with connection_closed_with(503, "COMMAND_INVALID - unknown exchange type 'no-such-type'"):
        channel.exchange_declare(
            names.exchange(), DELAYED, arguments={"x-delayed-type": "no-such-type"}
        )


def test_messages_are_held_for_their_delay_and_come_out_in_due_order(
    channel, names, delayed
):
    exchange = delayed("direct")
    queue = _queue(channel, names, exchange, "k")
    consumer = Consumer(channel, queue, auto_ack=True)
    start = time.monotonic()
    for body, delay in ((b"300", 300), (b"100", 100), (b"200", 200)):
        publish(channel, exchange, "k", body, headers=_delay(delay))
    publish(channel, exchange, "k", b"now")
    sync(channel)
    deliveries = consumer.wait(4, timeout=5)
    assert [d.body for d in deliveries] == [b"now", b"100", b"200", b"300"]
    assert time.monotonic() - start >= 0.29


def test_a_released_message_carries_minus_its_delay(channel, names, delayed):
    exchange = delayed("fanout")
    queue = _queue(channel, names, exchange)
    consumer = Consumer(channel, queue, auto_ack=True)
    publish(channel, exchange, "", b"m", headers=_delay(120, other="kept"))
    (delivery,) = consumer.wait(1, timeout=5)
    assert delivery.headers == {"x-delay": -120, "other": "kept"}


@pytest.mark.parametrize("delay", [0, -100])
def test_zero_and_negative_delays_route_at_once(channel, names, delayed, delay):
    exchange = delayed("direct")
    queue = _queue(channel, names, exchange, "k")
    publish(channel, exchange, "k", b"m", headers=_delay(delay))
    sync(channel)
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"m"


def test_a_held_message_is_not_in_the_queue_before_its_time(channel, names, delayed):
    exchange = delayed("direct")
    queue = _queue(channel, names, exchange, "k")
    publish(channel, exchange, "k", b"m", headers=_delay(400))
    sync(channel)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    consumer = Consumer(channel, queue, auto_ack=True)
    assert consumer.wait(1, timeout=5)[0].body == b"m"


@pytest.mark.parametrize(
    "kind, bind_key, bind_args, key, headers",
    [
        ("direct", "a", None, "a", None),
        ("fanout", "", None, "whatever", None),
        ("topic", "a.*.c", None, "a.b.c", None),
        ("headers", "", {"x-match": "any", "h": "v"}, "", {"h": "v"}),
    ],
)
def test_each_routing_type_after_the_delay(
    channel, names, delayed, kind, bind_key, bind_args, key, headers
):
    exchange = delayed(kind)
    hit = _queue(channel, names, exchange, bind_key, bind_args)
    miss = _queue(channel, names, exchange, "zzz" if kind != "headers" else "",
                  {"x-match": "all", "h": "other"} if kind == "headers" else None)
    if kind == "fanout":
        channel.queue_unbind(miss, exchange, "zzz")
    consumer = Consumer(channel, hit, auto_ack=True)
    publish(channel, exchange, key, b"m", headers=_delay(100, **(headers or {})))
    assert consumer.wait(1, timeout=5)[0].body == b"m"
    time.sleep(0.05)
    assert channel.queue_declare(miss, passive=True).method.message_count == 0


def test_bindings_at_release_time_decide(channel, names, delayed):
    exchange = delayed("direct")
    before = _queue(channel, names, exchange, "k")
    after = names.queue()
    channel.queue_declare(after, exclusive=True)
    publish(channel, exchange, "k", b"m", headers=_delay(250))
    sync(channel)
    channel.queue_unbind(before, exchange, "k")
    channel.queue_bind(after, exchange, "k")
    consumer = Consumer(channel, after, auto_ack=True)
    assert consumer.wait(1, timeout=5)[0].body == b"m"
    assert channel.queue_declare(before, passive=True).method.message_count == 0


def test_reached_through_an_exchange_binding_it_is_held_too(channel, names, delayed):
    front = names.exchange()
    channel.exchange_declare(front, "fanout", auto_delete=False)
    exchange = delayed("fanout")
    channel.exchange_bind(exchange, front)
    queue = _queue(channel, names, exchange)
    publish(channel, front, "", b"m", headers=_delay(250))
    sync(channel)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    consumer = Consumer(channel, queue, auto_ack=True)
    (delivery,) = consumer.wait(1, timeout=5)
    assert delivery.headers["x-delay"] == -250


def test_a_held_message_is_confirmed(channel, names, delayed):
    channel.confirm_delivery()
    exchange = delayed("direct")
    queue = _queue(channel, names, exchange, "k")
    # BlockingChannel raises if the publish is nacked.
    publish(channel, exchange, "k", b"m", headers=_delay(100))
    consumer = Consumer(channel, queue, auto_ack=True)
    assert consumer.wait(1, timeout=5)[0].body == b"m"
