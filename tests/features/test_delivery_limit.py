"""x-delivery-limit with x-delivery-count, as RabbitMQ's quorum queues do it.

RabbitMQ 3.10 has the argument on quorum queues only; the expectations were
checked against the reference with `x-queue-type: quorum` (durable queues).
Warren honours it on every queue.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from feature_helpers import connect, count, field_types, get, pump, wait_get


def limited(channel, unique, limit, dead_letter=True):
    dead, queue = unique("dead"), unique("src")
    arguments = {"x-delivery-limit": limit}
    if dead_letter:
        channel.queue_declare(dead)
        arguments.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    channel.queue_declare(queue, arguments=arguments)
    return queue, dead


def test_counts_returns_then_dead_letters_with_reason_delivery_limit(connection, channel, unique):
    queue, dead = limited(channel, unique, 2)
    channel.basic_publish("", queue, b"poison", properties=None)
    seen = []
    for _ in range(4):
        message = get(channel, queue, auto_ack=False)
        if message is None:
            break
        method, properties, _ = message
        seen.append((method.redelivered, properties.headers["x-delivery-count"]))
        channel.basic_nack(method.delivery_tag, requeue=True)
    assert seen == [(False, 0), (True, 1), (True, 2)]
    with field_types() as types:
        _, properties, body = wait_get(connection, channel, dead)
    assert body == b"poison"
    assert "x-delivery-count" not in properties.headers
    death = properties.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("delivery_limit", queue, 1)
    assert properties.headers["x-first-death-reason"] == "delivery_limit"
    assert types[0] == (b"l", 1)


def test_count_is_a_long_and_other_headers_are_untouched(connection, channel, unique):
    queue, _ = limited(channel, unique, 5)
    channel.basic_publish("", queue, b"m", pika.BasicProperties(headers={"app": 7}))
    with field_types() as types:
        _, properties, _ = get(channel, queue)
    assert properties.headers == {"app": 7, "x-delivery-count": 0}
    assert types == [(b"I", 7), (b"l", 0)]


def test_a_closed_channel_counts_as_a_return(warren_url, connection, channel, unique):
    queue, dead = limited(channel, unique, 1)
    channel.basic_publish("", queue, b"m")
    for _ in range(2):
        other = connect(warren_url)
        assert get(other.channel(), queue, auto_ack=False) is not None
        other.close()  # unacked: back to the queue, counted
    assert wait_get(connection, channel, dead) is not None
    assert count(channel, queue) == 0


def test_limit_zero_allows_one_delivery(connection, channel, unique):
    queue, dead = limited(channel, unique, 0)
    channel.basic_publish("", queue, b"m")
    method, _, _ = get(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=True)
    assert wait_get(connection, channel, dead) is not None


def test_without_dead_letter_exchange_the_message_is_dropped(connection, channel, unique):
    queue, _ = limited(channel, unique, 0, dead_letter=False)
    channel.basic_publish("", queue, b"m")
    method, _, _ = get(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=True)
    pump(connection, 0.05)
    assert count(channel, queue) == 0


def test_reject_without_requeue_is_rejected_not_delivery_limit(connection, channel, unique):
    queue, dead = limited(channel, unique, 5)
    channel.basic_publish("", queue, b"m")
    method, _, _ = get(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, properties, _ = wait_get(connection, channel, dead)
    assert properties.headers["x-death"][0]["reason"] == "rejected"
    assert "x-delivery-count" not in properties.headers


def test_redeclare_with_another_limit_is_406(connection, unique):
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue, arguments={"x-delivery-limit": 3})
    channel.queue_declare(queue, arguments={"x-delivery-limit": 3})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, arguments={"x-delivery-limit": 4})
    assert info.value.reply_code == 406
    assert "inequivalent arg 'x-delivery-limit'" in info.value.reply_text
