"""The replication stream's framing and its mutual authentication (docs/cluster.md).

One TCP connection per follower, to the leader's `replication.listener`:

    frame = length (uint32, big-endian, of what follows) | type (uint8) | payload

    leader   -> CHALLENGE {cluster, leader, term, nonce}
    follower -> HELLO     {cluster, node, term, nonce, proof, manifest, position}
    leader   -> WELCOME   {proof}                    or REFUSE {reason}
    leader   -> SNAPSHOT  file operations            (catching up, in pieces)
    leader   -> BATCH     batch (uint64) | last journal sequence (uint64) | file operations
    follower -> ACK       batch (uint64): every batch up to it is on the follower's disk

Both sides prove they know `replication.secret` without sending it: an
HMAC-SHA256 over the other side's nonce, the cluster, the node names and the
term. `term` is the leader's election revision in etcd (its fencing token): a
follower only follows the leader etcd currently names, with that revision, so
a deposed leader can never collect the acknowledgements a confirm needs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any

import trio

__all__ = [
    "ACK", "BATCH", "CHALLENGE", "HELLO", "REFUSE", "SNAPSHOT", "WELCOME", "FrameReader",
    "ProtocolError", "decode_batch", "encode_batch", "encode_frame", "proof", "send_json",
]

CHALLENGE, HELLO, WELCOME, REFUSE, SNAPSHOT, BATCH, ACK = range(1, 8)
_TYPES = frozenset(range(1, 8))
_HEAD = struct.Struct(">IB")
_BATCH = struct.Struct(">QQ")
_ACK = struct.Struct(">Q")
#: The largest frame accepted: a batch holds at most what one group commit
#: took, and a message is at most 512 MiB (max_message_size).
MAX_FRAME = 600 * 1024 * 1024
#: A handshake frame (JSON, the manifest included: about 100 bytes a file) is
#: smaller than this.
MAX_HANDSHAKE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer broke the replication protocol (or failed to authenticate)."""


def encode_frame(type_: int, payload: bytes = b"") -> bytes:
    return _HEAD.pack(len(payload) + 1, type_) + payload


def encode_batch(batch: int, last_seq: int, ops: bytes) -> bytes:
    return _HEAD.pack(len(ops) + 1 + _BATCH.size, BATCH) + _BATCH.pack(batch, last_seq) + ops


def decode_batch(payload: bytes | memoryview) -> tuple[int, int, memoryview]:
    if len(payload) < _BATCH.size:
        raise ProtocolError("short BATCH frame")
    batch, last_seq = _BATCH.unpack_from(payload, 0)
    return batch, last_seq, memoryview(payload)[_BATCH.size :]


def encode_ack(batch: int) -> bytes:
    return encode_frame(ACK, _ACK.pack(batch))


def decode_ack(payload: bytes) -> int:
    if len(payload) != _ACK.size:
        raise ProtocolError("malformed ACK frame")
    return int(_ACK.unpack(payload)[0])


def proof(secret: str, nonce: str, role: str, cluster: str, node: str, peer: str, term: int) -> str:
    """The HMAC that shows knowledge of `secret` for this nonce and handshake."""
    message = "\x00".join(("warren-replication", role, nonce, cluster, node, peer, str(term)))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def check_proof(expected: str, given: Any) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected, given)


async def send_json(stream: trio.abc.Stream, type_: int, document: dict[str, Any]) -> None:
    await stream.send_all(encode_frame(type_, json.dumps(document).encode()))


class FrameReader:
    """Frames from a stream, with a bound on their size."""

    def __init__(self, stream: trio.abc.Stream, max_frame: int = MAX_FRAME) -> None:
        self.stream = stream
        self.max_frame = max_frame
        self._buffer = bytearray()

    def buffered(self) -> bool:
        """True if a whole frame is waiting in the buffer already."""
        if len(self._buffer) < _HEAD.size:
            return False
        length: int = _HEAD.unpack_from(self._buffer, 0)[0]
        return len(self._buffer) >= 4 + length

    async def next(self) -> tuple[int, bytes]:
        """(type, payload) of the next frame; EOFError when the peer closed."""
        while len(self._buffer) < _HEAD.size:
            await self._fill()
        length, type_ = _HEAD.unpack_from(self._buffer, 0)
        if type_ not in _TYPES or length < 1 or length > self.max_frame:
            raise ProtocolError(f"bad frame header (type {type_}, length {length})")
        while len(self._buffer) < 4 + length:
            await self._fill()
        payload = bytes(self._buffer[_HEAD.size : 4 + length])
        del self._buffer[: 4 + length]
        return type_, payload

    async def _fill(self) -> None:
        data = await self.stream.receive_some(1 << 20)
        if not data:
            raise EOFError("the peer closed the replication stream")
        self._buffer += data

    async def expect_json(self, type_: int) -> dict[str, Any]:
        got, payload = await self.next()
        if got == REFUSE:
            reason = _json(payload).get("reason", "refused")
            raise ProtocolError(f"refused: {reason}")
        if got != type_:
            raise ProtocolError(f"expected frame type {type_}, got {got}")
        return _json(payload)


def _json(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise ProtocolError(f"malformed handshake frame: {error}") from None
    if not isinstance(document, dict):
        raise ProtocolError("malformed handshake frame: not an object")
    return document
