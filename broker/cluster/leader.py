"""The leader's side of replication: every follower gets every batch (docs/cluster.md).

`ReplicationHub` is the journal's `ReplicationSink`. The group commit calls it
on the event loop:

- `admit()` before taking a batch: followers that have just connected get a
  snapshot of the data directory as it is now (every earlier batch on disk,
  nothing of this one), to be sent before the batches that follow;
- `ship(ops, last_seq)`: the batch's file operations, encoded once and queued
  for each follower (sent by that follower's task; the journal never waits on
  a socket), before the journal writes the batch itself;
- `replicated(batch)`, for each written batch in order, from the journal's
  confirming task (the group commit goes on with the next batch meanwhile):
  returns when every in-sync follower has acknowledged the batch (it is on
  their disks) and there are at least `min_followers` of them, so that the
  publisher confirms it covers may go; at once with `min_followers = 0`. It
  never returns True once this node's etcd lease may have expired: a leader
  that could have been replaced does not confirm.

The in-sync set (`maintain_in_sync`) is what makes a failover lose nothing
confirmed: a follower joins it once it has every confirmed batch, leaves it
after ACK_DEADLINE seconds without acknowledging, and every change is
published in etcd before it takes effect; only its members may lead next.

The stream batches exactly as the journal does: while the followers write
one batch, the next one gathers everything published meanwhile.

Bounds: a follower that falls more than `max_lag_bytes` behind (a hung
process) is disconnected; it catches up from the files when it comes back.
Handshakes have a deadline, a size limit, and at most MAX_HANDSHAKES run at once.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import trio

from broker.cluster.wire import (
    ACK,
    CHALLENGE,
    HELLO,
    MAX_HANDSHAKE,
    REFUSE,
    SNAPSHOT,
    WELCOME,
    FrameReader,
    ProtocolError,
    check_proof,
    decode_ack,
    encode_batch,
    encode_frame,
    proof,
    send_json,
)
from broker.logging import get_logger
from broker.storage.replica import FileOp, Manifest, SnapshotSource, encode_ops

__all__ = ["FollowerLink", "ReplicationHub"]

log = get_logger("warren.replication")

#: Seconds a follower has to complete its handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Bytes of batches queued for one follower before it is dropped.
MAX_LAG_BYTES = 256 * 1024 * 1024
#: Snapshot pieces read per trip to the worker thread.
SNAPSHOT_STEP = 8 * 1024 * 1024
#: Connections in their handshake at once (more are closed at once): bounds the
#: memory strangers can make the leader hold (MAX_HANDSHAKE bytes each).
MAX_HANDSHAKES = 16
#: Seconds an in-sync follower may leave a batch unacknowledged (or be
#: disconnected) before it is dropped from the in-sync set, which lets
#: confirms go on without it.
ACK_DEADLINE = 2.0


class FollowerLink:
    """One connected follower, as the leader sees it."""

    def __init__(self, name: str, address: str, manifest: Manifest) -> None:
        self.name = name
        self.address = address
        self.manifest = manifest
        #: Every batch up to this one is on the follower's disk (-1: none yet).
        self.acked = -1
        self.admitted = trio.Event()
        self.snapshot: SnapshotSource | None = None
        self.snapshot_batch = 0
        self.snapshot_seq = 0
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wake = trio.Event()
        self.failed: str | None = None
        self.caught_up = False
        #: Since when a batch shipped to this follower waits for its ack (None: none waits).
        self.behind_since: float | None = None

    def push(self, frame: bytes, max_lag: int) -> None:
        if self.failed is not None:
            return
        if self.queued_bytes + len(frame) > max_lag:
            self.failed = f"more than {max_lag} bytes behind"
            self.wake.set()
            return
        self.queue.append(frame)
        self.queued_bytes += len(frame)
        if self.behind_since is None:
            self.behind_since = trio.current_time()
        self.wake.set()

    def status(self, batch: int, in_sync: bool = False) -> dict[str, Any]:
        return {"node": self.name, "address": self.address, "in_sync": in_sync,
                "acked_batch": self.acked,
                "batches_behind": max(0, batch - self.acked) if self.acked >= 0 else None,
                "queued_bytes": self.queued_bytes, "caught_up": self.caught_up}


class ReplicationHub:
    """Followers of this leader, and the journal's replication sink."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        cluster: str,
        node: str,
        term: int,
        secret: str,
        min_followers: int,
        alive: Callable[[], bool],
        max_lag_bytes: int = MAX_LAG_BYTES,
    ) -> None:
        self.root = Path(data_dir)
        self.cluster = cluster
        self.node = node
        self.term = term
        self.secret = secret
        self.min_followers = min_followers
        self.alive = alive
        #: Runs a journal batch soon (set when the journal attaches us).
        self.kick: Callable[[], None] = lambda: None
        self.max_lag_bytes = max_lag_bytes
        self.followers: dict[str, FollowerLink] = {}
        self._joining: list[FollowerLink] = []
        self.batch = 0
        self.last_seq = 0
        self._changed = trio.Event()
        self.closed = False
        #: Batches that waited for followers, and how long in all (seconds).
        self.waits = 0
        self.wait_seconds = 0.0
        #: The in-sync followers: every confirm waits for all of them (and for at
        #: least min_followers). Only they, and this leader, may lead next
        #: (`maintain_in_sync` publishes the set in etcd before it shrinks it).
        self.in_sync: set[str] = set()
        self.confirmed_batch = 0
        self.ack_deadline = ACK_DEADLINE
        self._absent_since: dict[str, float] = {}
        self._handshakes = 0

    # -- the journal's sink (event loop) ---------------------------------------------

    def admit(self) -> None:
        for link in self._joining:
            try:
                link.snapshot = SnapshotSource.open(self.root)
            except OSError as error:
                link.failed = f"snapshot failed: {error}"
            link.snapshot_batch = self.batch
            link.snapshot_seq = self.last_seq
            old = self.followers.get(link.name)
            if old is not None:
                old.failed = "replaced by a new connection from the same node"
                old.wake.set()
            self.followers[link.name] = link
            link.admitted.set()
        self._joining.clear()

    def ship(self, ops: list[FileOp], last_seq: int) -> int:
        self.batch += 1
        self.last_seq = last_seq
        if self.followers:
            frame = encode_batch(self.batch, last_seq, encode_ops(ops))
            for link in self.followers.values():
                link.push(frame, self.max_lag_bytes)
        return self.batch

    def _covered(self, batch: int) -> bool:
        """Every in-sync follower has `batch` on disk, and they are enough; or
        min_followers is 0: the leader's fsync alone (the operator's choice)."""
        if self.min_followers == 0:
            return True
        if len(self.in_sync) < self.min_followers:
            return False
        for name in self.in_sync:
            link = self.followers.get(name)
            if link is None or link.failed or link.acked < batch:
                return False
        return True

    async def replicated(self, batch: int) -> bool:
        started = trio.current_time()
        waited = False
        while True:
            if self.closed:
                return False
            if self.alive() and self._covered(batch):
                self.confirmed_batch = max(self.confirmed_batch, batch)
                if waited:
                    self.waits += 1
                    self.wait_seconds += trio.current_time() - started
                return True
            waited = True
            # Woken by an ack or a follower leaving; the timeout re-checks the lease.
            with trio.move_on_after(0.1):
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def close(self) -> None:
        """Stop: no batch is confirmed any more (this node is stepping down)."""
        self.closed = True
        for link in self.followers.values():
            link.failed = link.failed or "the leader is stepping down"
            link.wake.set()
        self._notify()

    def status(self) -> dict[str, Any]:
        return {"batch": self.batch, "last_seq": self.last_seq, "min_followers": self.min_followers,
                "confirmed_batch": self.confirmed_batch, "in_sync": sorted(self.in_sync),
                "followers": [link.status(self.batch, link.name in self.in_sync)
                              for link in self.followers.values()],
                "confirm_waits": self.waits,
                "confirm_wait_seconds": round(self.wait_seconds, 3)}

    # -- the in-sync set ------------------------------------------------------------------

    async def maintain_in_sync(self, publish: Callable[[set[str]], Awaitable[bool]],
                               initial: Iterable[str] = ()) -> None:
        """Keep `in_sync` right, publishing each change with `publish` (etcd).

        A follower joins once it has acknowledged every batch confirmed so far:
        it is required by confirms from before the publication, so that no batch
        is confirmed without it in between. A member that leaves a batch
        unacknowledged, or stays disconnected, for `ack_deadline` seconds is
        dropped, but only once etcd has the smaller set: until then confirms
        still wait for it. So whoever etcd lists holds every confirmed batch,
        and a new leader is only ever chosen among them.
        """
        self.in_sync = set(initial)
        now = trio.current_time()
        self._absent_since = {name: now for name in initial}
        if not await publish(self.in_sync):
            return
        while not self.closed:
            now = trio.current_time()
            keep = set()
            for name in self.in_sync:
                link = self.followers.get(name)
                if link is None or link.failed:
                    since = self._absent_since.setdefault(name, now)
                    if now - since <= self.ack_deadline:
                        keep.add(name)
                    continue
                self._absent_since.pop(name, None)
                if link.behind_since is None or now - link.behind_since <= self.ack_deadline:
                    keep.add(name)
            if keep != self.in_sync:
                dropped = self.in_sync - keep
                if not await publish(keep):
                    return  # no longer the leader
                self.in_sync = keep
                log.warning("replication.out_of_sync", nodes=sorted(dropped),
                            deadline=self.ack_deadline, in_sync=sorted(keep))
                self._notify()
            for link in list(self.followers.values()):
                if (link.name not in self.in_sync and link.caught_up and not link.failed
                        and link.acked >= self.confirmed_batch and link.behind_since is None):
                    self.in_sync.add(link.name)  # required from now on
                    if not await publish(set(self.in_sync)):
                        self.in_sync.discard(link.name)
                        return
                    log.info("replication.in_sync", node=link.name, in_sync=sorted(self.in_sync))
                    self._notify()
            with trio.move_on_after(0.1):
                await self._changed.wait()

    # -- followers' connections ---------------------------------------------------------

    async def serve(
        self, listener: trio.abc.Listener[Any],
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(self._serve_one, [listener], handler_nursery=nursery)

    async def _serve_one(self, stream: trio.abc.Stream) -> None:
        peer = _peer(stream)
        link: FollowerLink | None = None
        if self._handshakes >= MAX_HANDSHAKES:
            log.warning("replication.too_many_handshakes", peer=peer, limit=MAX_HANDSHAKES)
            await stream.aclose()
            return
        try:
            self._handshakes += 1
            try:
                with trio.fail_after(HANDSHAKE_TIMEOUT):
                    link = await self._handshake(stream, peer)
            finally:
                self._handshakes -= 1
            if link is None:
                return
            await self._run_link(stream, link)
            log.warning("replication.follower_left", node=link.name, reason=link.failed)
        except (ProtocolError, EOFError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError, OSError) as error:
            log.warning("replication.follower_lost", peer=peer,
                        node=link.name if link else None, error=str(error) or type(error).__name__)
        finally:
            if link is not None:
                if link.snapshot is not None:
                    link.snapshot.close()
                if self.followers.get(link.name) is link:
                    del self.followers[link.name]
                self._notify()
            await stream.aclose()

    async def _handshake(self, stream: trio.abc.Stream, peer: str) -> FollowerLink | None:
        nonce = secrets.token_hex(16)
        await send_json(stream, CHALLENGE, {"cluster": self.cluster, "leader": self.node,
                                            "term": self.term, "nonce": nonce})
        reader = FrameReader(stream, MAX_HANDSHAKE)
        hello = await reader.expect_json(HELLO)
        name = str(hello.get("node", ""))
        expected = proof(self.secret, nonce, "follower", self.cluster, name, self.node, self.term)
        reason = None
        if hello.get("cluster") != self.cluster:
            reason = f"this is cluster {self.cluster!r}"
        elif not check_proof(expected, hello.get("proof")):
            reason = "authentication failed"
        elif hello.get("term") != self.term:
            reason = f"this leader's term is {self.term}"
        elif self.closed:
            reason = "this node is stepping down"
        elif not name or name == self.node:
            reason = "bad node name"
        if reason is not None:
            log.warning("replication.follower_refused", peer=peer, node=name, reason=reason)
            await send_json(stream, REFUSE, {"reason": reason})
            return None
        try:
            manifest = Manifest.from_json(hello.get("manifest") or {})
        except (ValueError, TypeError) as error:
            raise ProtocolError(f"malformed manifest: {error}") from None
        their_nonce = str(hello.get("nonce", ""))
        await send_json(stream, WELCOME, {"proof": proof(
            self.secret, their_nonce, "leader", self.cluster, self.node, name, self.term)})
        link = FollowerLink(name, peer, manifest)
        self._joining.append(link)
        self.kick()  # a batch soon, even if the broker is idle: admit() runs there
        await link.admitted.wait()
        log.info("replication.follower_joined", node=name, peer=peer, files=len(manifest.files),
                 position=hello.get("position"), from_batch=link.snapshot_batch)
        return link

    async def _run_link(self, stream: trio.abc.Stream, link: FollowerLink) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive_acks, stream, link, nursery.cancel_scope)
            try:
                await self._send(stream, link)
            except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError,
                    OSError) as error:
                # Here, not in the caller: out of a nursery it would come wrapped in a group.
                link.failed = link.failed or str(error) or type(error).__name__
            nursery.cancel_scope.cancel()

    async def _send(self, stream: trio.abc.Stream, link: FollowerLink) -> None:
        snapshot = link.snapshot
        if snapshot is not None:
            ops = snapshot.ops_for(link.manifest)
            sent = 0
            while piece := await trio.to_thread.run_sync(_take_ops, ops, SNAPSHOT_STEP):
                await stream.send_all(encode_frame(SNAPSHOT, encode_ops(piece)))
                sent += sum(len(op.data) for op in piece)
            snapshot.close()
            link.snapshot = None
            link.manifest = Manifest()  # not needed any more: let its memory go
            # "Everything up to the snapshot's batch": acknowledged like a batch.
            await stream.send_all(encode_batch(link.snapshot_batch, link.snapshot_seq, b""))
            log.info("replication.snapshot_sent", node=link.name, bytes=sent,
                     batch=link.snapshot_batch)
        while True:
            if link.failed is not None:
                raise ProtocolError(link.failed)
            while link.queue:
                frame = link.queue.popleft()
                link.queued_bytes -= len(frame)
                await stream.send_all(frame)
                if link.failed is not None:
                    raise ProtocolError(link.failed)
            link.wake = trio.Event()
            if not link.queue and link.failed is None:
                await link.wake.wait()

    async def _receive_acks(self, stream: trio.abc.Stream, link: FollowerLink,
                            scope: trio.CancelScope) -> None:
        reader = FrameReader(stream, 64)
        try:
            while True:
                type_, payload = await reader.next()
                if type_ != ACK:
                    raise ProtocolError(f"unexpected frame type {type_} from a follower")
                batch = decode_ack(payload)
                if batch > link.acked:
                    link.acked = batch
                    if batch >= self.batch:
                        link.behind_since = None
                    if not link.caught_up and batch >= link.snapshot_batch:
                        link.caught_up = True
                        log.info("replication.follower_caught_up", node=link.name, batch=batch)
                    self._notify()
        except (ProtocolError, EOFError, trio.BrokenResourceError, trio.ClosedResourceError) as error:
            link.failed = link.failed or f"ack stream: {error}"
            link.wake.set()
            scope.cancel()


def _take_ops(ops: Any, limit: int) -> list[FileOp]:
    """The next operations of a snapshot, about `limit` bytes of data (a worker thread's job)."""
    piece: list[FileOp] = []
    size = 0
    for op in ops:
        piece.append(op)
        size += len(op.data)
        if size >= limit:
            break
    return piece


def _peer(stream: Any) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except (AttributeError, OSError):
        return "?"
