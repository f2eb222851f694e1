"""Sender-selected distribution: the CC and BCC headers (RabbitMQ extension)."""

from __future__ import annotations

from conformance.helpers import get, publish, sync

AREA = "CC/BCC routing"


def setup(channel, names, kind="direct"):
    exchange = names.exchange()
    channel.exchange_declare(exchange, kind)
    queues = {}
    for key in ("main", "copy", "hidden"):
        queue = names.queue(key)
        channel.queue_declare(queue)
        channel.queue_bind(queue, exchange, key)
        queues[key] = queue
    return exchange, queues


def test_cc_routes_to_extra_keys_and_is_kept(channel, names):
    exchange, queues = setup(channel, names)
    publish(channel, exchange, "main", b"m", headers={"CC": ["copy"]})
    sync(channel)
    main, copy = get(channel, queues["main"], True), get(channel, queues["copy"], True)
    assert main.body == copy.body == b"m"
    assert copy.routing_key == "main"  # the delivery keeps the published key
    assert copy.headers["CC"] == ["copy"]
    assert get(channel, queues["hidden"]) is None


def test_bcc_routes_and_is_removed(channel, names):
    exchange, queues = setup(channel, names)
    publish(channel, exchange, "main", b"m", headers={"BCC": ["hidden"], "other": "kept"})
    sync(channel)
    for key in ("main", "hidden"):
        delivery = get(channel, queues[key], True)
        assert "BCC" not in delivery.headers
        assert delivery.headers["other"] == "kept"
    assert get(channel, queues["copy"]) is None


def test_queue_reached_by_key_and_cc_gets_one_copy(channel, names):
    exchange, queues = setup(channel, names)
    publish(channel, exchange, "main", b"m", headers={"CC": ["main"], "BCC": ["main"]})
    sync(channel)
    assert get(channel, queues["main"], True) is not None
    assert get(channel, queues["main"]) is None


def test_cc_applies_topic_matching(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")
    queue = names.queue()
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "audit.#")
    publish(channel, exchange, "orders.new", b"m", headers={"CC": ["audit.orders"]})
    sync(channel)
    assert get(channel, queue, True).body == b"m"


def test_cc_through_default_exchange(channel, names):
    first, second = names.queue("a"), names.queue("b")
    channel.queue_declare(first)
    channel.queue_declare(second)
    publish(channel, "", first, b"m", headers={"CC": [second]})
    sync(channel)
    assert get(channel, first, True).body == b"m"
    assert get(channel, second, True).body == b"m"
