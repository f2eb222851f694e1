"""TEMPORARY stand-in for protocol.connection until it lands (client role only)."""
from __future__ import annotations

import enum
from typing import Any, NamedTuple

from protocol.errors import AMQPError
from protocol.frames import (
    BodyFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    encode_content_frames,
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


class ProtocolFailure(NamedTuple):
    error: AMQPError


class Connection:
    def __init__(self, role: Role) -> None:
        self.our_role = role
        self._reader = FrameReader(0)
        self._partial: dict[int, list] = {}

    def send(self, channel: int, method: Any, properties: bytes | None = None,
             body: bytes | None = None, now: float | None = None) -> bytes:
        if method.HAS_CONTENT:
            return encode_content_frames(channel, method, properties or b"\x00\x00", body or b"",
                                         131072)
        return encode_method_frame(channel, method)

    def receive_data(self, data: bytes, now: float | None = None) -> list:
        reader = self._reader
        reader.feed(data)
        events: list = []
        partial = self._partial
        try:
            for frame in reader.read_frames():
                t = type(frame)
                if t is MethodFrame:
                    if frame.method.HAS_CONTENT:
                        partial[frame.channel] = [frame.method, None, 0, []]
                    else:
                        events.append(Command(frame.channel, frame.method, None, None))
                elif t is HeaderFrame:
                    p = partial[frame.channel]
                    p[1] = frame.properties
                    p[2] = frame.body_size
                    if frame.body_size == 0:
                        del partial[frame.channel]
                        events.append(Command(frame.channel, p[0], p[1], b""))
                elif t is BodyFrame:
                    p = partial[frame.channel]
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
