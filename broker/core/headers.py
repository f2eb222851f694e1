"""Message headers as RabbitMQ writes them when it changes a message.

The broker changes a message's headers in two places (dead-lettering adds
`x-death`, a delivery limit adds `x-delivery-count`) and must write them as
RabbitMQ does: headers it does not change keep their exact field types
(`Raw`), counts are written as `long` (`Long`) whatever their size, and the
headers table goes back into the property list at its place (spec 4.2.6.1).
"""

from __future__ import annotations

import struct
from typing import Any

from protocol.fields import encode_value
from protocol.properties import BasicProperties

__all__ = ["Long", "Raw", "encode_headers", "raw_header_fields", "with_headers"]

_i64 = struct.Struct(">q")
_u32 = struct.Struct(">I")
_HEADERS_FLAG = 0x2000


class Long(int):
    """An int that is written as a field of type `l` (int64) whatever its size.

    `protocol.fields` picks the smallest integer type; RabbitMQ writes x-death
    `count` and `x-delivery-count` as `long`, and clients read them as such
    (Spring AMQP casts the count to `Long`).
    """

    __slots__ = ()


class Raw(bytes):
    """A field value exactly as it arrived: its type octet and its bytes.

    Headers the broker does not change are written back as they came, so an
    `I` stays an `I` (decoding gives a plain int, and re-encoding would pick
    the smallest type); RabbitMQ, too, leaves them untouched.
    """

    __slots__ = ()


# Sizes of the fixed-width field types (protocol/fields.py has the table).
_FIXED = {
    b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"f": 4,
    b"l": 8, b"L": 8, b"d": 8, b"T": 8, b"D": 5, b"V": 0,
}  # fmt: skip


def _field_end(buf: bytes, offset: int) -> int:
    """Where the field value starting at `offset` (its type octet) ends."""
    kind = buf[offset : offset + 1]
    size = _FIXED.get(kind)
    if size is not None:
        return offset + 1 + size
    # S, x, A, F: a 4-byte length, then that many bytes. (The properties
    # were decoded once already, so they are well formed.)
    length: int = _u32.unpack_from(buf, offset + 1)[0]
    return offset + 5 + length


def _headers_offset(raw: bytes) -> int | None:
    """Offset of the headers table in raw properties, None if it is not set."""
    if len(raw) < 2 or not raw[0] & 0x20:
        return None
    offset = 2
    for flag in (0x80, 0x40):  # content-type, content-encoding: shortstrs before it
        if raw[0] & flag:
            offset += 1 + raw[offset]
    return offset


def raw_header_fields(raw: bytes) -> dict[str, Any]:
    """The headers of raw properties as {key: Raw(encoded value)}, in their order."""
    start = _headers_offset(raw)
    if start is None:
        return {}
    end = start + 4 + _u32.unpack_from(raw, start)[0]
    fields: dict[str, Any] = {}
    offset = start + 4
    while offset < end:
        size = raw[offset]
        key = raw[offset + 1 : offset + 1 + size].decode("utf-8", "replace")
        value_end = _field_end(raw, offset + 1 + size)
        fields[key] = Raw(raw[offset + 1 + size : value_end])
        offset = value_end
    return fields


def _encode_value(value: Any) -> bytes:
    kind = type(value)
    if kind is Raw:
        return bytes(value)
    if kind is Long:
        return b"l" + _i64.pack(value)
    if isinstance(value, dict):
        return b"F" + _encode_table(value)
    if isinstance(value, list | tuple):
        payload = b"".join([_encode_value(v) for v in value])
        return b"A" + _u32.pack(len(payload)) + payload
    return encode_value(value)


def _encode_table(table: dict[str, Any]) -> bytes:
    parts = []
    for key, value in table.items():
        raw = key.encode("utf-8")
        parts.append(bytes((len(raw),)) + raw + _encode_value(value))
    payload = b"".join(parts)
    return _u32.pack(len(payload)) + payload


def encode_headers(headers: dict[str, Any]) -> bytes:
    """A headers field table with its length prefix; `Long` as `l`, `Raw` as it is."""
    return _encode_table(headers)


def with_headers(props: BasicProperties, headers: dict[str, Any] | None, **changes: Any) -> bytes:
    """Raw properties: `props` with `changes`, and `headers` encoded by `encode_headers`.

    The headers table is spliced in after content-type and content-encoding
    (its place in the property list, spec 4.2.6.1), because the generic
    encoder can be told neither to write a `long` nor to keep a value's type.
    """
    values = {name: getattr(props, name) for name in BasicProperties.__slots__}
    values.update(changes)
    values["headers"] = None
    raw = BasicProperties(**values).encode()
    if headers is None:
        return raw
    flags = int.from_bytes(raw[:2], "big") | _HEADERS_FLAG
    offset = 2
    for name in ("content_type", "content_encoding"):
        value = values[name]
        if value is not None:
            offset += 1 + len(value.encode("utf-8"))
    return flags.to_bytes(2, "big") + raw[2:offset] + encode_headers(headers) + raw[offset:]
