"""Publisher confirms (RabbitMQ extension: confirm.select, basic.ack/nack to publishers)."""

from __future__ import annotations

import asyncio

import aio_pika
import amqp
import pika.exceptions
import pytest

from conformance.helpers import channel_closed_with, get, publish

AREA = "publisher confirms"


def run(coro):
    return asyncio.run(coro)


def test_publish_to_queue_is_confirmed(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    publish(channel, "", queue, b"confirmed")  # raises if nacked
    assert get(channel, queue, auto_ack=True).body == b"confirmed"


def test_unroutable_non_mandatory_is_still_confirmed(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    channel.confirm_delivery()
    publish(channel, exchange, "nowhere", b"x")
    assert channel.is_open


def test_persistent_to_durable_queue_is_confirmed(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=True)
    channel.confirm_delivery()
    for i in range(20):
        publish(channel, "", queue, f"p{i}", delivery_mode=2)
    assert channel.queue_declare(queue, passive=True).method.message_count == 20


def test_confirm_select_is_idempotent(py_amqp_channel, names):
    queue = names.queue()
    py_amqp_channel.queue_declare(queue)
    py_amqp_channel.confirm_select()
    py_amqp_channel.confirm_select()  # waits for a second confirm.select-ok
    py_amqp_channel.basic_publish_confirm(amqp.Message(b"x"), "", queue)
    assert py_amqp_channel.queue_declare(queue, passive=True).message_count == 1


async def publish_confirmed(url: str, queue: str, count: int, concurrently: bool):
    """Publish `count` messages with aio-pika in confirm mode; return the
    confirmation frame each publish got and the queue's final message count."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue)
        exchange = channel.default_exchange
        if concurrently:
            confirmations = await asyncio.gather(
                *(exchange.publish(aio_pika.Message(b"x"), queue) for _ in range(count))
            )
        else:
            confirmations = [
                await exchange.publish(aio_pika.Message(f"m{i}".encode()), queue)
                for i in range(count)
            ]
        result = await channel.declare_queue(queue, passive=True)
        return list(confirmations), result.declaration_result.message_count
    finally:
        await connection.close()


def test_delivery_tags_count_from_one(amqp_url, names):
    confirmations, _ = run(publish_confirmed(amqp_url, names.queue(), 5, concurrently=False))
    assert [(type(c).__name__, c.delivery_tag) for c in confirmations] == [
        ("Ack", n) for n in range(1, 6)
    ]


def test_many_in_flight_are_all_confirmed(amqp_url, names):
    confirmations, count = run(publish_confirmed(amqp_url, names.queue(), 200, concurrently=True))
    assert all(type(c).__name__ == "Ack" for c in confirmations)
    # aio-pika hands each publish the basic.ack that covered it: its own tag, or
    # a later tag with multiple=true (confirms may be cumulative).
    for tag, confirmation in enumerate(confirmations, start=1):
        assert confirmation.delivery_tag == tag or (
            confirmation.multiple and confirmation.delivery_tag > tag
        )
    assert max(c.delivery_tag for c in confirmations) == 200
    assert count == 200


def test_confirm_select_on_transactional_channel_is_406(channel):
    channel.tx_select()
    with channel_closed_with(406):
        channel.confirm_delivery()


def test_tx_select_on_confirm_channel_is_406(channel):
    channel.confirm_delivery()
    with channel_closed_with(406):
        channel.tx_select()


def test_publish_to_missing_exchange_in_confirm_mode_closes_channel_404(channel, names):
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        publish(channel, names.exchange(), "k", b"x")
    assert exc.value.reply_code == 404


def test_reject_publish_overflow_is_nacked(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    publish(channel, "", queue, b"fits")
    with pytest.raises(pika.exceptions.NackError):
        publish(channel, "", queue, b"does not fit")
    assert channel.queue_declare(queue, passive=True).method.message_count == 1
