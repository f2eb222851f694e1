"""Helpers for the broker tests: pika connections and a raw frame-level client.

The raw client speaks through the real socket with frames built by the
`protocol` codec, for the error cases no well-behaved client library will
produce (a method on an unopened channel, a broken frame, immediate=true...).
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlparse

import pika

from protocol import methods as m
from protocol.constants import PROTOCOL_HEADER
from protocol.frames import (
    FrameReader,
    MethodFrame,
    encode_content_frames,
    encode_method_frame,
)


def connect(url: str, **params: Any) -> pika.BlockingConnection:
    """A pika BlockingConnection to `url` with extra connection parameters."""
    parameters = pika.URLParameters(url)
    for key, value in params.items():
        setattr(parameters, key, value)
    return pika.BlockingConnection(parameters)


def host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 5672


class RawClient:
    """A minimal blocking AMQP client: send any frame, read what comes back."""

    def __init__(
        self,
        url: str,
        *,
        open_connection: bool = True,
        vhost: str = "/",
        receive_buffer: int | None = None,
    ) -> None:
        host, port = host_port(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # A small kernel buffer makes a client that does not read back up fast.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.reader = FrameReader(0)
        self.frames: list[Any] = []
        self.eof = False
        if open_connection:
            self.handshake(vhost)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def method(self, channel: int, method: Any) -> None:
        self.send(encode_method_frame(channel, method))

    def publish(
        self, channel: int, exchange: str, routing_key: str, body: bytes, **kwargs: Any
    ) -> None:
        properties = kwargs.pop("properties", b"\x00\x00")
        self.send(
            encode_content_frames(
                channel,
                m.BasicPublish(exchange=exchange, routing_key=routing_key, **kwargs),
                properties,
                body,
                131072,
            )
        )

    def read_until(self, predicate: Any, timeout: float = 5.0) -> Any:
        """Read frames until one satisfies `predicate` (returns it) or EOF/timeout."""
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if predicate(frame):
                    return frame
            if self.eof:
                raise EOFError("connection closed by the broker")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching frame")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                self.eof = True
                continue
            if not data:
                self.eof = True
                continue
            self.reader.feed(data)
            self.frames.extend(self.reader.read_frames())

    def expect(self, method_type: type, timeout: float = 5.0) -> Any:
        frame = self.read_until(
            lambda f: isinstance(f, MethodFrame) and isinstance(f.method, method_type), timeout
        )
        return frame.method

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Read until the broker closes the socket."""
        try:
            self.read_until(lambda f: False, timeout)
        except EOFError:
            return

    def handshake(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> None:
        self.send(PROTOCOL_HEADER)
        self.expect(m.ConnectionStart)
        self.method(
            0,
            m.ConnectionStartOk(
                client_properties={"capabilities": {"consumer_cancel_notify": True}},
                mechanism="PLAIN",
                response=b"\x00" + user.encode() + b"\x00" + password.encode(),
                locale="en_US",
            ),
        )
        tune = self.expect(m.ConnectionTune)
        self.method(
            0,
            m.ConnectionTuneOk(
                channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0
            ),
        )
        self.method(0, m.ConnectionOpen(virtual_host=vhost))

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def open_channel(self, number: int = 1) -> None:
        self.method(number, m.ChannelOpen())
        self.expect(m.ChannelOpenOk)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
