"""The AMQP 0-9-1 connection state machine, for both roles, without I/O.

Like h11's ``Connection``: bytes go in through `Connection.receive_data`, events
come out; methods go in through `Connection.send`, bytes come out. The machine
checks the order of the handshake (spec 2.2.4), keeps the channel table
(spec 2.3.7, 4.2.3), assembles content (method + header + body frames, spec
4.2.6), runs the close handshakes, and does the heartbeat bookkeeping (spec
4.2.7) from clock readings the I/O layer passes in. It never reads a clock,
touches a socket or imports trio.

A server's I/O loop, roughly::

    conn = Connection(Role.SERVER)
    try:
        events = conn.receive_data(data, now=clock())
    except BadProtocolHeader:
        write(PROTOCOL_HEADER)  # spec 4.2.2: answer with ours, then close
        close_socket()
    for event in events:
        if isinstance(event, ProtocolHeaderReceived):
            write(conn.send(0, server_start()))
        elif isinstance(event, Command):
            ...  # handle event.method, event.properties, event.body
        elif isinstance(event, ProtocolFailure):
            err = event.error
            close = ConnectionClose if err.closes_connection else ChannelClose
            write(conn.send(event.channel, close(err.reply_code, err.reply_text,
                                                 err.class_id, err.method_id)))

What the machine answers itself: nothing. It never writes on its own; it only
refuses what the protocol forbids and tells the caller.
"""

from __future__ import annotations

import enum
import struct
from typing import Any, NamedTuple

from .constants import (
    DEFAULT_FRAME_MAX,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    PROTOCOL_HEADER,
)
from .errors import (
    AMQPError,
    BadProtocolHeader,
    ChannelException,
    ConnectionException,
    unexpected_frame,
)
from .fields import decode_table, encode_table
from .frames import (
    FrameReader,
    encode_content_frames,
    encode_heartbeat,
    encode_method_frame,
)
from .methods import (
    METHODS,
    BasicAck,
    ChannelClose,
    ChannelCloseOk,
    ChannelOpen,
    ConnectionBlocked,
    ConnectionClose,
    ConnectionCloseOk,
    ConnectionOpen,
    ConnectionOpenOk,
    ConnectionSecure,
    ConnectionSecureOk,
    ConnectionStart,
    ConnectionStartOk,
    ConnectionTune,
    ConnectionTuneOk,
    ConnectionUnblocked,
    ConnectionUpdateSecret,
    ConnectionUpdateSecretOk,
    Method,
)
from .properties import BasicProperties

__all__ = [
    "Command",
    "Connection",
    "ConnectionState",
    "Event",
    "HeartbeatReceived",
    "LocalProtocolError",
    "MAX_BODY_SIZE",
    "ProtocolFailure",
    "ProtocolHeaderReceived",
    "Role",
    "client_start_ok",
    "negotiate_tune",
    "parse_sasl_response",
    "server_start",
]

#: RabbitMQ 3.10's default ``max_message_size`` (128 MiB). A content header that
#: announces a bigger body is refused before any of the body is buffered.
MAX_BODY_SIZE = 134217728


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


# basic.ack as a frame (spec 4.2.3, 4.2.5): type 1, channel (2 octets), size
# 13, class 60, method 80, delivery-tag (8 octets), the multiple bit, frame-end.
_BASIC_ACK_FRAME_SIZE = 21
_BASIC_ACK_HEAD = b"\x00\x00\x00\x0d\x00\x3c\x00\x50"
_unpack_delivery_tag = struct.Struct(">Q").unpack_from


class ConnectionState(enum.Enum):
    """Where the connection is; the handshake is spec 2.2.4."""

    AWAIT_HEADER = "await-header"  # server: no protocol header yet; client: not sent
    HANDSHAKE = "handshake"  # start .. open-ok
    OPEN = "open"
    CLOSING = "closing"  # we sent connection.close, waiting for close-ok
    CLOSE_RECEIVED = "close-received"  # the peer sent close, we owe close-ok
    CLOSED = "closed"


# ---------------------------------------------------------------------------
# events


class ProtocolHeaderReceived:
    """Server role: the client sent a valid protocol header; send connection.start."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProtocolHeaderReceived)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "ProtocolHeaderReceived()"


class HeartbeatReceived:
    """The peer sent a heartbeat frame (any received byte also counts as life)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeartbeatReceived)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "HeartbeatReceived()"


class Command(NamedTuple):
    """One method, with its properties (raw bytes) and body when it carries content."""

    channel: int
    method: Method
    properties: bytes | None = None
    body: bytes | None = None


class ProtocolFailure:
    """The peer broke the protocol.

    With a `ConnectionException` it is the last event of the batch: send
    connection.close with its code and close the socket once close-ok arrives (or
    a timeout passes). With a `ChannelException` (only a body over
    ``max_body_size`` today) the machine already treats ``channel`` as closing;
    send channel.close on it; later events of the batch, on other channels, are
    valid.
    """

    __slots__ = ("error", "channel")

    def __init__(self, error: AMQPError, channel: int = 0) -> None:
        self.error = error
        self.channel = channel

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProtocolFailure)
            and other.error.reply_code == self.error.reply_code
            and other.channel == self.channel
        )

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"ProtocolFailure({self.error!r}, channel={self.channel})"


Event = ProtocolHeaderReceived | Command | HeartbeatReceived | ProtocolFailure

#: Methods the hot path must not take: they change connection or channel state.
_SPECIAL_METHODS = frozenset(
    {cls for (class_id, _), cls in METHODS.items() if class_id == 10}
    | {ChannelOpen, ChannelClose, ChannelCloseOk}
)

_HEADER_RECEIVED = ProtocolHeaderReceived()
_HEARTBEAT_RECEIVED = HeartbeatReceived()
_new_tuple = tuple.__new__


class LocalProtocolError(Exception):
    """Our own side tried something the protocol forbids (a bug in the caller)."""


# ---------------------------------------------------------------------------
# content assembly


# A content-bearing method waiting for its header and body frames is kept as a
# small list (cheaper to build than an object, once per message):
# [method, properties or None until the header, body_size, octets received,
#  body chunks so far, discard?]
# "discard" marks a message whose channel is closing (a body over max_body_size,
# or we sent channel.close while it was arriving): its frames are still counted,
# so that the next method on the channel is recognised, but nothing is kept.
# A method on that channel (its close-ok, usually) or connection.close ends it early.
_METHOD, _PROPERTIES, _BODY_SIZE, _RECEIVED, _CHUNKS, _DISCARD = range(6)


# ---------------------------------------------------------------------------
# the machine


class Connection:
    """An AMQP 0-9-1 connection seen from ``our_role`` (`Role.SERVER` or `Role.CLIENT`).

    ``max_body_size`` bounds one message's body (406 PRECONDITION_FAILED beyond,
    as RabbitMQ's ``max_message_size``); ``handshake_frame_max`` bounds frames
    before tune has been negotiated.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_body_size: int = MAX_BODY_SIZE,
        handshake_frame_max: int = DEFAULT_FRAME_MAX,
    ) -> None:
        self.our_role = role
        self.their_role = Role.CLIENT if role is Role.SERVER else Role.SERVER
        self.state = ConnectionState.AWAIT_HEADER
        self.max_body_size = max_body_size
        #: Negotiated by tune/tune-ok; before that, the handshake limits.
        self.channel_max = 0
        self.frame_max = handshake_frame_max
        self.heartbeat = 0
        #: What the server offered in connection.tune (its limits).
        self.server_tune: ConnectionTune | None = None
        self.open_channels: set[int] = set()
        #: The virtual host asked for in connection.open.
        self.virtual_host: str | None = None
        self._reader = FrameReader(handshake_frame_max)
        self._header = b""  # server role: the protocol header as it trickles in
        # Handshake methods we accept next from the peer (spec 2.2.4).
        self._expect: tuple[type[Method], ...] = ()
        self._closing_channels: set[int] = set()  # we sent channel.close
        self._peer_closing_channels: set[int] = set()  # they sent channel.close
        # Open and closing from neither side: where the hot path may go straight on.
        self._usable_channels: set[int] = set()
        self._content: dict[int, list[Any]] = {}
        self._broken = False  # the peer's framing is broken: ignore all further bytes
        # Server role, during the handshake: frames that arrived behind a
        # handshake method, held until our answer to it has been sent.
        self._held_frames: list[tuple[Any, ...]] = []
        self._last_sent: float | None = None
        self._last_received: float | None = None

    # -- receiving ---------------------------------------------------------

    def receive_data(self, data: bytes, now: float | None = None) -> list[Event]:
        """Every event the bytes complete, in order.

        Server role: a wrong protocol header raises `BadProtocolHeader`; write
        `PROTOCOL_HEADER` and close the socket (spec 4.2.2).
        """
        if now is not None and data:
            self._last_received = now
        if self._broken or self.state is ConnectionState.CLOSED:
            return []
        if len(data) == _BASIC_ACK_FRAME_SIZE:
            # The commonest read of all: one basic.ack (a confirm to a publisher
            # waiting for each, a consumer's ack of each delivery).
            ack = self.receive_basic_ack(data)
            if ack is not None:
                channel, delivery_tag, multiple = ack
                return [_new_tuple(Command, (
                    channel, BasicAck(delivery_tag=delivery_tag, multiple=multiple), None, None))]
        events: list[Event] = []
        if self.state is ConnectionState.AWAIT_HEADER:
            if self.our_role is Role.CLIENT:
                raise LocalProtocolError("send_protocol_header() before receiving data")
            data = self._receive_header(data, events)
            if not events:
                return events
        elif (
            self.our_role is Role.CLIENT
            and self._expect == (ConnectionStart,)
            and bytes(data[:4]) == b"AMQP"
        ):
            # Spec 4.2.2: a server that refuses our protocol version answers
            # with the header it supports, then closes.
            self._broken = True
            return [ProtocolFailure(ConnectionException(
                501, f"server refused AMQP 0-9-1, answered {bytes(data[:8])!r}"
            ))]
        reader = self._reader
        reader.feed(data)
        on_method = self._on_method
        on_body = self._on_body
        contents = self._content
        usable = self._usable_channels if self.state is ConnectionState.OPEN else ()
        max_body_size = self.max_body_size
        append = events.append
        frames = reader.read_batch()
        if self._held_frames:
            frames = self._held_frames + frames
            self._held_frames = []
        frames_left = iter(frames)
        for raw in frames_left:
            frame_type = raw[0]
            try:
                if frame_type == FRAME_BODY:
                    # The hot path, inlined: the one body frame that completes a
                    # message. Anything less common goes through _on_body.
                    channel = raw[1]
                    content = contents.get(channel)
                    if (
                        content is not None
                        and content[_PROPERTIES] is not None
                        and not content[_RECEIVED]
                        and not content[_DISCARD]
                        and len(raw[2]) == content[_BODY_SIZE]
                    ):
                        del contents[channel]
                        append(_new_tuple(Command, (channel, content[_METHOD],
                                                    content[_PROPERTIES], raw[2])))
                    else:
                        on_body(channel, raw[2], events)
                elif frame_type == FRAME_METHOD:
                    # Inlined: an ordinary method on an open channel with no
                    # content in progress. _on_method has the whole story.
                    channel = raw[1]
                    method = raw[2]
                    if (
                        channel in usable
                        and channel not in contents
                        and type(method) not in _SPECIAL_METHODS
                    ):
                        if method.HAS_CONTENT:
                            contents[channel] = [method, None, 0, 0, [], False]
                        else:
                            append(_new_tuple(Command, (channel, method, None, None)))
                    else:
                        on_method(channel, method, events)
                        if self.state is not ConnectionState.OPEN:
                            usable = ()  # e.g. connection.close arrived mid-batch
                            if (
                                type(method) is ConnectionOpen
                                and self.our_role is Role.SERVER
                                and self.state is ConnectionState.HANDSHAKE
                            ):
                                # Clients pipeline channel.open (and more) right
                                # behind connection.open, but whether it is valid
                                # depends on our answer (open-ok or close). Hand
                                # out connection.open last; the rest waits for
                                # `receive_data(b"")` (see `frames_held`).
                                self._held_frames = list(frames_left)
                                break
                elif frame_type == FRAME_HEADER:
                    channel = raw[1]
                    content = contents.get(channel)
                    if (
                        content is not None
                        and content[_PROPERTIES] is None
                        and not content[_DISCARD]
                        and raw[2] == 60
                        and 0 < raw[3] <= max_body_size
                    ):
                        content[_PROPERTIES] = raw[4]
                        content[_BODY_SIZE] = raw[3]
                    else:
                        self._on_header(channel, raw[2], raw[3], raw[4], events)
                elif frame_type == FRAME_HEARTBEAT:
                    events.append(_HEARTBEAT_RECEIVED)
                else:
                    raise raw[1]
            except AMQPError as exc:
                if reader.failed:
                    self._broken = True  # the stream cannot be parsed any further
                if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSE_RECEIVED):
                    return events  # already closing: garbage is ignored (spec 4.2.3)
                # The connection is going down: the rest of this batch is dropped
                # (it is what spec 4.2.3 would have us ignore after close). Reading
                # goes on for close-ok unless the framing itself is broken.
                events.append(ProtocolFailure(exc))
                return events
        return events

    def receive_basic_ack(self, data: bytes, now: float | None = None) -> tuple[int, int, bool] | None:
        """``data`` as one basic.ack, when it is exactly that, without the general path.

        A publisher waiting for each confirm reads one 21-octet basic.ack per
        message, a consumer acking each delivery sends one; the frame reader
        spends ~2.8 µs on it, this ~0.7 µs, and `receive_data` takes this
        path itself (returning the same `Command`). If ``data``
        is exactly one basic.ack frame and `receive_data` would turn it into
        ``Command(channel, BasicAck(...))`` now (connection open, channel usable
        and not mid-content, no partial frame buffered), returns ``(channel,
        delivery_tag, multiple)``. Otherwise returns None and changes nothing:
        pass the same bytes to `receive_data`.
        """
        if (
            len(data) != _BASIC_ACK_FRAME_SIZE
            or data[0] != FRAME_METHOD
            or not data.startswith(_BASIC_ACK_HEAD, 3)
            or data[20] != FRAME_END
            or self.state is not ConnectionState.OPEN
            or self._broken
            or self._held_frames
            or self._reader.buffered
            or self._reader.failed
        ):
            return None
        channel = (data[1] << 8) | data[2]
        if channel not in self._usable_channels or channel in self._content:
            return None
        if now is not None:
            self._last_received = now
        # Spec 4.2.5.2: only bit 0 of the packed octet is defined (multiple).
        return channel, _unpack_delivery_tag(data, 11)[0], bool(data[19] & 1)

    @property
    def receiving_content(self) -> bool:
        """A content-bearing method was received and its header or body is not complete."""
        return bool(self._content)

    @property
    def frames_held(self) -> bool:
        """Frames were received but not yet turned into events.

        Server role only: `receive_data` stops after connection.open, because
        whether the frames a client pipelines behind it are valid depends on
        our answer (open-ok or close, spec 2.2.4). Answer the events, then
        call ``receive_data(b"")`` until this is false.
        """
        return bool(self._held_frames)

    def _receive_header(self, data: bytes, events: list[Event]) -> bytes:
        need = 8 - len(self._header)
        self._header += bytes(data[:need])
        header = self._header
        if header != PROTOCOL_HEADER[: len(header)]:
            self._broken = True
            raise BadProtocolHeader(header)
        if len(header) < 8:
            return b""
        self.state = ConnectionState.HANDSHAKE
        self._expect = (ConnectionStartOk,)
        events.append(_HEADER_RECEIVED)
        return data[need:]

    def _on_method(self, channel: int, method: Method, events: list[Event]) -> None:
        state = self.state
        if channel and state is ConnectionState.OPEN:
            # The hot path: a method on a channel of an open connection.
            if channel in self._content:
                content = self._content.pop(channel)
                if not content[_DISCARD]:
                    pending = content[_METHOD]
                    if content[_PROPERTIES] is None:
                        expected = f"content header for class {pending.CLASS_ID}"
                        got = "non content header frame"
                    else:
                        expected, got = "content body", "non content body frame"
                    raise unexpected_frame(
                        f"expected {expected}, got {got} instead",
                        pending.CLASS_ID, pending.METHOD_ID,
                    )
            if method.CLASS_ID == 10:
                raise ConnectionException(
                    503, f"{method.NAME} on channel {channel}",
                    method.CLASS_ID, method.METHOD_ID,
                )
            if channel in self._closing_channels or channel in self._peer_closing_channels:
                self._on_closing_channel(channel, method, events)
                return
            if channel not in self.open_channels:
                self._on_unopened_channel(channel, method, events)
                return
            method_type = type(method)
            if method_type is ChannelClose:
                self._peer_closing_channels.add(channel)
                self._usable_channels.discard(channel)
            elif method_type is ChannelCloseOk:
                # RabbitMQ's answer to a close-ok for a close it never sent
                raise ConnectionException(503, "unimplemented method", 20, 41)
            elif method_type is ChannelOpen:
                raise ConnectionException(504, "second 'channel.open' seen", 20, 10)
            if method.HAS_CONTENT:
                self._content[channel] = [method, None, 0, 0, [], False]
                return
            events.append(_new_tuple(Command, (channel, method, None, None)))
            return
        if channel:
            if state in (ConnectionState.CLOSING, ConnectionState.CLOSE_RECEIVED):
                return  # spec 4.2.3: after close, only close/close-ok matter
            raise ConnectionException(
                504, f"{method.NAME} on channel {channel} before the connection is open",
                method.CLASS_ID, method.METHOD_ID,
            )
        self._on_channel_zero(method, events)

    def _on_unopened_channel(self, channel: int, method: Method, events: list[Event]) -> None:
        if type(method) is not ChannelOpen:
            raise ConnectionException(
                504, "expected 'channel.open'", method.CLASS_ID, method.METHOD_ID
            )
        # As RabbitMQ: channel_max limits how many channels are open at once,
        # whatever their numbers (which the frame format bounds to 65535).
        # RabbitMQ 3.10 names no method in its close (rabbit_reader's
        # create_channel builds the error with method 'none': class 0,
        # method 0; read off a 3.10.8 node).
        if self.channel_max and len(self.open_channels) >= self.channel_max:
            raise ConnectionException(
                530,
                f"number of channels opened ({len(self.open_channels)}) has reached the "
                f"negotiated channel_max ({self.channel_max})",
            )
        self.open_channels.add(channel)
        self._usable_channels.add(channel)
        events.append(_new_tuple(Command, (channel, method, None, None)))

    def _on_closing_channel(self, channel: int, method: Method, events: list[Event]) -> None:
        # Spec 2.3.7 / 4.2.3: once a channel is closing, everything on it but
        # close and close-ok is discarded, content included.
        method_type = type(method)
        if method_type is ChannelCloseOk:
            if channel in self._closing_channels:
                self._forget_channel(channel)
                events.append(_new_tuple(Command, (channel, method, None, None)))
        elif method_type is ChannelClose:
            # Both sides closed at once: each answers close-ok (spec 4.2.3).
            self._peer_closing_channels.add(channel)
            self._usable_channels.discard(channel)
            events.append(_new_tuple(Command, (channel, method, None, None)))
        elif method.HAS_CONTENT:
            self._content[channel] = [method, None, 0, 0, [], True]

    def _on_channel_zero(self, method: Method, events: list[Event]) -> None:
        method_type = type(method)
        state = self.state
        if method.CLASS_ID != 10:
            if state in (ConnectionState.CLOSING, ConnectionState.CLOSE_RECEIVED):
                return
            raise ConnectionException(
                504, f"unexpected method in connection state {self._state_word()}",
                method.CLASS_ID, method.METHOD_ID,
            )
        if method_type is ConnectionCloseOk:
            if state is not ConnectionState.CLOSING:
                raise ConnectionException(
                    504, f"unexpected method in connection state {self._state_word()}", 10, 51
                )
            self.state = ConnectionState.CLOSED
            events.append(_new_tuple(Command, (0, method, None, None)))
            return
        if method_type is ConnectionClose:
            if state is not ConnectionState.CLOSING:
                self.state = ConnectionState.CLOSE_RECEIVED
            self._content.clear()  # the peer will send nothing more but close-ok
            # When both sides close at once, both answer close-ok (spec 4.2.3).
            events.append(_new_tuple(Command, (0, method, None, None)))
            return
        if state in (ConnectionState.CLOSING, ConnectionState.CLOSE_RECEIVED):
            return
        if state is ConnectionState.HANDSHAKE:
            if method_type not in self._expect:
                wanted = " or ".join(m.NAME for m in self._expect) or "nothing"
                raise ConnectionException(
                    503, f"expected {wanted}, got {method.NAME}",
                    method.CLASS_ID, method.METHOD_ID,
                )
            self._expect = ()
            if method_type is ConnectionTuneOk:
                self._apply_tune_ok(method)
                self._expect = (ConnectionOpen,)
            elif method_type is ConnectionOpen:
                self.virtual_host = method.virtual_host  # type: ignore[attr-defined]
            elif method_type is ConnectionTune:
                self.server_tune = method  # type: ignore[assignment]
            elif method_type is ConnectionOpenOk:
                self.state = ConnectionState.OPEN
        elif not self._connection_method_allowed_when_open(method_type):
            raise ConnectionException(
                503, f"{method.NAME} after the handshake", method.CLASS_ID, method.METHOD_ID
            )
        events.append(_new_tuple(Command, (0, method, None, None)))

    def _state_word(self) -> str:
        # RabbitMQ's words for where the connection is, used in its reply texts.
        return "running" if self.state is ConnectionState.OPEN else "tuning"

    def _connection_method_allowed_when_open(self, method_type: type[Method]) -> bool:
        if self.our_role is Role.SERVER:
            return method_type is ConnectionUpdateSecret
        return method_type in (ConnectionBlocked, ConnectionUnblocked, ConnectionUpdateSecretOk)

    def _apply_tune_ok(self, tune_ok: Any) -> None:
        """Server role: the client's tune-ok is the final word (spec 1.4.2.6)."""
        offer = self.server_tune
        channel_max, frame_max, heartbeat = tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat
        if offer is not None:
            # Zero means "no limit": a client answering zero accepts our limit.
            # Asking for more than we offered is refused, as RabbitMQ does.
            if offer.channel_max and channel_max > offer.channel_max:
                raise ConnectionException(
                    530, f"channel_max={channel_max} > {offer.channel_max} max", 10, 31
                )
            if offer.frame_max and frame_max > offer.frame_max:
                raise ConnectionException(
                    530, f"frame_max={frame_max} > {offer.frame_max} max size", 10, 31
                )
            channel_max = channel_max or offer.channel_max
            frame_max = frame_max or offer.frame_max
        if frame_max and frame_max < FRAME_MIN_SIZE:
            raise ConnectionException(
                530, f"frame_max={frame_max} < {FRAME_MIN_SIZE} min size", 10, 31
            )
        self._set_tuned(channel_max, frame_max, heartbeat)

    def _set_tuned(self, channel_max: int, frame_max: int, heartbeat: int) -> None:
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self._reader.frame_max = frame_max

    def _on_header(
        self, channel: int, class_id: int, body_size: int, properties: bytes, events: list[Event]
    ) -> None:
        content = self._content.get(channel)
        if content is None or content[_PROPERTIES] is not None:
            if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSE_RECEIVED):
                return
            raise unexpected_frame("expected method frame, got non method frame instead")
        method = content[_METHOD]
        if class_id != method.CLASS_ID:
            raise unexpected_frame(
                f"expected content header for class {method.CLASS_ID}, "
                f"got one for class {class_id} instead",
                method.CLASS_ID, method.METHOD_ID,
            )
        content[_PROPERTIES] = properties
        content[_BODY_SIZE] = body_size
        if content[_DISCARD]:
            if not body_size:
                del self._content[channel]
            return
        if body_size > self.max_body_size:
            # Refuse before buffering a byte of it; the rest of this message's
            # frames are discarded as the channel closes.
            content[_DISCARD] = True
            self._closing_channels.add(channel)
            self._usable_channels.discard(channel)
            events.append(ProtocolFailure(
                ChannelException(
                    406,
                    f"PRECONDITION_FAILED - message size {body_size} is larger "
                    f"than configured max size {self.max_body_size}",
                    method.CLASS_ID, method.METHOD_ID,
                ),
                channel,
            ))
            return
        if not body_size:
            del self._content[channel]
            events.append(_new_tuple(Command, (channel, method, properties, b"")))

    def _on_body(self, channel: int, payload: bytes, events: list[Event]) -> None:
        content = self._content.get(channel)
        if content is None or content[_PROPERTIES] is None:
            if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSE_RECEIVED):
                return
            raise unexpected_frame("expected method frame, got non method frame instead")
        received = content[_RECEIVED] + len(payload)
        if received > content[_BODY_SIZE]:
            method = content[_METHOD]
            raise unexpected_frame(
                f"content body of {received} octets exceeds the announced "
                f"{content[_BODY_SIZE]}",
                method.CLASS_ID, method.METHOD_ID,
            )
        if content[_DISCARD]:
            content[_RECEIVED] = received
            if received == content[_BODY_SIZE]:
                del self._content[channel]
            return
        if received == content[_BODY_SIZE]:
            del self._content[channel]
            chunks = content[_CHUNKS]
            if chunks:
                chunks.append(payload)
                payload = b"".join(chunks)
            events.append(
                _new_tuple(Command, (channel, content[_METHOD], content[_PROPERTIES], payload))
            )
        else:
            content[_RECEIVED] = received
            content[_CHUNKS].append(payload)

    # -- sending -----------------------------------------------------------

    def send_protocol_header(self, now: float | None = None) -> bytes:
        """Client role: the first bytes on the wire."""
        if self.our_role is not Role.CLIENT or self.state is not ConnectionState.AWAIT_HEADER:
            raise LocalProtocolError("only a new client connection sends the protocol header")
        self.state = ConnectionState.HANDSHAKE
        self._expect = (ConnectionStart,)
        if now is not None:
            self._last_sent = now
        return PROTOCOL_HEADER

    def send(
        self,
        channel: int,
        method: Method,
        properties: bytes | BasicProperties | None = None,
        body: bytes | None = None,
        now: float | None = None,
    ) -> bytes:
        """The bytes for ``method`` on ``channel`` (with content when it has some).

        Updates the handshake, channel table and close state. Raises
        `LocalProtocolError` for what the protocol does not allow us to send.
        """
        state = self.state
        if state is ConnectionState.CLOSED:
            raise LocalProtocolError(f"cannot send {method.NAME}: the connection is closed")
        if now is not None:
            self._last_sent = now
        if method.HAS_CONTENT:
            if isinstance(properties, BasicProperties):
                properties = properties.encode()
            if properties is None:
                properties = b"\x00\x00"
            return encode_content_frames(
                channel, method, properties, b"" if body is None else body, self.frame_max
            )
        method_type = type(method)
        if channel == 0:
            self._sent_on_channel_zero(method_type, method)
        elif method_type is ChannelOpen:
            self.open_channels.add(channel)
            self._usable_channels.add(channel)
        elif method_type is ChannelClose:
            self._closing_channels.add(channel)
            self._usable_channels.discard(channel)
            content = self._content.get(channel)
            if content is not None:
                # The rest of that message may already be on its way: keep
                # the marker, so its header and body frames are read and
                # dropped rather than taken for frames without a method (505).
                content[_DISCARD] = True
                content[_CHUNKS] = []
        elif method_type is ChannelCloseOk:
            if channel in self._closing_channels:
                # Both sides sent channel.close: the channel is gone once the
                # peer's close-ok for ours arrives too (spec 4.2.3).
                self._peer_closing_channels.discard(channel)
            else:
                self._forget_channel(channel)
        return encode_method_frame(channel, method)

    def _sent_on_channel_zero(self, method_type: type[Method], method: Any) -> None:
        if method_type is ConnectionClose:
            if self.state is ConnectionState.CLOSE_RECEIVED:
                raise LocalProtocolError("the peer sent connection.close: answer close-ok")
            self.state = ConnectionState.CLOSING
            # Spec 4.2.3: what follows on the channels is ignored, and that
            # includes the end of any message in progress.
            self._content.clear()
        elif method_type is ConnectionCloseOk:
            self.state = ConnectionState.CLOSED
        elif self.state is ConnectionState.HANDSHAKE:
            if method_type is ConnectionSecure:
                self._expect = (ConnectionSecureOk,)
            elif method_type is ConnectionTune:
                self.server_tune = method
                self._expect = (ConnectionTuneOk,)
            elif method_type is ConnectionOpenOk:
                self.state = ConnectionState.OPEN
            elif method_type in (ConnectionStartOk, ConnectionSecureOk):
                self._expect = (ConnectionSecure, ConnectionTune)
            elif method_type is ConnectionTuneOk:
                self._set_tuned(method.channel_max, method.frame_max, method.heartbeat)
            elif method_type is ConnectionOpen:
                self.virtual_host = method.virtual_host
                self._expect = (ConnectionOpenOk,)

    def data_sent(self, now: float) -> None:
        """Record that bytes went out at ``now``.

        For writes made with the frame writers directly (the broker's
        `encode_basic_deliver` hot path), so that `heartbeat_due` does not ask
        for heartbeats on a connection that is busy sending.
        """
        self._last_sent = now

    def send_heartbeat(self, now: float | None = None) -> bytes:
        """A heartbeat frame; remembers ``now`` as the last time we sent."""
        if now is not None:
            self._last_sent = now
        return encode_heartbeat()

    def _forget_channel(self, channel: int) -> None:
        self.open_channels.discard(channel)
        self._usable_channels.discard(channel)
        self._closing_channels.discard(channel)
        self._peer_closing_channels.discard(channel)
        self._content.pop(channel, None)

    # -- heartbeats --------------------------------------------------------
    #
    # RabbitMQ sends a heartbeat when it has sent nothing for heartbeat/2
    # seconds, and gives up on a peer after two heartbeat periods without
    # receiving anything (any frame counts, not only heartbeats). We do the same.

    def heartbeat_due(self, now: float) -> bool:
        """True when we should send a heartbeat: nothing sent for heartbeat/2 s."""
        if not self.heartbeat or self.state is not ConnectionState.OPEN:
            return False
        if self._last_sent is None:
            self._last_sent = now
        return now - self._last_sent >= self.heartbeat / 2

    def peer_is_dead(self, now: float) -> bool:
        """True when nothing was received for two heartbeat periods."""
        if not self.heartbeat:
            return False
        if self._last_received is None:
            self._last_received = now
        return now - self._last_received >= self.heartbeat * 2

    def heartbeat_deadline(self) -> float | None:
        """The next clock reading at which `heartbeat_due` or `peer_is_dead` may change."""
        if not self.heartbeat or self._last_sent is None or self._last_received is None:
            return None
        return min(self._last_sent + self.heartbeat / 2, self._last_received + self.heartbeat * 2)


# ---------------------------------------------------------------------------
# handshake helpers


def negotiate_tune(
    tune: ConnectionTune, channel_max: int = 0, frame_max: int = 0, heartbeat: int | None = None
) -> ConnectionTuneOk:
    """Client role: the tune-ok to answer the server's tune with.

    channel_max and frame_max: zero means "no limit", so the lower non-zero
    value wins (spec 1.4.2.6). heartbeat follows RabbitMQ's clients (Java, .NET,
    and pika when given a number): zero on one side means "no preference" and
    the other value is used; both non-zero, the lower wins; both zero disables
    heartbeats. ``heartbeat=None`` accepts the server's value.
    """

    def lower_nonzero(a: int, b: int) -> int:
        return min(a, b) if a and b else a or b

    if heartbeat is None:
        beat = tune.heartbeat
    else:
        beat = lower_nonzero(tune.heartbeat, heartbeat)
    return ConnectionTuneOk(
        channel_max=lower_nonzero(tune.channel_max, channel_max),
        frame_max=lower_nonzero(tune.frame_max, frame_max),
        heartbeat=beat,
    )


def server_start(
    server_properties: dict[str, Any] | None = None,
    mechanisms: str = "PLAIN AMQPLAIN",
) -> ConnectionStart:
    """Server role: connection.start (protocol 0-9) with `server_properties`.

    What a server announces (its product, its capabilities) is the server's
    business, not the protocol's: the default is a bare table with no
    capabilities, so that nothing is announced that a caller does not
    implement. The broker passes its own (broker.session.handshake).
    """
    return ConnectionStart(
        version_major=0,
        version_minor=9,
        server_properties=dict(server_properties or {"product": "Warren"}),
        mechanisms=mechanisms,
        locales="en_US",
    )


def client_start_ok(
    username: str,
    password: str,
    mechanism: str = "PLAIN",
    client_properties: dict[str, Any] | None = None,
) -> ConnectionStartOk:
    """Client role: connection.start-ok answering with PLAIN or AMQPLAIN credentials."""
    if mechanism == "PLAIN":
        response = b"\x00" + username.encode("utf-8") + b"\x00" + password.encode("utf-8")
    elif mechanism == "AMQPLAIN":
        # AMQPLAIN's response is a field table without its length prefix.
        response = encode_table({"LOGIN": username, "PASSWORD": password})[4:]
    else:
        raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
    properties = {
        "product": "Warren",
        "platform": "Python",
        "capabilities": {
            "publisher_confirms": True,
            "exchange_exchange_bindings": True,
            "basic.nack": True,
            "consumer_cancel_notify": True,
            "connection.blocked": True,
            "authentication_failure_close": True,
        },
    }
    if client_properties:
        properties.update(client_properties)
    return ConnectionStartOk(
        client_properties=properties, mechanism=mechanism, response=response, locale="en_US"
    )


def parse_sasl_response(mechanism: str, response: bytes) -> tuple[str, str]:
    """``(username, password)`` from a start-ok/secure-ok response.

    PLAIN (RFC 4616) is ``authzid NUL authcid NUL passwd``; the authzid is
    ignored, as RabbitMQ does. AMQPLAIN is a field table with ``LOGIN`` and
    ``PASSWORD``, sent without its 4-byte length by py-amqp and kombu (we accept
    it with the length too). A malformed response is 403 ACCESS_REFUSED, an
    unknown mechanism 503 COMMAND_INVALID, both closing the connection, as RabbitMQ.
    """
    response = bytes(response)
    if mechanism == "PLAIN":
        parts = response.split(b"\x00")
        if len(parts) != 3:
            raise ConnectionException(403, "ACCESS_REFUSED - invalid PLAIN response", 10, 11)
        try:
            return parts[1].decode("utf-8"), parts[2].decode("utf-8")
        except UnicodeDecodeError:
            raise ConnectionException(
                403, "ACCESS_REFUSED - PLAIN response is not UTF-8", 10, 11
            ) from None
    if mechanism == "AMQPLAIN":
        table: dict[str, Any] | None = None
        for candidate in (len(response).to_bytes(4, "big") + response, response):
            try:
                table, end = decode_table(candidate, 0)
            except ConnectionException:
                continue
            if end == len(candidate):
                break
            table = None
        if table is None:
            raise ConnectionException(403, "ACCESS_REFUSED - invalid AMQPLAIN response", 10, 11)
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        if not isinstance(login, str) or not isinstance(password, str):
            raise ConnectionException(
                403, "ACCESS_REFUSED - AMQPLAIN response lacks LOGIN or PASSWORD", 10, 11
            )
        return login, password
    raise ConnectionException(
        503, f"COMMAND_INVALID - unknown authentication mechanism '{mechanism}'", 10, 11
    )
