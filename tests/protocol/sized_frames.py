"""Raw frames built to an exact payload size, for the frame_max boundary tests.

`sized_frame(frame_type, size)` is a valid frame whose payload is exactly
``size`` octets: a queue.declare padded through its arguments table (type 1),
a basic content header padded through its headers table, announcing an empty
body (type 2), or a body frame (type 3). The frame on the wire is ``size + 8``.
"""

from protocol import methods as m
from protocol.properties import BasicProperties


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """type, channel, size, payload, frame-end: any frame, valid or not."""
    return (
        bytes([frame_type]) + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big")
        + payload + b"\xce"
    )


def header_frame(channel: int, body_size: int, properties: bytes = b"\x00\x00",
                 class_id: int = 60) -> bytes:
    """A content header frame (any body size, even one no message could have)."""
    return frame(2, channel, class_id.to_bytes(2, "big") + b"\x00\x00"
                 + body_size.to_bytes(8, "big") + properties)


def body_frame(channel: int, payload: bytes) -> bytes:
    return frame(3, channel, payload)


def _padded_declare(channel: int, size: int) -> bytes:
    def declare(pad: str) -> bytes:
        method = m.QueueDeclare(queue="", exclusive=True, arguments={"x-pad": pad})
        return frame(1, channel, method.CLASS_ID.to_bytes(2, "big")
                     + method.METHOD_ID.to_bytes(2, "big") + method.encode_arguments())

    data = declare("p" * (size - (len(declare("")) - 8)))
    assert len(data) == size + 8
    return data


def _padded_header(channel: int, size: int) -> bytes:
    def header(pad: str) -> bytes:
        return header_frame(channel, 0, BasicProperties(headers={"pad": pad}).encode())

    data = header("p" * (size - (len(header("")) - 8)))
    assert len(data) == size + 8
    return data


def sized_frame(frame_type: int, size: int, channel: int = 1) -> bytes:
    """A frame of type 1, 2 or 3 whose payload is exactly ``size`` octets."""
    if frame_type == 1:
        return _padded_declare(channel, size)
    if frame_type == 2:
        return _padded_header(channel, size)
    assert frame_type == 3
    return body_frame(channel, b"b" * size)


#: What must come before a frame of each type for it to be in its place:
#: nothing before a method; a basic.publish before a header; a publish and a
#: header announcing exactly the body before a body frame.
def prefix_for(frame_type: int, size: int, channel: int = 1) -> bytes:
    publish = frame(1, channel, b"\x00\x3c\x00\x28" + m.BasicPublish(
        routing_key="nowhere").encode_arguments())
    if frame_type == 1:
        return b""
    if frame_type == 2:
        return publish
    return publish + header_frame(channel, size)
