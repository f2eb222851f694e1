"""basic.publish mandatory and basic.return (spec 1.8.3.7, 1.8.3.8)."""

from __future__ import annotations

import pika.exceptions
import pytest

from conformance.helpers import get, publish, sync, wait_for

AREA = "mandatory and basic.return"


@pytest.fixture
def returns(channel):
    returned = []
    channel.add_on_return_callback(
        lambda ch, method, properties, body: returned.append((method, properties, body))
    )
    return returned


def test_unroutable_mandatory_is_returned_with_312(connection, channel, names, returns):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    publish(channel, exchange, "nowhere", b"payload", mandatory=True, message_id="m-1")
    assert wait_for(connection, lambda: returns)
    method, properties, body = returns[0]
    assert method.reply_code == 312
    assert method.reply_text == "NO_ROUTE"
    assert method.exchange == exchange
    assert method.routing_key == "nowhere"
    assert body == b"payload"
    assert properties.message_id == "m-1"


def test_routable_mandatory_is_not_returned(connection, channel, names, returns):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"ok", mandatory=True)
    sync(channel)
    assert not wait_for(connection, lambda: returns, timeout=0.1)
    assert get(channel, queue, auto_ack=True).body == b"ok"


def test_unroutable_without_mandatory_is_dropped_silently(connection, channel, names, returns):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    publish(channel, exchange, "nowhere", b"lost")
    sync(channel)
    assert not wait_for(connection, lambda: returns, timeout=0.1)
    assert channel.is_open


def test_default_exchange_to_missing_queue_is_returned(connection, channel, names, returns):
    missing = names.queue()
    publish(channel, "", missing, b"x", mandatory=True)
    assert wait_for(connection, lambda: returns)
    method = returns[0][0]
    assert (method.reply_code, method.exchange, method.routing_key) == (312, "", missing)


def test_each_unroutable_message_is_returned_in_order(connection, channel, names, returns):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    for i in range(5):
        publish(channel, exchange, "", f"m{i}", mandatory=True)
    assert wait_for(connection, lambda: len(returns) >= 5)
    assert [body for _, _, body in returns] == [f"m{i}".encode() for i in range(5)]


def test_returned_message_keeps_headers(connection, channel, names, returns):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")
    headers = {"trace": "abc", "n": 7, "nested": {"k": "v"}}
    publish(channel, exchange, "a.b", b"x", mandatory=True, headers=headers)
    assert wait_for(connection, lambda: returns)
    assert returns[0][1].headers == headers


def test_mandatory_return_precedes_confirm(channel, names):
    """With confirms, an unroutable mandatory message is returned, then acked.

    pika's BlockingChannel reports that combination as UnroutableError.
    """
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as exc:
        publish(channel, exchange, "nowhere", b"x", mandatory=True)
    assert exc.value.messages[0].method.reply_code == 312
