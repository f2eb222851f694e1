"""Consistent-hash exchanges: ``x-consistent-hash``, RabbitMQ's plugin exchange type.

Not AMQP: RabbitMQ ships it as a plugin (rabbitmq_consistent_hash_exchange),
off by default. A broker without it answers the declare with 503 (unknown
exchange type, a connection error); then every test here is skipped, saying so.

A binding's key is its weight; each message goes to exactly one binding, chosen
by a hash of its routing key (or of the header named by ``hash-header``), the
same key always to the same queue, and adding a binding moves only the keys
that now land on it. ``test_keys_land_where_rabbitmq_puts_them`` pins the exact
choices of RabbitMQ 3.10.8 for one ring.
"""

from __future__ import annotations

from collections import Counter

import pika
import pika.exceptions
import pytest

from conformance.helpers import (
    channel_closed_with,
    connection_closed_with,
    get_all,
    publish,
    sync,
)
from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "exchange: consistent hash"
CHX = "x-consistent-hash"


@pytest.fixture(scope="module")
def has_consistent_hash(amqp_url: str) -> None:
    """Skip the module on a broker without the exchange type (503 on declare)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    name = "conformance.consistent-hash.probe"
    try:
        connection.channel().exchange_declare(name, CHX, auto_delete=True)
    except pika.exceptions.ConnectionClosedByBroker as closed:
        if closed.reply_code != 503:
            raise
        pytest.skip(
            f"the broker has no {CHX} exchange type (503: {closed.reply_text}); on RabbitMQ "
            "it is a plugin: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
        )
    channel = connection.channel()
    channel.exchange_delete(name)
    connection.close()


@pytest.fixture
def ring(channel, names, has_consistent_hash):
    """ring({"a": "1", "b": "2"}, **arguments) -> (exchange, label -> queue)."""

    def make(weights: dict[str, str], **arguments: str):
        exchange = names.exchange()
        channel.exchange_declare(exchange, CHX, arguments=arguments or None)
        bindings = {label: (weight, None) for label, weight in weights.items()}
        return exchange, bind_queues(channel, names, exchange, bindings)

    return make


def spread(channel, exchange, queues, keys, headers=None) -> dict[str, str]:
    """Publish one message per key (message_id = the key); key -> label it reached."""
    for key in keys:
        publish(channel, exchange, key, b"", message_id=key, headers=headers)
    sync(channel)
    where: dict[str, str] = {}
    for label, queue in queues.items():
        while True:
            method, properties, _ = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            assert properties.message_id not in where, f"{properties.message_id} twice"
            where[properties.message_id] = label
    return where


KEYS = [f"key-{i}" for i in range(400)]


def test_declare_and_redeclare(channel, names, has_consistent_hash):
    exchange = names.exchange()
    channel.exchange_declare(exchange, CHX)
    channel.exchange_declare(exchange, CHX)
    channel.exchange_declare(exchange, passive=True)


def test_each_message_reaches_exactly_one_queue(channel, ring):
    exchange, queues = ring({"a": "1", "b": "1", "c": "1", "d": "1"})
    where = spread(channel, exchange, queues, KEYS)
    assert sorted(where) == sorted(KEYS)
    assert set(where.values()) == {"a", "b", "c", "d"}


def test_the_same_key_always_reaches_the_same_queue(channel, ring):
    exchange, queues = ring({"a": "1", "b": "1", "c": "1"})
    for key in KEYS[:30]:
        first = routed_to(channel, exchange, queues, key)
        assert len(first) == 1
        assert routed_to(channel, exchange, queues, key) == first
        assert routed_to(channel, exchange, queues, key) == first


def test_weights_share_the_keys(channel, ring):
    exchange, queues = ring({"light": "1", "heavy": "3"})
    counts = Counter(spread(channel, exchange, queues, KEYS).values())
    # 400 keys, expected 100 and 300: far from both 200 (even) and 400 (all).
    assert 60 < counts["light"] < 140, counts
    assert counts["light"] + counts["heavy"] == len(KEYS)


def test_keys_land_where_rabbitmq_puts_them(channel, ring):
    # The choices of RabbitMQ 3.10.8 (erlang:phash2 and the plugin's jump
    # hash) for this ring: bindings a=1, b=2, c=3, made in that order.
    exchange, queues = ring({"a": "1", "b": "2", "c": "3"})
    expected = {
        "order-1": "a", "order-2": "b", "order-3": "b", "order-4": "b", "order-5": "c",
        "order-6": "a", "order-7": "c", "order-8": "b", "order-9": "b", "order-10": "c",
        "order-11": "a", "order-12": "c", "": "a", "é": "b",
    }  # fmt: skip
    assert spread(channel, exchange, queues, list(expected)) == expected


def test_adding_a_queue_moves_only_the_keys_it_takes(channel, names, ring):
    exchange, queues = ring({"a": "1", "b": "1", "c": "1"})
    before = spread(channel, exchange, queues, KEYS)
    new = names.queue("d")
    channel.queue_declare(new)
    channel.queue_bind(new, exchange, "1")
    queues["d"] = new
    after = spread(channel, exchange, queues, KEYS)
    moved = [k for k in KEYS if after[k] != before[k]]
    assert moved and {after[k] for k in moved} == {"d"}
    assert len(moved) < len(KEYS) / 2


def test_unbinding_the_last_queue_restores_the_placement(channel, names, ring):
    exchange, queues = ring({"a": "1", "b": "2"})
    before = spread(channel, exchange, queues, KEYS)
    extra = names.queue("extra")
    channel.queue_declare(extra)
    channel.queue_bind(extra, exchange, "2")
    channel.queue_unbind(extra, exchange, "2")
    assert spread(channel, exchange, queues, KEYS) == before
    assert get_all(channel, extra) == []


def test_deleting_a_bound_queue_takes_it_off_the_ring(channel, ring):
    exchange, queues = ring({"a": "1", "b": "1", "gone": "1"})
    channel.queue_delete(queues.pop("gone"))
    where = spread(channel, exchange, queues, KEYS)
    assert sorted(where) == sorted(KEYS)
    assert set(where.values()) == {"a", "b"}


def test_cc_keys_take_no_part_in_the_hash(channel, ring):
    exchange, queues = ring({"a": "1", "b": "1", "c": "1"})
    for key in KEYS[:20]:
        alone = routed_to(channel, exchange, queues, key)
        assert routed_to(channel, exchange, queues, key, {"CC": ["x", "y", "z"]}) == alone


def test_nothing_bound_is_unroutable(channel, names, has_consistent_hash):
    exchange = names.exchange()
    channel.exchange_declare(exchange, CHX)
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish(exchange, "k", b"x", mandatory=True)


def test_an_exchange_on_the_ring_gets_its_share(channel, names, ring):
    exchange, queues = ring({"a": "1"})
    inner = names.exchange("inner")
    channel.exchange_declare(inner, "fanout")
    for label in ("i1", "i2"):
        queue = names.queue(label)
        channel.queue_declare(queue)
        channel.queue_bind(queue, inner, "")
        queues[label] = queue
    channel.exchange_bind(inner, exchange, "1")
    seen = Counter()
    for key in KEYS[:60]:
        seen[tuple(sorted(routed_to(channel, exchange, queues, key)))] += 1
    assert set(seen) == {("a",), ("i1", "i2")}


def test_hash_header_picks_by_the_header(channel, ring):
    exchange, queues = ring({"a": "1", "b": "1", "c": "1"}, **{"hash-header": "user"})
    expected = {"alice": "a", "bob": "c", "carol": "a", "dave": "c", "erin": "a", "frank": "a"}
    for user, label in expected.items():
        for key in ("k1", "k2", "other"):
            assert routed_to(channel, exchange, queues, key, {"user": user}) == {label: 1}


def test_hash_header_absent_sends_everything_to_one_queue(channel, ring):
    exchange, queues = ring({"a": "1", "b": "1", "c": "1"}, **{"hash-header": "user"})
    # No header: the plugin hashes the atom `undefined`, the same for all.
    for key in KEYS[:10]:
        assert routed_to(channel, exchange, queues, key) == {"b": 1}
        assert routed_to(channel, exchange, queues, key, {"other": "x"}) == {"b": 1}


@pytest.mark.parametrize("prop", ["message_id", "correlation_id", "timestamp"])
def test_hash_property_may_name_three_properties(channel, names, has_consistent_hash, prop):
    channel.exchange_declare(names.exchange(), CHX, arguments={"hash-property": prop})


def test_hash_property_picks_by_the_property(channel, ring):
    # The routing key takes no part: each message_id always reaches one queue,
    # and different ids spread over the ring.
    exchange, queues = ring({"a": "1", "b": "1", "c": "1"}, **{"hash-property": "message_id"})
    placed: dict[str, str] = {}
    for i in range(60):
        message_id = f"id-{i}"
        for key in ("k1", "k2", message_id):
            publish(channel, exchange, key, b"", message_id=message_id)
        sync(channel)
        reached = {label: len(get_all(channel, queue)) for label, queue in queues.items()}
        assert sorted(reached.values()) == [0, 0, 3], (message_id, reached)
        placed[message_id] = max(reached, key=reached.__getitem__)
    assert len(set(placed.values())) > 1, placed


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("abc", 'The binding key must be an integer: <<"abc">>'),
        ("", "The binding key must be an integer: <<>>"),
        ("1.5", 'The binding key must be an integer: <<"1.5">>'),
        (" 1", 'The binding key must be an integer: <<" 1">>'),
        ("0", "The binding key must be greater than 0"),
        ("-2", "The binding key must be greater than 0"),
    ],
    ids=["abc", "empty", "1.5", "space-1", "0", "-2"],
)
def test_a_binding_key_that_is_not_a_weight_is_406(channel, names, has_consistent_hash, key, text):
    exchange = names.exchange()
    channel.exchange_declare(exchange, CHX)
    queue = names.queue()
    channel.queue_declare(queue)
    with channel_closed_with(406, f"PRECONDITION_FAILED - {text}"):
        channel.queue_bind(queue, exchange, key)


@pytest.mark.parametrize("key", ["+2", "007"])
def test_a_signed_or_zero_padded_weight_is_accepted(channel, ring, key):
    exchange, queues = ring({"q": key})
    assert routed_to(channel, exchange, queues, "k") == {"q": 1}


def test_a_second_binding_to_a_queue_takes_no_share(channel, names, ring):
    exchange, queues = ring({"a": "1", "b": "1"})
    channel.queue_bind(queues["a"], exchange, "100")  # would take nearly all keys
    counts = Counter(spread(channel, exchange, queues, KEYS).values())
    assert counts["b"] > len(KEYS) / 4, counts


def test_unknown_hash_property_is_406(channel, names, has_consistent_hash):
    with channel_closed_with(406, "PRECONDITION_FAILED - Unsupported property: reply_to"):
        channel.exchange_declare(names.exchange(), CHX, arguments={"hash-property": "reply_to"})


def test_hash_header_and_hash_property_together_are_406(channel, names, has_consistent_hash):
    text = "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive"
    with channel_closed_with(406, text):
        channel.exchange_declare(
            names.exchange(), CHX, arguments={"hash-header": "h", "hash-property": "message_id"}
        )


def test_a_hash_header_that_is_not_a_string_is_541(connection, names, has_consistent_hash):
    # RabbitMQ's plugin crashes on it: 541 INTERNAL_ERROR closes the connection.
    with connection_closed_with(541):
        connection.channel().exchange_declare(names.exchange(), CHX, arguments={"hash-header": 5})
