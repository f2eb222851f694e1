"""Exchanges, queues and bindings: declare, passive, equivalence, exclusive,
auto-delete, purge, delete, and the --config topology. Real pika clients."""

from __future__ import annotations

import time
from pathlib import Path

import pika
import pika.exceptions
import pytest
from broker_helpers import connect

from broker.testing import BrokerThread


@pytest.fixture
def channel(warren_url: str):
    connection = connect(warren_url)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def closed_code(call, *args, **kwargs) -> int:
    """Run a pika call that the broker must refuse; the reply code it closed with."""
    with pytest.raises(
        (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)
    ) as info:
        call(*args, **kwargs)
    return info.value.reply_code


@pytest.mark.parametrize(
    ("name", "type_"),
    [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ],
)
def test_predeclared_exchanges(channel, name: str, type_: str) -> None:
    channel.exchange_declare(name, passive=True)
    # Redeclaring with the same properties is fine, as in RabbitMQ.
    channel.exchange_declare(name, type_, durable=True)


def test_default_exchange_routes_by_queue_name(channel, unique) -> None:
    queue = unique()
    channel.queue_declare(queue, auto_delete=True)
    channel.basic_publish("", queue, b"by name")
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"by name" and method.exchange == "" and method.routing_key == queue


def test_default_exchange_refuses_everything_else(warren_url: str, unique) -> None:
    for action in (
        lambda ch: ch.exchange_declare("", "direct", durable=True),
        lambda ch: ch.exchange_delete(""),
        lambda ch: ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, "", "k"),
    ):
        connection = connect(warren_url)
        try:
            assert closed_code(action, connection.channel()) == 403
        finally:
            connection.close()


def test_exchange_declare_passive_and_delete(channel, unique) -> None:
    name = unique("x")
    assert closed_code(channel.exchange_declare, name, passive=True) == 404


def test_exchange_lifecycle(channel, unique) -> None:
    name = unique("x")
    channel.exchange_declare(name, "topic")
    channel.exchange_declare(name, passive=True)
    channel.exchange_delete(name)
    channel.exchange_delete(name)  # deleting what is gone is delete-ok (RabbitMQ 3.10)
    assert closed_code(channel.exchange_declare, name, passive=True) == 404


@pytest.mark.parametrize(
    ("first", "second", "arg"),
    [
        ({"exchange_type": "direct"}, {"exchange_type": "fanout"}, "type"),
        ({"durable": False}, {"durable": True}, "durable"),
        ({"auto_delete": False}, {"auto_delete": True}, "auto_delete"),
        ({"internal": False}, {"internal": True}, "internal"),
    ],
)
def test_exchange_redeclare_with_other_properties_is_406(
    warren_url: str, unique, first: dict, second: dict, arg: str
) -> None:
    name = unique("x")
    connection = connect(warren_url)
    try:
        channel = connection.channel()
        channel.exchange_declare(name, **first)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            channel.exchange_declare(name, **second)
        assert info.value.reply_code == 406
        assert f"inequivalent arg '{arg}' for exchange '{name}'" in info.value.reply_text
        connection.channel().exchange_delete(name)
    finally:
        connection.close()


def test_unknown_exchange_type_is_503_connection_error(warren_url: str, unique) -> None:
    connection = connect(warren_url)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        connection.channel().exchange_declare(unique("x"), "no-such-type")
    assert info.value.reply_code == 503
    assert info.value.reply_text == "COMMAND_INVALID - unknown exchange type 'no-such-type'"


def test_amq_prefix_is_reserved(warren_url: str) -> None:
    connection = connect(warren_url)
    try:
        assert closed_code(connection.channel().exchange_declare, "amq.mine", "direct") == 403
        assert closed_code(connection.channel().queue_declare, "amq.mine") == 403
        assert closed_code(connection.channel().exchange_delete, "amq.direct") == 403
    finally:
        connection.close()


def test_exchange_delete_if_unused(channel, unique) -> None:
    name, queue = unique("x"), unique()
    channel.exchange_declare(name, "direct")
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, name, "k")
    assert closed_code(channel.exchange_delete, name, if_unused=True) == 406


def test_exchange_to_exchange_bindings(channel, unique) -> None:
    front, back, queue = unique("front"), unique("back"), unique()
    channel.exchange_declare(front, "topic")
    channel.exchange_declare(back, "fanout")
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, back)
    channel.exchange_bind(back, front, "orders.#")
    channel.basic_publish(front, "orders.eu.created", b"routed twice")
    channel.basic_publish(front, "invoices.x", b"not routed")
    time.sleep(0.05)
    assert channel.basic_get(queue, auto_ack=True)[2] == b"routed twice"
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    channel.exchange_unbind(back, front, "orders.#")
    channel.basic_publish(front, "orders.eu.created", b"unbound")
    time.sleep(0.05)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    channel.exchange_delete(front)
    channel.exchange_delete(back)


def test_auto_delete_exchange_goes_with_its_last_binding(channel, unique) -> None:
    name, queue = unique("x"), unique()
    channel.exchange_declare(name, "direct", auto_delete=True)
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, name, "k")
    channel.queue_unbind(queue, name, "k")
    assert closed_code(channel.exchange_declare, name, passive=True) == 404


def test_server_named_queue(channel) -> None:
    result = channel.queue_declare("", exclusive=True)
    name = result.method.queue
    assert name.startswith("amq.gen-") and len(name) == len("amq.gen-") + 22
    assert result.method.message_count == 0 and result.method.consumer_count == 0


def test_queue_passive_counts(channel, unique) -> None:
    queue = unique()
    assert closed_code(channel.queue_declare, queue, passive=True) == 404
    channel = channel.connection.channel()
    channel.queue_declare(queue, auto_delete=False)
    channel.confirm_delivery()  # publishes complete before the count is read
    for i in range(3):
        channel.basic_publish("", queue, b"m%d" % i)
    ok = channel.queue_declare(queue, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    channel.queue_delete(queue)


def test_queue_redeclare_with_other_properties_is_406(warren_url: str, unique) -> None:
    queue = unique()
    connection = connect(warren_url)
    try:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            channel.queue_declare(queue, durable=True, auto_delete=True)
        assert info.value.reply_code == 406
        assert info.value.reply_text == (
            f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{queue}' in vhost "
            "'/': received 'true' but current is 'false'"
        )
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            channel.queue_declare(queue, auto_delete=True, arguments={"x-max-length": 5})
        assert info.value.reply_code == 406
        assert "received the value '5' of type 'signedint' but current is none" in (
            info.value.reply_text
        )
    finally:
        connection.close()


def test_exclusive_queue_is_locked_to_its_connection_and_deleted_with_it(
    warren_url: str,
) -> None:
    owner = connect(warren_url)
    other = connect(warren_url)
    try:
        queue = owner.channel().queue_declare("", exclusive=True).method.queue
        for action in (
            lambda ch: ch.queue_declare(queue, passive=True),
            lambda ch: ch.basic_consume(queue, lambda *a: None),
            lambda ch: ch.basic_get(queue),
            lambda ch: ch.queue_delete(queue),
            lambda ch: ch.queue_purge(queue),
            lambda ch: ch.queue_bind(queue, "amq.fanout"),
        ):
            assert closed_code(action, other.channel()) == 405
        owner.close()
        time.sleep(0.05)
        assert closed_code(other.channel().queue_declare, queue, passive=True) == 404
    finally:
        other.close()
        if owner.is_open:
            owner.close()


def test_auto_delete_queue_goes_after_its_last_consumer(channel, unique) -> None:
    queue = unique()
    channel.queue_declare(queue, auto_delete=True)
    # No consumer yet: it stays.
    channel.queue_declare(queue, passive=True)
    first = channel.basic_consume(queue, lambda *a: None)
    second = channel.basic_consume(queue, lambda *a: None)
    channel.basic_cancel(first)
    channel.queue_declare(queue, passive=True)
    channel.basic_cancel(second)
    assert closed_code(channel.queue_declare, queue, passive=True) == 404


def test_bind_unbind_and_missing_things(channel, unique) -> None:
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, "amq.direct", "k1")
    channel.basic_publish("amq.direct", "k1", b"bound")
    time.sleep(0.05)
    assert channel.basic_get(queue, auto_ack=True)[2] == b"bound"
    channel.queue_unbind(queue, "amq.direct", "k1")
    channel.queue_unbind(queue, "amq.direct", "never-bound")  # unbind-ok, as RabbitMQ
    channel.basic_publish("amq.direct", "k1", b"unbound")
    time.sleep(0.05)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    assert closed_code(channel.queue_bind, unique("missing"), "amq.direct", "k") == 404
    channel = channel.connection.channel()
    assert closed_code(channel.queue_bind, queue, unique("missing-x"), "k") == 404


def test_purge_and_delete_if_empty_if_unused(channel, unique) -> None:
    queue = unique()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    for i in range(4):
        channel.basic_publish("", queue, b"%d" % i)
    assert closed_code(channel.queue_delete, queue, if_empty=True) == 406
    channel = channel.connection.channel()
    assert channel.queue_purge(queue).method.message_count == 4
    channel.basic_consume(queue, lambda *a: None)
    assert closed_code(channel.queue_delete, queue, if_unused=True) == 406
    channel = channel.connection.channel()
    channel.basic_publish("", queue, b"x")
    channel.queue_declare(queue, passive=True)
    # The consumer went with the closed channel; one message is ready.
    assert channel.queue_delete(queue).method.message_count == 1
    assert channel.queue_delete(queue).method.message_count == 0  # gone: still delete-ok
    assert closed_code(channel.queue_purge, queue) == 404


def test_queue_length_limit_drop_head(channel, unique) -> None:
    queue = unique()
    channel.queue_declare(queue, exclusive=True, arguments={"x-max-length": 2})
    channel.confirm_delivery()
    for i in range(5):
        channel.basic_publish("", queue, b"%d" % i)
    assert channel.queue_declare(queue, passive=True).method.message_count == 2
    assert channel.basic_get(queue, auto_ack=True)[2] == b"3"


def test_config_file_topology_is_declared_at_start(tmp_path: Path) -> None:
    conf = tmp_path / "warren.conf"
    conf.write_text(
        "exchange events type topic durable\n"
        "queue audit durable\n"
        "    max-length 10\n"
        "bind audit to events key \"order.#\"\n",
        encoding="utf-8",
    )
    thread = BrokerThread(config_path=conf)
    thread.start()
    try:
        connection = connect(thread.url)
        channel = connection.channel()
        channel.exchange_declare("events", passive=True)
        assert channel.queue_declare("audit", passive=True).method.message_count == 0
        channel.basic_publish("events", "order.eu.created", b"configured")
        time.sleep(0.05)
        assert channel.basic_get("audit", auto_ack=True)[2] == b"configured"
        # The declared arguments count, as if a client had declared them.
        assert closed_code(channel.queue_declare, "audit", durable=True) == 406
        connection.close()
    finally:
        thread.stop()
