"""Field tables and field arrays, as RabbitMQ reads and writes them.

The 0-9-1 specification's table of field types (section 4.2.5.5) disagrees with
every broker and client in use; RabbitMQ published errata and everybody follows
those (https://www.rabbitmq.com/amqp-0-9-1-errata.html, "field types"). So do we:

====  =====================  ==========================================
type  wire                   Python value when decoded
====  =====================  ==========================================
t     octet, 0 or not 0      ``bool``
b     int8                   ``int``
B     uint8                  ``int``
s     int16                  ``int``
u     uint16                 ``int``
I     int32                  ``int``
i     uint32                 ``int``
l     int64                  ``int``
L     uint64                 ``int`` (spec's long-long-uint; RabbitMQ never writes it)
f     float32                ``float``
d     float64                ``float``
D     scale octet + int32    ``decimal.Decimal``
S     long string            ``str`` if valid UTF-8, else ``bytes``
x     long byte array        ``bytearray``
A     array                  ``list``
T     uint64 seconds         ``datetime.datetime`` (UTC, tz-aware); `Timestamp` if
                             the value is outside what ``datetime`` can hold
F     table                  ``dict``
V     nothing                ``None``
====  =====================  ==========================================

Encoding picks the type from the Python value, predictably:

- ``bool`` -> ``t`` (checked before ``int``: a bool is an int in Python);
- ``int`` -> the smallest of ``b s u I i l`` that holds it (what pamqp, and so
  aio-pika, write), ``L`` above the int64 range, ``ValueError`` beyond uint64;
- ``float`` -> ``d`` (float64, as pika and RabbitMQ write; never the lossy ``f``);
- ``decimal.Decimal`` -> ``D``; ``str`` -> ``S`` (UTF-8); ``bytes`` -> ``S``
  (binary long string, what RabbitMQ's ``longstr`` is); ``bytearray``/``memoryview``
  -> ``x``; ``datetime.datetime`` -> ``T`` (naive values are taken as UTC);
  `Timestamp` -> ``T``; ``dict`` -> ``F``; ``list``/``tuple`` -> ``A``; ``None`` -> ``V``.

Decoding then encoding gives the same bytes for every type except the integer
and float family (``B``/``i``/``L``/``f`` and over-wide ints are re-encoded by
size) and keys that repeat. The broker forwards properties as the raw bytes it
received, so that loss never reaches a consumer.

Decoding errors, whatever the cause (truncation, unknown type octet, bad UTF-8 in
a key, nesting deeper than `MAX_NESTING`), raise a 502 SYNTAX_ERROR
`ConnectionException`, never ``IndexError``, ``struct.error`` or ``RecursionError``.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

from .errors import ConnectionException, syntax_error

__all__ = [
    "MAX_NESTING",
    "Timestamp",
    "decode_array",
    "decode_table",
    "encode_array",
    "encode_table",
    "encode_value",
]

#: Tables and arrays nest; a hostile peer can nest them thousands deep in a few
#: kilobytes. RabbitMQ has no limit of its own (Erlang does not overflow), but no
#: client ever nests more than a handful of levels, so 64 is generous.
MAX_NESTING = 64

_UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
#: datetime cannot hold years beyond 9999.
_MAX_DATETIME_SECONDS = 253402300799

_u8 = struct.Struct(">B")
_i8 = struct.Struct(">b")
_i16 = struct.Struct(">h")
_u16 = struct.Struct(">H")
_i32 = struct.Struct(">i")
_u32 = struct.Struct(">I")
_i64 = struct.Struct(">q")
_u64 = struct.Struct(">Q")
_f32 = struct.Struct(">f")
_f64 = struct.Struct(">d")
_decimal = struct.Struct(">Bi")

_unpack_u32 = _u32.unpack_from


class Timestamp(int):
    """A ``T`` value that ``datetime`` cannot represent (beyond year 9999).

    It is an ``int`` of seconds since the epoch and encodes back as ``T``, so such
    a value survives a decode/encode round trip instead of breaking the connection.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Timestamp({int(self)})"


# ---------------------------------------------------------------------------
# decoding


def _short_str(buf: Any, off: int, end: int) -> tuple[str, int]:
    n = buf[off]
    off += 1
    stop = off + n
    if stop > end:
        raise syntax_error("short string runs past the end of its table")
    return str(buf[off:stop], "utf-8"), stop


def _value(buf: Any, off: int, end: int, depth: int) -> tuple[Any, int]:
    """Decode one field value (type octet + value) starting at ``off``."""
    t = buf[off]
    off += 1
    if t == 0x53:  # 'S'
        n = _unpack_u32(buf, off)[0]
        off += 4
        stop = off + n
        if stop > end:
            raise syntax_error("long string runs past the end of its table")
        raw = bytes(buf[off:stop])
        try:
            return raw.decode("utf-8"), stop
        except UnicodeDecodeError:
            # RabbitMQ's longstr is binary; a non-UTF-8 one stays bytes and is
            # written back as 'S'.
            return raw, stop
    if t == 0x49:  # 'I'
        return _i32.unpack_from(buf, off)[0], off + 4
    if t == 0x74:  # 't'
        return buf[off] != 0, off + 1
    if t == 0x46:  # 'F'
        return _table(buf, off, end, depth + 1)
    if t == 0x6C:  # 'l'
        return _i64.unpack_from(buf, off)[0], off + 8
    if t == 0x62:  # 'b'
        return _i8.unpack_from(buf, off)[0], off + 1
    if t == 0x42:  # 'B'
        return buf[off], off + 1
    if t == 0x73:  # 's'
        return _i16.unpack_from(buf, off)[0], off + 2
    if t == 0x75:  # 'u'
        return _u16.unpack_from(buf, off)[0], off + 2
    if t == 0x69:  # 'i'
        return _u32.unpack_from(buf, off)[0], off + 4
    if t == 0x4C:  # 'L'
        return _u64.unpack_from(buf, off)[0], off + 8
    if t == 0x66:  # 'f'
        return _f32.unpack_from(buf, off)[0], off + 4
    if t == 0x64:  # 'd'
        return _f64.unpack_from(buf, off)[0], off + 8
    if t == 0x44:  # 'D'
        scale, mantissa = _decimal.unpack_from(buf, off)
        return decimal.Decimal(mantissa).scaleb(-scale), off + 5
    if t == 0x41:  # 'A'
        return _array(buf, off, end, depth + 1)
    if t == 0x54:  # 'T'
        seconds = _u64.unpack_from(buf, off)[0]
        if seconds <= _MAX_DATETIME_SECONDS:
            return _EPOCH + datetime.timedelta(seconds=seconds), off + 8
        return Timestamp(seconds), off + 8
    if t == 0x78:  # 'x'
        n = _unpack_u32(buf, off)[0]
        off += 4
        stop = off + n
        if stop > end:
            raise syntax_error("byte array runs past the end of its table")
        return bytearray(buf[off:stop]), stop
    if t == 0x56:  # 'V'
        return None, off
    raise syntax_error(f"unknown field type {chr(t)!r}")


def _table(buf: Any, off: int, end: int, depth: int) -> tuple[dict[str, Any], int]:
    if depth > MAX_NESTING:
        raise syntax_error(f"field tables nested deeper than {MAX_NESTING}")
    size = _unpack_u32(buf, off)[0]
    off += 4
    stop = off + size
    if stop > end:
        raise syntax_error("field table runs past the end of its frame")
    table: dict[str, Any] = {}
    while off < stop:
        key, off = _short_str(buf, off, stop)
        table[key], off = _value(buf, off, stop, depth)
    if off != stop:
        raise syntax_error("field table length does not match its contents")
    return table, stop


def _array(buf: Any, off: int, end: int, depth: int) -> tuple[list[Any], int]:
    if depth > MAX_NESTING:
        raise syntax_error(f"field arrays nested deeper than {MAX_NESTING}")
    size = _unpack_u32(buf, off)[0]
    off += 4
    stop = off + size
    if stop > end:
        raise syntax_error("field array runs past the end of its frame")
    items: list[Any] = []
    append = items.append
    while off < stop:
        value, off = _value(buf, off, stop, depth)
        append(value)
    if off != stop:
        raise syntax_error("field array length does not match its contents")
    return items, stop


def decode_table(buf: Any, offset: int = 0, end: int | None = None) -> tuple[dict[str, Any], int]:
    """Decode a field table (with its 4-byte length) at ``offset``.

    Returns ``(table, offset just past it)``. ``end`` bounds the read (default:
    the end of ``buf``). Raises a 502 `ConnectionException` on malformed input.
    """
    if end is None:
        end = len(buf)
    try:
        return _table(buf, offset, end, 1)
    except ConnectionException:
        raise
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise syntax_error(f"malformed field table: {exc}") from None


def decode_array(buf: Any, offset: int = 0, end: int | None = None) -> tuple[list[Any], int]:
    """Decode a field array (with its 4-byte length) at ``offset``; see `decode_table`."""
    if end is None:
        end = len(buf)
    try:
        return _array(buf, offset, end, 1)
    except ConnectionException:
        raise
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise syntax_error(f"malformed field array: {exc}") from None


# ---------------------------------------------------------------------------
# encoding


def _int(value: int) -> bytes:
    # pamqp's ladder: the smallest type that holds the value.
    if -128 <= value <= 127:
        return b"b" + _i8.pack(value)
    if -32768 <= value <= 32767:
        return b"s" + _i16.pack(value)
    if 0 <= value <= 65535:
        return b"u" + _u16.pack(value)
    if -2147483648 <= value <= 2147483647:
        return b"I" + _i32.pack(value)
    if 0 <= value <= 4294967295:
        return b"i" + _u32.pack(value)
    if -9223372036854775808 <= value <= 9223372036854775807:
        return b"l" + _i64.pack(value)
    if 0 <= value <= 18446744073709551615:
        return b"L" + _u64.pack(value)
    raise ValueError(f"integer {value} does not fit any AMQP field type")


def _decimal_value(value: decimal.Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"cannot encode {value} as an AMQP decimal")
    if exponent > 0:
        scale, mantissa = 0, int(value)
    else:
        scale, mantissa = -exponent, int(value.scaleb(-exponent))
    if not 0 <= scale <= 255 or not -2147483648 <= mantissa <= 2147483647:
        raise ValueError(f"decimal {value} out of range for an AMQP decimal")
    return b"D" + _decimal.pack(scale, mantissa)


def _timestamp(value: datetime.datetime) -> bytes:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return b"T" + _u64.pack(int(value.timestamp()))


def encode_value(value: Any) -> bytes:
    """Encode one field value: its type octet and its bytes."""
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return b"S" + _u32.pack(len(raw)) + raw
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, Timestamp):
        return b"T" + _u64.pack(value)
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, bytes):
        return b"S" + _u32.pack(len(value)) + value
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, list | tuple):
        return b"A" + encode_array(value)
    if isinstance(value, float):
        return b"d" + _f64.pack(value)
    if isinstance(value, decimal.Decimal):
        return _decimal_value(value)
    if isinstance(value, datetime.datetime):
        return _timestamp(value)
    if isinstance(value, bytearray | memoryview):
        return b"x" + _u32.pack(len(value)) + bytes(value)
    if value is None:
        return b"V"
    raise TypeError(f"cannot encode {type(value).__name__} in an AMQP field table")


def encode_table(table: dict[str, Any] | None) -> bytes:
    """Encode a field table with its 4-byte length prefix (``None`` is the empty table)."""
    if not table:
        return b"\x00\x00\x00\x00"
    parts = []
    for key, value in table.items():
        raw = key.encode("utf-8")
        if len(raw) > 255:
            raise ValueError(f"field table key longer than 255 bytes: {key[:40]!r}...")
        parts.append(_u8.pack(len(raw)))
        parts.append(raw)
        parts.append(encode_value(value))
    payload = b"".join(parts)
    return _u32.pack(len(payload)) + payload


def encode_array(items: list[Any] | tuple[Any, ...]) -> bytes:
    """Encode a field array with its 4-byte length prefix."""
    payload = b"".join([encode_value(v) for v in items])
    return _u32.pack(len(payload)) + payload
