"""The client's hot-path frame encoders, next to `protocol/`'s.

basic.publish and basic.ack are written once per message, so they get
straight-line ``struct`` encoders here (one ``bytes.join`` per publish, the
publish method frame cached per channel/exchange/routing key). Every other
method goes through `protocol.connection.Connection.send`. A test
(tests/client/test_codec.py) checks these bytes against `protocol`'s writers.
"""

from __future__ import annotations

import struct
from typing import Any

from protocol.constants import FRAME_END
from protocol.properties import BasicProperties

__all__ = ["EMPTY_PROPERTIES", "encode_ack", "encode_properties", "encode_publish"]

EMPTY_PROPERTIES = BasicProperties().encode()
PERSISTENT_PROPERTIES = BasicProperties(delivery_mode=2).encode()
TRANSIENT_PROPERTIES = BasicProperties(delivery_mode=1).encode()

_END = bytes([FRAME_END])
# type=1 method, channel, size=13, class 60 basic, method 80 ack, tag, bits, end
_ACK = struct.Struct(">BHIHHQBB")
# method frame head: type, channel, size, class 60, method 40 publish, reserved-1
_PUBLISH_HEAD = struct.Struct(">BHIHHH")
# header frame: type 2, channel, size, class 60, weight 0, body size
_HEADER = struct.Struct(">BHIHHQ")
_BODY = struct.Struct(">BHI")

_publish_frames: dict[tuple[int, str, str, bool], bytes] = {}
_PUBLISH_CACHE_MAX = 1024


def encode_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """The basic.ack method frame (spec 1.8.3.13)."""
    return _ACK.pack(1, channel, 13, 60, 80, delivery_tag, 1 if multiple else 0, FRAME_END)


def _publish_method_frame(channel: int, exchange: str, routing_key: str, mandatory: bool) -> bytes:
    ex = exchange.encode("utf-8")
    rk = routing_key.encode("utf-8")
    if len(ex) > 255 or len(rk) > 255:
        raise ValueError("exchange and routing key are short strings: at most 255 bytes")
    size = 2 + 2 + 2 + 1 + len(ex) + 1 + len(rk) + 1
    frame = b"".join((
        _PUBLISH_HEAD.pack(1, channel, size, 60, 40, 0),
        bytes((len(ex),)), ex, bytes((len(rk),)), rk,
        b"\x01" if mandatory else b"\x00", _END,
    ))
    if len(_publish_frames) >= _PUBLISH_CACHE_MAX:
        _publish_frames.clear()
    _publish_frames[(channel, exchange, routing_key, mandatory)] = frame
    return frame


def encode_publish(
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.publish + content header + body frames (spec 4.2.6), ready to write."""
    method = _publish_frames.get((channel, exchange, routing_key, mandatory))
    if method is None:
        method = _publish_method_frame(channel, exchange, routing_key, mandatory)
    size = len(body)
    header = _HEADER.pack(2, channel, 12 + len(properties), 60, 0, size)
    chunk = frame_max - 8
    if size <= chunk:
        if size == 0:
            return b"".join((method, header, properties, _END))
        return b"".join((method, header, properties, _END, _BODY.pack(3, channel, size), body,
                         _END))
    parts = [method, header, properties, _END]
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start:start + chunk]
        parts += (_BODY.pack(3, channel, len(piece)), piece, _END)
    return b"".join(parts)


_PROPERTY_NAMES = frozenset(BasicProperties.__slots__)


def encode_properties(properties: Any, persistent: bool | None,
                      values: dict[str, Any]) -> bytes:
    """The property bytes of a content header, from a `BasicProperties` and/or
    keyword values; ``persistent`` sets delivery_mode 2 (True) or 1 (False)."""
    if properties is None and not values:
        if persistent is None:
            return EMPTY_PROPERTIES
        return PERSISTENT_PROPERTIES if persistent else TRANSIENT_PROPERTIES
    unknown = set(values) - _PROPERTY_NAMES
    if unknown:
        raise TypeError(f"unknown message properties: {', '.join(sorted(unknown))}")
    if properties is None:
        props = BasicProperties(**values)
    else:
        props = BasicProperties(**{name: getattr(properties, name)
                                   for name in BasicProperties.__slots__})
        for name, value in values.items():
            setattr(props, name, value)
    if persistent is not None:
        props.delivery_mode = 2 if persistent else 1
    return props.encode()
