"""Message content: bodies split across frames, empty bodies, every property (spec 2.3.5, 4.2.6)."""

from __future__ import annotations

import datetime
import decimal
import hashlib

import pytest

from conformance.helpers import Consumer, channel_closed_with, get, publish, sync

AREA = "content and large messages"


def roundtrip(channel, names, body: bytes, **properties):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, body, **properties)
    return get(channel, queue, auto_ack=True)


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 131_064, 131_072, 1_000_000])
def test_body_sizes_around_frame_boundaries_roundtrip(connect, names, size):
    # With frame_max 4096 a body frame carries at most 4088 bytes (4096 - 8).
    connection = connect(frame_max=4096)
    channel = connection.channel()
    body = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    body = body[:size]
    delivery = roundtrip(channel, names, body)
    assert len(delivery.body) == size
    assert delivery.body == body


def test_large_message_to_consumer_with_big_frame_max(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    body = bytes(range(256)) * 16_384  # 4 MiB
    publish(channel, "", queue, body)
    consumer = Consumer(channel, queue, auto_ack=True)
    assert consumer.wait(1)[0].body == body


def test_many_large_messages_interleave_on_two_channels(connection, names):
    first, second = connection.channel(), connection.channel()
    queue = names.queue()
    first.queue_declare(queue)
    bodies = [bytes([i]) * 300_000 for i in range(6)]
    for i, body in enumerate(bodies):
        publish(first if i % 2 == 0 else second, "", queue, body)
    consumer = Consumer(first, queue, auto_ack=True)
    received = consumer.wait(6)
    assert sorted(d.body for d in received) == sorted(bodies)


def test_all_basic_properties_roundtrip(channel, names):
    # user-id has its own tests below: RabbitMQ validates it against the login.
    properties = {
        "content_type": "application/json",
        "content_encoding": "gzip",
        "headers": {"k": "v"},
        "delivery_mode": 2,
        "priority": 5,
        "correlation_id": "corr-1",
        "reply_to": "reply.queue",
        "expiration": "60000",
        "message_id": "msg-1",
        "timestamp": 1_700_000_000,
        "type": "order.created",
        "app_id": "conformance",
        "cluster_id": "c1",
    }
    delivery = roundtrip(channel, names, b"{}", **properties)
    for key, value in properties.items():
        assert getattr(delivery.properties, key) == value, key


def test_user_id_matching_the_login_is_accepted(channel, names, parameters):
    username = parameters.credentials.username
    delivery = roundtrip(channel, names, b"x", user_id=username)
    assert delivery.properties.user_id == username


def test_user_id_not_matching_the_login_is_406(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"x", user_id="someone-else-entirely")
    # RabbitMQ validates user-id against the connection's user: 406.
    with channel_closed_with(406):
        sync(channel)


def test_absent_properties_stay_absent(channel, names):
    delivery = roundtrip(channel, names, b"bare")
    props = delivery.properties
    assert props.content_type is None
    assert props.headers is None
    assert props.delivery_mode is None
    assert props.message_id is None


def test_header_field_types_roundtrip(channel, names):
    headers = {
        "str": "text",
        "utf8": "ключ 日本",
        "int": 42,
        "negative": -7,
        "long": 2**40,
        "bool_true": True,
        "bool_false": False,
        "decimal": decimal.Decimal("3.14"),
        "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "table": {"inner": "value", "n": 1, "deeper": {"x": "y"}},
        "array": ["a", 1, True, {"t": "v"}, ["nested"]],
        "bytes": b"\x00\x01\xff",
        "void": None,
        "empty_table": {},
        "empty_array": [],
        "empty_string": "",
    }
    delivery = roundtrip(channel, names, b"x", headers=headers)
    received = delivery.headers
    for key, value in headers.items():
        assert key in received, key
        assert received[key] == value, (key, received[key], value)


def test_long_header_value(channel, names):
    value = "v" * 100_000
    delivery = roundtrip(channel, names, b"x", headers={"big": value})
    assert delivery.headers["big"] == value
