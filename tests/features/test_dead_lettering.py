"""Dead-lettering header for header as RabbitMQ 3.10 writes it (real pika client).

Every expectation here was first checked against the reference RabbitMQ
3.10.8 (WARREN_REFERENCE_URL=amqp://guest:guest@127.0.0.1:5673/ runs this
module against it), except the one test that says it documents a difference.
"""

from __future__ import annotations

import datetime

import pika
from feature_helpers import PAST_TTL, count, field_types, get, pump, wait_get


def declare(channel, queue, **arguments):
    channel.queue_declare(queue, arguments=arguments or None)
    return queue


def reject(channel, queue):
    method, _, _ = get(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)


def test_x_death_types_order_and_first_death_headers(connection, channel, unique):
    dead = declare(channel, unique("dead"))
    source = declare(
        channel,
        unique("src"),
        **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
    )
    before = int(datetime.datetime.now(datetime.UTC).timestamp())
    props = pika.BasicProperties(expiration="60000", headers={"zz": 1, "app": "v"}, priority=3)
    channel.basic_publish("", source, b"bad", props)
    reject(channel, source)
    with field_types() as types:
        method, properties, body = wait_get(connection, channel, dead)
    assert (method.exchange, method.routing_key, body) == ("", dead, b"bad")
    assert properties.expiration is None  # removed: it must not expire again
    assert properties.priority == 3
    headers = properties.headers
    # RabbitMQ sorts the table it changes.
    assert list(headers) == [
        "app",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "zz",
    ]
    (death,) = headers["x-death"]
    # First death: RabbitMQ's own key order, count first.
    assert list(death) == [
        "count",
        "reason",
        "queue",
        "time",
        "exchange",
        "routing-keys",
        "original-expiration",
    ]
    assert {k: v for k, v in death.items() if k != "time"} == {
        "count": 1,
        "reason": "rejected",
        "queue": source,
        "exchange": "",
        "routing-keys": [source],
        "original-expiration": "60000",
    }
    assert abs(death["time"].timestamp() - before) <= 60
    assert (
        headers["x-first-death-exchange"],
        headers["x-first-death-queue"],
        headers["x-first-death-reason"],
    ) == ("", source, "rejected")
    assert not any(key.startswith("x-last-death") for key in headers)  # 3.13+, not 3.10
    # Decoding order: app's value, then the x-death table's count, reason...
    assert types[1] == (b"l", 1)  # count is a long: Spring reads it as a Long
    assert (b"T", death["time"]) in types
    assert (b"I", 1) in types  # zz as pika sent it (a 32-bit int), not re-typed


def test_repeat_death_updates_entry_in_place(connection, channel, unique):
    """Same queue, same reason: count grows, entry moves to the front, keys sorted,
    time and exchange kept (3.10 does not refresh them); others keep their place."""
    first, second = unique("one"), unique("two")
    declare(channel, first, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": second})
    declare(channel, second, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": first})
    channel.basic_publish("", first, b"m")
    for queue in (first, second):
        wait_get(connection, channel, queue, auto_ack=False)  # wait until it is there
        channel.basic_recover(requeue=True)
        reject(channel, queue)
    pump(connection, 1.1)  # a later second: a refreshed time would show
    reject(channel, first)
    with field_types() as types:
        _, properties, _ = wait_get(connection, channel, second)
    deaths = properties.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (first, "rejected", 2),
        (second, "rejected", 1),
    ]
    assert list(deaths[0]) == sorted(deaths[0])
    assert deaths[0]["time"] <= deaths[1]["time"]
    assert properties.headers["x-first-death-queue"] == first
    assert [kind for kind, value in types if kind == b"l"] == [b"l", b"l"]


def test_routing_key_replaced_and_cc_dropped_with_dead_letter_routing_key(
    connection, channel, unique
):
    dlx, dead = unique("dlx"), unique("dead")
    channel.exchange_declare(dlx, "direct", auto_delete=True)
    declare(channel, dead)
    channel.queue_bind(dead, dlx, "dead-key")
    source = declare(
        channel,
        unique("src"),
        **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead-key"},
    )
    channel.basic_publish(
        "", source, b"m", pika.BasicProperties(headers={"CC": ["nowhere"], "BCC": ["x"]})
    )
    reject(channel, source)
    method, properties, _ = wait_get(connection, channel, dead)
    assert (method.exchange, method.routing_key) == (dlx, "dead-key")
    assert "CC" not in properties.headers and "BCC" not in properties.headers
    assert properties.headers["x-death"][0]["routing-keys"] == [source, "nowhere"]


def test_cc_keys_route_the_dead_letter_without_dead_letter_routing_key(connection, channel, unique):
    dlx, by_key, by_cc = unique("dlx"), unique("by-key"), unique("by-cc")
    channel.exchange_declare(dlx, "direct", auto_delete=True)
    source = unique("src")
    for queue, key in ((by_key, source), (by_cc, "cc-key")):
        declare(channel, queue)
        channel.queue_bind(queue, dlx, key)
    declare(channel, source, **{"x-dead-letter-exchange": dlx})
    channel.basic_publish("", source, b"m", pika.BasicProperties(headers={"CC": ["cc-key"]}))
    reject(channel, source)
    for queue in (by_key, by_cc):
        _, properties, _ = wait_get(connection, channel, queue)
        assert properties.headers["CC"] == ["cc-key"]


def test_expired_and_maxlen_reasons(connection, channel, unique):
    dead = declare(channel, unique("dead"))
    dl = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    ttl_queue = declare(channel, unique("ttl"), **{"x-message-ttl": 50}, **dl)
    short = declare(channel, unique("short"), **{"x-max-length": 1}, **dl)
    channel.basic_publish("", ttl_queue, b"late")
    channel.basic_publish("", short, b"first")
    channel.basic_publish("", short, b"second")
    seen = {}
    for _ in range(2):
        _, properties, body = wait_get(connection, channel, dead)
        seen[body] = properties.headers["x-death"][0]
    assert seen[b"late"]["reason"] == "expired" and "original-expiration" not in seen[b"late"]
    assert seen[b"first"]["reason"] == "maxlen"
    assert get(channel, short)[2] == b"second"


def test_automatic_cycle_is_dropped(connection, channel, unique):
    """TTL queues bouncing a message to each other: back at the first, it is dropped."""
    one, two = unique("one"), unique("two")
    declare(channel, one, **{"x-message-ttl": 30, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": two})  # fmt: skip
    declare(channel, two, **{"x-message-ttl": 30, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": one})  # fmt: skip
    channel.basic_publish("", one, b"m")
    pump(connection, PAST_TTL * 2)
    assert (count(channel, one), count(channel, two)) == (0, 0)


def test_queue_dead_lettering_to_itself_on_expiry_is_dropped(connection, channel, unique):
    queue = declare(channel, unique("self"), **{"x-message-ttl": 30, "x-dead-letter-exchange": ""})
    channel.basic_publish("", queue, b"m")
    pump(connection, PAST_TTL)
    assert count(channel, queue) == 0


def test_cycle_through_a_rejection_goes_on(connection, channel, unique):
    """rejected in `one`, expired in `two`, back to `one`: not automatic, delivered."""
    one, two = unique("one"), unique("two")
    declare(channel, one, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": two})
    declare(channel, two, **{"x-message-ttl": 30, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": one})  # fmt: skip
    channel.basic_publish("", one, b"m")
    reject(channel, one)
    _, properties, _ = wait_get(connection, channel, one)
    assert [(d["queue"], d["reason"]) for d in properties.headers["x-death"]] == [
        (two, "expired"),
        (one, "rejected"),
    ]


def test_only_the_part_of_history_since_the_last_visit_counts(connection, channel, unique):
    """A rejection before the cycle does not keep an automatic cycle alive.

    rejected in `entry` -> expired in `one` -> expired in `two` -> back to `one`:
    the cycle one -> two -> one has no rejection, so it is dropped there.

    A deliberate difference: RabbitMQ 3.10 loops here for ever, because when
    it updates x-death it reverses the order of the other entries
    (group_by_queue_and_reason), which puts the old `rejected` death inside
    the cycle. Warren keeps x-death most recent first, as documented, and so
    the cycle rule works (docs/dead-lettering.md, "Differences").
    """
    entry, one, two = unique("entry"), unique("one"), unique("two")
    declare(channel, entry, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": one})
    declare(channel, one, **{"x-message-ttl": 30, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": two})  # fmt: skip
    declare(channel, two, **{"x-message-ttl": 30, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": one})  # fmt: skip
    channel.basic_publish("", entry, b"m")
    reject(channel, entry)
    pump(connection, PAST_TTL * 2)
    assert (count(channel, entry), count(channel, one), count(channel, two)) == (0, 0, 0)


def test_missing_dead_letter_exchange_drops(connection, channel, unique):
    source = declare(channel, unique("src"), **{"x-dead-letter-exchange": unique("missing")})
    channel.basic_publish("", source, b"m")
    reject(channel, source)
    pump(connection, 0.1)
    assert channel.is_open and count(channel, source) == 0
