"""The follower's side of replication: the leader's data directory, copied as it is written.

`follow()` connects to the leader etcd names, checks it holds the term etcd
gave it (its election revision), proves knowledge of the shared secret and
checks the leader's proof, sends what it has (`Manifest`), then applies what
it receives: first the snapshot's differences, then every batch. After each
read it applies every whole frame received, fsyncs once (`Applier.sync`), and
acknowledges the last batch: a follower batches exactly as the journal's group
commit does.

Its position, (term, highest journal sequence on disk), decides who takes over
when the leader is gone (broker.node): the term is written to the data
directory (`cluster-state.json`) once the snapshot of a new leader is on disk,
so that it survives a restart of the follower.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from broker.cluster.wire import (
    BATCH,
    CHALLENGE,
    HELLO,
    MAX_FRAME,
    MAX_HANDSHAKE,
    SNAPSHOT,
    WELCOME,
    FrameReader,
    ProtocolError,
    check_proof,
    decode_batch,
    encode_ack,
    proof,
    send_json,
)
from broker.logging import get_logger
from broker.storage.fsync import write_atomically
from broker.storage.records import scan
from broker.storage.replica import CLUSTER_STATE, Applier, FileOp, Manifest, decode_ops
from broker.storage.segments import list_segments, segment_path

__all__ = ["LeaderAddress", "Position", "follow", "read_position", "write_term"]

log = get_logger("warren.replication")

CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True, order=True)
class Position:
    """How up to date a data directory is: the term of the leader whose data it
    last received, then the highest journal sequence it holds (compared in that
    order, as Raft compares the last term, then the index)."""

    term: int
    seq: int

    def to_json(self) -> list[int]:
        return [self.term, self.seq]


def read_position(data_dir: str | Path) -> Position:
    """The position of a data directory on disk (at start: a worker thread's job)."""
    root = Path(data_dir)
    term = 0
    try:
        state = json.loads((root / CLUSTER_STATE).read_text())
        term = int(state.get("term", 0))
    except (FileNotFoundError, ValueError, AttributeError):
        pass
    return Position(term, _highest_seq(root / "journal"))


def _highest_seq(directory: Path) -> int:
    if not directory.exists():
        return 0
    for number in reversed(list_segments(directory)):
        result = scan(segment_path(directory, number).read_bytes())
        if result.records:
            return max(record.seq for record in result.records)
    return 0


def write_term(data_dir: str | Path, term: int) -> None:
    """Remember that this data directory now holds term `term`'s data."""
    write_atomically(Path(data_dir) / CLUSTER_STATE, json.dumps({"term": term}).encode())


@dataclass(frozen=True)
class LeaderAddress:
    """Whom to follow: etcd's leader record."""

    node: str
    host: str
    port: int
    term: int


async def follow(
    data_dir: str | Path,
    leader: LeaderAddress,
    *,
    cluster: str,
    node: str,
    secret: str,
    on_position: Callable[[Position], None],
    on_caught_up: Callable[[], None] = lambda: None,
) -> None:
    """Follow `leader` until the stream breaks (an exception) or the caller cancels."""
    root = Path(data_dir)
    with trio.fail_after(CONNECT_TIMEOUT):
        stream = await trio.open_tcp_stream(leader.host, leader.port)
    applier = Applier(root)
    async with stream:
        reader = FrameReader(stream, MAX_HANDSHAKE)
        with trio.fail_after(CONNECT_TIMEOUT * 3):
            challenge = await reader.expect_json(CHALLENGE)
            if challenge.get("cluster") != cluster or challenge.get("leader") != leader.node:
                raise ProtocolError(f"{leader.host}:{leader.port} is not {leader.node} of {cluster}")
            if challenge.get("term") != leader.term:
                raise ProtocolError(
                    f"{leader.node} holds term {challenge.get('term')}, etcd says {leader.term}")
            await trio.to_thread.run_sync(applier.forget_clean_marker)
            manifest = await trio.to_thread.run_sync(Manifest.of, root)
            position = await trio.to_thread.run_sync(read_position, root)
            nonce = secrets.token_hex(16)
            await send_json(stream, HELLO, {
                "cluster": cluster, "node": node, "term": leader.term, "nonce": nonce,
                "proof": proof(secret, str(challenge.get("nonce")), "follower", cluster, node,
                               leader.node, leader.term),
                "manifest": manifest.to_json(), "position": position.to_json(),
            })
            welcome = await reader.expect_json(WELCOME)
            expected = proof(secret, nonce, "leader", cluster, leader.node, node, leader.term)
            if not check_proof(expected, welcome.get("proof")):
                raise ProtocolError(f"{leader.node} failed to authenticate")
        log.info("replication.following", leader=leader.node, term=leader.term,
                 files=len(manifest.files))
        reader.max_frame = MAX_FRAME
        caught_up = False
        try:
            while True:
                ops: list[FileOp] = []
                last: tuple[int, int] | None = None
                # Every whole frame already received, applied and fsynced together.
                while True:
                    type_, payload = await reader.next()
                    if type_ == SNAPSHOT:
                        ops.extend(decode_ops(payload))
                    elif type_ == BATCH:
                        batch, last_seq, body = decode_batch(payload)
                        ops.extend(decode_ops(body))
                        last = (batch, last_seq)
                    else:
                        raise ProtocolError(f"unexpected frame type {type_} from the leader")
                    if not reader.buffered() or len(ops) > 100_000:
                        break
                new_term = not caught_up and last is not None
                await trio.to_thread.run_sync(_apply, applier, ops, new_term, root, leader.term)
                if last is None:
                    continue  # a piece of the snapshot: acknowledged with its end
                caught_up = True
                if new_term:
                    on_caught_up()
                on_position(Position(leader.term, last[1]))
                await stream.send_all(encode_ack(last[0]))
        finally:
            applier.close()


def _apply(applier: Applier, ops: list[FileOp], new_term: bool, root: Path, term: int) -> None:
    applier.apply(ops)
    applier.sync()
    if new_term:
        write_term(root, term)
