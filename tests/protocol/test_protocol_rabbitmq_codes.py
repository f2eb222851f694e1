"""Wire truth: the same bad frames, sent to the reference RabbitMQ and fed to our
server-role machine, get the same reply code (and class/method ids).

Each case opens a connection and channel 1, sends the frames, and reads the
connection.close RabbitMQ answers with. Skipped when the reference broker
(amqp://guest:guest@127.0.0.1:5673/) is not running.

`test_frame_max_boundary_as_rabbitmq` does the same at the frame_max boundary
(frame_max 4096 and 131072, a payload of frame_max and of frame_max + 1
octets), where RabbitMQ accepts the first and answers 501 to the second.

Known, deliberate differences, not compared here (see docs/protocol.md): an
unknown class or method (RabbitMQ drops the socket; we say 540), a body longer
than its header announced (RabbitMQ does not answer; we say 505), and errors
during the handshake (RabbitMQ drops the socket).
"""

import socket
import time

import pytest
from sized_frames import prefix_for, sized_frame

from protocol import methods as m
from protocol.connection import (
    Command,
    Connection,
    ProtocolFailure,
    Role,
    client_start_ok,
    negotiate_tune,
    server_start,
)
from protocol.constants import PROTOCOL_HEADER
from protocol.frames import FrameReader, MethodFrame, encode_method_frame

REFERENCE = ("127.0.0.1", 5673)


def _reference_available():
    try:
        socket.create_connection(REFERENCE, timeout=1).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _reference_available(), reason="reference RabbitMQ not running"
)


def _header(size, class_id=60, channel=1):
    return (
        b"\x02" + channel.to_bytes(2, "big") + b"\x00\x00\x00\x0e"
        + class_id.to_bytes(2, "big") + b"\x00\x00" + size.to_bytes(8, "big") + b"\x00\x00\xce"
    )


def _body(data, channel=1):
    return b"\x03" + channel.to_bytes(2, "big") + len(data).to_bytes(4, "big") + data + b"\xce"


_PUBLISH = encode_method_frame(1, m.BasicPublish(routing_key="x"))
_BAD_UTF8 = encode_method_frame(1, m.QueueDeclare(queue="a")).replace(b"\x01a", b"\x01\xff")

CASES = {
    "method where a header is due": _PUBLISH + encode_method_frame(1, m.BasicQos()),
    "method where a body is due": _PUBLISH + _header(5) + encode_method_frame(1, m.BasicQos()),
    "header without a method": _header(2),
    "body without a method": _body(b"ab"),
    "header of another class": _PUBLISH + _header(2, class_id=50),
    "header on channel 0": _header(2, channel=0),
    "method on an unopened channel": encode_method_frame(5, m.BasicQos()),
    "second channel.open": encode_method_frame(1, m.ChannelOpen()),
    "bad frame end": encode_method_frame(1, m.BasicQos())[:-1] + b"\x00",
    "heartbeat on channel 1": b"\x08\x00\x01\x00\x00\x00\x00\xce",
    "unknown frame type": b"\x09\x00\x00\x00\x00\x00\x00\xce",
    "basic method on channel 0": encode_method_frame(0, m.BasicQos()),
    "connection method on channel 1": encode_method_frame(1, m.ConnectionOpen()),
    "arguments too short": b"\x01\x00\x01\x00\x00\x00\x05\x00\x3c\x00\x50\x00\xce",
    "arguments too long": b"\x01\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x50" + b"\x00" * 10 + b"\xce",
    "bad UTF-8 in a short string": _BAD_UTF8,
    "frame over frame_max": b"\x03\x00\x01\x00\x10\x00\x00",
    "method frame shorter than its ids": b"\x01\x00\x01\x00\x00\x00\x02\x00\x3c\xce",
    "channel.close-ok never asked for": encode_method_frame(1, m.ChannelCloseOk()),
    "connection.close-ok never asked for": encode_method_frame(0, m.ConnectionCloseOk()),
}


def rabbitmq_answer(raw, frame_max=0):
    """(reply_code, class_id, method_id) of RabbitMQ's connection.close for raw."""
    close = rabbitmq_reply(raw, frame_max, m.ConnectionClose)
    return close.reply_code, close.class_id, close.method_id


def rabbitmq_reply(raw, frame_max, *wanted):
    """The first method of a `wanted` type RabbitMQ answers raw with, sent on a
    connection with channel 1 open and frame_max negotiated (0: RabbitMQ's)."""
    with socket.create_connection(REFERENCE, timeout=5) as sock:
        conn = Connection(Role.CLIENT)
        pending = []

        def next_event():
            while not pending:
                data = sock.recv(65536)
                assert data
                pending.extend(conn.receive_data(data))
            return pending.pop(0)

        sock.sendall(conn.send_protocol_header())
        next_event()
        sock.sendall(conn.send(0, client_start_ok("guest", "guest")))
        tune = next_event().method
        sock.sendall(conn.send(0, negotiate_tune(tune, frame_max=frame_max, heartbeat=0)))
        sock.sendall(conn.send(0, m.ConnectionOpen()))
        next_event()
        sock.sendall(conn.send(1, m.ChannelOpen()))
        next_event()
        sock.sendall(raw)
        reader = FrameReader(0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            assert data, "RabbitMQ closed the socket without connection.close"
            reader.feed(data)
            for frame in reader.read_frames():
                if isinstance(frame, MethodFrame) and isinstance(frame.method, wanted):
                    return frame.method
    raise AssertionError(f"no {wanted} from RabbitMQ")


def warren_events(raw, frame_max=131072):
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    server.receive_data(encode_method_frame(0, client_start_ok("guest", "guest")))
    server.send(0, m.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=0))
    server.receive_data(
        encode_method_frame(0, m.ConnectionTuneOk(2047, frame_max, 0))
        + encode_method_frame(0, m.ConnectionOpen())
    )
    server.send(0, m.ConnectionOpenOk())
    server.receive_data(encode_method_frame(1, m.ChannelOpen()))
    server.send(1, m.ChannelOpenOk())
    return server.receive_data(raw)


def warren_answer(raw):
    events = warren_events(raw)
    assert events and isinstance(events[-1], ProtocolFailure), events
    error = events[-1].error
    assert error.closes_connection
    return error.reply_code, error.class_id, error.method_id


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_reply_code_as_rabbitmq(case):
    raw = CASES[case]
    theirs = rabbitmq_answer(raw)
    ours = warren_answer(raw)
    assert ours[0] == theirs[0]
    if theirs[1]:  # where RabbitMQ names the method, we name the same one
        assert ours[1:] == theirs[1:]


@pytest.mark.parametrize("over", [0, 1])
@pytest.mark.parametrize("frame_type", [1, 2, 3])
@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_frame_max_boundary_as_rabbitmq(frame_max, frame_type, over):
    """A method, header or body frame whose payload is frame_max octets (the
    frame is frame_max + 8) is accepted by RabbitMQ 3.10; one octet more is 501
    with RabbitMQ's text. The machine answers the same, text included (the
    broker puts "FRAME_ERROR - " in front, as RabbitMQ does)."""
    size = frame_max + over
    raw = prefix_for(frame_type, size) + sized_frame(frame_type, size)
    raw += encode_method_frame(1, m.BasicQos(prefetch_count=1))  # answered if all went well
    theirs = rabbitmq_reply(raw, frame_max, m.BasicQosOk, m.ConnectionClose)
    events = warren_events(raw, frame_max)
    if isinstance(theirs, m.BasicQosOk):
        assert not over
        assert not any(isinstance(e, ProtocolFailure) for e in events), events
        assert events[-1] == Command(1, m.BasicQos(prefetch_count=1))
    else:
        assert over
        error = events[-1].error
        assert (error.reply_code, error.class_id, error.method_id) == (
            theirs.reply_code, theirs.class_id, theirs.method_id)
        assert "FRAME_ERROR - " + error.reply_text == theirs.reply_text
