"""Connection limits set in a settings file: offered in connection.tune and
enforced with RabbitMQ's answers.

One `rabbitmq.conf` with non-default `channel_max`, `frame_max`,
`max_message_size` and `connection_max`, read by `load_settings` (as
`warren serve --settings` does) and served by a real Warren; pika and a raw
frame-level client see the limits. The answers are RabbitMQ's
(`rabbit_reader`: `create_channel`, `handle_input` for frame_too_large,
`rabbit_channel` for the message size, `is_over_node_connection_limit` for
connection_max, RabbitMQ 3.12+; docs/compatibility.md, "Connections").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from broker_helpers import RawClient
from pika.exceptions import ChannelClosedByBroker, ProbableAccessDeniedError

from broker.settings import load_settings, parse_settings
from broker.testing import BrokerThread
from protocol import methods as m
from protocol.constants import PROTOCOL_HEADER
from protocol.frames import encode_method_frame

CONF = """\
listeners.tcp.default = 127.0.0.1:0
management.tcp.ip = 127.0.0.1
management.tcp.port = 0
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = 0
channel_max = 3
frame_max = 8KB
max_message_size = 1000
connection_max = 2
"""


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[BrokerThread]:
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(CONF)
    settings = load_settings(conf)
    assert (settings.channel_max, settings.frame_max) == (3, 8192)
    thread = BrokerThread(settings=settings)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def _pika(thread: BrokerThread) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(thread.url))


def _raw_open(thread: BrokerThread, frame_max: int | None = None) -> tuple[RawClient, object]:
    """A raw client through connection.open-ok; returns it and the broker's tune."""
    client = RawClient(thread.url, open_connection=False)
    client.send(PROTOCOL_HEADER)
    client.expect(m.ConnectionStart)
    client.method(0, m.ConnectionStartOk(
        client_properties={}, mechanism="PLAIN", response=b"\x00guest\x00guest", locale="en_US"))
    tune = client.expect(m.ConnectionTune)
    client.method(0, m.ConnectionTuneOk(
        channel_max=tune.channel_max, frame_max=frame_max or tune.frame_max, heartbeat=0))
    client.method(0, m.ConnectionOpen(virtual_host="/"))
    client.expect(m.ConnectionOpenOk)
    return client, tune


def test_connection_tune_offers_the_files_channel_max_and_frame_max(limited) -> None:
    client, tune = _raw_open(limited)
    with client:
        assert (tune.channel_max, tune.frame_max) == (3, 8192)
    # pika takes the lower of its own wishes and the offer.
    connection = _pika(limited)
    try:
        assert connection._impl.params.channel_max == 3
        assert connection._impl.params.frame_max == 8192
    finally:
        connection.close()


def test_channel_max_closes_the_connection_with_530_at_one_channel_too_many(limited) -> None:
    # RabbitMQ (rabbit_reader:create_channel) counts open channels, not
    # channel numbers (100 is fine under channel_max 3): the fourth open
    # channel is a connection error naming no method (class 0, method 0, as a
    # 3.10.8 node answers at its 2048th channel). pika counts channels itself
    # (NoFreeChannels), hence the raw client.
    client, _tune = _raw_open(limited)
    with client:
        for channel in (1, 2, 100):
            client.method(channel, m.ChannelOpen())
            client.expect(m.ChannelOpenOk)
        client.method(4, m.ChannelOpen())
        close = client.expect(m.ConnectionClose)
        assert (close.reply_code, close.class_id, close.method_id) == (530, 0, 0)
        assert close.reply_text == (
            "NOT_ALLOWED - number of channels opened (3) has reached the negotiated "
            "channel_max (3)"
        )


def test_a_frame_over_frame_max_is_501_frame_error(limited) -> None:
    client, _tune = _raw_open(limited)
    with client:
        client.method(1, m.ChannelOpen())
        client.expect(m.ChannelOpenOk)
        size = 8192 + 1  # 8 octets over what the frame may carry, plus one
        header = (b"\x02\x00\x01" + (14).to_bytes(4, "big") + b"\x00\x3c\x00\x00"
                  + size.to_bytes(8, "big") + b"\x00\x00\xce")
        body = b"\x03\x00\x01" + size.to_bytes(4, "big") + b"x" * size + b"\xce"
        client.send(encode_method_frame(1, m.BasicPublish(routing_key="nowhere")) + header + body)
        close = client.expect(m.ConnectionClose)
        assert (close.reply_code, close.class_id, close.method_id) == (501, 0, 0)
        assert close.reply_text == (
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,8193,8184}"
        )


def test_a_message_over_max_message_size_is_406_on_its_channel_only(limited) -> None:
    connection = _pika(limited)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"x" * 1000)  # exactly the limit: fine
        with pytest.raises(ChannelClosedByBroker) as closed:
            channel.basic_publish("", queue, b"x" * 1001)
            channel.queue_declare(queue, passive=True)  # the 406 arrives by then
        assert closed.value.reply_code == 406
        assert closed.value.reply_text == (
            "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
        )
        # The connection stays open; the message at the limit was kept.
        other = connection.channel()
        assert other.queue_declare(queue, passive=True).method.message_count == 1
    finally:
        connection.close()


def test_connection_max_refuses_connection_open_with_530_until_one_closes(limited) -> None:
    # RabbitMQ 3.12+ (rabbit_reader:is_over_node_connection_limit) answers
    # connection.open with this 530; RabbitMQ 3.10 has Ranch stop accepting
    # instead (docs/compatibility.md, "Connections").
    first, second = _pika(limited), _pika(limited)
    client = RawClient(limited.url, open_connection=False)
    with client:
        client.send(PROTOCOL_HEADER)
        client.expect(m.ConnectionStart)
        client.method(0, m.ConnectionStartOk(
            client_properties={}, mechanism="PLAIN", response=b"\x00guest\x00guest",
            locale="en_US"))
        tune = client.expect(m.ConnectionTune)
        client.method(0, m.ConnectionTuneOk(
            channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0))
        client.method(0, m.ConnectionOpen(virtual_host="/"))
        close = client.expect(m.ConnectionClose)
        assert (close.reply_code, close.class_id, close.method_id) == (530, 10, 40)
        assert close.reply_text == (
            "NOT_ALLOWED - connection refused: node connection limit (2) is reached"
        )
    with pytest.raises(ProbableAccessDeniedError):
        _pika(limited)  # what pika users see
    first.close()
    third = _pika(limited)  # a place is free again
    third.channel()
    third.close()
    second.close()


def test_the_security_pages_connection_limits_example_means_what_its_table_says() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    found = re.search(r"<!-- tested: connection-limits -->\n```ini\n(.*?)```", page, re.S)
    assert found, "docs/security.md has no block marked 'tested: connection-limits'"
    settings = parse_settings(found.group(1), "security.md")
    assert (
        settings.handshake_timeout, settings.connection_max, settings.channel_max,
        settings.frame_max, settings.max_message_size, settings.heartbeat,
    ) == (5000, 1000, 128, 131072, 16777216, 30)
    for key in ("handshake_timeout", "connection_max", "channel_max", "frame_max",
                "max_message_size", "heartbeat"):
        assert f"| `{key}` (" in page, f"security.md's limits table lacks {key}"
