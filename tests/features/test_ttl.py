"""Message TTL, per-message expiration and x-expires, with a real client (pika).

TTLs are tens of milliseconds; waits are several times longer.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from feature_helpers import PAST_TTL, TTL_MS, count, get, pump, wait_get


def expiring(ms: int | str) -> pika.BasicProperties:
    return pika.BasicProperties(expiration=str(ms))


def test_queue_ttl_drops_messages_without_anyone_looking(connection, channel, unique):
    queue = unique()
    channel.queue_declare(queue, arguments={"x-message-ttl": TTL_MS})
    for i in range(3):
        channel.basic_publish("", queue, f"m{i}".encode())
    pump(connection, PAST_TTL)
    assert count(channel, queue) == 0


def test_lower_ttl_wins_both_ways(connection, channel, unique):
    long_queue, short_queue = unique("long"), unique("short")
    channel.queue_declare(long_queue, arguments={"x-message-ttl": 60_000})
    channel.queue_declare(short_queue, arguments={"x-message-ttl": TTL_MS})
    channel.basic_publish("", long_queue, b"own-ttl-shorter", expiring(TTL_MS))
    channel.basic_publish("", long_queue, b"keeps")
    channel.basic_publish("", short_queue, b"queue-ttl-shorter", expiring(60_000))
    pump(connection, PAST_TTL)
    assert get(channel, long_queue)[2] == b"keeps"
    assert get(channel, long_queue) is None
    assert get(channel, short_queue) is None


def test_expired_message_behind_a_live_one_is_never_delivered(connection, channel, unique):
    """RabbitMQ checks the head after every fetch: an expired message that
    reaches the head is dropped, not handed out (to basic.get or a consumer)."""
    queue = unique()
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"lives", expiring(60_000))
    channel.basic_publish("", queue, b"dies", expiring(TTL_MS))
    channel.basic_publish("", queue, b"plain")
    pump(connection, PAST_TTL)
    assert [get(channel, queue)[2] for _ in range(2)] == [b"lives", b"plain"]
    assert get(channel, queue) is None

    channel.basic_publish("", queue, b"lives", expiring(60_000))
    channel.basic_publish("", queue, b"dies", expiring(TTL_MS))
    channel.basic_publish("", queue, b"plain")
    pump(connection, PAST_TTL)
    bodies = []
    channel.basic_consume(queue, lambda ch, m, p, body: bodies.append(body), auto_ack=True)
    pump(connection, 0.3)
    assert bodies == [b"lives", b"plain"]


def test_ttl_zero_reaches_only_a_ready_consumer(connection, channel, unique):
    dead = unique("dead")
    channel.queue_declare(dead)
    queue = unique()
    channel.queue_declare(
        queue, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    )
    channel.basic_publish("", queue, b"nobody-there", expiring(0))
    _, properties, body = wait_get(connection, channel, dead)
    assert body == b"nobody-there"
    assert properties.headers["x-death"][0]["reason"] == "expired"
    assert properties.headers["x-death"][0]["original-expiration"] == "0"

    bodies = []
    channel.basic_consume(queue, lambda ch, m, p, body: bodies.append(body), auto_ack=True)
    channel.basic_publish("", queue, b"someone-there", expiring(0))
    pump(connection, 0.3)
    assert bodies == [b"someone-there"]


def test_ttl_zero_with_busy_consumer_expires(connection, channel, unique):
    queue = unique()
    channel.queue_declare(queue, arguments={"x-message-ttl": 0})
    channel.basic_qos(prefetch_count=1)
    bodies = []
    channel.basic_consume(queue, lambda ch, m, p, body: bodies.append(body))  # never acks
    channel.basic_publish("", queue, b"taken")
    channel.basic_publish("", queue, b"no-credit-left")
    pump(connection, 0.3)
    assert bodies == [b"taken"]
    assert count(channel, queue) == 0


def test_unacked_message_does_not_expire_and_expires_when_requeued_late(
    connection, channel, unique
):
    queue = unique()
    channel.queue_declare(queue, arguments={"x-message-ttl": TTL_MS})
    channel.basic_publish("", queue, b"held")
    method, _, _ = get(channel, queue, auto_ack=False)
    pump(connection, PAST_TTL)
    channel.basic_reject(method.delivery_tag, requeue=True)  # back, but past its time
    pump(connection, 0.1)
    assert get(channel, queue) is None


def test_requeued_in_time_is_redelivered(connection, channel, unique):
    queue = unique()
    channel.queue_declare(queue, arguments={"x-message-ttl": 60_000})
    channel.basic_publish("", queue, b"m")
    method, _, _ = get(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = get(channel, queue)
    assert (method.redelivered, body) == (True, b"m")


@pytest.mark.parametrize(
    ("expiration", "why"),
    [
        ("soon", "no_integer"),
        (" 10", "no_integer"),
        ("", "no_integer"),
        ("1.5", '{leftover_string,".5"}'),
        ("1_000", '{leftover_string,"_000"}'),
        ("-1", "{value_negative,-1}"),
        ("315360000001", "{value_too_large,315360000001}"),
    ],
)
def test_bad_expiration_closes_the_channel_with_rabbitmq_words(connection, unique, expiration, why):
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"m", expiring(expiration))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, passive=True)
    assert info.value.reply_code == 406
    assert (
        info.value.reply_text == f"PRECONDITION_FAILED - invalid expiration '{expiration}': {why}"
    )


@pytest.mark.parametrize("expiration", ["+5000", "0010000"])
def test_odd_but_valid_expirations_are_accepted(connection, channel, unique, expiration):
    queue = unique()
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"m", expiring(expiration))
    method, properties, _ = get(channel, queue)
    assert properties.expiration == expiration  # forwarded as published


def queue_exists(connection, queue) -> bool:
    probe = connection.channel()
    try:
        probe.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 404
        return False
    probe.close()
    return True


def test_x_expires_deletes_an_unused_queue_and_not_its_messages_to_dlx(connection, channel, unique):
    dead = unique("dead")
    channel.queue_declare(dead)
    queue = unique()
    channel.queue_declare(
        queue,
        arguments={
            "x-expires": 150,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    channel.basic_publish("", queue, b"left-behind")
    pump(connection, 0.6)
    assert not queue_exists(connection, queue)
    assert count(channel, dead) == 0  # a queue that expires does not dead-letter


def test_x_expires_lease_renewed_by_get_and_held_by_consumer(connection, channel, unique):
    queue = unique()
    channel.queue_declare(queue, arguments={"x-expires": 500})
    for _ in range(6):  # 0.9 s in all, but used every 0.15 s
        pump(connection, 0.15)
        get(channel, queue)
    assert queue_exists(connection, queue)
    tag = channel.basic_consume(queue, lambda *args: None)
    pump(connection, 0.8)
    assert queue_exists(connection, queue)
    channel.basic_cancel(tag)  # the lease starts again now
    pump(connection, 0.15)
    assert queue_exists(connection, queue)
    pump(connection, 1.0)
    assert not queue_exists(connection, queue)
