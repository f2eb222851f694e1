"""Frames: an incremental reader and the writers (spec 4.2.3, 2.3.5).

Every frame is ``type:octet channel:short size:long payload:size frame-end:0xCE``.

Reading. `FrameReader` parses each received chunk in place, keeping an offset
into it, with ``struct.unpack_from``; it never slices the buffer to get at the
next frame. A frame cut by the end of a chunk is copied once into a bytearray
that collects exactly its missing bytes from the next chunks, so no partial
frame is copied more than once however slowly its bytes arrive. A frame header
announcing a payload over ``frame_max`` is refused (501) before the payload is
buffered, so a peer cannot make us buffer more than one frame.

``frame_max`` counts the 8 octets of framing (spec 4.2.3), and the writers keep
to it; the reader, like RabbitMQ, accepts 8 octets more (a payload of up to
``frame_max`` octets), because some clients fill body frames to that.

Writing. Every writer returns ``bytes`` ready for the socket. The hot paths
(`encode_basic_deliver`, `encode_basic_get_ok`, `encode_basic_return`) are
written out by hand: they are what the broker does once per message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

from .constants import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
)
from .errors import AMQPError, ConnectionException, frame_error, unexpected_frame
from .methods import METHODS, Method

__all__ = [
    "BodyFrame",
    "Frame",
    "FrameReader",
    "HeaderFrame",
    "HeartbeatFrame",
    "MethodFrame",
    "decode_all",
    "encode_basic_deliver",
    "encode_basic_get_ok",
    "encode_basic_return",
    "encode_body_frames",
    "encode_content_frames",
    "encode_header_frame",
    "encode_heartbeat",
    "encode_method_frame",
]


class MethodFrame(NamedTuple):
    channel: int
    method: Method


class HeaderFrame(NamedTuple):
    """A content header: ``properties`` is the raw flags + property list."""

    channel: int
    class_id: int
    body_size: int
    properties: bytes


class BodyFrame(NamedTuple):
    channel: int
    payload: bytes


class HeartbeatFrame(NamedTuple):
    channel: int


Frame = MethodFrame | HeaderFrame | BodyFrame | HeartbeatFrame

_FRAME_HEAD = struct.Struct(">BHI")  # type, channel, size
_FRAME_HEAD_INDEX = struct.Struct(">BHII")  # + class_id << 16 | method_id
_METHOD_HEAD = struct.Struct(">BHIHH")  # + class_id, method_id
_CONTENT_HEAD = struct.Struct(">BHIHHQ")  # type 2 + class_id, weight, body_size
_HH = struct.Struct(">HH")
_HHQ = struct.Struct(">HHQ")
_B = struct.Struct(">B")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_QB = struct.Struct(">QB")
_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"
#: The property list of a content header with no property set (flags 0).
NO_PROPERTIES = b"\x00\x00"
_END = b"\xce"

_new_tuple = tuple.__new__
_unpack_size = struct.Struct(">I").unpack_from
#: Methods by class_id << 16 | method_id: one unpack and an int key per frame.
_METHODS_BY_INDEX = {(c << 16) | i: cls for (c, i), cls in METHODS.items()}


def _frame_too_large(frame_type: int, size: int, frame_max: int) -> ConnectionException:
    """501 for a frame whose payload exceeds frame_max, in RabbitMQ 3.10's words.

    RabbitMQ checks ``size > frame_max - 8 + 8`` (its FRAME_SIZE_FUDGE): a payload
    of exactly frame_max octets, a frame of frame_max + 8, is still accepted.
    Its reply text (with the "FRAME_ERROR - " the broker adds) is
    ``FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}``.
    """
    return frame_error(
        f"type {frame_type}, all octets = <<>>: {{frame_too_large,{size},{frame_max - 8}}}"
    )


class FrameReader:
    """Incremental frame parser: ``feed(data)``, then iterate ``read_frames()``.

    ``frame_max`` is the negotiated maximum frame size including the 8 octets of
    framing (spec 4.2.3); 0 means no limit. As in RabbitMQ, a frame is refused
    only when its payload exceeds ``frame_max`` (8 octets of tolerance). Errors
    are `ConnectionException`s with RabbitMQ's codes: 501 FRAME_ERROR for a bad
    frame-end, an oversized frame, an unknown frame type, and for method
    arguments that do not decode; 505 UNEXPECTED_FRAME for a heartbeat off
    channel 0; 540 NOT_IMPLEMENTED for an unknown class or method (RabbitMQ
    drops the socket there).

    Buffering: the bytes given to ``feed`` are parsed where they are, without
    being copied. Only a frame cut by the end of a chunk is copied, once, into a
    bytearray allocated at the frame's full size, which then takes from the
    following chunks exactly the bytes it lacks; it is never moved or grown.
    (If the cut falls inside the 7-octet frame header, those few octets are
    collected first.) A frame header announcing a payload over ``frame_max``
    is refused before the payload is buffered. Feeding twice without reading in
    between concatenates; the I/O loop never does that.
    """

    __slots__ = ("frame_max", "_buf", "_pos", "_partial", "_have", "_error")

    def __init__(self, frame_max: int = FRAME_MIN_SIZE) -> None:
        self.frame_max = frame_max
        self._buf: bytes = b""
        self._pos = 0
        # A frame cut by a chunk boundary: a bytearray of the frame's size (or of
        # 7 octets while its header is incomplete), the first _have octets filled.
        self._partial: bytearray | None = None
        self._have = 0
        self._error: AMQPError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (``bytes`` are used in place, other types copied once)."""
        if type(data) is not bytes:
            data = bytes(data)
        if self._pos < len(self._buf):
            # Unread frames remain: the caller fed twice without reading.
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
            return
        taken = self._fill_partial(data) if self._partial is not None else 0
        self._buf = data
        self._pos = taken

    def _fill_partial(self, data: bytes) -> int:
        """Copy into the cut frame the bytes of ``data`` that belong to it."""
        partial = self._partial
        assert partial is not None
        have = self._have
        taken = 0
        if have < 7:  # the header itself was cut: complete it first
            taken = min(7 - have, len(data))
            partial[have : have + taken] = data[:taken]
            have += taken
            self._have = have
            if have < 7:
                return taken
            size = _unpack_size(partial, 3)[0]
            if self.frame_max and size > self.frame_max:
                return taken  # read_batch refuses it from the header alone
            full = bytearray(size + 8)
            full[:7] = partial
            self._partial = partial = full
        more = min(len(partial) - have, len(data) - taken)
        if more > 0:
            with memoryview(data) as view:
                partial[have : have + more] = view[taken : taken + more]
            self._have = have + more
        return taken + more

    @property
    def failed(self) -> bool:
        """True after a framing error: the byte stream can no longer be parsed."""
        return self._error is not None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos + self._have

    def read_frames(self) -> Iterator[Frame]:
        """Yield every complete frame, as `MethodFrame`, `HeaderFrame`, `BodyFrame`
        or `HeartbeatFrame`, in order; then raise the error that stopped the
        parse, if any.

        A frame whose arguments cannot be decoded or whose method is unknown is
        consumed before the error is raised, so reading can go on (to see the
        peer's close-ok). After an error in the framing itself (bad frame-end,
        oversized frame) the reader is unusable: every later call raises it again.
        """
        for raw in self.read_batch():
            frame_type = raw[0]
            if frame_type == FRAME_METHOD:
                yield _new_tuple(MethodFrame, raw[1:])
            elif frame_type == FRAME_BODY:
                yield _new_tuple(BodyFrame, raw[1:])
            elif frame_type == FRAME_HEADER:
                yield _new_tuple(HeaderFrame, raw[1:])
            elif frame_type == FRAME_HEARTBEAT:
                yield _new_tuple(HeartbeatFrame, raw[1:])
            else:
                raise raw[1]

    def read_batch(self) -> list[tuple[Any, ...]]:
        """Every complete frame as a plain tuple, for the connection's hot loop.

        Items are ``(FRAME_METHOD, channel, method)``, ``(FRAME_HEADER, channel,
        class_id, body_size, properties)``, ``(FRAME_BODY, channel, payload)``,
        ``(FRAME_HEARTBEAT, channel)``; when parsing stopped on a protocol error
        the last item is ``(-1, error)``, after every valid frame before it.
        Parsing the whole batch before handing it over is what lets the loop run
        without a generator switch or a state write per frame.
        """
        if self._error is not None:
            return [(-1, self._error)]
        frames: list[tuple[Any, ...]] = []
        append = frames.append
        frame_max = self.frame_max
        partial = self._partial
        if partial is not None:
            if self._have < 7:
                return frames
            size = _unpack_size(partial, 3)[0]
            if frame_max and size > frame_max:
                self._error = _frame_too_large(partial[0], size, frame_max)
                return [(-1, self._error)]
            if self._have < size + 8:
                return frames
            # The cut frame is complete: parse it on its own, then the chunk.
            self._partial = None
            self._have = 0
            sources: tuple[Any, ...] = (partial, self._buf)
        else:
            sources = (self._buf,)
        methods = _METHODS_BY_INDEX
        # frame_max counts the 8 octets of framing (spec 4.2.3), but RabbitMQ
        # accepts a payload of up to frame_max itself, and so do we; 0: no limit.
        max_payload = frame_max if frame_max else 0xFFFFFFFF
        intact = False  # set when an error leaves the framing itself readable
        pos = 0
        for buf in sources:
            pos = 0 if buf is partial else self._pos
            end = len(buf)
            try:
                while end - pos >= 7:
                    if end - pos >= 11:
                        # One unpack for the frame header and, for a method frame,
                        # its class and method ids (garbage for other frames).
                        frame_type, channel, size, index = _FRAME_HEAD_INDEX.unpack_from(buf, pos)
                    else:
                        frame_type, channel, size = _FRAME_HEAD.unpack_from(buf, pos)
                        index = -1
                    if size > max_payload:
                        raise _frame_too_large(frame_type, size, frame_max)
                    stop = pos + 7 + size
                    if stop >= end:
                        break
                    if buf[stop] != FRAME_END:
                        raise frame_error(f"frame-end octet is 0x{buf[stop]:02x}, not 0xce")
                    start = pos + 7
                    pos = stop + 1
                    if frame_type == FRAME_METHOD:
                        if size < 4:
                            raise frame_error("method frame shorter than its class and method ids")
                        if index < 0:
                            index = _unpack_size(buf, start)[0]
                        cls = methods.get(index)
                        # The frame itself is intact in the next two cases: it is
                        # consumed, so the caller can read on (for close-ok).
                        if cls is None:
                            intact = True
                            raise ConnectionException(
                                540, f"unknown method {index >> 16}.{index & 0xFFFF}",
                                index >> 16, index & 0xFFFF,
                            )
                        try:
                            method = cls.decode_arguments(buf, start + 4, stop)
                        except AMQPError:
                            intact = True
                            raise
                        append((FRAME_METHOD, channel, method))
                    elif frame_type == FRAME_BODY:
                        if buf is partial:  # a bytearray: slice a view, copy once
                            with memoryview(cast(bytearray, buf)) as view:
                                append((FRAME_BODY, channel, bytes(view[start:stop])))
                        else:
                            append((FRAME_BODY, channel, buf[start:stop]))  # one copy
                    elif frame_type == FRAME_HEADER:
                        if size < 14:
                            raise frame_error("content header frame too short")
                        class_id, _weight, body_size = _HHQ.unpack_from(buf, start)
                        if size == 14 and not buf[start + 12] and not buf[start + 13]:
                            # No property set (the usual publish): one shared
                            # object instead of a 2-byte bytes per message.
                            properties = NO_PROPERTIES
                        else:
                            properties = bytes(buf[start + 12 : stop])
                        append((FRAME_HEADER, channel, class_id, body_size, properties))
                    elif frame_type == FRAME_HEARTBEAT:
                        # Spec 4.2.7: heartbeat frames are on channel zero.
                        if channel != 0:
                            intact = True
                            raise unexpected_frame(f"heartbeat frame on channel {channel}")
                        append((FRAME_HEARTBEAT, channel))
                    else:
                        raise frame_error(f"unknown frame type {frame_type}")
            except AMQPError as exc:
                if intact:
                    if buf is not partial:
                        self._pos = pos
                else:  # the framing itself is broken: nothing more can be read
                    self._error = exc
                append((-1, exc))
                return frames
        # What is left of the chunk is the start of a frame: copy it, once, into
        # a bytearray of the frame's size (its header passed the frame_max check
        # in the loop above when it is complete).
        buf = self._buf  # never the cut frame: that one was complete (checked above)
        rest = len(buf) - pos
        if rest > 0:
            size = _unpack_size(buf, pos + 3)[0] + 8 if rest >= 7 else 7
            cut = bytearray(size)
            with memoryview(buf) as view:
                cut[:rest] = view[pos:]
            self._partial = cut
            self._have = rest
        self._buf = b""
        self._pos = 0
        return frames


# ---------------------------------------------------------------------------
# writers


def encode_method_frame(channel: int, method: Method) -> bytes:
    """One method frame."""
    args = method.encode_arguments()
    return b"".join(
        (
            _METHOD_HEAD.pack(
                FRAME_METHOD, channel, 4 + len(args), method.CLASS_ID, method.METHOD_ID
            ),
            args,
            _END,
        )
    )


def encode_header_frame(channel: int, body_size: int, properties: bytes, class_id: int = 60) -> bytes:
    """A content header frame; ``properties`` are raw flags + property list."""
    return b"".join(
        (
            _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), class_id, 0, body_size),
            properties,
            _END,
        )
    )


def encode_body_frames(channel: int, body: bytes, frame_max: int) -> list[bytes]:
    """The body split into frames of at most ``frame_max`` octets (0: unsplit).

    An empty body has no body frames at all (spec 4.2.6.2).
    """
    size = len(body)
    if not size:
        return []
    chunk = frame_max - 8 if frame_max else size
    if size <= chunk:
        return [_FRAME_HEAD.pack(FRAME_BODY, channel, size), body, _END]
    parts: list[bytes] = []
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        parts.append(_FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)))
        parts.append(piece)  # type: ignore[arg-type]  # joined below, never kept
        parts.append(_END)
    return parts


def encode_content_frames(
    channel: int, method: Method, properties: bytes, body: bytes, frame_max: int
) -> bytes:
    """Method frame + content header frame + body frames of at most frame_max."""
    args = method.encode_arguments()
    parts = [
        _METHOD_HEAD.pack(FRAME_METHOD, channel, 4 + len(args), method.CLASS_ID, method.METHOD_ID),
        args,
        _END,
        _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), 60, 0, len(body)),
        properties,
        _END,
    ]
    parts += encode_body_frames(channel, body, frame_max)
    return b"".join(parts)


def encode_heartbeat() -> bytes:
    """A heartbeat frame (type 8, channel 0, empty payload)."""
    return _HEARTBEAT


def _short(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if type(value) is str else value
    if len(raw) > 255:
        raise ValueError("short string longer than 255 bytes")
    return raw  # type: ignore[return-value]


def _content_tail(channel: int, properties: bytes, body: bytes, frame_max: int) -> list[bytes]:
    size = len(body)
    head = _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), 60, 0, size)
    if size and (not frame_max or size <= frame_max - 8):
        return [head, properties, _END, _FRAME_HEAD.pack(FRAME_BODY, channel, size), body, _END]
    return [head, properties, _END, *encode_body_frames(channel, body, frame_max)]


def encode_basic_deliver(
    channel: int,
    consumer_tag: str | bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: str | bytes,
    routing_key: str | bytes,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.deliver + content header + body frames, the broker's per-message write.

    String arguments may be given as ``str`` or already-encoded ``bytes``.
    """
    ct = _short(consumer_tag)
    ex = _short(exchange)
    rk = _short(routing_key)
    size = len(body)
    head = _METHOD_HEAD.pack(FRAME_METHOD, channel, 16 + len(ct) + len(ex) + len(rk), 60, 60)
    if size and (not frame_max or size <= frame_max - 8):
        return b"".join((
            head, _B.pack(len(ct)), ct, _QB.pack(delivery_tag, 1 if redelivered else 0),
            _B.pack(len(ex)), ex, _B.pack(len(rk)), rk, _END,
            _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), 60, 0, size),
            properties, _END, _FRAME_HEAD.pack(FRAME_BODY, channel, size), body, _END,
        ))
    return b"".join((
        head, _B.pack(len(ct)), ct, _QB.pack(delivery_tag, 1 if redelivered else 0),
        _B.pack(len(ex)), ex, _B.pack(len(rk)), rk, _END,
        *_content_tail(channel, properties, body, frame_max),
    ))


def encode_basic_get_ok(
    channel: int,
    delivery_tag: int,
    redelivered: bool,
    exchange: str | bytes,
    routing_key: str | bytes,
    message_count: int,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.get-ok + content header + body frames."""
    ex = _short(exchange)
    rk = _short(routing_key)
    head = _METHOD_HEAD.pack(FRAME_METHOD, channel, 19 + len(ex) + len(rk), 60, 71)
    return b"".join((
        head, _QB.pack(delivery_tag, 1 if redelivered else 0),
        _B.pack(len(ex)), ex, _B.pack(len(rk)), rk, _I.pack(message_count), _END,
        *_content_tail(channel, properties, body, frame_max),
    ))


def encode_basic_return(
    channel: int,
    reply_code: int,
    reply_text: str | bytes,
    exchange: str | bytes,
    routing_key: str | bytes,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.return + content header + body frames (e.g. 312 NO_ROUTE)."""
    text = _short(reply_text)
    ex = _short(exchange)
    rk = _short(routing_key)
    head = _METHOD_HEAD.pack(FRAME_METHOD, channel, 9 + len(text) + len(ex) + len(rk), 60, 50)
    return b"".join((
        head, _H.pack(reply_code), _B.pack(len(text)), text,
        _B.pack(len(ex)), ex, _B.pack(len(rk)), rk, _END,
        *_content_tail(channel, properties, body, frame_max),
    ))


def decode_all(data: bytes, frame_max: int = 0) -> list[Frame]:
    """Every complete frame in ``data`` (a convenience for tests and tools)."""
    reader = FrameReader(frame_max)
    reader.feed(data)
    return list(reader.read_frames())


