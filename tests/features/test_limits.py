"""x-max-length, x-max-length-bytes and x-overflow with a real client (pika)."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from feature_helpers import count, get, wait_get


def dead_lettering(channel, unique, **arguments):
    dead, queue = unique("dead"), unique("src")
    channel.queue_declare(dead)
    channel.queue_declare(
        queue,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead, **arguments},
    )
    return queue, dead


def bodies(channel, queue):
    found = []
    while (message := get(channel, queue)) is not None:
        found.append(message[2])
    return found


def test_drop_head_dead_letters_the_oldest_in_order(connection, channel, unique):
    queue, dead = dead_lettering(channel, unique, **{"x-max-length": 2})
    for i in range(5):
        channel.basic_publish("", queue, f"m{i}".encode())
    wait_get(connection, channel, dead, auto_ack=False)
    channel.basic_recover(requeue=True)
    assert bodies(channel, queue) == [b"m3", b"m4"]
    dropped = bodies(channel, dead)
    assert dropped == [b"m0", b"m1", b"m2"]


def test_max_length_bytes_counts_bodies_only(connection, channel, unique):
    queue, dead = dead_lettering(channel, unique, **{"x-max-length-bytes": 10})
    for i in range(4):
        channel.basic_publish(
            "", queue, f"m{i}..".encode(), pika.BasicProperties(headers={"big": "x" * 500})
        )
    assert wait_get(connection, channel, dead) is not None
    assert bodies(channel, queue) == [b"m2..", b"m3.."]


def test_reject_publish_nacks_under_confirms_and_drops_otherwise(connection, unique):
    queue = unique()
    confirming = connection.channel()
    confirming.confirm_delivery()
    confirming.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    confirming.basic_publish("", queue, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        confirming.basic_publish("", queue, b"refused")
    plain = connection.channel()
    plain.basic_publish("", queue, b"dropped-silently")
    assert bodies(plain, queue) == [b"kept"]


def test_reject_publish_dlx_nacks_and_dead_letters(connection, unique):
    channel = connection.channel()
    channel.confirm_delivery()
    queue, dead = dead_lettering(
        channel, unique, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"}
    )
    channel.basic_publish("", queue, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"refused")
    _, properties, body = wait_get(connection, channel, dead)
    assert body == b"refused"
    assert properties.headers["x-death"][0]["reason"] == "maxlen"
    assert bodies(channel, queue) == [b"kept"]


def test_limit_counts_ready_messages_not_unacked(connection, channel, unique):
    queue = unique()
    channel.confirm_delivery()  # each publish is in the queue when it returns
    channel.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.basic_publish("", queue, b"a")
    held = get(channel, queue, auto_ack=False)
    channel.basic_publish("", queue, b"b")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"c")
    assert count(channel, queue) == 1
    channel.basic_ack(held[0].delivery_tag)
    assert bodies(channel, queue) == [b"b"]


@pytest.mark.parametrize(
    ("overflow", "delivered"),
    [("drop-head", [b"m"]), ("reject-publish", []), ("reject-publish-dlx", [])],
)
def test_a_waiting_consumer_gets_the_message_only_with_drop_head(
    connection, channel, unique, overflow, delivered
):
    """RabbitMQ hands a message to a ready consumer before drop-head looks at
    the limit; the reject modes check first."""
    queue = unique()
    channel.queue_declare(queue, arguments={"x-max-length": 0, "x-overflow": overflow})
    received = []
    channel.basic_consume(queue, lambda ch, m, p, body: received.append(body), auto_ack=True)
    channel.basic_publish("", queue, b"m")
    connection.process_data_events(time_limit=0.3)
    assert received == delivered
