"""A node of a high-availability cluster: lead, or follow whoever leads (docs/cluster.md).

`warren serve` runs this instead of a plain broker when the settings have
`cluster.*` keys. One node leads and serves AMQP; the others copy its data
directory as it is written and refuse AMQP clients, naming the leader.

etcd decides who leads (broker.cluster.election): the leader holds the key
`PREFIX/leader`, attached to its lease; the key's create revision is its
term, the fencing token followers check before they follow. Every node keeps
`PREFIX/nodes/NAME` (same lease) with its addresses, role and position. The
leader writes `PREFIX/in-sync` (who may lead next, broker.cluster.leader) and
`PREFIX/settings` (what followers compare theirs with), both guarded by its
leader key, so that a deposed leader's writes fail.

The life of a node, one lease at a time:

    grant a lease, register
    loop while the lease lives:
        a leader?   no  -> contend: publish our position, wait SETTLE, read every
                           node's; the most up-to-date (term, then journal sequence;
                           then the smaller name) campaigns, the others wait
                           FAILOVER_WAIT for it before trying themselves
                    us  -> lead: recover the data directory like any broker start,
                           serve AMQP, ship every batch to the followers, until the
                           lease is lost or etcd names another leader
                    another -> follow it: replicate, refuse AMQP, until it changes
    lease lost (etcd unreachable for a TTL): stop whatever we were, start again

A leader that cannot renew its lease stops confirming at once (its hub asks
`LeaseKeeper.alive()` before every confirm) and steps down; a follower's
election revision check means it never acknowledges batches of a deposed
leader. See docs/cluster.md for what is promised.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from broker.cluster.election import Election, Leader, LeaseKeeper
from broker.cluster.etcd import EtcdClient, EtcdError, EtcdTLS
from broker.cluster.follower import LeaderAddress, Position, follow, read_position, write_term
from broker.cluster.leader import ReplicationHub
from broker.cluster.refusal import serve_refusals
from broker.cluster.wire import ProtocolError
from broker.logging import get_logger
from broker.management.app import follower_app
from broker.management.http import serve_http_listeners
from broker.server import StartupError, lock_data_dir, open_broker, until_stopped
from broker.settings import ClusterSettings, Settings

__all__ = ["ClusterNode", "serve_cluster_node"]

log = get_logger("warren.cluster")

#: Seconds candidates wait for each other's positions before the best campaigns.
SETTLE = 0.5
#: Seconds between retries when etcd or the leader cannot be reached.
RETRY = 0.5
#: Seconds between updates of a follower's position in etcd.
POSITION_INTERVAL = 1.0


class ClusterNode:
    """One Warren node of a cluster (see the module docstring)."""

    def __init__(self, settings: Settings, *, config_path: str | Path | None = None,
                 disk_free_limit: int | None = None) -> None:
        if settings.cluster is None:
            raise StartupError("not a cluster node: no cluster.* settings")
        if settings.data_dir is None:
            raise StartupError("a cluster node needs a data directory (warren.data_dir or --data-dir)")
        self.settings = settings
        self.cluster: ClusterSettings = settings.cluster
        self.name = self.cluster.node_name
        self.data_dir = Path(settings.data_dir)
        self.prefix = self.cluster.etcd.prefix.rstrip("/")
        self.config_path = config_path
        self.disk_free_limit = disk_free_limit
        self.role = "starting"
        self.leader: Leader | None = None
        self.leader_info: dict[str, Any] = {}
        self.position = Position(0, 0)
        self.hub: ReplicationHub | None = None
        etcd = self.cluster.etcd
        tls = None
        if etcd.cacertfile or etcd.certfile or any(e.startswith("https:") for e in etcd.endpoints):
            tls = EtcdTLS(ca_file=etcd.cacertfile, cert_file=etcd.certfile, key_file=etcd.keyfile)
        self.client = EtcdClient(list(etcd.endpoints), tls=tls)
        self.election = Election(self.client, self.prefix.encode())
        self._in_sync_key = f"{self.prefix}/in-sync".encode()
        self._settings_key = f"{self.prefix}/settings".encode()

    # -- what the node says about itself ---------------------------------------------------

    def _amqp_address(self) -> str:
        port = self.settings.listeners_tcp[0].port if self.settings.listeners_tcp else 0
        return f"{self.cluster.advertise_host}:{port}"

    def _management_url(self) -> str:
        return f"http://{self.cluster.advertise_host}:{self.settings.management_tcp.port}"

    def _identity(self) -> dict[str, Any]:
        listener = self.cluster.replication_listener
        return {"node": self.name, "amqp": self._amqp_address(),
                "replication": f"{self.cluster.advertise_host}:{listener.port}",
                "management": self._management_url()}

    def status(self) -> dict[str, Any]:
        """For /api/cluster and /api/cluster/health."""
        info = self.leader_info
        state: dict[str, Any] = {
            "cluster": self.cluster.name, "node": self.name, "role": self.role,
            "leader": info.get("node"), "leader_amqp": info.get("amqp"),
            "leader_management": info.get("management"),
            "term": self.leader.revision if self.leader is not None else None,
            "position": self.position.to_json(),
            "confirms": ("leader fsync" if self.cluster.min_followers == 0 else
                         f"leader fsync and {self.cluster.min_followers} follower(s)"),
        }
        if self.hub is not None:
            state["position"] = [self.hub.term, self.hub.last_seq]
            state["replication"] = self.hub.status()
        return state

    def _shared_settings(self) -> dict[str, Any]:
        """The settings every node of the cluster should agree on."""
        return {"name": self.cluster.name, "min_followers": self.cluster.min_followers,
                "lease_ttl": self.cluster.etcd.lease_ttl}

    def _refusal_text(self) -> str:
        info = self.leader_info
        if info.get("node"):
            return (f"{self.name} is a follower in cluster {self.cluster.name}; "
                    f"the leader is {info['node']} at {info.get('amqp')}")
        return f"{self.name} is not the leader of cluster {self.cluster.name}; no leader yet"

    async def _register(self, lease: LeaseKeeper) -> None:
        value = {**self._identity(), "role": self.role, "position": self.position.to_json(),
                 "leader": self.leader_info.get("node")}
        await self.client.put(f"{self.prefix}/nodes/{self.name}".encode(),
                              json.dumps(value).encode(), lease=lease.lease_id)

    # -- the life of a node ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[ClusterNode] = trio.TASK_STATUS_IGNORED) -> None:
        lock = lock_data_dir(str(self.data_dir))
        started = False
        try:
            self.position = await trio.to_thread.run_sync(read_position, self.data_dir)
            log.info("cluster.node_starting", node=self.name, cluster=self.cluster.name,
                     position=self.position.to_json(), etcd=list(self.cluster.etcd.endpoints))
            while True:
                lease = LeaseKeeper(self.client, self.cluster.etcd.lease_ttl)
                async with trio.open_nursery() as nursery:
                    try:
                        await nursery.start(lease.run)
                    except (EtcdError, OSError) as error:
                        log.warning("cluster.etcd_unreachable", error=str(error), retry_in=RETRY)
                        await trio.sleep(RETRY)
                        continue
                    if not started:
                        task_status.started(self)
                        started = True
                    await self._roles(lease)
                    nursery.cancel_scope.cancel()
                log.warning("cluster.lease_lost", node=self.name,
                            note="etcd unreachable for a lease TTL: starting again")
                self.role = "starting"
                self.leader = None
                self.leader_info = {}
        finally:
            with trio.CancelScope(shield=True):
                await self.client.aclose()
            lock.release()

    async def _roles(self, lease: LeaseKeeper) -> None:
        """Lead or follow while `lease` lives."""
        with trio.CancelScope() as scope:
            async def watch_lease() -> None:
                await lease.lost.wait()
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_lease)
                while not lease.lost.is_set():
                    won = None
                    # Not leading: the AMQP and HTTP ports answer, naming the leader.
                    async with self._standby():
                        while won is None and not lease.lost.is_set():
                            won = await self._find_role(lease)
                    if won is not None:
                        await self._lead(won, lease)
                nursery.cancel_scope.cancel()
        if self.hub is not None:
            self.hub.close()

    async def _find_role(self, lease: LeaseKeeper) -> Leader | None:
        """Follow the leader while there is one; our leadership once we win one."""
        try:
            await self._register(lease)
            leader = await self.election.leader()
            if leader is None:
                return await self._contend(lease)
            info = _decode(leader.value)
            if info.get("node") == self.name:
                if leader.lease != lease.lease_id:
                    # Our own key from a lease we no longer keep (a restart or a
                    # lost lease): nobody else can renew it, so let it go now
                    # rather than waiting for its TTL.
                    log.info("cluster.stale_leadership_released", term=leader.revision)
                    await self.client.revoke_lease(leader.lease)
                return None
            await self._follow(leader, info, lease)
        except EtcdError as error:
            log.warning("cluster.etcd_error", error=str(error), retry_in=RETRY)
            await trio.sleep(RETRY)
        return None

    @asynccontextmanager
    async def _standby(self) -> AsyncIterator[None]:
        """While not leading: refuse AMQP naming the leader, answer /api/cluster/health."""
        amqp = [await trio.open_tcp_listeners(listener.port, host=listener.host)
                for listener in self.settings.listeners_tcp]
        http = await trio.open_tcp_listeners(self.settings.management_tcp.port,
                                             host=self.settings.management_tcp.ip)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_refusals, [x for group in amqp for x in group],
                                    self._refusal_text)
                nursery.start_soon(serve_http_listeners, follower_app(self.status), http)
                yield
                nursery.cancel_scope.cancel()
        finally:
            for group in (*amqp, http):
                for each in group:
                    await each.aclose()

    async def _contend(self, lease: LeaseKeeper) -> Leader | None:
        """No leader: campaign if we are the most up-to-date live node, else give it time."""
        self.role = "candidate"
        self.leader = None
        self.leader_info = {}
        await self._register(lease)
        await trio.sleep(SETTLE)
        eligible = await self._in_sync()
        if eligible is not None and self.name not in eligible:
            # We may lack confirmed messages: only the last leader's in-sync
            # followers (or that leader) may take over. Wait for one of them.
            log.info("cluster.not_in_sync", node=self.name, in_sync=sorted(eligible),
                     note="waiting for one of these to lead")
            with trio.move_on_after(self.cluster.etcd.lease_ttl + 1):
                async for current in self.election.observe():
                    if current is not None:
                        return None
            return None
        nodes, _revision = await self.client.get_prefix(f"{self.prefix}/nodes/".encode())
        candidates = []
        for kv in nodes:
            info = _decode(kv.value)
            name = str(info.get("node", ""))
            if eligible is not None and name not in eligible:
                continue
            position = info.get("position") or [0, 0]
            candidates.append(((int(position[0]), int(position[1])), name))
        mine = (self.position.term, self.position.seq)
        best = max(candidates, key=lambda c: (c[0], _desc(c[1])), default=(mine, self.name))
        if best[1] != self.name and (best[0], _desc(best[1])) > (mine, _desc(self.name)):
            log.info("cluster.waiting_for_better_candidate", best=best[1], position=list(best[0]),
                     ours=list(mine))
            with trio.move_on_after(self.cluster.etcd.lease_ttl + 1):
                async for current in self.election.observe():
                    if current is not None:
                        return None
            # The better node did not take over (hung, or gone with its lease): next round.
            if await self.election.leader() is not None:
                return None
        won = await self.election.campaign(json.dumps(self._identity()).encode(), lease.lease_id)
        if won is None:
            return None
        log.info("cluster.elected", node=self.name, term=won.revision, position=list(mine))
        return won

    async def _lead(self, leader: Leader, lease: LeaseKeeper) -> None:
        self.role = "leader"
        self.leader = leader
        self.leader_info = self._identity()
        term = leader.revision
        await trio.to_thread.run_sync(write_term, self.data_dir, term)
        self.position = Position(term, self.position.seq)
        await self._register(lease)
        # The cluster's settings, as its leader runs it: followers compare theirs.
        await self.client.put_guarded(self._settings_key, json.dumps(self._shared_settings()).encode(),
                                      guard=self.election.key, create_revision=leader.revision)
        listener = self.cluster.replication_listener
        replication_listeners = await trio.open_tcp_listeners(listener.port, host=listener.host)
        hub = self.hub = ReplicationHub(
            self.data_dir, cluster=self.cluster.name, node=self.name, term=term,
            secret=self.cluster.secret, min_followers=self.cluster.min_followers, alive=lease.alive,
        )
        started = trio.current_time()

        async def publish_in_sync(members: set[str]) -> bool:
            return await self._publish_in_sync(leader, members)

        try:
            async with open_broker(settings=self.settings, data_dir_locked=True, replication=hub,
                                   config_path=self.config_path,
                                   disk_free_limit=self.disk_free_limit) as broker:
                try:
                    broker.management.cluster_status = self.status
                    # /api/overview, /api/cluster-name and the Prometheus labels
                    # name the cluster as every node of it does.
                    broker.management.cluster_name = self.cluster.name
                    log.info("cluster.leading", node=self.name, term=term,
                             seconds_to_serve=round(trio.current_time() - started, 3),
                             min_followers=self.cluster.min_followers)
                    async with trio.open_nursery() as nursery:
                        await nursery.start(hub.serve, replication_listeners[0])
                        nursery.start_soon(hub.maintain_in_sync, publish_in_sync)
                        await self._until_leader_changes(leader, lease)
                        nursery.cancel_scope.cancel()
                finally:
                    # Before the broker closes: its last batch must not wait for followers.
                    hub.close()
        finally:
            for each in replication_listeners:
                await each.aclose()
            self.position = Position(term, max(self.position.seq, hub.last_seq))
            self.hub = None
            self.role = "stepping-down"
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                try:
                    await self.election.resign(leader)
                except EtcdError:
                    pass
            log.warning("cluster.stepped_down", node=self.name, term=term,
                        lease_alive=lease.alive())

    async def _publish_in_sync(self, leader: Leader, members: set[str]) -> bool:
        """Write the in-sync set (this leader and `members`) to etcd while we lead;
        False once we do not (the write is guarded by our leader key)."""
        value = json.dumps({"term": leader.revision, "leader": self.name,
                            "members": [self.name, *sorted(members)]}).encode()
        while True:
            try:
                return await self.client.put_guarded(
                    self._in_sync_key, value, guard=self.election.key,
                    create_revision=leader.revision)
            except EtcdError as error:
                if self.hub is None or self.hub.closed:
                    return False
                log.warning("cluster.in_sync_write_failed", error=str(error), retry_in=RETRY)
                await trio.sleep(RETRY)

    async def _in_sync(self) -> set[str] | None:
        """The nodes that may lead next (None: no leader ever published one)."""
        kv = await self.client.get(self._in_sync_key)
        if kv is None:
            return None
        members = _decode(kv.value).get("members")
        return {str(m) for m in members} if isinstance(members, list) else None

    async def _until_leader_changes(self, leader: Leader, lease: LeaseKeeper) -> None:
        async for current in self.election.observe():
            if current is None or current.revision != leader.revision:
                return
            if lease.lost.is_set():
                return

    async def _follow(self, leader: Leader, info: dict[str, Any], lease: LeaseKeeper) -> None:
        self.role = "follower"
        self.leader = leader
        self.leader_info = info
        await self._register(lease)
        log.info("cluster.following", node=self.name, leader=info.get("node"), term=leader.revision)
        shared = await self.client.get(self._settings_key)
        if shared is not None and _decode(shared.value) != self._shared_settings():
            # Not fatal (the leader's apply while it leads), but a failover
            # would change them: say so.
            log.warning("cluster.settings_differ", ours=self._shared_settings(),
                        leader=_decode(shared.value))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._replicate, leader, info)
            nursery.start_soon(self._report_position, lease)
            await self._until_leader_changes(leader, lease)
            nursery.cancel_scope.cancel()

    async def _report_position(self, lease: LeaseKeeper) -> None:
        """Keep our registration's position (the highest journal sequence on
        disk) current, once a second when it moved: what operators and the
        next election read."""
        reported = self.position
        while True:
            await trio.sleep(POSITION_INTERVAL)
            if self.position != reported:
                reported = self.position
                try:
                    await self._register(lease)
                except EtcdError as error:
                    log.warning("cluster.etcd_error", error=str(error))

    async def _replicate(self, leader: Leader, info: dict[str, Any]) -> None:
        host, _sep, port = str(info.get("replication", "")).rpartition(":")
        address = LeaderAddress(str(info.get("node")), host.strip("[]"), int(port or 0), leader.revision)
        while True:
            try:
                await follow(self.data_dir, address, cluster=self.cluster.name, node=self.name,
                             secret=self.cluster.secret, on_position=self._on_position)
            except (OSError, EOFError, ProtocolError, trio.TooSlowError, ValueError,
                    trio.BrokenResourceError, trio.ClosedResourceError) as error:
                log.warning("cluster.replication_broken", leader=address.node,
                            error=str(error) or type(error).__name__, retry_in=RETRY)
            await trio.sleep(RETRY)

    def _on_position(self, position: Position) -> None:
        self.position = position


def _desc(name: str) -> tuple[int, ...]:
    """Orders names so that the smaller one wins a tie under max()."""
    return tuple(-ord(c) for c in name) + (1,)


def _decode(value: bytes) -> dict[str, Any]:
    try:
        document = json.loads(value)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


async def serve_cluster_node(
    settings: Settings, *, config_path: str | Path | None = None,
    disk_free_limit: int | None = None, handle_signals: bool = True,
) -> None:
    """`warren serve` for a cluster node: until SIGINT/SIGTERM."""
    node = ClusterNode(settings, config_path=config_path, disk_free_limit=disk_free_limit)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await until_stopped(handle_signals, "cluster.signal")
        nursery.cancel_scope.cancel()
