"""Leader election on etcd: a leader key held by a lease, fenced by its create_revision.

    async with trio.open_nursery() as nursery:
        keeper = LeaseKeeper(client, ttl=5)
        await nursery.start(keeper.run)                 # granted, kept alive every ttl/3
        election = Election(client, b"/warren/cluster-1")
        leader = await election.campaign(b"node-a", keeper.lease_id)   # Leader | None
        if leader is not None:
            ...   # lead while keeper.alive(); stamp leader.revision on what we replicate
            await election.resign(leader)

The recipe
----------

It is the one of etcd's ``concurrency`` package (``concurrency.Election``,
go.etcd.io/etcd/clientv3/concurrency/election.go), without its waiting queue:

- leadership is a key, ``<prefix>/leader``, attached to the candidate's
  lease. etcd deletes a lease's keys when the lease expires, i.e. when its
  holder stopped sending keepalives for TTL seconds (etcd "lease" docs), so a
  crashed or cut-off leader loses the key by itself, within TTL;
- a campaign is one transaction, "create the key if its create_revision is
  0" (`EtcdClient.create_if_absent`): of two candidates exactly one wins;
- the key's ``create_revision`` is the *fencing token*. Revisions are
  etcd's cluster-wide, strictly increasing write counter, and re-creating a
  key after it was deleted gives it a new, larger create_revision, so every
  term of leadership has a token larger than any earlier term's. Followers
  (and anything a leader writes to) reject a token smaller than one they have
  seen: a deposed leader that does not know it yet cannot overwrite its
  successor. `proclaim` and `resign` compare it too, so they act only on the
  term they were given;
- ``concurrency.Election.Campaign`` queues candidates under the prefix, each
  with its own key, and blocks until its key is the oldest. Here a campaign is
  a single non-blocking attempt instead: Warren must choose *who* campaigns
  (the follower with the most replicated data first, so that no acknowledged
  write is lost), which a first-come queue would decide for it.

The lease
---------

A leader must stop acting as one when it can no longer be sure its key
exists. `LeaseKeeper.valid_until` is that bound, on trio's clock: the time a
keepalive *request was sent* plus the TTL etcd granted in answer. etcd
restarts the TTL when the keepalive arrives, which is after it was sent, so
the lease lives at least until then (etcd also extends leases across its own
leader changes, never shortens them). A leader cut off from etcd passes
`valid_until` no later than its key can expire, and stops acknowledging
writes: that, with the fencing token, is what keeps two nodes from leading at
once. (It assumes the two clocks run at about the same rate, as etcd's lease
semantics do.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import trio

from broker.cluster.etcd import (
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    LeaseExpired,
    WatchEvent,
)
from broker.logging import get_logger

__all__ = ["Election", "Leader", "LeaseKeeper"]

log = get_logger("warren.cluster")

#: Backoff of `Election.observe` after a failed read or a broken watch.
_RETRY_MIN = 0.1
_RETRY_MAX = 1.0


@dataclass(frozen=True)
class Leader:
    """A term of leadership: the leader's `value` (whatever it proclaims:
    its address, say), `revision`, the leader key's create_revision, which
    is the term's fencing token, and the `lease` the key is attached to."""

    value: bytes
    revision: int
    lease: int


def _leader_of(kv: KeyValue | None) -> Leader | None:
    return None if kv is None else Leader(kv.value, kv.create_revision, kv.lease)


class Election:
    """The election under `prefix` (one per group of nodes that elect one
    leader): its leader key is ``prefix + b"/leader"``."""

    def __init__(self, client: EtcdClient, prefix: bytes) -> None:
        self.client = client
        self.prefix = prefix
        self.key = prefix + b"/leader"

    async def campaign(self, value: bytes, lease: int) -> Leader | None:
        """Try once to become leader, with the key attached to `lease`:
        our Leader if we won (or already were leader on this lease), None if
        someone else leads. Never waits for the current leader to go; the
        caller decides when to try again (on `observe` showing no leader)."""
        won, kv = await self.client.create_if_absent(self.key, value, lease=lease)
        if won and kv is not None:
            leader = _leader_of(kv)
            log.info("election.won", key=self.key.decode(errors="replace"),
                     revision=kv.create_revision, lease=f"{lease:x}")
            return leader
        return None

    async def leader(self) -> Leader | None:
        """The current leader, or None: a linearizable read."""
        return _leader_of(await self.client.get(self.key))

    async def observe(self, *, resync: float = 5.0) -> AsyncGenerator[Leader | None, None]:
        """The leader (or None) now, then at every change, forever.

        Built on a watch of the leader key from the revision of a read, so no
        change between the read and the watch is missed. When the watch breaks
        (its member died, the revision was compacted) or a read fails, it
        re-reads and re-watches, with a short backoff, through whichever
        endpoint answers. When the watch has been quiet for `resync` seconds it
        is re-established the same way: a member cut off from its quorum keeps
        a watch open but silent (see `EtcdClient.watch`), and a leader change
        would otherwise go unseen. Consecutive equal states are yielded once.

        While etcd is unreachable nothing is yielded: the last state stands
        until etcd says otherwise. Use under ``contextlib.aclosing``.
        """
        have_last = False
        last: Leader | None = None
        delay = _RETRY_MIN
        while True:
            try:
                kv, revision = await self.client.get_with_revision(self.key)
                current = _leader_of(kv)
                if not have_last or current != last:
                    have_last, last = True, current
                    yield current
                async with contextlib.aclosing(
                    self.client.watch(self.key, start_revision=revision + 1)
                ) as batches:
                    while True:
                        # Waiting out `resync` cancels the watch's read: the
                        # watch is then finished, and we re-read and re-watch.
                        events: list[WatchEvent] | None = None
                        with trio.move_on_after(resync):
                            events = await anext(batches)
                        if events is None:
                            break
                        delay = _RETRY_MIN
                        for event in events:
                            current = _leader_of(event.kv) if event.type == "PUT" else None
                        if current != last:
                            last = current
                            yield current
            except EtcdUnavailable as exc:
                log.info("election.observe_retry", key=self.key.decode(errors="replace"),
                         reason=exc.message)
                await trio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def proclaim(self, value: bytes, leader: Leader) -> bool:
        """Change the leader's value, only if `leader`'s term is still the
        current one (its key not re-created since); False otherwise."""
        return await self.client.put_if_created_at(self.key, value, leader.revision, lease=leader.lease)

    async def resign(self, leader: Leader) -> bool:
        """Give up leadership: delete the key, only if it is still `leader`'s
        term. False when it was not (anymore): someone else's key is left alone.
        (After a timeout and a retry on another endpoint, False can also mean
        that our first attempt deleted it; either way we no longer lead.)"""
        resigned = await self.client.delete_if_created_at(self.key, leader.revision)
        if resigned:
            log.info("election.resigned", key=self.key.decode(errors="replace"), revision=leader.revision)
        return resigned


class LeaseKeeper:
    """Holds a lease alive: grant(ttl), then a keepalive every ttl/3 seconds.

    Run `run` in a nursery (``await nursery.start(keeper.run)``): once it has
    started, `lease_id` is the lease and `valid_until` the trio time before
    which the lease surely exists (see the module docstring). When etcd cannot
    be reached, keepalives are retried every fraction of a second until
    `valid_until` passes; then, or as soon as etcd says the lease is gone,
    `lost` is set and `run` returns. A lost lease is never renewed: the caller
    steps down and starts again with a new LeaseKeeper.
    """

    #: Pause between keepalive attempts while etcd is unreachable.
    retry_interval = 0.2

    def __init__(self, client: EtcdClient, ttl: int) -> None:
        if ttl < 1:
            raise ValueError("a lease TTL is at least one second")
        self.client = client
        self.ttl = ttl
        self.lease_id = 0
        self.valid_until = float("-inf")
        self.lost = trio.Event()
        self._scope = trio.CancelScope()
        self._started = False

    def alive(self) -> bool:
        """Is the lease surely still there? (Not lost, and within `valid_until`.)"""
        return not self.lost.is_set() and trio.current_time() < self.valid_until

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Grant the lease, report started, keep it alive until it is lost or revoked.

        The grant's errors (EtcdUnavailable...) propagate before `started`.
        """
        if self._started:
            raise RuntimeError("a LeaseKeeper runs once")
        self._started = True
        sent = trio.current_time()
        self.lease_id = await self.client.grant_lease(self.ttl)
        # etcd may raise the TTL to its minimum, never lower it: ttl is a safe bound.
        self.valid_until = sent + self.ttl
        log.info("lease.granted", lease=f"{self.lease_id:x}", ttl=self.ttl)
        with self._scope:
            task_status.started()
            await self._keep_alive(next_at=sent + self.ttl / 3)

    async def _keep_alive(self, next_at: float) -> None:
        failing = False
        while True:
            await trio.sleep_until(min(next_at, self.valid_until))
            sent = trio.current_time()
            if sent >= self.valid_until:
                self._lose("no keepalive succeeded within the TTL")
                return
            ttl = None
            # A keepalive that answers after valid_until is too late to matter.
            with trio.move_on_after(self.valid_until - sent):
                try:
                    ttl = await self.client.keepalive_once(self.lease_id)
                except LeaseExpired:
                    self._lose("etcd says the lease is gone")
                    return
                except EtcdError as exc:  # unreachable, no leader...: retry until valid_until
                    if not failing:
                        log.warning("lease.keepalive_failed", lease=f"{self.lease_id:x}",
                                    reason=exc.message, valid_for=round(self.valid_until - sent, 3))
                    failing = True
            if ttl is None:
                next_at = trio.current_time() + self.retry_interval
                continue
            if failing:
                log.info("lease.keepalive_recovered", lease=f"{self.lease_id:x}")
                failing = False
            self.valid_until = sent + ttl
            next_at = sent + ttl / 3

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            log.warning("lease.lost", lease=f"{self.lease_id:x}", reason=reason)
            self.lost.set()

    async def revoke(self) -> None:
        """Stop renewing and revoke the lease, deleting its keys (the leader
        key among them) at once rather than at expiry. `lost` is set.

        EtcdUnavailable if etcd cannot be reached: the lease then expires by
        itself within its TTL.
        """
        self._scope.cancel()
        self.valid_until = min(self.valid_until, trio.current_time())
        self.lost.set()
        if self.lease_id:
            await self.client.revoke_lease(self.lease_id)
            log.info("lease.revoked", lease=f"{self.lease_id:x}")
