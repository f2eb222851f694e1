"""The composition root: listeners, vhosts, alarms, storage; `serve()` and `open_broker()`.

This is the one module that knows every layer: it builds the core model
(vhosts), opens storage (definitions and journal) when there is a data
directory, starts the resource monitors, and hands each accepted stream to
a session (`broker.session.ClientConnection`) with a `ConnectionInfo` and the
`SessionContext` — never itself.

`open_broker()` is what tests and tools use: an async context manager that
listens (port 0 picks a free port), yields a `Broker` with `.host`, `.port`
and `.url`, and on exit closes every connection with 320 CONNECTION_FORCED,
as RabbitMQ does when it is stopped. `serve()` is the same for the command
line, plus SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from broker.alarms import DEFAULT_DISK_FREE_LIMIT, DiskMonitor, ResourceAlarms
from broker.core.timers import Timers
from broker.core.vhost import VHost
from broker.logging import get_logger
from broker.session.connection import ClientConnection
from broker.session.context import SessionContext
from broker.session.info import connection_info
from broker.storage import open_durability
from broker.storage.journal import Journal
from broker.topology_config import load_config
from protocol.constants import ReplyCode

__all__ = ["Broker", "open_broker", "run_timers", "serve", "SHUTDOWN_TEXT"]

log = get_logger("warren.server")

#: RabbitMQ's words when it is stopped with clients connected.
SHUTDOWN_TEXT = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"


class Broker:
    """One running broker: its vhosts, alarms, storage, connections, where it listens."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.timers = Timers()
        self.vhosts: dict[str, VHost] = {}
        self.vhost = self.add_vhost("/")
        self.alarms = ResourceAlarms()
        self.connections: set[ClientConnection] = set()
        #: Connections dropped because of a bug in Warren (tests assert 0).
        self.crashed_connections = 0
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.journal: Journal | None = None
        #: Watches the data directory's free space (None without a data dir).
        self.disk_monitor: DiskMonitor | None = None
        self.context = SessionContext(vhosts=self.vhosts, alarms=self.alarms)
        self.host = ""
        self.port = 0

    def add_vhost(self, name: str) -> VHost:
        vhost = VHost(name)
        vhost.timers = self.timers
        self.vhosts[name] = vhost
        return vhost

    @property
    def url(self) -> str:
        """The AMQP URL clients use (default user guest, vhost /)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://guest:guest@{host}:{self.port}/%2F"

    async def handle_stream(self, stream: trio.SocketStream) -> None:
        """serve_tcp handler: one task per client connection."""
        # Small writes are already coalesced per batch; Nagle would only add latency.
        try:
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass
        connection = ClientConnection(stream, connection_info(stream), self.context)
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

    async def close_connections(self, reply_code: int, reply_text: str) -> None:
        """Close every client connection with `reply_code`, waiting for their close-ok."""
        async with trio.open_nursery() as nursery:
            for connection in list(self.connections):
                nursery.start_soon(connection.force_close, reply_code, reply_text)


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


@asynccontextmanager
async def open_broker(
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    disk_free_limit: int | None = None,
) -> AsyncIterator[Broker]:
    """Run a broker for the duration of the `async with` block."""
    broker = Broker(data_dir)
    journal = None
    if broker.data_dir is not None:
        # Durable definitions and the message journal (docs/durability.md):
        # restored before we listen, so no client sees a half-recovered broker.
        broker.data_dir.mkdir(parents=True, exist_ok=True)
        journal = broker.journal = open_durability(broker.vhost, broker.data_dir)
        broker.context.journal = journal
        limit = DEFAULT_DISK_FREE_LIMIT if disk_free_limit is None else disk_free_limit
        broker.disk_monitor = DiskMonitor(broker.alarms, broker.data_dir, limit)
    if config_path is not None:
        load_config(broker.vhost, config_path)
    listeners = await trio.open_tcp_listeners(port, host=host)
    sockname: Any = listeners[0].socket.getsockname()
    broker.host, broker.port = sockname[0], sockname[1]
    accept_scope = trio.CancelScope()

    async def accept() -> None:
        with accept_scope:
            await trio.serve_listeners(broker.handle_stream, listeners, handler_nursery=nursery)

    # One nursery owns every connection task and the accept loop.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_timers, broker.timers)
        if journal is not None:
            await nursery.start(journal.run)  # group commit
        if broker.disk_monitor is not None:
            await nursery.start(broker.disk_monitor.run)
        nursery.start_soon(accept)
        log.info("broker.started", host=broker.host, port=broker.port, url=broker.url)
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
            nursery.cancel_scope.cancel()
        for listener in listeners:
            await listener.aclose()


async def serve(
    host: str = "127.0.0.1",
    port: int = 5672,
    data_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    *,
    handle_signals: bool = True,
    disk_free_limit: int | None = None,
    task_status: trio.TaskStatus[Broker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation), then shut down gracefully.

    Graceful means: stop accepting, close every connection with 320
    CONNECTION_FORCED, wait (briefly) for their close-ok, return.
    """
    async with open_broker(
        host, port, data_dir, config_path, disk_free_limit=disk_free_limit
    ) as broker:
        task_status.started(broker)
        if not handle_signals:
            await trio.sleep_forever()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("broker.signal", signal=signal.Signals(signum).name)
                break
