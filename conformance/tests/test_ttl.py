"""Time to live: x-message-ttl, per-message expiration, x-expires (RabbitMQ extensions).

These are the only tests that must wait: the TTLs are 100 ms and the waits a
few hundred, so the module still takes about two seconds.
"""

from __future__ import annotations

import pika.exceptions

from conformance.helpers import Consumer, channel_closed_with, get, publish, pump, sync

AREA = "TTL"

TTL_MS = 100
PAST_TTL = 0.35  # seconds: well past TTL_MS, still short


def expire(connection):
    pump(connection, PAST_TTL)


def test_queue_message_ttl_expires_messages(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-message-ttl": TTL_MS})
    publish(channel, "", queue, b"short-lived")
    expire(connection)
    assert get(channel, queue) is None
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_queue_message_ttl_keeps_fresh_messages(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-message-ttl": 60_000})
    publish(channel, "", queue, b"fresh")
    assert get(channel, queue, auto_ack=True).body == b"fresh"


def test_per_message_expiration(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"expires", expiration=str(TTL_MS))
    publish(channel, "", queue, b"stays")
    expire(connection)
    assert get(channel, queue, auto_ack=True).body == b"stays"
    assert get(channel, queue) is None


def test_lower_of_queue_and_message_ttl_wins(connection, names):
    channel = connection.channel()
    long_queue, short_queue = names.queue("long"), names.queue("short")
    channel.queue_declare(long_queue, arguments={"x-message-ttl": 60_000})
    channel.queue_declare(short_queue, arguments={"x-message-ttl": TTL_MS})
    publish(channel, "", long_queue, b"m", expiration=str(TTL_MS))
    publish(channel, "", short_queue, b"m", expiration="60000")
    expire(connection)
    assert get(channel, long_queue) is None
    assert get(channel, short_queue) is None


def test_expiration_zero_without_consumer_expires_at_once(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"now-or-never", expiration="0")
    sync(channel)
    assert get(channel, queue) is None


def test_expiration_zero_with_ready_consumer_is_delivered(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True)
    publish(channel, "", queue, b"now-or-never", expiration="0")
    assert [d.body for d in consumer.wait(1)] == [b"now-or-never"]


def test_delivered_message_keeps_expiration_property(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m", expiration="60000")
    assert get(channel, queue, auto_ack=True).properties.expiration == "60000"


def test_unacked_message_does_not_expire_while_held(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-message-ttl": TTL_MS})
    publish(channel, "", queue, b"held")
    held = get(channel, queue)
    expire(connection)
    channel.basic_ack(held.delivery_tag)  # still a valid delivery tag
    sync(channel)
    assert channel.is_open


def test_invalid_expiration_is_406(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m", expiration="soon")
    with channel_closed_with(406):
        sync(channel)


def test_negative_expiration_is_406(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m", expiration="-1")
    with channel_closed_with(406):
        sync(channel)


def test_negative_queue_message_ttl_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-message-ttl": -1})


def test_non_integer_queue_message_ttl_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-message-ttl": "100"})


def queue_exists(connection, queue) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    channel.close()
    return True


def test_x_expires_deletes_unused_queue(connection, names):
    queue = names.queue()
    connection.channel().queue_declare(queue, arguments={"x-expires": 200})
    # Any declare, even passive, renews the lease, so look only once, later.
    pump(connection, 0.6)
    assert not queue_exists(connection, queue)


def test_x_expires_keeps_queue_with_consumer(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-expires": 200})
    Consumer(channel, queue)
    pump(connection, 0.5)
    assert queue_exists(connection, queue)


def test_x_expires_zero_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-expires": 0})
