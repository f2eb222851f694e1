"""TEMPORARY server-role stand-in for `protocol.connection` until it lands.

Only what `broker.connection` uses, with the names of docs/internals.md; it is
imported only when `protocol.connection` cannot be. Delete once it exists.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from protocol import methods as m
from protocol.constants import PROTOCOL_HEADER
from protocol.errors import AMQPError, BadProtocolHeader, unexpected_frame
from protocol.frames import (
    BodyFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    encode_content_frames,
    encode_heartbeat,
    encode_method_frame,
)


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class Command(NamedTuple):
    channel: int
    method: Any
    properties: bytes | None
    body: bytes | None


class HeartbeatReceived(NamedTuple):
    pass


class ProtocolHeaderReceived(NamedTuple):
    pass


class ProtocolFailure(NamedTuple):
    error: AMQPError


class Connection:
    def __init__(self, role: Role) -> None:
        self.our_role = role
        self._reader = FrameReader(0)
        self._header = bytearray()
        self._got_header = False
        self._partial: dict[int, list[Any]] = {}
        self.channel_max = 0
        self.frame_max = 131072
        self.heartbeat = 0
        self._last_sent = 0.0
        self._last_received = 0.0
        self.open_channels: set[int] = set()

    def send(
        self,
        channel: int,
        method: Any,
        properties: bytes | None = None,
        body: bytes | None = None,
        now: float | None = None,
    ) -> bytes:
        if now is not None:
            self._last_sent = now
        if type(method) is m.ConnectionTune:
            self.channel_max = method.channel_max
            self.frame_max = method.frame_max
            self.heartbeat = method.heartbeat
        if method.HAS_CONTENT:
            return encode_content_frames(
                channel, method, properties or b"\x00\x00", body or b"", self.frame_max
            )
        return encode_method_frame(channel, method)

    def send_heartbeat(self) -> bytes:
        return encode_heartbeat()

    def heartbeat_due(self, now: float) -> bool:
        return bool(self.heartbeat) and now - self._last_sent >= self.heartbeat / 2

    def peer_is_dead(self, now: float) -> bool:
        return bool(self.heartbeat) and now - self._last_received > 2 * self.heartbeat

    def receive_data(self, data: bytes, now: float | None = None) -> list[Any]:
        if now is not None:
            self._last_received = now
        events: list[Any] = []
        if not self._got_header:
            self._header += data
            if len(self._header) < 8:
                if not PROTOCOL_HEADER.startswith(bytes(self._header)):
                    raise BadProtocolHeader(bytes(self._header))
                return events
            if bytes(self._header[:8]) != PROTOCOL_HEADER:
                raise BadProtocolHeader(bytes(self._header[:8]))
            self._got_header = True
            events.append(ProtocolHeaderReceived())
            data = bytes(self._header[8:])
            if not data:
                return events
        reader = self._reader
        reader.feed(data)
        partial = self._partial
        try:
            for frame in reader.read_frames():
                t = type(frame)
                if t is MethodFrame:
                    if frame.channel in partial:
                        raise unexpected_frame("expected content header")
                    if type(frame.method) is m.ConnectionTuneOk:
                        tune = frame.method
                        if tune.frame_max:
                            self.frame_max = min(self.frame_max or tune.frame_max, tune.frame_max)
                        self.heartbeat = tune.heartbeat
                        if tune.channel_max:
                            self.channel_max = min(self.channel_max, tune.channel_max)
                        reader.frame_max = self.frame_max
                    if frame.method.HAS_CONTENT:
                        partial[frame.channel] = [frame.method, None, 0, []]
                    else:
                        events.append(Command(frame.channel, frame.method, None, None))
                elif t is HeaderFrame:
                    p = partial.get(frame.channel)
                    if p is None or p[1] is not None:
                        raise unexpected_frame("unexpected content header")
                    p[1] = frame.properties
                    p[2] = frame.body_size
                    if frame.body_size == 0:
                        del partial[frame.channel]
                        events.append(Command(frame.channel, p[0], p[1], b""))
                elif t is BodyFrame:
                    p = partial.get(frame.channel)
                    if p is None or p[1] is None:
                        raise unexpected_frame("unexpected content body")
                    p[3].append(frame.payload)
                    p[2] -= len(frame.payload)
                    if p[2] <= 0:
                        del partial[frame.channel]
                        body = p[3][0] if len(p[3]) == 1 else b"".join(p[3])
                        events.append(Command(frame.channel, p[0], p[1], body))
                elif t is HeartbeatFrame:
                    events.append(HeartbeatReceived())
        except AMQPError as exc:
            events.append(ProtocolFailure(exc))
        return events
