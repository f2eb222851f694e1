"""Property tests: round trips, chunking, and hostile input.

The hostile-input tests check the codec's promise: whatever the bytes, the
result is frames, events, or an `AMQPError` (a protocol error with a reply
code), never IndexError, struct.error, UnicodeDecodeError or RecursionError,
and never more buffered than one frame.
"""

import struct

from amqp_strategies import any_method, field_tables, field_values, properties
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import methods as m
from protocol.connection import Command, Connection, ProtocolFailure, Role
from protocol.constants import PROTOCOL_HEADER
from protocol.errors import AMQPError
from protocol.fields import decode_array, decode_table, encode_array, encode_table
from protocol.frames import (
    BodyFrame,
    FrameReader,
    decode_all,
    encode_content_frames,
    encode_heartbeat,
    encode_method_frame,
)
from protocol.properties import BasicProperties, delivery_mode_of, properties_has_headers

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The costliest properties (streams of up to 8 messages of up to 9 KB) run fewer.
HEAVY = settings(SETTINGS, max_examples=80)


@SETTINGS
@given(any_method)
def test_every_method_round_trips(method):
    raw = method.encode_arguments()
    assert type(method).decode_arguments(raw, 0) == method
    frames = decode_all(encode_method_frame(7, method), 0)
    assert len(frames) == 1 and frames[0].method == method and frames[0].channel == 7


@SETTINGS
@given(field_tables)
def test_field_tables_round_trip(table):
    raw = encode_table(table)
    back, end = decode_table(raw, 0)
    assert end == len(raw)
    assert back == table
    assert encode_table(back) == raw


@HEAVY
@given(st.lists(field_values, max_size=6))
def test_field_arrays_round_trip(items):
    raw = encode_array(items)
    back, end = decode_array(raw, 0)
    assert (back, end) == (items, len(raw))


@SETTINGS
@given(properties)
def test_properties_round_trip(props):
    raw = props.encode()
    assert BasicProperties.decode(raw) == props
    assert properties_has_headers(raw) == (props.headers is not None)
    assert delivery_mode_of(raw) == props.delivery_mode


def _frame_stream():
    """A valid byte stream of mixed frames and the frame_max it respects."""
    content = st.tuples(
        st.sampled_from([m.BasicPublish, m.BasicDeliver, m.BasicGetOk, m.BasicReturn]),
        properties,
        st.binary(max_size=9000),
    )
    item = st.one_of(
        any_method.map(lambda method: ("method", method)),
        content.map(lambda c: ("content", c)),
        st.just(("heartbeat", None)),
    )
    return st.tuples(st.lists(item, max_size=8), st.sampled_from([4096, 131072]))


def _encode(items, frame_max):
    parts = []
    for kind, value in items:
        if kind == "method":
            parts.append(encode_method_frame(1, value))
        elif kind == "content":
            cls, props, body = value
            parts.append(encode_content_frames(2, cls(), props.encode(), body, frame_max))
        else:
            parts.append(encode_heartbeat())
    return b"".join(parts)


@HEAVY
@given(_frame_stream(), st.data())
def test_any_chunking_gives_the_same_frames(stream, data):
    items, frame_max = stream
    raw = _encode(items, frame_max)
    whole = decode_all(raw, frame_max)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=30)))
    reader = FrameReader(frame_max)
    got = []
    previous = 0
    for cut in [*cuts, len(raw)]:
        reader.feed(raw[previous:cut])
        got.extend(reader.read_frames())
        previous = cut
        assert reader.buffered < frame_max  # never more than one partial frame
    assert got == whole
    assert all(type(f.payload) is bytes for f in got if isinstance(f, BodyFrame))
    # bodies were split to frame_max and nothing else was lost
    assert len(got) >= len(items)


@HEAVY
@given(_frame_stream(), st.integers(1, 5000))
def test_connection_assembles_the_same_content_in_any_chunking(stream, chunk):
    items, frame_max = stream
    contents = [value for kind, value in items if kind == "content"]
    raw = b"".join(
        encode_content_frames(1, cls(), props.encode(), body, frame_max)
        for cls, props, body in contents
    )
    server = _open_server(frame_max)
    events = []
    for i in range(0, len(raw), chunk):
        events += server.receive_data(raw[i : i + chunk])
    assert [(type(e.method), e.properties, e.body) for e in events] == [
        (cls, props.encode(), body) for cls, props, body in contents
    ]


def _open_server(frame_max=4096):
    from protocol.connection import client_start_ok, server_start

    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    server.receive_data(encode_method_frame(0, client_start_ok("u", "p")))
    server.send(0, m.ConnectionTune(channel_max=16, frame_max=frame_max, heartbeat=0))
    server.receive_data(
        encode_method_frame(0, m.ConnectionTuneOk(16, frame_max, 0))
        + encode_method_frame(0, m.ConnectionOpen())
    )
    server.send(0, m.ConnectionOpenOk())
    for channel in (1, 2):
        server.receive_data(encode_method_frame(channel, m.ChannelOpen()))
        server.send(channel, m.ChannelOpenOk())
    return server


# -- hostile input -----------------------------------------------------------


def _mutations(valid):
    """Valid bytes with some octets overwritten, cut, or extended."""
    return st.tuples(
        valid,
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
        st.integers(0, 10**6),
        st.binary(max_size=20),
    ).map(_mutate)


def _mutate(args):
    raw, edits, cut, tail = args
    raw = bytearray(raw)
    for where, value in edits:
        if raw:
            raw[where % len(raw)] = value
    if raw and cut % 3 == 0:
        del raw[cut % len(raw) :]
    return bytes(raw) + tail


_valid_streams = _frame_stream().map(lambda s: _encode(*s))
hostile_streams = st.one_of(st.binary(max_size=3000), _mutations(_valid_streams))


@SETTINGS
@given(hostile_streams, st.integers(1, 600), st.sampled_from([4096, 131072]))
def test_arbitrary_bytes_give_frames_or_a_protocol_error(raw, chunk, frame_max):
    reader = FrameReader(frame_max)
    failed = False
    for i in range(0, len(raw), chunk):
        reader.feed(raw[i : i + chunk])
        try:
            list(reader.read_frames())
        except AMQPError as exc:
            assert 500 <= exc.reply_code <= 541
            failed = True
            break
        assert reader.buffered < frame_max
    assert failed or reader.buffered < frame_max


@HEAVY
@given(hostile_streams, st.integers(1, 600))
def test_arbitrary_bytes_give_events_on_an_open_connection(raw, chunk):
    server = _open_server(4096)
    for i in range(0, len(raw), chunk):
        events = server.receive_data(raw[i : i + chunk])
        for event in events[:-1]:
            assert not isinstance(event, ProtocolFailure) or not event.error.closes_connection
        assert all(isinstance(e, Command | ProtocolFailure) or e.__class__.__name__ ==
                   "HeartbeatReceived" for e in events)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_in_the_handshake(raw):
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.receive_data(raw)


@SETTINGS
@given(st.sampled_from(list(m.METHODS.values())), st.binary(max_size=200))
def test_arbitrary_method_arguments(cls, raw):
    try:
        method = cls.decode_arguments(raw, 0)
    except AMQPError as exc:
        assert exc.reply_code == 501  # RabbitMQ's FRAME_ERROR "cannot decode"
        assert (exc.class_id, exc.method_id) == (cls.CLASS_ID, cls.METHOD_ID)
    else:
        assert method.encode_arguments() is not None


def _nested(args):
    """A table nesting arrays and tables ``depth`` deep, the kinds chosen by ``pattern``."""
    depth, pattern, leaf = args
    raw = leaf
    for level in range(depth):
        if (pattern >> (level % 8)) & 1:
            raw = b"A" + struct.pack(">I", len(raw)) + raw
        else:
            body = b"\x01k" + raw
            raw = b"F" + struct.pack(">I", len(body)) + body
    body = b"\x01k" + raw
    return struct.pack(">I", len(body)) + body


_nested_tables = st.tuples(
    st.integers(0, 3000), st.integers(0, 255), st.sampled_from([b"V", b"t\x01", b"", b"Z"])
).map(_nested)


@SETTINGS
@given(st.one_of(st.binary(max_size=500), _mutations(field_tables.map(encode_table)),
                 _nested_tables))
def test_arbitrary_tables(raw):
    try:
        decode_table(raw, 0)
    except AMQPError as exc:
        assert exc.reply_code == 502


@SETTINGS
@given(st.one_of(st.binary(max_size=300), _mutations(properties.map(BasicProperties.encode))))
def test_arbitrary_properties(raw):
    try:
        BasicProperties.decode(raw)
    except AMQPError as exc:
        assert exc.reply_code == 502
    try:
        delivery_mode_of(raw)
    except AMQPError as exc:
        assert exc.reply_code == 502
