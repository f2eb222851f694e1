"""Message deduplication: ``x-message-deduplication`` on exchanges and queues.

Not AMQP and not RabbitMQ: LavinMQ has it built in (docs/deduplication.md of
LavinMQ), RabbitMQ through the community plugin rabbitmq-message-deduplication
(queue argument as here; for exchanges the plugin has an exchange *type*
``x-message-deduplication`` instead of an argument, which these tests do not
use). A RabbitMQ without the plugin accepts the unknown arguments and ignores
them, so support is detected by behaviour: a probe queue declared with the
argument gets the same key twice; if both messages arrive, every test here is
skipped, saying so.

A message whose ``x-deduplication-header`` value was seen within the window is
dropped: at an exchange it is not routed, at a queue it is not enqueued; the
publisher's confirm is still basic.ack. ``x-cache-size`` bounds the keys kept
(the oldest go first), ``x-cache-ttl`` (ms) how long, ``x-deduplication-header``
renames the header.
"""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest

from conformance.helpers import get_all, publish, sync

AREA = "deduplication"
DEDUP = {"x-message-deduplication": True}
HEADER = "x-deduplication-header"


@pytest.fixture(scope="module")
def deduplicates(amqp_url: str) -> None:
    """Skip the module on a broker that does not deduplicate (both copies arrive)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    name = f"conformance.dedup.probe.{time.monotonic_ns()}"
    try:
        channel = connection.channel()
        channel.queue_declare(name, arguments=DEDUP, auto_delete=False)
        try:
            for _ in range(2):
                publish(channel, "", name, b"probe", headers={HEADER: "probe"})
            sync(channel)
            arrived = len(get_all(channel, name))
        finally:
            channel.queue_delete(name)
    except pika.exceptions.ChannelClosedByBroker as closed:
        pytest.skip(
            f"the broker refuses x-message-deduplication ({closed.reply_code} "
            f"{closed.reply_text})"
        )
    finally:
        if connection.is_open:
            connection.close()
    if arrived != 1:
        pytest.skip(
            f"the broker does not deduplicate: {arrived} of 2 messages with the same "
            f"{HEADER} reached a queue declared with x-message-deduplication (RabbitMQ "
            "needs the rabbitmq_message_deduplication plugin; LavinMQ and Warren have it)"
        )


def headers(key, **more):
    return {HEADER: key, **more}


@pytest.fixture
def fanout(channel, names, deduplicates):
    """fanout(**arguments) -> (exchange, queue): a fanout exchange with one queue."""

    def make(**arguments):
        exchange, queue = names.exchange(), names.queue()
        channel.exchange_declare(exchange, "fanout", arguments=arguments)
        channel.queue_declare(queue)
        channel.queue_bind(queue, exchange)
        return exchange, queue

    return make


def test_exchange_drops_a_duplicate(channel, fanout):
    exchange, queue = fanout(**DEDUP)
    for body, key in ((b"1", "a"), (b"2", "a"), (b"3", "b"), (b"4", "a")):
        publish(channel, exchange, "", body, headers=headers(key))
    sync(channel)
    assert get_all(channel, queue) == [b"1", b"3"]


def test_exchange_duplicates_are_confirmed(channel, fanout):
    exchange, queue = fanout(**DEDUP)
    channel.confirm_delivery()
    for body in (b"1", b"2", b"3"):  # a nack would raise NackError here
        publish(channel, exchange, "", body, headers=headers("same"))
    assert get_all(channel, queue) == [b"1"]


def test_messages_without_the_header_pass(channel, fanout):
    exchange, queue = fanout(**DEDUP)
    for _ in range(2):
        publish(channel, exchange, "", b"none")
        publish(channel, exchange, "", b"other", headers={"other": "a"})
    sync(channel)
    assert get_all(channel, queue) == [b"none", b"other", b"none", b"other"]


def test_the_header_can_be_renamed(channel, fanout):
    exchange, queue = fanout(**DEDUP, **{"x-deduplication-header": "msg-id"})
    publish(channel, exchange, "", b"1", headers={"msg-id": "a"})
    publish(channel, exchange, "", b"2", headers={"msg-id": "a"})
    publish(channel, exchange, "", b"3", headers=headers("a"))
    publish(channel, exchange, "", b"4", headers=headers("a"))
    sync(channel)
    assert get_all(channel, queue) == [b"1", b"3", b"4"]


def test_cache_ttl_lets_a_key_through_again(channel, fanout):
    exchange, queue = fanout(**DEDUP, **{"x-cache-ttl": 300})
    publish(channel, exchange, "", b"1", headers=headers("a"))
    publish(channel, exchange, "", b"2", headers=headers("a"))
    sync(channel)
    time.sleep(0.5)
    publish(channel, exchange, "", b"3", headers=headers("a"))
    sync(channel)
    assert get_all(channel, queue) == [b"1", b"3"]


def test_a_message_x_cache_ttl_header_overrides_the_exchange(channel, fanout):
    exchange, queue = fanout(**DEDUP, **{"x-cache-ttl": 60_000})
    publish(channel, exchange, "", b"1", headers=headers("a", **{"x-cache-ttl": 200}))
    publish(channel, exchange, "", b"2", headers=headers("a"))
    sync(channel)
    time.sleep(0.4)
    publish(channel, exchange, "", b"3", headers=headers("a"))
    sync(channel)
    assert get_all(channel, queue) == [b"1", b"3"]


def test_cache_size_pushes_the_oldest_key_out(channel, fanout):
    exchange, queue = fanout(**DEDUP, **{"x-cache-size": 2})
    for key in ("a", "b", "c"):
        publish(channel, exchange, "", key, headers=headers(key))
    publish(channel, exchange, "", b"a2", headers=headers("a"))  # "a" was pushed out
    publish(channel, exchange, "", b"c2", headers=headers("c"))
    sync(channel)
    assert get_all(channel, queue) == [b"a", b"b", b"c", b"a2"]


def test_queue_does_not_enqueue_a_duplicate(channel, names, deduplicates):
    queue = names.queue()
    channel.queue_declare(queue, arguments=DEDUP)
    channel.confirm_delivery()
    for body in (b"1", b"2"):
        publish(channel, "", queue, body, headers=headers("a"))
    publish(channel, "", queue, b"3", headers=headers("b"))
    assert get_all(channel, queue) == [b"1", b"3"]


def test_queue_level_dedup_is_per_queue(channel, names, deduplicates):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    first, second = names.queue("first"), names.queue("second")
    for queue in (first, second):
        channel.queue_declare(queue, arguments=DEDUP)
        channel.queue_bind(queue, exchange)
    publish(channel, exchange, "", b"1", headers=headers("a"))
    publish(channel, "", second, b"2", headers=headers("b"))
    publish(channel, exchange, "", b"3", headers=headers("b"))
    sync(channel)
    assert get_all(channel, first) == [b"1", b"3"]
    assert get_all(channel, second) == [b"1", b"2"]
