"""The composition root: settings, listeners, vhosts, users, alarms, storage.

This is the one module that knows every layer. From a `Settings` (the
`rabbitmq.conf` file, the environment and the command line, in that order
of precedence) it builds the core model (the vhost registry), the access
control (users, permissions), opens storage when there is a data directory
(definitions, users and the journal come back), loads `load_definitions`,
starts the resource monitors and the listeners (plain and TLS, IPv4 and
IPv6), and hands each accepted stream to a session
(`broker.session.ClientConnection`) with its `ConnectionInfo` and the
`SessionContext` — never itself.

`open_broker()` is what tests and tools use: an async context manager that
listens (port 0 picks a free port), yields a `Broker` with `.host`, `.port`
and `.url` (its first plain listener), and on exit closes every connection
with 320 CONNECTION_FORCED, as RabbitMQ does when it is stopped. `serve()`
is the same for the command line, plus SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from broker.admin.definitions import DefinitionsRejected, import_definitions
from broker.alarms import (
    DiskMonitor,
    MemoryMonitor,
    ResourceAlarms,
    memory_available,
    watermark_bytes,
)
from broker.auth.access import AccessControl, LoginThrottle
from broker.auth.permissions import Permission
from broker.auth.users import User
from broker.core.memory import MemoryReleaser, malloc_trim
from broker.core.timers import Timers
from broker.core.vhost import VHost
from broker.core.vhosts import VHostRegistry
from broker.logging import get_logger
from broker.management.app import management_app
from broker.management.context import Listening, ManagementContext
from broker.management.http import serve_http_listeners
from broker.management.prometheus import prometheus_app
from broker.management.stats import Statistics
from broker.session.connection import ClientConnection
from broker.session.context import SessionContext
from broker.session.handshake import SessionLimits
from broker.session.info import connection_info
from broker.settings import AbsoluteLimit, HTTPListener, Listener, Settings, TLSOptions
from broker.storage import open_durability
from broker.storage.definitions import DefinitionsStore
from broker.storage.journal import Journal, ReplicationSink
from broker.storage.lock import DataDirInUse, DataDirLock
from broker.storage.paging import PagingStore
from broker.topology_config import ConfigRefused, load_config
from protocol.constants import ReplyCode

__all__ = [
    "Broker",
    "ListenerInfo",
    "SHUTDOWN_TEXT",
    "StartupError",
    "open_broker",
    "run_timers",
    "serve",
    "tls_context",
]

log = get_logger("warren.server")

#: RabbitMQ's words when it is stopped with clients connected.
SHUTDOWN_TEXT = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
#: The default vhost's description, as RabbitMQ seeds it.
DEFAULT_VHOST_DESCRIPTION = "Default virtual host"


class StartupError(Exception):
    """The broker cannot start as configured (the message says why, for the operator)."""


@dataclass(frozen=True)
class ListenerInfo:
    """One listening socket: its kind ("amqp" or "amqp/ssl") and address."""

    kind: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind} {host}:{self.port}"


class Broker:
    """One running broker: its vhosts, users, alarms, storage, connections, listeners."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings = settings if settings is not None else Settings()
        self.timers = Timers()
        self.memory = MemoryReleaser(self.timers, self._ready_bytes)
        #: Bodies of long queues wait on disk (DATA_DIR/paging, else a temporary directory).
        self.paging = PagingStore(
            Path(settings.data_dir) / "paging" if settings.data_dir is not None else None,
            queue_bytes=settings.paging_queue_bytes,
            on_freed=self.memory.freed,
        )
        self.vhosts = VHostRegistry(timers=self.timers, memory=self.memory, paging=self.paging)
        self.access = AccessControl(settings.loopback_users)
        self.access.throttle = LoginThrottle(
            free_failures=settings.login_throttle_free_failures,
            first_delay=settings.login_throttle_first_delay / 1000,
            max_delay=settings.login_throttle_max_delay / 1000,
            window=settings.login_throttle_window / 1000,
            max_pending=settings.login_throttle_max_pending,
            include_loopback=settings.login_throttle_include_loopback,
        )
        self.alarms = ResourceAlarms()
        self.connections: set[ClientConnection] = set()
        #: Connections dropped because of a bug in Warren (tests assert 0).
        self.crashed_connections = 0
        self.data_dir = Path(settings.data_dir) if settings.data_dir is not None else None
        self.journal: Journal | None = None
        self.definitions: DefinitionsStore | None = None
        #: Watches the data directory's free space (None without a data dir).
        self.disk_monitor: DiskMonitor | None = None
        #: Watches the broker's RSS against vm_memory_high_watermark.
        self.memory_monitor = _memory_monitor(settings, self.alarms)
        self.memory_monitor.on_paging = self.paging.set_pressure
        handshake_timeout = settings.handshake_timeout
        self.context = SessionContext(
            vhosts=self.vhosts,
            alarms=self.alarms,
            access=self.access,
            limits=SessionLimits(
                channel_max=settings.channel_max,
                frame_max=settings.frame_max,
                heartbeat=settings.heartbeat,
                handshake_timeout=(
                    handshake_timeout / 1000 if handshake_timeout is not None else float("inf")
                ),
                max_message_size=settings.max_message_size,
                connection_max=settings.connection_max,
                auth_mechanisms=settings.auth_mechanisms,
                ssl_cert_login_from=settings.ssl_cert_login_from,
                consumer_timeout=settings.consumer_timeout,
            ),
        )
        self.listeners: list[ListenerInfo] = []
        #: Samples the statistics every collect_statistics_interval (started with the listeners).
        self.statistics = Statistics(
            self.vhosts,
            lambda: self.connections,
            interval=settings.collect_statistics_interval / 1000,
        )
        memory = settings.vm_memory_high_watermark
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self.management = ManagementContext(
            vhosts=self.vhosts,
            access=self.access,
            alarms=self.alarms,
            connections=lambda: self.connections,
            stats=self.statistics,
            data_dir=self.data_dir,
            memory_limit=(
                memory.bytes if isinstance(memory, AbsoluteLimit) else int(memory.fraction * ram)
            ),
        )
        self.vhosts.on_deleted.append(self._vhost_deleted)
        self.access.on_user_deleted.append(self._user_deleted)

    @property
    def vhost(self) -> VHost:
        """The default vhost (`default_vhost`, "/" unless configured)."""
        return self.vhosts[self.settings.default_vhost]

    @property
    def host(self) -> str:
        return self._first_plain().host

    @property
    def port(self) -> int:
        return self._first_plain().port

    def _first_plain(self, kind: str = "amqp") -> ListenerInfo:
        for listener in self.listeners:
            if listener.kind == kind:
                return listener
        raise LookupError(f"no {kind} listener")

    @property
    def management_url(self) -> str:
        """http://host:port of the first management HTTP listener."""
        listener = self._first_plain("http")
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        return f"http://{host}:{listener.port}"

    def _ready_bytes(self) -> int:
        """Bytes of all ready messages in memory (not paged out), for the memory releaser."""
        total = sum(q.ready_bytes for v in self.vhosts.values() for q in v.queues.values())
        return total - self.paging.paged_bytes

    @property
    def prometheus_url(self) -> str:
        """http://host:port of the first Prometheus listener."""
        listener = self._first_plain("http/prometheus")
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        return f"http://{host}:{listener.port}"

    @property
    def url(self) -> str:
        """The AMQP URL of the first plain listener (default user, vhost /)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user, password = self.settings.default_user, self.settings.default_pass
        return f"amqp://{user}:{password}@{host}:{self.port}/%2F"

    # -- start -----------------------------------------------------------------------

    def seed_defaults(self) -> None:
        """RabbitMQ's first start: the default vhost, and the default user with all
        permissions in it (skipped when definitions are to be loaded, as RabbitMQ)."""
        settings = self.settings
        self.vhosts.create(settings.default_vhost, DEFAULT_VHOST_DESCRIPTION)
        self.access.put_user(
            User.with_password(settings.default_user, settings.default_pass,
                               settings.default_user_tags)
        )
        permissions = settings.default_permissions
        self.access.set_permission(
            settings.default_user,
            settings.default_vhost,
            Permission(permissions.configure, permissions.write, permissions.read),
        )
        log.info("broker.seeded", vhost=settings.default_vhost, user=settings.default_user)

    def load_definitions_file(self, path: str) -> None:
        """`load_definitions`: apply a RabbitMQ definitions JSON file at start.

        A directory means every entry in it, in name order, each applied in
        turn as a file of its own, as RabbitMQ's
        `rabbit_definitions_import_local_filesystem` does: it reads every
        entry (not only `*.json`), sorted by name, and stops at the first that
        cannot be read or imported. RabbitMQ 3.10 then starts anyway (the
        error is dropped in `rabbit_definitions:maybe_load_definitions/0`,
        fixed in later versions, which stop the boot); Warren stops the start
        and names the file, as it does for a single file. Later files see what
        earlier ones made (a vhost in `10-vhosts.json`, its queues in
        `20-queues.json`).
        """
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as error:
                raise StartupError(
                    f"load_definitions: cannot list {path}: {error.strerror}"
                ) from None
            log.info("definitions.directory", path=path, files=len(names))
            for name in names:
                self._load_definitions_one(os.path.join(path, name))
            return
        self._load_definitions_one(path)

    def _load_definitions_one(self, path: str) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8")
            # An empty file imports nothing (RabbitMQ's `decode(<<"">>)`).
            document = json.loads(text) if text else {}
        except OSError as error:
            raise StartupError(f"load_definitions: cannot read {path}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise StartupError(f"load_definitions: {path} is not JSON: {error}") from None
        try:
            result = import_definitions(self.vhosts, self.access, document)
        except DefinitionsRejected as rejected:
            lines = "\n".join(f"  {problem}" for problem in rejected.problems)
            raise StartupError(f"load_definitions: {path} cannot be loaded:\n{lines}") from None
        if result.problems:
            lines = "\n".join(f"  {problem}" for problem in result.problems)
            raise StartupError(f"load_definitions: {path}: items refused:\n{lines}")
        log.info("definitions.loaded", path=path, **result.counts)

    # -- connections -------------------------------------------------------------------

    async def handle_stream(self, stream: trio.abc.Stream, kind: str = "amqp") -> None:
        """One task per accepted client connection (plain or TLS)."""
        socket_stream = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        try:
            # Small writes are already coalesced per batch; Nagle would only add latency.
            socket_stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)  # type: ignore[attr-defined]
        except (OSError, AttributeError):
            pass
        if isinstance(stream, trio.SSLStream):
            # The TLS handshake is bounded by handshake_timeout; the AMQP
            # handshake then has handshake_timeout again (ClientConnection).
            # RabbitMQ has a separate ssl_handshake_timeout (5 s) for the
            # former, which Warren does not have (docs/compatibility.md).
            with trio.move_on_after(self.context.limits.handshake_timeout) as scope:
                try:
                    await stream.do_handshake()
                except (trio.BrokenResourceError, ssl.SSLError) as error:
                    log.warning("connection.tls_failed", peer=_peer(socket_stream),
                                error=str(error.__cause__ or error))
                    await _send_tls_alert(stream)
                    await trio.aclose_forcefully(stream)
                    return
            if scope.cancelled_caught:
                log.warning("connection.tls_timeout", peer=_peer(socket_stream))
                await trio.aclose_forcefully(stream)
                return
        connection = ClientConnection(stream, connection_info(stream, kind), self.context)
        self.connections.add(connection)
        try:
            await connection.run()
        except Exception:
            # A bug in handling one connection must not take the broker down:
            # the connection is gone (its teardown ran), everyone else goes on.
            self.crashed_connections += 1
            log.exception("connection.crashed")
        finally:
            self.connections.discard(connection)

    def close_where(self, reply_code: int, reply_text: str, predicate: Any) -> None:
        """Close (from the event loop, without waiting) the connections `predicate` picks."""
        for connection in list(self.connections):
            if predicate(connection):
                connection.close(reply_code, reply_text)

    def _vhost_deleted(self, name: str) -> None:
        self.access.vhost_deleted(name)
        self.close_where(
            ReplyCode.CONNECTION_FORCED,
            f"CONNECTION_FORCED - vhost '{name}' is deleted",
            lambda c: c.vhost is not None and c.vhost.name == name,
        )

    def _user_deleted(self, name: str) -> None:
        self.close_where(
            ReplyCode.CONNECTION_FORCED,
            f"CONNECTION_FORCED - user '{name}' is deleted",
            lambda c: c.user == name,
        )

    async def close_connections(self, reply_code: int, reply_text: str) -> None:
        """Close every client connection with `reply_code`, waiting for their close-ok."""
        async with trio.open_nursery() as nursery:
            for connection in list(self.connections):
                nursery.start_soon(connection.force_close, reply_code, reply_text)


async def _send_tls_alert(stream: trio.SSLStream[Any]) -> None:
    """Send the alert OpenSSL wrote when the handshake failed.

    trio leaves it in the SSLStream's outgoing buffer when the handshake
    raises (python-trio/trio#3413), and the client would see the connection
    drop ("unexpected EOF") instead of the reason: "unknown ca",
    "certificate required", "protocol version", as RabbitMQ's clients see
    them. Reads trio's private buffer; does nothing if it is not there.
    """
    outgoing = getattr(stream, "_outgoing", None)
    if not isinstance(outgoing, ssl.MemoryBIO) or not outgoing.pending:
        return
    with trio.move_on_after(1):
        try:
            await stream.transport_stream.send_all(outgoing.read())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _peer(stream: Any) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except (OSError, AttributeError, ValueError):
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run_timers(timers: Timers) -> None:
    """The task that drives the core's deadlines (message TTL, queue expiry)."""
    wake = trio.Event()

    def earlier() -> None:
        wake.set()

    timers.on_earlier = earlier
    try:
        while True:
            deadline = timers.next_deadline()
            if deadline is None:
                await wake.wait()
            else:
                delay = deadline - time.monotonic()
                if delay > 0:
                    with trio.move_on_after(delay):
                        await wake.wait()
                else:
                    timers.run_due()
                    await trio.sleep(0)  # let writers send what the callbacks queued
            wake = trio.Event()
    finally:
        timers.on_earlier = None


def tls_context(
    options: TLSOptions, origins: Mapping[str, str] | None = None, prefix: str = "ssl_options"
) -> ssl.SSLContext:
    """The server-side TLS context of `ssl_options.*` (TLS 1.2 and 1.3 only).

    Client certificates are checked against `cacertfile` alone, as RabbitMQ
    does (tests/tls checks that the system's CA store is not used). A file
    that cannot be used is a `StartupError` naming the key (`prefix`.certfile,
    .keyfile, .cacertfile) and, from `origins`, the "file:line" that set it.
    """
    origins = origins or {}

    def refuse(key: str, message: str) -> StartupError:
        key = f"{prefix}.{key}"
        where = origins.get(key)
        return StartupError(f"{where + ': ' if where else ''}{key}: {message}")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    versions = set(options.versions)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_2 if "tlsv1.2" in versions else ssl.TLSVersion.TLSv1_3
    )
    context.maximum_version = (
        ssl.TLSVersion.TLSv1_3 if "tlsv1.3" in versions else ssl.TLSVersion.TLSv1_2
    )
    certfile, keyfile = options.certfile, options.keyfile
    assert certfile is not None and keyfile is not None  # Settings checks
    try:
        # The chain alone first, so that a bad certificate file and a bad key are told apart.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(certfile)
    except (OSError, ValueError) as error:
        raise refuse("certfile",
                     f"{certfile}: no PEM certificate in it ({_ssl_reason(error)})") from None
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_key_password)
    except _EncryptedKey:
        raise refuse(
            "keyfile",
            f"{keyfile}: the private key is encrypted; Warren has no {prefix}.password "
            "(write it unencrypted: openssl pkey -in KEY -out KEY.plain)",
        ) from None
    except (OSError, ValueError) as error:
        raise refuse(
            "keyfile",
            f"{keyfile}: not a PEM private key, or not the key of {certfile} "
            f"({_ssl_reason(error)})",
        ) from None
    if options.cacertfile is not None:
        try:
            context.load_verify_locations(options.cacertfile)
        except (OSError, ValueError) as error:
            raise refuse("cacertfile",
                         f"{options.cacertfile}: no PEM certificate in it "
                         f"({_ssl_reason(error)})") from None
    if options.verify == "verify_peer":
        # verify_peer: a certificate the client sends must be valid; with
        # fail_if_no_peer_cert the client must send one.
        context.verify_mode = (
            ssl.CERT_REQUIRED if options.fail_if_no_peer_cert else ssl.CERT_OPTIONAL
        )
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


class _EncryptedKey(Exception):
    pass


def _no_key_password() -> str:
    # Without a password callback OpenSSL would prompt on the terminal, and
    # a broker under a service manager would hang at start.
    raise _EncryptedKey


def _ssl_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None)
    return str(reason or error)


def _memory_monitor(settings: Settings, alarms: ResourceAlarms) -> MemoryMonitor:
    """The memory alarm of `vm_memory_high_watermark` (docs/durability.md, "Memory")."""
    available, source = memory_available()
    watermark = settings.vm_memory_high_watermark
    if isinstance(watermark, AbsoluteLimit):
        limit = watermark_bytes(absolute=watermark.bytes, available=available)
    else:
        limit = watermark_bytes(relative=watermark.fraction, available=available)
    ratio = settings.vm_memory_high_watermark_paging_ratio
    log.info("memory.watermark", limit_bytes=limit, watermark=str(watermark),
             available_bytes=available, available_from=source,
             paging_threshold_bytes=int(ratio * limit))
    return MemoryMonitor(alarms, limit, paging_ratio=ratio, trim=malloc_trim)


def _prepare_paging(broker: Broker) -> None:
    """Empty the paging directory: messages paged out before a restart are gone
    (transient), and recovery may page again (dead letters)."""
    try:
        broker.paging.prepare()
    except OSError as error:
        raise StartupError(
            f"paging directory {broker.paging.directory}: {error.strerror or error}"
        ) from None


def _disk_free_limit(settings: Settings, override: int | None) -> int:
    if override is not None:
        return override
    limit = settings.disk_free_limit
    if isinstance(limit, AbsoluteLimit):
        return limit.bytes
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(limit.fraction * ram)


async def _open_listeners(
    settings: Settings, context: ssl.SSLContext | None
) -> list[tuple[str, trio.abc.Listener[Any]]]:
    """Every configured listener, opened (StartupError names the address that
    failed); `context` is `tls_context`'s, for the TLS listeners."""
    opened: list[tuple[str, trio.abc.Listener[Any]]] = []
    https = settings.management_ssl
    https_context = (
        tls_context(TLSOptions(cacertfile=https.cacertfile, certfile=https.certfile,
                               keyfile=https.keyfile), settings.origins, "management.ssl")
        if https is not None else None
    )

    async def open_one(listener: Listener, kind: str) -> None:
        try:
            sockets = await trio.open_tcp_listeners(listener.port, host=listener.host)
        except OSError as error:
            raise StartupError(
                f"cannot listen on {listener} ({kind}): {error.strerror or error}"
            ) from None
        for tcp in sockets:
            if context is not None and kind == "amqp/ssl":
                opened.append((kind, trio.SSLListener(tcp, context, https_compatible=False)))
            elif kind == "https":
                opened.append((kind, trio.SSLListener(tcp, https_context, https_compatible=True)))
            else:
                opened.append((kind, tcp))

    try:
        for listener in settings.listeners_tcp:
            await open_one(listener, "amqp")
        for listener in settings.listeners_ssl:
            await open_one(listener, "amqp/ssl")
        http = settings.management_tcp
        await open_one(Listener(http.ip, http.port), "http")
        https = settings.management_ssl
        if https is not None:
            await open_one(Listener(https.ip, https.port), "https")
        prometheus = settings.prometheus_tcp
        await open_one(Listener(prometheus.ip, prometheus.port), "http/prometheus")
    except BaseException:
        for _kind, listener in opened:
            await listener.aclose()
        raise
    return opened


def _address(listener: trio.abc.Listener[Any]) -> tuple[str, int]:
    inner: Any = listener.transport_listener if isinstance(listener, trio.SSLListener) else listener
    name = inner.socket.getsockname()
    return str(name[0]), int(name[1])


@asynccontextmanager
async def open_broker(
    host: str | None = None,
    port: int | None = None,
    data_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    disk_free_limit: int | None = None,
    *,
    settings: Settings | None = None,
    replication: ReplicationSink | None = None,
    data_dir_locked: bool = False,
) -> AsyncIterator[Broker]:
    """Run a broker for the duration of the `async with` block.

    A cluster's leader (broker.node) passes its `replication` (every journal
    batch goes to the followers, confirms wait for them) and holds the data
    directory's lock itself (`data_dir_locked`) across its roles.

    `settings` default to RabbitMQ's; `host`/`port` (one plain listener,
    default 127.0.0.1 and a free port when no settings are given) and
    `data_dir` override them, as the command line does.
    """
    if settings is None:
        # Tests and tools: one plain listener, the management API on a free port.
        settings = Settings(
            listeners_tcp=(Listener(host or "127.0.0.1", port or 0),),
            management_tcp=HTTPListener(0, host or "127.0.0.1"),
            prometheus_tcp=HTTPListener(0, host or "127.0.0.1"),
        )
    elif host is not None or port is not None:
        settings = settings.with_overrides(
            listeners_tcp=(Listener(host or "127.0.0.1", port if port is not None else 5672),)
        )
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=str(data_dir))
    if settings.cluster is not None and replication is None:
        # Never accepted and ignored: a node with cluster.* settings is run by
        # broker.node (`warren serve` does), which leads or follows.
        raise StartupError("cluster.* settings: a cluster node is started with `warren serve` "
                           "(broker.node.serve_cluster_node), not as a single broker")
    # Certificates are checked before anything is opened or written.
    context = (
        tls_context(settings.ssl_options, settings.origins) if settings.listeners_ssl else None
    )
    # One broker per data directory: locked before paging, the journal or the
    # definitions touch anything in it, held until the broker has stopped.
    lock = None
    if settings.data_dir is not None and not data_dir_locked:
        lock = lock_data_dir(settings.data_dir)
    try:
        async with _run_broker(settings, context, config_path, disk_free_limit,
                               replication) as broker:
            yield broker
    finally:
        if lock is not None:
            lock.release()


def lock_data_dir(data_dir: str) -> DataDirLock:
    """Create the data directory and take its lock (`broker.storage.lock`);
    a StartupError names the directory, and the holder's pid when it is in use."""
    directory = Path(data_dir)
    lock = DataDirLock(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except DataDirInUse as in_use:
        pid = str(in_use.pid) if in_use.pid is not None else "unknown"
        log.error("broker.data_dir_locked", data_dir=data_dir, pid=in_use.pid,
                  lock=str(lock.path))
        raise StartupError(
            f"data directory {data_dir} is in use by another broker (pid {pid})"
        ) from None
    except OSError as error:
        raise StartupError(f"data directory {data_dir}: {error.strerror or error}") from None
    return lock


@asynccontextmanager
async def _run_broker(
    settings: Settings,
    context: ssl.SSLContext | None,
    config_path: str | Path | None,
    disk_free_limit: int | None,
    replication: ReplicationSink | None = None,
) -> AsyncIterator[Broker]:
    """`open_broker`'s work once the data directory (if any) is locked."""
    broker = Broker(settings)
    journal = None
    fresh = True
    if broker.data_dir is not None:
        # Durable definitions, users and the message journal (docs/durability.md):
        # restored before we listen, so no client sees a half-recovered broker.
        _prepare_paging(broker)
        durability = open_durability(broker.vhosts, broker.data_dir)
        journal = broker.journal = durability.journal
        broker.definitions = durability.definitions
        broker.context.journal = journal
        if replication is not None:
            # Before anything below writes (definitions, seeding): every
            # write from here on reaches the followers.
            journal.attach_replication(replication)
        stored_auth = durability.sections.get("auth")
        if stored_auth is not None:
            fresh = False
            for problem in broker.access.load(stored_auth, broker.vhosts):
                log.error("definitions.skipped", kind="auth", problem=problem)
        elif len(broker.vhosts):
            fresh = False  # a data directory from before users were stored: guest, as then
            broker.seed_defaults()
        broker.disk_monitor = DiskMonitor(
            broker.alarms, broker.data_dir, _disk_free_limit(settings, disk_free_limit)
        )
        # Both write into the data directory: the early check counts both.
        broker.disk_monitor.attach(journal)
        broker.disk_monitor.attach(broker.paging)
        broker.management.disk_free_limit = broker.disk_monitor.limit
    else:
        _prepare_paging(broker)
        log.warning("broker.no_data_dir",
                    note="no data directory: nothing (messages, queues, users) survives a restart")
    if fresh:
        if settings.load_definitions is not None:
            log.info("broker.not_seeded", reason="load_definitions is set, as RabbitMQ")
        else:
            broker.seed_defaults()
    if broker.definitions is not None:
        # From here on every change is written (loading definitions included).
        store = broker.definitions
        store.add_section("auth", broker.access.export)
        broker.vhosts.attach_storage(store, journal)
        broker.access.on_change.append(store.changed)
        store.changed()
    if settings.load_definitions is not None:
        broker.load_definitions_file(settings.load_definitions)
    if config_path is not None:
        try:
            load_config(broker.vhosts, broker.access, config_path, settings.default_vhost)
        except ConfigRefused as refused:
            raise StartupError(f"--config: {refused}") from None
    listeners = await _open_listeners(settings, context)
    for kind, listener in listeners:
        broker.listeners.append(ListenerInfo(kind, *_address(listener)))
    broker.management.listeners = [
        Listening(listener.kind, listener.host, listener.port) for listener in broker.listeners
    ]
    http_listeners = [listener for kind, listener in listeners if kind in ("http", "https")]
    prometheus_listeners = [listener for kind, listener in listeners if kind == "http/prometheus"]
    accept_scope = trio.CancelScope()

    async def accept(kind: str, listener: trio.abc.Listener[Any]) -> None:
        async def handler(stream: trio.abc.Stream) -> None:
            await broker.handle_stream(stream, kind)

        await trio.serve_listeners(handler, [listener], handler_nursery=nursery)

    async def accept_all() -> None:
        # One task enters accept_scope (a CancelScope may be entered once
        # only: a task per listener each entering it failed as soon as there
        # were two listeners) and runs an accept loop per listener under it;
        # connections live in the outer nursery, outside the scope.
        with accept_scope:
            async with trio.open_nursery() as accepting:
                for kind, listener in listeners:
                    if not kind.startswith("http"):
                        accepting.start_soon(accept, kind, listener)

    # One nursery owns every connection task and the accept loops.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_timers, broker.timers)
        await nursery.start(broker.paging.run)
        if journal is not None:
            await nursery.start(journal.run)  # group commit
        if broker.disk_monitor is not None:
            await nursery.start(broker.disk_monitor.run)
        # Statistics are sampled off the hot path, next to the API that reads them.
        await nursery.start(broker.statistics.run)
        await nursery.start(broker.memory_monitor.run)
        nursery.start_soon(accept_all)
        if http_listeners:
            nursery.start_soon(serve_http_listeners, management_app(broker.management),
                               http_listeners)
        if prometheus_listeners:
            nursery.start_soon(serve_http_listeners, prometheus_app(broker.management),
                               prometheus_listeners)
        log.info(
            "broker.started",
            listeners=[str(listener) for listener in broker.listeners],
            data_dir=str(broker.data_dir) if broker.data_dir is not None else None,
            vhosts=len(broker.vhosts),
            users=len(broker.access.users),
        )
        try:
            yield broker
        finally:
            log.info("broker.stopping", connections=len(broker.connections))
            with trio.CancelScope(shield=True):
                # Stop accepting first, then close what is open.
                accept_scope.cancel()
                await broker.close_connections(ReplyCode.CONNECTION_FORCED, SHUTDOWN_TEXT)
                if journal is not None:
                    await journal.close()  # the last acks reach the disk
                await broker.paging.close()  # page files removed
            nursery.cancel_scope.cancel()
        for _kind, listener in listeners:
            await listener.aclose()


async def serve(
    host: str | None = None,
    port: int | None = None,
    data_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    *,
    handle_signals: bool = True,
    disk_free_limit: int | None = None,
    settings: Settings | None = None,
    task_status: trio.TaskStatus[Broker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation), then shut down gracefully.

    Graceful means: stop accepting, close every connection with 320
    CONNECTION_FORCED, wait (briefly) for their close-ok, return.
    """
    async with open_broker(
        host, port, data_dir, config_path, disk_free_limit=disk_free_limit, settings=settings
    ) as broker:
        task_status.started(broker)
        await until_stopped(handle_signals, "broker.signal")


async def until_stopped(handle_signals: bool, event: str) -> None:
    """Until SIGINT or SIGTERM (logged as `event`), or for ever without `handle_signals`."""
    if not handle_signals:
        await trio.sleep_forever()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info(event, signal=signal.Signals(signum).name)
            break

