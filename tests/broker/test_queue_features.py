"""Queue features beyond the issue's core: message TTL, x-expires and
dead-lettering, as RabbitMQ implements them. The TTLs are 100 ms."""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest


def wait(connection, seconds: float) -> None:
    connection.process_data_events(time_limit=seconds)


def test_queue_ttl_and_per_message_expiration(connection, unique) -> None:
    channel = connection.channel()
    ttl_queue, plain = unique("ttl"), unique("plain")
    channel.queue_declare(ttl_queue, exclusive=True, arguments={"x-message-ttl": 100})
    channel.queue_declare(plain, exclusive=True)
    channel.basic_publish("", ttl_queue, b"short")
    channel.basic_publish("", plain, b"expires", pika.BasicProperties(expiration="100"))
    channel.basic_publish("", plain, b"stays")
    channel.basic_publish("", plain, b"gone", pika.BasicProperties(expiration="0"))
    wait(connection, 0.3)
    assert channel.queue_declare(ttl_queue, passive=True).method.message_count == 0
    assert channel.basic_get(plain, auto_ack=True)[2] == b"stays"
    assert channel.basic_get(plain, auto_ack=True)[0] is None


@pytest.mark.parametrize(
    ("expiration", "text"),
    [("soon", "invalid expiration 'soon': no_integer"),
     ("-1", "invalid expiration '-1': {value_negative,-1}")],
)
def test_bad_expiration_is_406(connection, expiration: str, text: str) -> None:
    channel = connection.channel()
    channel.basic_publish("", "anywhere", b"x", pika.BasicProperties(expiration=expiration))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert (info.value.reply_code, info.value.reply_text) == (406, "PRECONDITION_FAILED - " + text)


@pytest.mark.parametrize(
    ("arguments", "why"),
    [({"x-message-ttl": -1}, "{value_negative,-1}"),
     ({"x-expires": 0}, "{value_zero,0}"),
     ({"x-max-length": "5"}, '"expected integer, got longstr"'),
     ({"x-overflow": "sometimes"}, "invalid_overflow")],
)
def test_bad_queue_arguments_are_406(connection, unique, arguments: dict, why: str) -> None:
    queue = unique()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(queue, arguments=arguments)
    (key,) = arguments
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{queue}' in vhost '/': {why}"
    )


def test_x_expires_deletes_an_unused_queue(connection, unique) -> None:
    channel = connection.channel()
    unused, consumed = unique("unused"), unique("consumed")
    channel.queue_declare(unused, arguments={"x-expires": 150})
    channel.queue_declare(consumed, arguments={"x-expires": 150})
    channel.basic_consume(consumed, lambda *a: None)
    wait(connection, 0.5)
    channel.queue_declare(consumed, passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(unused, passive=True)
    assert info.value.reply_code == 404
    connection.channel().queue_delete(consumed)


def test_dead_lettering_on_reject_expiry_and_overflow(connection, unique) -> None:
    channel = connection.channel()
    dlx, dead, source = unique("dlx"), unique("dead"), unique("src")
    channel.exchange_declare(dlx, "fanout", auto_delete=True)
    channel.queue_declare(dead, exclusive=True)
    channel.queue_bind(dead, dlx)
    channel.queue_declare(source, exclusive=True, arguments={
        "x-dead-letter-exchange": dlx, "x-max-length": 2, "x-message-ttl": 10_000})
    channel.confirm_delivery()
    channel.basic_publish("", source, b"rejected", pika.BasicProperties(headers={"k": "v"}))
    method, _, _ = channel.basic_get(source)
    channel.basic_reject(method.delivery_tag, requeue=False)
    for body in (b"one", b"two", b"three"):  # "one" overflows (drop-head)
        channel.basic_publish("", source, body)
    channel.basic_publish("", source, b"late", pika.BasicProperties(expiration="0"))  # drops "two"
    time.sleep(0.05)
    got = []
    while True:
        method, props, body = channel.basic_get(dead, auto_ack=True)
        if method is None:
            break
        got.append((body, props.headers["x-death"][0]["reason"], method.exchange))
    assert got == [
        (b"rejected", "rejected", dlx), (b"one", "maxlen", dlx), (b"two", "maxlen", dlx)]
    # "late" expired at once, but RabbitMQ expires from the head only, and the
    # head ("three") has 10 s to live: both are still there.
    assert channel.queue_declare(source, passive=True).method.message_count == 2


def test_x_death_table(connection, unique) -> None:
    channel = connection.channel()
    dead, source = unique("dead"), unique("src")
    channel.queue_declare(dead, exclusive=True)
    channel.queue_declare(source, exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    channel.basic_publish("", source, b"m", pika.BasicProperties(
        expiration="60000", headers={"CC": ["nowhere"]}))
    method, _, _ = channel.basic_get(source)
    channel.basic_nack(method.delivery_tag, requeue=False)
    deadline = time.monotonic() + 2  # dead-lettering is asynchronous in RabbitMQ
    method, props, body = channel.basic_get(dead, auto_ack=True)
    while method is None and time.monotonic() < deadline:
        wait(connection, 0.02)
        method, props, body = channel.basic_get(dead, auto_ack=True)
    assert (body, method.exchange, method.routing_key) == (b"m", "", dead)
    assert props.expiration is None
    (death,) = props.headers["x-death"]
    assert {k: v for k, v in death.items() if k != "time"} == {
        "count": 1, "reason": "rejected", "queue": source, "exchange": "",
        "routing-keys": [source, "nowhere"], "original-expiration": "60000"}
    assert props.headers["x-first-death-queue"] == source
