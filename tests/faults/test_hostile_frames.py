"""Content at its limits, over a raw socket: a message over the maximum size,
the rest of a message on a channel being closed, frames of frame_max octets.

Every test here but the ones marked Warren-only passes against RabbitMQ 3.10.8
too (`WARREN_REFERENCE_URL=amqp://guest:guest@127.0.0.1:5673/`), which is where
the expected codes and texts come from.
"""

from __future__ import annotations

import os

import pytest
from broker_helpers import RawClient

from protocol import methods as m
from protocol.constants import PROTOCOL_HEADER
from protocol.frames import BodyFrame, MethodFrame, encode_method_frame

#: RabbitMQ 3.10's default max_message_size, and Warren's.
MAX_MESSAGE_SIZE = 134217728

warren_only = pytest.mark.skipif(
    bool(os.environ.get("WARREN_REFERENCE_URL")),
    reason="Warren refuses an oversized message at its content header; RabbitMQ "
    "3.10 only once the whole body is in (docs/compatibility.md)",
)


def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return (
        bytes([frame_type]) + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big")
        + payload + b"\xce"
    )


def _publish(channel: int, exchange: str = "", routing_key: str = "nowhere") -> bytes:
    return encode_method_frame(channel, m.BasicPublish(exchange=exchange, routing_key=routing_key))


def _header(channel: int, body_size: int) -> bytes:
    return _frame(2, channel, b"\x00\x3c\x00\x00" + body_size.to_bytes(8, "big") + b"\x00\x00")


def _body(channel: int, payload: bytes) -> bytes:
    return _frame(3, channel, payload)


def _client(
    url: str, frame_max: int | None = None, channels: tuple[int, ...] = (1, 2)
) -> RawClient:
    """A raw client, connection and `channels` open, frame_max as asked (or the server's)."""
    client = RawClient(url, open_connection=False)
    client.send(PROTOCOL_HEADER)
    client.expect(m.ConnectionStart)
    client.method(0, m.ConnectionStartOk(
        client_properties={}, mechanism="PLAIN", response=b"\x00guest\x00guest", locale="en_US"))
    tune = client.expect(m.ConnectionTune)
    client.method(0, m.ConnectionTuneOk(
        channel_max=tune.channel_max, frame_max=frame_max or tune.frame_max, heartbeat=0))
    client.method(0, m.ConnectionOpen(virtual_host="/"))
    client.expect(m.ConnectionOpenOk)
    client.frames.clear()
    for channel in channels:
        client.method(channel, m.ChannelOpen())
        assert isinstance(_next_method(client, channel), m.ChannelOpenOk)
    return client


def _take(client: RawClient, predicate: object, timeout: float = 10.0) -> object:
    """The first frame not yet taken that satisfies `predicate`; the frames
    received before it are taken (dropped) with it."""
    frame = client.read_until(predicate, timeout)
    index = next(i for i, f in enumerate(client.frames) if f is frame)
    del client.frames[: index + 1]
    return frame


def _next_method(client: RawClient, channel: int) -> object:
    """The next method the broker sends on `channel`, or its connection.close."""
    return _take(client, lambda f: isinstance(f, MethodFrame) and f.channel in (channel, 0)).method


def _round_trip(client: RawClient, channel: int, queue: str, body: bytes) -> bytes:
    """Publish `body` to `queue` on `channel` and basic.get it back."""
    client.send(_publish(channel, "", queue) + _header(channel, len(body)) + _body(channel, body))
    client.method(channel, m.BasicGet(queue=queue, no_ack=True))
    reply = _next_method(client, channel)
    assert isinstance(reply, m.BasicGetOk), reply
    got = b""
    while len(got) < len(body):
        got += _take(client, lambda f: isinstance(f, BodyFrame) and f.channel == channel).payload
    return got


def _declare(client: RawClient, channel: int) -> str:
    client.method(channel, m.QueueDeclare(queue="", exclusive=True))
    reply = _next_method(client, channel)
    assert isinstance(reply, m.QueueDeclareOk), reply
    return reply.queue


def _channel_is_usable_again(client: RawClient, channel: int) -> None:
    """close-ok for the broker's channel.close, reopen the number, use it."""
    client.method(channel, m.ChannelCloseOk())
    client.method(channel, m.ChannelOpen())
    assert isinstance(_next_method(client, channel), m.ChannelOpenOk)
    queue = _declare(client, channel)
    assert _round_trip(client, channel, queue, b"after") == b"after"


# -- a message over the maximum size ------------------------------------------


@warren_only
@pytest.mark.parametrize("body_size", [MAX_MESSAGE_SIZE + 1, 2**63])
def test_oversized_message_closes_only_its_channel(warren_url: str, body_size: int) -> None:
    """406 on that channel, the body frames already sent are dropped, the other
    channel carries on, and the channel number can be opened again."""
    with _client(warren_url) as client:
        queue = _declare(client, 2)
        client.send(_publish(1) + _header(1, body_size) + _body(1, b"x" * 60000) * 3)
        close = _next_method(client, 1)
        assert isinstance(close, m.ChannelClose), close
        assert (close.reply_code, close.class_id, close.method_id) == (406, 60, 40)
        assert close.reply_text == (
            f"PRECONDITION_FAILED - message size {body_size} is larger than configured "
            f"max size {MAX_MESSAGE_SIZE}"
        )
        # More of the body, sent after the 406 was read: it reaches the broker
        # after its channel.close for sure. Then the other channel is used.
        client.send(_body(1, b"y" * 60000) * 5)
        assert _round_trip(client, 2, queue, b"still working") == b"still working"
        _channel_is_usable_again(client, 1)
        assert _round_trip(client, 2, queue, b"and still") == b"and still"


def test_oversized_message_sent_in_full_closes_only_its_channel(warren_url: str) -> None:
    """The whole 128 MiB + 1 body: RabbitMQ reads it all, then answers 406;
    Warren answers 406 at the header and drops the body. Same end state."""
    size = MAX_MESSAGE_SIZE + 1
    with _client(warren_url) as client:
        queue = _declare(client, 2)
        client.send(_publish(1) + _header(1, size))
        chunk = _body(1, b"x" * 131064)
        run = chunk * 64
        sent = 0
        while size - sent >= 64 * 131064:
            client.send(run)
            sent += 64 * 131064
        while sent < size:
            n = min(131064, size - sent)
            client.send(_body(1, b"y" * n))
            sent += n
        close = _next_method(client, 1)
        assert isinstance(close, m.ChannelClose), close
        assert (close.reply_code, close.class_id, close.method_id) == (406, 60, 40)
        assert close.reply_text == (
            f"PRECONDITION_FAILED - message size {size} is larger than configured "
            f"max size {MAX_MESSAGE_SIZE}"
        )
        assert _round_trip(client, 2, queue, b"still working") == b"still working"
        _channel_is_usable_again(client, 1)


def test_the_rest_of_a_message_after_its_channel_closed_is_dropped(warren_url: str) -> None:
    """A publish to a missing exchange (404) followed, in the same write, by
    the method and header of another message: its body comes after the broker's
    channel.close and must be dropped, not taken for a stray frame (505)."""
    with _client(warren_url) as client:
        queue = _declare(client, 2)
        missing = "t.content-limits.missing"
        client.send(
            _publish(1, missing) + _header(1, 3) + _body(1, b"abc")
            + _publish(1, missing) + _header(1, 10)
        )
        close = _next_method(client, 1)
        assert isinstance(close, m.ChannelClose), close
        assert close.reply_code == 404
        client.send(_body(1, b"0123456789"))
        assert _round_trip(client, 2, queue, b"still working") == b"still working"
        _channel_is_usable_again(client, 1)


# -- frame_max ------------------------------------------------------------------


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_body_frame_of_exactly_frame_max_octets_is_accepted(warren_url: str, frame_max: int):
    """frame_max + 8 octets on the wire: RabbitMQ 3.10 accepts it (8 octets of
    tolerance), so do we; the message comes back whole, split to frame_max."""
    with _client(warren_url, frame_max, channels=(1,)) as client:
        queue = _declare(client, 1)
        for size in (frame_max - 8, frame_max - 7, frame_max):
            body = bytes(range(256)) * (size // 256) + b"!" * (size % 256)
            client.send(_publish(1, "", queue) + _header(1, size) + _body(1, body))
            client.method(1, m.BasicGet(queue=queue, no_ack=True))
            reply = _next_method(client, 1)
            assert isinstance(reply, m.BasicGetOk), reply
            payloads: list[bytes] = []
            while sum(map(len, payloads)) < size:
                payloads.append(_take(client, lambda f: isinstance(f, BodyFrame)).payload)
            assert b"".join(payloads) == body
            # what the broker writes keeps to the spec: frame_max octets in all
            assert max(map(len, payloads)) <= frame_max - 8


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_body_frame_over_frame_max_octets_is_501(warren_url: str, frame_max: int) -> None:
    with _client(warren_url, frame_max, channels=(1,)) as client:
        size = frame_max + 1
        client.send(_publish(1) + _header(1, size) + _body(1, b"x" * size))
        close = client.expect(m.ConnectionClose)
        assert (close.reply_code, close.class_id, close.method_id) == (501, 0, 0)
        assert close.reply_text == (
            f"FRAME_ERROR - type 3, all octets = <<>>: {{frame_too_large,{size},{frame_max - 8}}}"
        )
