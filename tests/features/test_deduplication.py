"""Message deduplication (x-message-deduplication) against a real Warren, with pika.

Exchange level: a duplicate is not routed (a mandatory one comes back as
312 NO_ROUTE), queue level: it is not enqueued; either way the publisher's
confirm is basic.ack. docs/deduplication.md.
"""

from __future__ import annotations

import time
from typing import Any

import pika
import pika.exceptions
import pytest
from feature_helpers import connect

DEDUP = {"x-message-deduplication": True}


def _props(key: Any = None, **headers: Any) -> pika.BasicProperties:
    if key is not None:
        headers["x-deduplication-header"] = key
    return pika.BasicProperties(headers=headers or None)


def _bodies(channel: Any, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def _exchange_with_queue(channel: Any, unique: Any, arguments: dict[str, Any]) -> tuple[str, str]:
    exchange, queue = unique("dedup-x"), unique("dedup-q")
    channel.exchange_declare(exchange, "fanout", arguments=arguments)
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange)
    return exchange, queue


def test_exchange_drops_a_duplicate_and_still_confirms_it(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(channel, unique, DEDUP)
    channel.confirm_delivery()
    # pika raises on a nack; each publish returning means basic.ack came.
    channel.basic_publish(exchange, "", b"first", _props("order-1"))
    channel.basic_publish(exchange, "", b"again", _props("order-1"))
    channel.basic_publish(exchange, "", b"other", _props("order-2"))
    channel.basic_publish(exchange, "", b"again", _props("order-1"))
    assert _bodies(channel, queue) == [b"first", b"other"]


def test_messages_without_the_header_always_pass(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(channel, unique, DEDUP)
    for _ in range(3):
        channel.basic_publish(exchange, "", b"plain")
        channel.basic_publish(exchange, "", b"other-header", _props(None, other="k"))
    assert _bodies(channel, queue) == [b"plain", b"other-header"] * 3


def test_a_mandatory_duplicate_is_returned_as_unroutable(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(channel, unique, DEDUP)
    returned = []
    channel.add_on_return_callback(lambda _ch, method, _p, body: returned.append((method, body)))
    channel.basic_publish(exchange, "", b"first", _props("m"), mandatory=True)
    channel.basic_publish(exchange, "", b"dup", _props("m"), mandatory=True)
    channel.connection.process_data_events(time_limit=0.3)
    assert [(m.reply_code, m.reply_text, b) for m, b in returned] == [(312, "NO_ROUTE", b"dup")]
    assert _bodies(channel, queue) == [b"first"]


def test_the_header_can_be_renamed(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(
        channel, unique, {**DEDUP, "x-deduplication-header": "order-id"}
    )
    channel.basic_publish(exchange, "", b"a", _props(None, **{"order-id": 7}))
    channel.basic_publish(exchange, "", b"b", _props(None, **{"order-id": 7}))
    # The default header means nothing to this exchange.
    channel.basic_publish(exchange, "", b"c", _props("x"))
    channel.basic_publish(exchange, "", b"d", _props("x"))
    # Typed values: the string "7" is another key than the integer 7.
    channel.basic_publish(exchange, "", b"e", _props(None, **{"order-id": "7"}))
    assert _bodies(channel, queue) == [b"a", b"c", b"d", b"e"]


def test_cache_ttl_lets_a_key_through_again(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(channel, unique, {**DEDUP, "x-cache-ttl": 300})
    channel.basic_publish(exchange, "", b"1", _props("k"))
    channel.basic_publish(exchange, "", b"2", _props("k"))
    # A message's own x-cache-ttl header overrides the exchange's for its key.
    channel.basic_publish(exchange, "", b"long", _props("long", **{"x-cache-ttl": 60_000}))
    time.sleep(0.45)
    channel.basic_publish(exchange, "", b"3", _props("k"))
    channel.basic_publish(exchange, "", b"long-again", _props("long"))
    assert _bodies(channel, queue) == [b"1", b"long", b"3"]


def test_cache_size_pushes_the_oldest_key_out(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(channel, unique, {**DEDUP, "x-cache-size": 2})
    for key in ("a", "b", "c"):  # "a" is pushed out by "c"
        channel.basic_publish(exchange, "", key.encode(), _props(key))
    for key in ("c", "b", "a"):
        channel.basic_publish(exchange, "", key.encode() + b"2", _props(key))
    assert _bodies(channel, queue) == [b"a", b"b", b"c", b"a2"]


def test_only_the_exchange_published_to_deduplicates(channel: Any, unique: Any) -> None:
    # LavinMQ checks at the exchange a message is published to: an exchange
    # reached through a binding does not check again.
    inner, queue = _exchange_with_queue(channel, unique, DEDUP)
    outer = unique("dedup-outer")
    channel.exchange_declare(outer, "fanout")
    channel.exchange_bind(inner, outer)
    channel.basic_publish(outer, "", b"1", _props("k"))
    channel.basic_publish(outer, "", b"2", _props("k"))
    channel.basic_publish(inner, "", b"3", _props("k"))
    channel.basic_publish(inner, "", b"4", _props("k"))
    assert _bodies(channel, queue) == [b"1", b"2", b"3"]


def test_queue_does_not_enqueue_a_duplicate_and_confirms_it(channel: Any, unique: Any) -> None:
    queue, other = unique("dedup-q"), unique("plain-q")
    exchange = unique("fan")
    channel.exchange_declare(exchange, "fanout")
    channel.queue_declare(queue, arguments=DEDUP)
    channel.queue_declare(other)
    channel.queue_bind(queue, exchange)
    channel.queue_bind(other, exchange)
    channel.confirm_delivery()
    returned = []
    channel.add_on_return_callback(lambda *args: returned.append(args))
    for body in (b"1", b"2", b"3"):
        channel.basic_publish(exchange, "", body, _props("same"), mandatory=True)
    channel.basic_publish("", queue, b"4", _props("same"), mandatory=True)
    assert _bodies(channel, queue) == [b"1"]
    assert _bodies(channel, other) == [b"1", b"2", b"3"]  # its own queue, no dedup
    assert returned == []  # routed to a queue that dropped it: not returned


def test_queue_keys_outlive_the_message(channel: Any, unique: Any) -> None:
    # LavinMQ's queue cache is the same as an exchange's: a key stays for its
    # ttl (or until pushed out), consumed or not (the plugin forgets it when
    # the message leaves the queue; Warren follows LavinMQ).
    queue = unique("dedup-q")
    channel.queue_declare(queue, arguments={**DEDUP, "x-cache-ttl": 300})
    channel.basic_publish("", queue, b"1", _props("k"))
    assert _bodies(channel, queue) == [b"1"]
    channel.basic_publish("", queue, b"2", _props("k"))
    assert _bodies(channel, queue) == []
    time.sleep(0.4)
    channel.basic_publish("", queue, b"3", _props("k"))
    assert _bodies(channel, queue) == [b"3"]


def test_a_rejected_publish_leaves_no_key(channel: Any, unique: Any) -> None:
    # x-overflow reject-publish: the refused message's key is not remembered,
    # so the publisher's retry (after its basic.nack) gets in once there is room.
    queue = unique("dedup-q")
    channel.queue_declare(
        queue, arguments={**DEDUP, "x-max-length": 1, "x-overflow": "reject-publish"}
    )
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"first", _props("a"))
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"second", _props("b"))
    assert _bodies(channel, queue) == [b"first"]
    channel.basic_publish("", queue, b"retry", _props("b"))
    assert _bodies(channel, queue) == [b"retry"]


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        ({"x-message-deduplication": "yes"}, "x-message-deduplication': {unacceptable_type,longstr}"),
        ({**DEDUP, "x-cache-size": 0}, "x-cache-size': {value_zero,0}"),
        ({**DEDUP, "x-cache-size": -3}, "x-cache-size': {value_negative,-3}"),
        ({**DEDUP, "x-cache-size": "10"}, "x-cache-size': \"expected integer, got longstr\""),
        ({**DEDUP, "x-cache-size": 10_000_001}, "x-cache-size': {value_too_large,10000001}"),
        ({**DEDUP, "x-cache-ttl": 0}, "x-cache-ttl': {value_zero,0}"),
        ({**DEDUP, "x-deduplication-header": 5}, "x-deduplication-header': {unacceptable_type,signedint}"),
    ],
)
def test_bad_values_are_refused_with_406(warren_url: str, unique: Any, arguments: dict[str, Any],
                                         text: str) -> None:  # fmt: skip
    connection = connect(warren_url)
    try:
        for kind in ("queue", "exchange"):
            name = unique("bad")
            channel = connection.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
                if kind == "queue":
                    channel.queue_declare(name, arguments=arguments)
                else:
                    channel.exchange_declare(name, "direct", arguments=arguments)
            assert error.value.reply_code == 406
            assert error.value.reply_text == (
                f"PRECONDITION_FAILED - invalid arg '{text.split(chr(39))[0]}' for {kind} "
                f"'{name}' in vhost '/': {text.split(': ', 1)[1]}"
            )
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["queue", "exchange"])
def test_redeclare_with_other_dedup_arguments_is_inequivalent(
    warren_url: str, unique: Any, kind: str
) -> None:
    connection = connect(warren_url)
    name = unique("redeclare")
    try:
        channel = connection.channel()
        args = {**DEDUP, "x-cache-size": 10}
        declare = (
            (lambda a: channel.queue_declare(name, arguments=a))
            if kind == "queue"
            else (lambda a: channel.exchange_declare(name, "fanout", arguments=a))
        )
        declare(args)
        declare(dict(args))  # the same: fine
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
            declare({**DEDUP, "x-cache-size": 20})
        assert error.value.reply_code == 406
        assert "inequivalent arg 'x-cache-size'" in error.value.reply_text
    finally:
        connection.close()


def test_dead_letters_into_a_dedup_queue_are_deduplicated(channel: Any, unique: Any) -> None:
    source, target = unique("src"), unique("dlq")
    channel.queue_declare(target, arguments=DEDUP)
    channel.queue_declare(
        source, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": target}
    )
    for body in (b"1", b"2"):
        channel.basic_publish("", source, body, _props("k"))
    for _ in range(2):
        method, _p, _b = channel.basic_get(source)
        channel.basic_reject(method.delivery_tag, requeue=False)
    assert _bodies(channel, target) == [b"1"]


def test_transactional_publishes_are_deduplicated_at_commit(channel: Any, unique: Any) -> None:
    exchange, queue = _exchange_with_queue(channel, unique, DEDUP)
    channel.tx_select()
    channel.basic_publish(exchange, "", b"1", _props("k"))
    channel.basic_publish(exchange, "", b"2", _props("k"))
    channel.tx_commit()
    assert _bodies(channel, queue) == [b"1"]


def test_a_deduplicating_exchange_drops_duplicates_while_delayed_exchanges_exist(
    fresh_warren_url: str,
) -> None:
    # With a delayed-message exchange in the vhost, publishes take the
    # holding route (Topology.route_holding); deduplication must apply there too.
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(fresh_warren_url))
    try:
        channel = connection.channel()
        channel.exchange_declare("later", "x-delayed-message",
                                 arguments={"x-delayed-type": "direct"})
        channel.exchange_declare("orders", "direct",
                                 arguments={"x-message-deduplication": True})
        channel.queue_declare("intake")
        channel.queue_bind("intake", "orders", "new")
        channel.confirm_delivery()
        for _ in range(3):
            channel.basic_publish("orders", "new", b"order-1", pika.BasicProperties(
                headers={"x-deduplication-header": "order-1"}))
        assert channel.queue_declare("intake", passive=True).method.message_count == 1
    finally:
        connection.close()
