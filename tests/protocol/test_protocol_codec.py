"""Round trips of the core codec: methods, properties, field tables, frames."""

import datetime
import decimal

import pytest
from sized_frames import sized_frame

from protocol import methods as m
from protocol.constants import FRAME_MIN_SIZE, PROTOCOL_HEADER, ReplyCode
from protocol.errors import ChannelException, ConnectionException, error_for
from protocol.fields import Timestamp, decode_array, decode_table, encode_array, encode_table
from protocol.frames import (
    BodyFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    decode_all,
    encode_basic_deliver,
    encode_basic_get_ok,
    encode_basic_return,
    encode_content_frames,
    encode_heartbeat,
    encode_method_frame,
)
from protocol.properties import BasicProperties, delivery_mode_of, properties_has_headers


def test_constants():
    assert PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert FRAME_MIN_SIZE == 4096
    assert ReplyCode.NO_ROUTE == 312


def test_every_method_class_is_present():
    assert len(m.METHODS) == 64
    for (class_id, method_id), cls in m.METHODS.items():
        assert (cls.CLASS_ID, cls.METHOD_ID) == (class_id, method_id)
        assert getattr(m, cls.__name__) is cls
    assert m.BasicPublish.NAME == "basic.publish"
    assert m.BasicPublish.HAS_CONTENT and not m.BasicPublish.SYNCHRONOUS
    assert m.QueueDeclare.SYNCHRONOUS
    assert m.ExchangeUnbindOk.METHOD_ID == 51


@pytest.mark.parametrize("cls", list(m.METHODS.values()), ids=lambda c: c.NAME)
def test_default_method_round_trip(cls):
    method = cls()
    raw = method.encode_arguments()
    assert cls.decode_arguments(raw, 0) == method
    # decoding at an offset, inside a larger buffer, bounded by end
    padded = b"xx" + raw + b"yy"
    assert cls.decode_arguments(padded, 2, 2 + len(raw)) == method
    # from a bytearray or a memoryview too
    assert cls.decode_arguments(bytearray(padded), 2, 2 + len(raw)) == method
    assert cls.decode_arguments(memoryview(padded), 2, 2 + len(raw)) == method


def test_method_arguments_with_values():
    method = m.QueueDeclare(
        queue="q\u00e9", durable=True, auto_delete=True, arguments={"x-max-length": 10}
    )
    raw = method.encode_arguments()
    back = m.QueueDeclare.decode_arguments(raw, 0)
    assert back == method
    assert back.arguments == {"x-max-length": 10}
    assert back.passive is False and back.exclusive is False and back.nowait is False
    assert m.BasicQos(prefetch_count=10, global_=True).encode_arguments() == (
        b"\x00\x00\x00\x00\x00\x0a\x01"
    )
    start_ok = m.ConnectionStartOk(response=b"\x00guest\x00guest")
    assert m.ConnectionStartOk.decode_arguments(start_ok.encode_arguments()).response == (
        b"\x00guest\x00guest"
    )


def test_bits_pack_into_one_octet():
    raw = m.BasicNack(delivery_tag=7, multiple=True, requeue=False).encode_arguments()
    assert raw == b"\x00\x00\x00\x00\x00\x00\x00\x07\x01"
    raw = m.QueueDeclare(passive=True, nowait=True).encode_arguments()
    # reserved short, empty queue name, bits passive(1) | nowait(16), empty table
    assert raw == b"\x00\x00\x00\x11\x00\x00\x00\x00"


def test_method_decode_errors_are_501_with_ids():
    """RabbitMQ answers undecodable arguments with 501 FRAME_ERROR "cannot decode"."""
    raw = m.BasicPublish(exchange="e", routing_key="r").encode_arguments()
    with pytest.raises(ConnectionException) as info:
        m.BasicPublish.decode_arguments(raw[:-2])
    assert info.value.reply_code == 501
    assert (info.value.class_id, info.value.method_id) == (60, 40)
    with pytest.raises(ConnectionException) as info:
        m.BasicPublish.decode_arguments(raw + b"\x00")
    assert info.value.reply_code == 501
    with pytest.raises(ConnectionException) as info:
        m.BasicAck.decode_arguments(b"\x00")
    assert (info.value.reply_code, info.value.class_id, info.value.method_id) == (501, 60, 80)
    bad_utf8 = b"\x00\x00\x01\xff\x00\x00"
    with pytest.raises(ConnectionException) as info:
        m.BasicPublish.decode_arguments(bad_utf8)
    assert info.value.reply_code == 501
    # a malformed table in arguments: class and method ids are filled in
    bad_table = b"\x00\x00\x01q\x00\x00\x00\x00\x00\x05\x01k?"
    with pytest.raises(ConnectionException) as info:
        m.QueueDeclare.decode_arguments(bad_table)
    assert (info.value.reply_code, info.value.class_id, info.value.method_id) == (501, 50, 10)


def test_errors_classify():
    assert error_for(404, "NOT_FOUND").closes_connection is False
    assert isinstance(error_for(406, "x"), ChannelException)
    assert isinstance(error_for(501, "x"), ConnectionException)
    assert error_for(530, "x", 20, 10).closes_connection
    assert error_for(320, "x").closes_connection


def test_field_table_round_trip_all_types():
    table = {
        "bool": True,
        "small": -5,
        "short": 1000,
        "ushort": 65000,
        "int": -100000,
        "uint": 4000000000,
        "long": 2**40,
        "ulong": 2**63 + 5,
        "float": 1.5,
        "decimal": decimal.Decimal("3.14"),
        "str": "h\u00e9llo",
        "binary": b"\xff\xfe",
        "bytes": bytearray(b"\x00\x01"),
        "ts": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "big_ts": Timestamp(2**62),
        "nested": {"a": [1, "two", {"three": None}], "b": []},
        "void": None,
    }
    raw = encode_table(table)
    back, end = decode_table(raw, 0)
    assert end == len(raw)
    assert back == table
    assert encode_table(back) == raw
    assert decode_table(memoryview(raw), 0) == (table, len(raw))
    assert decode_array(encode_array([1, "a", None]), 0) == ([1, "a", None], 13)


def test_field_table_wire_types():
    assert encode_table({"a": True}) == b"\x00\x00\x00\x04\x01at\x01"
    assert encode_table({"a": 1}) == b"\x00\x00\x00\x04\x01ab\x01"
    assert encode_table({"a": 1.0}) == b"\x00\x00\x00\x0b\x01ad?\xf0\x00\x00\x00\x00\x00\x00"
    # the types only RabbitMQ or other clients write: B u i f L
    raw = (b"\x01aB\xff" b"\x01bu\xff\xff" b"\x01ci\xff\xff\xff\xff" b"\x01df?\xc0\x00\x00"
           b"\x01eL\xff\xff\xff\xff\xff\xff\xff\xff" b"\x01fV")
    table, _ = decode_table(len(raw).to_bytes(4, "big") + raw)
    assert table == {"a": 255, "b": 65535, "c": 2**32 - 1, "d": 1.5, "e": 2**64 - 1, "f": None}


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00\x00\x05\x01a",  # truncated
        b"\x00\x00\x00\x03\x01aZ",  # unknown type
        b"\x00\x00\x00\x03\x01\xffV",  # bad UTF-8 key
        b"\x00\x00\x00\x06\x01aS\x00\x00\x00",  # long string length cut
        b"\x00\x00\x00\x03\x01aI",  # int cut
    ],
)
def test_malformed_tables_are_502(raw):
    with pytest.raises(ConnectionException) as info:
        decode_table(raw, 0)
    assert info.value.reply_code == 502


def test_deep_nesting_is_502_not_recursion_error():
    raw = b"V"
    for _ in range(5000):
        raw = b"A" + len(raw).to_bytes(4, "big") + raw
    table = b"\x01k" + raw
    with pytest.raises(ConnectionException) as info:
        decode_table(len(table).to_bytes(4, "big") + table, 0)
    assert info.value.reply_code == 502


def test_properties_round_trip_each_field():
    values = {
        "content_type": "text/plain",
        "content_encoding": "gzip",
        "headers": {"x": 1, "y": "z"},
        "delivery_mode": 2,
        "priority": 9,
        "correlation_id": "c",
        "reply_to": "r",
        "expiration": "6000",
        "message_id": "m",
        "timestamp": 1700000000,
        "type": "t",
        "user_id": "guest",
        "app_id": "a",
        "cluster_id": "cl",
    }
    full = BasicProperties(**values)
    assert BasicProperties.decode(full.encode()) == full
    assert BasicProperties.decode(memoryview(full.encode())) == full
    for name, value in values.items():
        one = BasicProperties(**{name: value})
        raw = one.encode()
        assert BasicProperties.decode(raw) == one
        assert properties_has_headers(raw) == (name == "headers")
        assert delivery_mode_of(raw) == (2 if name == "delivery_mode" else None)
    assert BasicProperties().encode() == b"\x00\x00"
    assert delivery_mode_of(full.encode()) == 2


def test_properties_decode_errors():
    with pytest.raises(ConnectionException) as info:
        BasicProperties.decode(b"\x80\x00\x05ab")
    assert info.value.reply_code == 502 and info.value.class_id == 60


def _publish_stream(n=3, body=b"hello"):
    props = BasicProperties(content_type="text/plain", delivery_mode=2).encode()
    method = m.BasicPublish(exchange="amq.direct", routing_key="rk")
    return b"".join(encode_content_frames(1, method, props, body, 4096) for _ in range(n))


def test_frame_reader_byte_at_a_time_equals_all_at_once():
    stream = encode_method_frame(0, m.ConnectionTuneOk(2047, 131072, 60)) + _publish_stream()
    stream += encode_heartbeat() + encode_method_frame(1, m.BasicAck(delivery_tag=3))
    whole = decode_all(stream, 4096)
    reader = FrameReader(4096)
    pieces = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        pieces.extend(reader.read_frames())
    assert pieces == whole
    assert reader.buffered == 0
    assert [type(f) for f in whole] == (
        [MethodFrame] + [MethodFrame, HeaderFrame, BodyFrame] * 3 + [HeartbeatFrame, MethodFrame]
    )


def test_frame_reader_body_split_by_frame_max():
    body = bytes(range(256)) * 100
    data = _publish_stream(1, body)
    frames = decode_all(data, 4096)
    bodies = [f for f in frames if isinstance(f, BodyFrame)]
    assert len(bodies) == 7
    assert all(len(f.payload) <= 4096 - 8 for f in bodies)
    assert b"".join(f.payload for f in bodies) == body
    header = frames[1]
    assert header.body_size == len(body) and header.class_id == 60


def test_frame_errors():
    good = encode_method_frame(1, m.BasicAck(delivery_tag=1))
    bad_end = good[:-1] + b"\x00"
    for data, code in [
        (bad_end, 501),
        (b"\x09\x00\x00\x00\x00\x00\x00\xce", 501),  # unknown frame type
        (b"\x08\x00\x01\x00\x00\x00\x00\xce", 505),  # heartbeat on channel 1, as RabbitMQ
        (b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce", 540),  # unknown class
        (b"\x01\x00\x01\x00\x00\x00\x02\x00\x3c\xce", 501),  # method frame too short
    ]:
        with pytest.raises(ConnectionException) as info:
            decode_all(data, 4096)
        assert info.value.reply_code == code, data


def test_oversized_frame_refused_from_its_header():
    reader = FrameReader(4096)
    reader.feed(b"\x03\x00\x01\x00\x01\x00\x00")  # body frame announcing 65536 octets
    with pytest.raises(ConnectionException) as info:
        list(reader.read_frames())
    assert info.value.reply_code == 501
    with pytest.raises(ConnectionException):  # stays failed
        list(reader.read_frames())


def test_frames_before_an_error_are_delivered():
    good = encode_method_frame(1, m.BasicAck(delivery_tag=1))
    reader = FrameReader(4096)
    reader.feed(good + good[:-1] + b"\x00")
    got = []
    with pytest.raises(ConnectionException):
        for frame in reader.read_frames():
            got.append(frame)
    assert got == [MethodFrame(1, m.BasicAck(delivery_tag=1))]


@pytest.mark.parametrize("body", [b"", b"x", b"y" * 4088, b"z" * 4089, b"w" * 20000])
@pytest.mark.parametrize("frame_max", [4096, 0])
def test_hot_path_writers_match_generic_writer(body, frame_max):
    props = BasicProperties(delivery_mode=2, headers={"a": 1}).encode()
    assert encode_basic_deliver(3, "ctag", 2**40, True, "ex", "rk", props, body, frame_max) == (
        encode_content_frames(
            3,
            m.BasicDeliver(consumer_tag="ctag", delivery_tag=2**40, redelivered=True,
                           exchange="ex", routing_key="rk"),
            props, body, frame_max,
        )
    )
    assert encode_basic_deliver(3, b"ctag", 1, False, b"ex", b"rk", props, body, frame_max) == (
        encode_basic_deliver(3, "ctag", 1, False, "ex", "rk", props, body, frame_max)
    )
    assert encode_basic_get_ok(2, 9, False, "", "q", 4, props, body, frame_max) == (
        encode_content_frames(
            2, m.BasicGetOk(delivery_tag=9, exchange="", routing_key="q", message_count=4),
            props, body, frame_max,
        )
    )
    assert encode_basic_return(2, 312, "NO_ROUTE", "ex", "rk", props, body, frame_max) == (
        encode_content_frames(
            2, m.BasicReturn(reply_code=312, reply_text="NO_ROUTE", exchange="ex",
                             routing_key="rk"),
            props, body, frame_max,
        )
    )
    frames = decode_all(
        encode_basic_deliver(3, "ctag", 1, False, "ex", "rk", props, body, frame_max), frame_max
    )
    assert b"".join(f.payload for f in frames if isinstance(f, BodyFrame)) == body
    if frame_max:
        assert all(len(f.payload) <= frame_max - 8 for f in frames if isinstance(f, BodyFrame))


def test_oversized_frame_refused_when_its_header_is_cut():
    reader = FrameReader(4096)
    good = encode_method_frame(1, m.BasicAck(delivery_tag=1))
    reader.feed(good + b"\x03\x00\x01")  # a body frame header, cut after 3 octets
    assert len(list(reader.read_frames())) == 1
    reader.feed(b"\x00\x01\x00\x00" + b"x" * 10000)  # ... announcing 65536 octets
    with pytest.raises(ConnectionException) as info:
        list(reader.read_frames())
    assert info.value.reply_code == 501
    assert reader._have == 7  # only the frame header was copied, none of the payload


def test_a_cut_frame_is_completed_without_moving_it():
    body = b"b" * 100000
    data = encode_content_frames(1, m.BasicPublish(), b"\x00\x00", body, 131072)
    reader = FrameReader(131072)
    partials = []  # every distinct bytearray that held the cut frame
    frames = []
    for i in range(0, len(data), 1000):
        reader.feed(data[i : i + 1000])
        frames.extend(reader.read_frames())
        if reader._partial and not any(p is reader._partial for p in partials):
            partials.append(reader._partial)
    # the body frame was cut by the first chunk and then filled in place: one
    # bytearray, never copied into another
    assert len(partials) == 1
    assert frames[-1].payload == body


# -- frame_max at its boundary: RabbitMQ accepts a payload of frame_max octets --


def _feed_cut(reader, data, cut):
    """Feed `data` whole or in two pieces, reading after each; all frames read."""
    frames = []
    pieces = [data] if cut is None else [data[:cut], data[cut:]]
    for piece in pieces:
        reader.feed(piece)
        frames.extend(reader.read_frames())
    return frames


_CUTS = {"whole": None, "in the frame header": 3, "after the frame header": 7,
         "in the payload": 100, "before the frame-end": -1}


@pytest.mark.parametrize("cut", list(_CUTS))
@pytest.mark.parametrize("frame_type", [1, 2, 3])
@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_payload_of_exactly_frame_max_is_accepted(frame_max, frame_type, cut):
    """RabbitMQ 3.10 refuses a frame only when its payload exceeds frame_max
    (frame_max - 8 + its 8-octet FRAME_SIZE_FUDGE), whatever the frame type:
    a frame of frame_max + 8 octets passes (probed, frame_max 4096 and 131072)."""
    for size in (frame_max - 8, frame_max - 7, frame_max):
        data = sized_frame(frame_type, size)
        [got] = _feed_cut(FrameReader(frame_max), data, _CUTS[cut])
        assert type(got) is {1: MethodFrame, 2: HeaderFrame, 3: BodyFrame}[frame_type]
        if frame_type == 3:
            assert len(got.payload) == size


@pytest.mark.parametrize("cut", list(_CUTS))
@pytest.mark.parametrize("frame_type", [1, 2, 3])
@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_payload_over_frame_max_is_501_in_rabbitmqs_words(frame_max, frame_type, cut):
    reader = FrameReader(frame_max)
    data = sized_frame(frame_type, frame_max + 1)
    with pytest.raises(ConnectionException) as info:
        _feed_cut(reader, data, _CUTS[cut])
    assert info.value.reply_code == 501
    # RabbitMQ: "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}"
    # (the broker puts the code's name in front, as for every reply text)
    assert info.value.reply_text == (
        f"type {frame_type}, all octets = <<>>: "
        f"{{frame_too_large,{frame_max + 1},{frame_max - 8}}}"
    )
    assert reader.failed and reader._have <= 7  # refused before the payload was copied


def test_frame_max_zero_is_no_limit():
    [got] = decode_all(sized_frame(3, 300_000), 0)
    assert len(got.payload) == 300_000
