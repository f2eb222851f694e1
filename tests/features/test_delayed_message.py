"""The delayed-message exchange (``x-delayed-message``) against a real Warren,
with pika: declaration, delay order, each x-delayed-type, bindings made after
the publish, deletion, confirms, mandatory, dead letters, and the released
message's ``x-delay`` header.

The durability tests (restart, SIGKILL) are in tests/durability/test_delayed_restart.py;
the behaviour shared with RabbitMQ's plugin is also in conformance/tests/test_delayed_message.py.
"""

from __future__ import annotations

import decimal
import time
from typing import Any

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from broker.testing import BrokerThread


def _channel(url: str) -> tuple[pika.BlockingConnection, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    return connection, connection.channel()


def _delayed(channel: Any, name: str, kind: str = "direct", **kw: Any) -> None:
    channel.exchange_declare(
        name, "x-delayed-message", arguments={"x-delayed-type": kind}, **kw
    )


def _publish(channel: Any, exchange: str, key: str, body: bytes, delay: Any = None,
             headers: dict[str, Any] | None = None, persistent: bool = False,
             mandatory: bool = False) -> None:
    h = dict(headers or {})
    if delay is not None:
        h["x-delay"] = delay
    props = pika.BasicProperties(headers=h or None, delivery_mode=2 if persistent else None)
    channel.basic_publish(exchange, key, body, props, mandatory=mandatory)


def _collect(connection: Any, channel: Any, queue: str, count: int,
             timeout: float = 5.0) -> list[tuple[bytes, float, dict[str, Any]]]:
    """(body, arrival time, headers) of `count` messages, in arrival order."""
    got: list[tuple[bytes, float, dict[str, Any]]] = []

    def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
        got.append((body, time.monotonic(), dict(props.headers or {})))
        ch.basic_ack(method.delivery_tag)

    tag = channel.basic_consume(queue, on_message)
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.02)
    channel.basic_cancel(tag)
    return got


def test_messages_come_out_in_due_order_after_their_delay(warren_url: str, unique: Any) -> None:
    connection, channel = _channel(warren_url)
    x, q = unique("dx"), unique("dq")
    _delayed(channel, x)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x, "k")
    start = time.monotonic()
    _publish(channel, x, "k", b"300", 300)
    _publish(channel, x, "k", b"100", 100)
    _publish(channel, x, "k", b"200", 200)
    _publish(channel, x, "k", b"now")  # no x-delay: routed at once
    got = _collect(connection, channel, q, 4)
    assert [body for body, _, _ in got] == [b"now", b"100", b"200", b"300"]
    for body, at, _ in got[1:]:
        assert at - start >= int(body) / 1000 - 0.01  # not before its time
        assert at - start < int(body) / 1000 + 1.0
    # The released message says it was delayed: x-delay is minus the delay.
    assert got[1][2]["x-delay"] == -100
    assert "x-delay" not in got[0][2]
    connection.close()


@pytest.mark.parametrize("delay", [0, -5, "abc-not-sent", decimal.Decimal("150.7"), "150", True, 2**32])
def test_what_x_delay_values_mean(warren_url: str, unique: Any, delay: Any) -> None:
    """0, negative, above 2^32-1 ms and non-numbers route at once; a numeric
    string and a decimal count (truncated); a string that is not a number is
    406 (the plugin crashes on it)."""
    connection, channel = _channel(warren_url)
    x, q = unique("dx"), unique("dq")
    _delayed(channel, x)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x, "k")
    if delay == "abc-not-sent":
        with pytest.raises(ChannelClosedByBroker) as info:
            _publish(channel, x, "k", b"m", "abc")
            channel.queue_declare(q, passive=True)
        assert info.value.reply_code == 406
        assert "x-delay 'abc' is not an integer" in info.value.reply_text
        connection.close()
        return
    start = time.monotonic()
    _publish(channel, x, "k", b"m", delay)
    got = _collect(connection, channel, q, 1)
    assert len(got) == 1
    waited = got[0][1] - start
    if delay in ("150", decimal.Decimal("150.7")):
        assert waited >= 0.14
    else:
        assert waited < 0.1, waited  # at once
    connection.close()


@pytest.mark.parametrize(
    "kind, bind_key, bind_args, key, headers, routed",
    [
        ("direct", "a", None, "a", None, True),
        ("direct", "a", None, "b", None, False),
        ("fanout", "", None, "anything", None, True),
        ("topic", "a.*", None, "a.b", None, True),
        ("topic", "a.*", None, "b.a", None, False),
        ("headers", "", {"x-match": "all", "h": 1}, "", {"h": 1}, True),
        ("headers", "", {"x-match": "all", "h": 1}, "", {"h": 2}, False),
    ],
)
def test_each_delayed_type_routes_as_that_type(
    warren_url: str, unique: Any, kind: str, bind_key: str, bind_args: Any,
    key: str, headers: Any, routed: bool,
) -> None:
    connection, channel = _channel(warren_url)
    x, q = unique("dx"), unique("dq")
    _delayed(channel, x, kind)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x, bind_key, arguments=bind_args)
    _publish(channel, x, key, b"later", 80, headers=headers)
    _publish(channel, x, key, b"now", None, headers=headers)
    got = _collect(connection, channel, q, 2 if routed else 1, timeout=0.6)
    assert [body for body, _, _ in got] == ([b"now", b"later"] if routed else [])
    connection.close()


def test_bindings_made_after_the_publish_are_used_and_removed_ones_not(
    warren_url: str, unique: Any
) -> None:
    connection, channel = _channel(warren_url)
    x, early, late = unique("dx"), unique("early"), unique("late")
    _delayed(channel, x, "fanout")
    channel.queue_declare(early, exclusive=True)
    channel.queue_declare(late, exclusive=True)
    channel.queue_bind(early, x)
    _publish(channel, x, "", b"m", 150)
    channel.queue_unbind(early, x)
    channel.queue_bind(late, x)
    assert [b for b, _, _ in _collect(connection, channel, late, 1)] == [b"m"]
    assert channel.queue_declare(early, passive=True).method.message_count == 0
    connection.close()


def test_deleting_the_exchange_drops_its_held_messages(
    fresh_warren: BrokerThread, unique: Any
) -> None:
    connection, channel = _channel(fresh_warren.url)
    x, q = unique("dx"), unique("dq")
    _delayed(channel, x, "fanout")
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x)
    published = time.monotonic()
    for i in range(3):
        # 2.5 s: long enough that none is due before the delete even on a
        # loaded machine (1 s was not, under a full parallel test load).
        _publish(channel, x, "", b"m%d" % i, 2500)
    # A synchronous method after them: the broker has handled the publishes
    # (without confirms they are not waited for) before the store is read.
    channel.queue_declare(q, passive=True)
    vhost = fresh_warren.broker.vhosts.get("/")
    assert fresh_warren.run_sync(lambda: vhost.delayed.count(x)) == 3
    channel.exchange_delete(x)
    assert fresh_warren.run_sync(lambda: len(vhost.delayed)) == 0
    # Redeclared with the same name and binding: nothing of the old comes out.
    _delayed(channel, x, "fanout")
    channel.queue_bind(q, x)
    time.sleep(max(0.0, published + 2.7 - time.monotonic()))  # past their due time
    assert channel.queue_declare(q, passive=True).method.message_count == 0
    connection.close()


def test_confirms_and_mandatory(warren_url: str, unique: Any) -> None:
    """A held message is confirmed when held (ack), and a mandatory one is
    not returned: it is routed later (the plugin returns it at once)."""
    connection, channel = _channel(warren_url)
    returned: list[bytes] = []
    channel.add_on_return_callback(lambda ch, m, p, body: returned.append(body))
    channel.confirm_delivery()
    x, q = unique("dx"), unique("dq")
    _delayed(channel, x)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x, "k")
    _publish(channel, x, "k", b"held", 100, mandatory=True)  # raises if nacked or returned
    connection.process_data_events(time_limit=0.05)
    assert returned == []
    assert [b for b, _, _ in _collect(connection, channel, q, 1)] == [b"held"]
    # Without a delay, an unroutable mandatory message is returned as usual.
    with pytest.raises(pika.exceptions.UnroutableError):
        _publish(channel, x, "nowhere", b"now", None, mandatory=True)
    connection.close()


def test_declaration_errors(warren_url: str, unique: Any) -> None:
    cases = [
        ({}, 406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an "
                  "existing exchange type"),
        ({"x-delayed-type": 5}, 406, "PRECONDITION_FAILED - Invalid argument, "
                                     "'x-delayed-type' must be an existing exchange type"),
        ({"x-delayed-type": "x-delayed-message"}, 406,
         "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for "
         "'x-delayed-type'"),
        ({"x-delayed-type": "x-consistent-hash"}, 406,
         "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' 'x-consistent-hash' is not "
         "supported by Warren's x-delayed-message (direct, fanout, topic or headers)"),
    ]
    for arguments, code, text in cases:
        connection, channel = _channel(warren_url)
        with pytest.raises(ChannelClosedByBroker) as info:
            channel.exchange_declare(unique("dx"), "x-delayed-message", arguments=arguments)
        assert (info.value.reply_code, info.value.reply_text) == (code, text)
        connection.close()
    connection, channel = _channel(warren_url)
    with pytest.raises(ConnectionClosedByBroker) as cinfo:
        channel.exchange_declare(unique("dx"), "x-delayed-message",
                                 arguments={"x-delayed-type": "nosuch"})
    assert cinfo.value.reply_code == 503
    assert cinfo.value.reply_text == "COMMAND_INVALID - unknown exchange type 'nosuch'"


def test_redeclare_compares_the_delayed_type(warren_url: str, unique: Any) -> None:
    connection, channel = _channel(warren_url)
    x = unique("dx")
    _delayed(channel, x, "topic")
    _delayed(channel, x, "topic")  # the same: fine
    with pytest.raises(ChannelClosedByBroker) as info:
        _delayed(channel, x, "fanout")
    assert info.value.reply_code == 406
    assert "inequivalent arg 'x-delayed-type'" in info.value.reply_text
    connection.close()
    connection, channel = _channel(warren_url)
    channel.exchange_delete(x)
    connection.close()


def test_exchange_to_exchange_and_dead_letters_are_held_too(warren_url: str, unique: Any) -> None:
    """A message reaching a delayed exchange through an exchange binding, or
    as a dead letter, is held there (the plugin delays whatever it routes)."""
    connection, channel = _channel(warren_url)
    front, x, q, dlq = unique("front"), unique("dx"), unique("dq"), unique("dlq")
    channel.exchange_declare(front, "fanout")
    _delayed(channel, x, "fanout")
    channel.exchange_bind(x, front)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, x)
    channel.queue_declare(dlq, exclusive=True, arguments={"x-dead-letter-exchange": x,
                                                          "x-message-ttl": 0})
    start = time.monotonic()
    _publish(channel, front, "", b"via-e2e", 150)
    _publish(channel, "", dlq, b"dead-letter", 250)
    got = _collect(connection, channel, q, 2)
    assert [b for b, _, _ in got] == [b"via-e2e", b"dead-letter"]
    assert got[0][1] - start >= 0.14
    assert got[1][1] - start >= 0.24
    connection.close()


def test_management_shows_the_type_arguments_and_held_count(
    fresh_warren: BrokerThread, unique: Any
) -> None:
    import json
    import urllib.request

    connection, channel = _channel(fresh_warren.url)
    x = unique("dx")
    _delayed(channel, x, "topic", durable=True)
    _publish(channel, x, "k", b"m", 60_000)
    connection.close()
    assert fresh_warren.broker is not None
    base = fresh_warren.broker.management_url
    request = urllib.request.Request(f"{base}/api/exchanges/%2F/{x}")
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(request, timeout=5) as response:
        info = json.loads(response.read())
    assert info["type"] == "x-delayed-message"
    assert info["arguments"] == {"x-delayed-type": "topic"}
    assert info["messages_delayed"] == 1


def test_the_trace_api_says_the_message_would_be_delayed(
    fresh_warren: BrokerThread, unique: Any
) -> None:
    import json
    import urllib.request

    connection, channel = _channel(fresh_warren.url)
    x, q = unique("dx"), unique("dq")
    _delayed(channel, x, "direct")
    channel.queue_declare(q)
    channel.queue_bind(q, x, "k")
    connection.close()
    assert fresh_warren.broker is not None
    request = urllib.request.Request(
        f"{fresh_warren.broker.management_url}/api/warren/trace/%2F",
        data=json.dumps({"exchange": x, "routing_key": "k",
                         "headers": {"x-delay": 2500}}).encode(),
        headers={"content-type": "application/json",
                 "Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    assert answer["delayed"] == [{"exchange": x, "delay_ms": 2500}]
    assert [queue["name"] for queue in answer["queues"]] == [q]
    assert f"delayed by 2500 ms at exchange '{x}'" in answer["text"]
