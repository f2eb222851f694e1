"""Helpers for the durability tests: a pipelining publisher, segment inspection."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from broker.storage import records as r
from broker.storage.segments import list_segments, segment_path
from protocol import methods as m
from protocol.constants import PROTOCOL_HEADER
from protocol.frames import FrameReader, MethodFrame, encode_content_frames, encode_method_frame
from protocol.properties import BasicProperties

PERSISTENT = BasicProperties(delivery_mode=2).encode()
TRANSIENT = BasicProperties(delivery_mode=1).encode()


class Publisher:
    """A minimal AMQP publisher over a raw socket: pipelines publishes with confirms."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
        self.reader = FrameReader(0)
        self.pending: list[Any] = []
        self.acked = 0  # highest confirmed publish seq (acks only, multiple honoured)
        self.nacked: set[int] = set()
        self.send(PROTOCOL_HEADER)
        self.expect(m.ConnectionStart)
        self.method(
            0,
            m.ConnectionStartOk(
                client_properties={},
                mechanism="PLAIN",
                response=b"\x00guest\x00guest",
                locale="en_US",
            ),
        )
        tune = self.expect(m.ConnectionTune)
        self.method(0, m.ConnectionTuneOk(channel_max=10, frame_max=tune.frame_max, heartbeat=0))
        self.method(0, m.ConnectionOpen(virtual_host="/"))
        self.expect(m.ConnectionOpenOk)
        self.method(1, m.ChannelOpen())
        self.expect(m.ChannelOpenOk)
        self.method(1, m.ConfirmSelect())
        self.expect(m.ConfirmSelectOk)
        self.seq = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def method(self, channel: int, method: Any) -> None:
        self.send(encode_method_frame(channel, method))

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("broker closed the connection")
        self.reader.feed(data)
        for frame in self.reader.read_frames():
            if isinstance(frame, MethodFrame):
                method = frame.method
                if isinstance(method, m.BasicAck):
                    self.acked = max(self.acked, method.delivery_tag)
                elif isinstance(method, m.BasicNack):
                    self.nacked.add(method.delivery_tag)
                else:
                    self.pending.append(method)

    def expect(self, kind: type, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for index, method in enumerate(self.pending):
                if isinstance(method, kind):
                    return self.pending.pop(index)
            self._read(max(deadline - time.monotonic(), 0.01))

    def publish_many(self, routing_key: str, bodies: list[bytes], properties: bytes) -> int:
        """Send every publish in one write; the seq of the last one."""
        data = b"".join(
            encode_content_frames(
                1, m.BasicPublish(exchange="", routing_key=routing_key), properties, body, 131072
            )
            for body in bodies
        )
        self.send(data)
        self.seq += len(bodies)
        return self.seq

    def wait_confirms(self, seq: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"confirmed {self.acked} of {seq}")
            self._read(remaining)

    def close(self) -> None:
        self.sock.close()


def journal_bodies(data_dir: Path) -> dict[str, list[bytes]]:
    """Read-only: the PUBLISH bodies on disk per queue, minus ACKed ones (no truncation)."""
    directory = data_dir / "journal"
    live: dict[int, tuple[str, bytes]] = {}
    for number in list_segments(directory):
        for record in r.scan(segment_path(directory, number).read_bytes()).records:
            if record.type == r.PUBLISH:
                p = r.decode_publish(record.payload, record.flags)
                live[p.msg_id] = (p.queue, p.body)
            elif record.type == r.ACK:
                for msg_id in r.decode_ids(record.payload):
                    live.pop(msg_id, None)
    out: dict[str, list[bytes]] = {}
    for msg_id in sorted(live):
        queue, body = live[msg_id]
        out.setdefault(queue, []).append(body)
    return out
