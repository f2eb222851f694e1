"""The 14 content properties of class basic (spec 4.2.6.1 and the basic class).

A content header frame carries, after class-id (short), weight (short) and
body-size (longlong), a 16-bit property-flags word and then only the properties
whose flag is set, in flag order. Bit 15 is the first property; bit 0 says
"another flags word follows" (never needed for basic's 14 properties, but we
read past such words rather than choke on them).

The broker forwards properties as the raw bytes it received and decodes them
only when it must; `properties_has_headers` and `delivery_mode_of` answer the
two questions asked of every message without a full decode.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import AMQPError, syntax_error
from .fields import decode_table, encode_table

__all__ = [
    "BasicProperties",
    "PROPERTY_FLAGS",
    "delivery_mode_of",
    "priority_of",
    "properties_has_headers",
]

#: (name, type, flag bit) in wire order.
PROPERTY_FLAGS: tuple[tuple[str, str, int], ...] = (
    ("content_type", "shortstr", 0x8000),
    ("content_encoding", "shortstr", 0x4000),
    ("headers", "table", 0x2000),
    ("delivery_mode", "octet", 0x1000),
    ("priority", "octet", 0x0800),
    ("correlation_id", "shortstr", 0x0400),
    ("reply_to", "shortstr", 0x0200),
    ("expiration", "shortstr", 0x0100),
    ("message_id", "shortstr", 0x0080),
    ("timestamp", "timestamp", 0x0040),
    ("type", "shortstr", 0x0020),
    ("user_id", "shortstr", 0x0010),
    ("app_id", "shortstr", 0x0008),
    ("cluster_id", "shortstr", 0x0004),
)

_H = struct.Struct(">H")
_Q = struct.Struct(">Q")
_B = struct.Struct(">B")
_EMPTY = b"\x00\x00"


def _shortstr(name: str, value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{name} is longer than 255 bytes")
    return _B.pack(len(raw)) + raw


class BasicProperties:
    """Content properties of a message; ``None`` means "not set" (flag bit clear).

    ``headers`` is a ``dict`` (see `protocol.fields` for the value mapping),
    ``delivery_mode`` and ``priority`` are ints 0-255, ``timestamp`` is an int of
    seconds since the epoch, the rest are ``str``.
    """

    __slots__ = tuple(name for name, _, _ in PROPERTY_FLAGS)

    def __init__(
        self,
        content_type: str | None = None,
        content_encoding: str | None = None,
        headers: dict[str, Any] | None = None,
        delivery_mode: int | None = None,
        priority: int | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: str | None = None,
        message_id: str | None = None,
        timestamp: int | None = None,
        type: str | None = None,  # noqa: A002 - the spec's name
        user_id: str | None = None,
        app_id: str | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.headers = headers
        self.delivery_mode = delivery_mode
        self.priority = priority
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.expiration = expiration
        self.message_id = message_id
        self.timestamp = timestamp
        self.type = type
        self.user_id = user_id
        self.app_id = app_id
        self.cluster_id = cluster_id

    def encode(self) -> bytes:
        """The property flags and the set properties, as they follow body-size."""
        flags = 0
        parts: list[bytes] = [b""]
        if self.content_type is not None:
            flags |= 0x8000
            parts.append(_shortstr("content_type", self.content_type))
        if self.content_encoding is not None:
            flags |= 0x4000
            parts.append(_shortstr("content_encoding", self.content_encoding))
        if self.headers is not None:
            flags |= 0x2000
            parts.append(encode_table(self.headers))
        if self.delivery_mode is not None:
            flags |= 0x1000
            parts.append(_B.pack(self.delivery_mode))
        if self.priority is not None:
            flags |= 0x0800
            parts.append(_B.pack(self.priority))
        if self.correlation_id is not None:
            flags |= 0x0400
            parts.append(_shortstr("correlation_id", self.correlation_id))
        if self.reply_to is not None:
            flags |= 0x0200
            parts.append(_shortstr("reply_to", self.reply_to))
        if self.expiration is not None:
            flags |= 0x0100
            parts.append(_shortstr("expiration", self.expiration))
        if self.message_id is not None:
            flags |= 0x0080
            parts.append(_shortstr("message_id", self.message_id))
        if self.timestamp is not None:
            flags |= 0x0040
            parts.append(_Q.pack(self.timestamp))
        if self.type is not None:
            flags |= 0x0020
            parts.append(_shortstr("type", self.type))
        if self.user_id is not None:
            flags |= 0x0010
            parts.append(_shortstr("user_id", self.user_id))
        if self.app_id is not None:
            flags |= 0x0008
            parts.append(_shortstr("app_id", self.app_id))
        if self.cluster_id is not None:
            flags |= 0x0004
            parts.append(_shortstr("cluster_id", self.cluster_id))
        if not flags:
            return _EMPTY
        parts[0] = _H.pack(flags)
        return b"".join(parts)

    @classmethod
    def decode(cls, buf: Any, offset: int = 0, end: int | None = None) -> BasicProperties:
        """Decode property flags and properties from ``buf[offset:end]``.

        Raises a 502 `ConnectionException` (class 60) on malformed input.
        """
        if end is None:
            end = len(buf)
        self = cls()
        try:
            (flags,) = _H.unpack_from(buf, offset)
            off = offset + 2
            word = flags
            while word & 1:  # continuation flag words: none are defined for basic
                (word,) = _H.unpack_from(buf, off)
                off += 2
            if flags & 0x8000:
                n = buf[off]
                self.content_type = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x4000:
                n = buf[off]
                self.content_encoding = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x2000:
                self.headers, off = decode_table(buf, off, end)
            if flags & 0x1000:
                self.delivery_mode = buf[off]
                off += 1
            if flags & 0x0800:
                self.priority = buf[off]
                off += 1
            if flags & 0x0400:
                n = buf[off]
                self.correlation_id = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0200:
                n = buf[off]
                self.reply_to = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0100:
                n = buf[off]
                self.expiration = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0080:
                n = buf[off]
                self.message_id = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0040:
                (self.timestamp,) = _Q.unpack_from(buf, off)
                off += 8
            if flags & 0x0020:
                n = buf[off]
                self.type = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0010:
                n = buf[off]
                self.user_id = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0008:
                n = buf[off]
                self.app_id = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
            if flags & 0x0004:
                n = buf[off]
                self.cluster_id = str(buf[off + 1 : off + 1 + n], "utf-8")
                off += 1 + n
        except AMQPError as exc:
            exc.class_id = 60
            raise
        except (IndexError, struct.error):
            raise syntax_error("malformed content properties: a property runs past the end "
                               "of the content header", 60) from None
        except UnicodeDecodeError:
            raise syntax_error("malformed content properties: a short string property is "
                               "not UTF-8", 60) from None
        except ValueError as exc:
            raise syntax_error(f"malformed content properties: {exc}", 60) from None
        if off != end:
            raise syntax_error("content header size does not match its properties", 60)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BasicProperties):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        args = ", ".join(
            f"{n}={getattr(self, n)!r}" for n in self.__slots__ if getattr(self, n) is not None
        )
        return f"BasicProperties({args})"


def properties_has_headers(raw: bytes) -> bool:
    """Whether raw property bytes (flags first) carry a headers table."""
    return len(raw) >= 2 and raw[0] & 0x20 != 0


def _after_headers(raw: Any, flags: int) -> int:
    """The offset just past content_type, content_encoding and headers (the
    variable-length properties before delivery_mode), skipped by their
    lengths; IndexError on truncated input."""
    off = 2
    word = flags
    while word & 1:
        word = (raw[off] << 8) | raw[off + 1]
        off += 2
    if flags & 0x8000:
        off += 1 + raw[off]
    if flags & 0x4000:
        off += 1 + raw[off]
    if flags & 0x2000:
        off += 4 + ((raw[off] << 24) | (raw[off + 1] << 16) | (raw[off + 2] << 8) | raw[off + 3])
    return off


def delivery_mode_of(raw: Any) -> int | None:
    """The delivery_mode in raw property bytes, without decoding the rest.

    Skips content_type, content_encoding and headers by their lengths. Returns
    None when the property is absent; raises 502 on truncated input.
    """
    try:
        flags = (raw[0] << 8) | raw[1]
        if not flags & 0x1000:
            return None
        mode: int = raw[_after_headers(raw, flags)]
        return mode
    except IndexError:
        raise syntax_error("truncated content properties", 60) from None


def priority_of(raw: Any) -> int | None:
    """The priority in raw property bytes, without decoding the rest.

    Like `delivery_mode_of`: skips the properties before it by their
    lengths. None when the property is absent (or there are no properties);
    raises 502 on truncated input.
    """
    if len(raw) < 2 or not raw[0] & 0x08:
        return None
    try:
        flags = (raw[0] << 8) | raw[1]
        off = _after_headers(raw, flags)
        if flags & 0x1000:
            off += 1  # delivery_mode
        priority: int = raw[off]
        return priority
    except IndexError:
        raise syntax_error("truncated content properties", 60) from None
