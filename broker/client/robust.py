"""Robust mode: ``open_connection(url, reconnect=True)``.

A supervisor task keeps one plain `Connection` open. When it is lost (socket
error, missed heartbeats, the broker closing it), the supervisor reconnects
with exponential backoff, then restores what this connection had:

1. the topology it declared, in declaration order: exchanges, queues,
   exchange-to-exchange bindings and queue bindings, minus what it deleted or
   unbound. A server-named queue (declared as ``""``) dies with its
   connection; it is declared again, gets a new name from the broker, and
   its bindings and consumers follow it there. The caller keeps using the
   first name: this connection's calls translate it
   (`RobustConnection.current_queue_name` tells the name it has now);
2. every channel still open, with its confirm mode and qos;
3. every consumer still active, under the same consumer tag; its iterator
   just goes on yielding messages.

What is never silent: a confirmed publish that was in flight when the
connection went down raises `ConnectionClosed` (the broker may or may not have
it: publish again if you need it there); so does ``ack`` of a message
delivered on the old connection (the broker requeues it and delivers it
again, ``redelivered=True``). Operations started while disconnected wait for
the reconnection (bound them with a trio cancel scope if you must).

A channel closed by a channel error (404, 406...) stays closed, as in
RabbitMQ's own clients: the error is the application's to handle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ._open import open_plain_connection, single_error
from .channel import Channel, DeclaredQueue
from .confirms import Confirmation
from .connection import Connection
from .errors import ChannelClosed, ConnectionClosed
from .message import Message
from .url import ConnectionParameters

__all__ = ["RobustChannel", "RobustConnection", "RobustConsumer", "open_robust_connection"]

INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 10.0


class RobustConnection:
    """A connection that reconnects and restores its topology and consumers."""

    def __init__(self, params: ConnectionParameters, client_properties: dict[str, Any] | None,
                 nursery: trio.Nursery) -> None:
        self.params = params
        self._client_properties = client_properties
        self._nursery = nursery
        self._conn: Connection | None = None
        self._connected = trio.Event()
        self._closing = False
        self._channels: list[RobustChannel] = []
        # Declarations in order: key -> (kind, args, kwargs). Re-declaring the
        # same object moves nothing; deleting removes it and what hangs off it.
        self._topology: dict[tuple, tuple[str, tuple, dict]] = {}
        # Server-named queues: the first name the broker gave (the one the
        # caller knows) -> the name it has now.
        self._current_names: dict[str, str] = {}
        #: How many times the connection was re-established.
        self.reconnects = 0
        self.last_error: BaseException | None = None

    # -------------------------------------------------------------- public

    @property
    def is_open(self) -> bool:
        return self._conn is not None and self._conn.is_open

    @property
    def connection(self) -> Connection | None:
        """The current plain connection (None while reconnecting)."""
        return self._conn if self._connected.is_set() else None

    async def wait_connected(self) -> Connection:
        while True:
            await self._connected.wait()
            if self._conn is not None and self._conn.is_open:
                return self._conn
            await trio.sleep(0)

    async def channel(self, *, confirms: bool = False, max_in_flight: int | None = None,
                      on_return: Any = None) -> RobustChannel:
        conn = await self.wait_connected()
        robust = RobustChannel(self, confirms, max_in_flight, on_return)
        robust._channel = await conn.channel(confirms=confirms, max_in_flight=max_in_flight,
                                             on_return=on_return)
        self._channels.append(robust)
        return robust

    @asynccontextmanager
    async def open_channel(self, *, confirms: bool = False, max_in_flight: int | None = None,
                           on_return: Any = None) -> AsyncIterator[RobustChannel]:
        channel = await self.channel(confirms=confirms, max_in_flight=max_in_flight,
                                     on_return=on_return)
        try:
            yield channel
        finally:
            with trio.CancelScope(shield=True):
                await channel.close()

    def current_queue_name(self, queue: str) -> str:
        """The name a server-named queue of this connection has now.

        Each reconnection declares such a queue again and the broker names it
        anew; the name first returned keeps working in this connection's
        calls, but other clients (a ``reply_to`` given out earlier) only know
        the name they were told. Other names come back unchanged.
        """
        return self._current_names.get(queue, queue)  # a current name is no key: itself

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            with trio.CancelScope(shield=True):
                await self._conn.close()

    # ------------------------------------------------------- supervision

    async def _supervise(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        backoff = INITIAL_BACKOFF
        first = True
        while not self._closing:
            try:
                async with open_plain_connection(self.params, self._client_properties,
                                                  raise_unseen=False) as conn:
                    if not first:
                        await self._restore(conn)
                        self.reconnects += 1
                    self._conn = conn
                    self._connected.set()
                    if first:
                        first = False
                        task_status.started()
                    backoff = INITIAL_BACKOFF
                    self.last_error = await conn.wait_closed()
            except (ConnectionClosed, ChannelClosed, OSError) as exc:
                if first:
                    raise  # a wrong URL or login fails fast
                self.last_error = exc
            if self._closing:
                return
            self._connected = trio.Event()
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _restore(self, conn: Connection) -> None:
        async with conn.open_channel() as ch:
            renamed: dict[str, str] = {}
            for kind, args, kwargs in list(self._topology.values()):
                if kind == "server_named_queue":
                    first = args[0]
                    declared = await ch.queue_declare("", **kwargs)
                    renamed[first] = declared.name
                    continue
                if kind == "queue_bind":
                    args = (renamed.get(args[0], args[0]), *args[1:])
                await getattr(ch, kind)(*args, **kwargs)
            self._current_names = renamed
        for robust in list(self._channels):
            if robust._closed_by_user or robust._error is not None:
                continue
            channel = await conn.channel(confirms=robust.confirms,
                                         max_in_flight=robust.max_in_flight,
                                         on_return=robust.on_return)
            if robust._qos is not None:
                await channel.qos(**robust._qos)
            for consumer in list(robust._consumers):
                if not consumer._active:
                    continue
                consumer._current = await channel.start_consumer(
                    self.current_queue_name(consumer.queue),
                    consumer_tag=consumer.consumer_tag, **consumer._kwargs)
            robust._channel = channel

    # ------------------------------------------------------ bookkeeping

    def _record(self, key: tuple, kind: str, args: tuple, kwargs: dict) -> None:
        self._topology[key] = (kind, args, kwargs)

    def _first_name(self, queue: str) -> str:
        """The name the caller first learnt for ``queue`` (records use it)."""
        for first, now in self._current_names.items():
            if now == queue:
                return first
        return queue

    def _forget(self, predicate: Any) -> None:
        for key in [k for k in self._topology if predicate(k)]:
            del self._topology[key]


class RobustChannel:
    """A channel of a `RobustConnection`; the same methods as `Channel`."""

    def __init__(self, connection: RobustConnection, confirms: bool,
                 max_in_flight: int | None, on_return: Any) -> None:
        self.connection = connection
        self.confirms = confirms
        self.max_in_flight = max_in_flight
        self.on_return = on_return
        self._channel: Channel | None = None
        self._closed_by_user = False
        self._error: BaseException | None = None
        self._qos: dict | None = None
        self._consumers: list[RobustConsumer] = []

    async def _current(self) -> Channel:
        """The live channel, waiting for a reconnection if there is none."""
        while True:
            if self._closed_by_user:
                raise ChannelClosed(200, "channel closed by client")
            if self._error is not None:
                raise self._error
            channel = self._channel
            if channel is not None and channel.is_open:
                return channel
            if channel is not None and isinstance(channel._closed, ChannelClosed) \
                    and channel.connection.is_open:
                self._error = channel._closed  # a channel error: stays closed
                raise channel._closed
            await self.connection.wait_connected()
            if self._channel is channel:
                await trio.sleep(0.01)  # restore in progress

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        channel = await self._current()
        try:
            return await getattr(channel, name)(*args, **kwargs)
        except ChannelClosed as exc:
            if channel.connection.is_open:
                self._error = exc
            raise

    @property
    def is_open(self) -> bool:
        return not self._closed_by_user and self._error is None

    @property
    def unconfirmed(self) -> int:
        return self._channel.unconfirmed if self._channel is not None else 0

    # declarations, recorded for restoring

    async def exchange_declare(self, exchange: str, type: str = "direct", **kwargs: Any) -> None:
        await self._call("exchange_declare", exchange, type, **kwargs)
        if not kwargs.get("passive"):
            self.connection._record(("exchange", exchange), "exchange_declare",
                                    (exchange, type), kwargs)

    async def exchange_delete(self, exchange: str, **kwargs: Any) -> None:
        await self._call("exchange_delete", exchange, **kwargs)
        self.connection._forget(lambda k: k == ("exchange", exchange) or (
            k[0] in ("queue_bind", "exchange_bind") and exchange in (k[1], k[2])))

    async def queue_declare(self, queue: str = "", **kwargs: Any) -> DeclaredQueue:
        conn = self.connection
        result = await self._call("queue_declare", conn.current_queue_name(queue), **kwargs)
        if kwargs.get("passive"):
            return result
        if not queue:
            conn._record(("queue", result.name), "server_named_queue", (result.name,), kwargs)
            conn._current_names[result.name] = result.name
        elif queue not in conn._current_names and queue not in conn._current_names.values():
            # A named queue (not a server-named one declared again by name).
            conn._record(("queue", queue), "queue_declare", (queue,), kwargs)
        return result

    async def queue_delete(self, queue: str, **kwargs: Any) -> int:
        conn = self.connection
        result = await self._call("queue_delete", conn.current_queue_name(queue), **kwargs)
        first = conn._first_name(queue)
        conn._forget(lambda k: k == ("queue", first) or (k[0] == "queue_bind" and k[1] == first))
        conn._current_names.pop(first, None)
        return result

    async def queue_bind(self, queue: str, exchange: str, routing_key: str = "",
                         arguments: dict | None = None) -> None:
        conn = self.connection
        await self._call("queue_bind", conn.current_queue_name(queue), exchange, routing_key,
                         arguments)
        first = conn._first_name(queue)
        conn._record(("queue_bind", first, exchange, routing_key, _freeze(arguments)),
                     "queue_bind", (first, exchange, routing_key, arguments), {})

    async def queue_unbind(self, queue: str, exchange: str, routing_key: str = "",
                           arguments: dict | None = None) -> None:
        conn = self.connection
        await self._call("queue_unbind", conn.current_queue_name(queue), exchange, routing_key,
                         arguments)
        first = conn._first_name(queue)
        conn._forget(
            lambda k: k == ("queue_bind", first, exchange, routing_key, _freeze(arguments)))

    async def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                            arguments: dict | None = None) -> None:
        await self._call("exchange_bind", destination, source, routing_key, arguments)
        self.connection._record(("exchange_bind", destination, source, routing_key,
                                 _freeze(arguments)), "exchange_bind",
                                (destination, source, routing_key, arguments), {})

    async def exchange_unbind(self, destination: str, source: str, routing_key: str = "",
                              arguments: dict | None = None) -> None:
        await self._call("exchange_unbind", destination, source, routing_key, arguments)
        self.connection._forget(lambda k: k == ("exchange_bind", destination, source,
                                                routing_key, _freeze(arguments)))

    async def queue_purge(self, queue: str) -> int:
        return await self._call("queue_purge", self.connection.current_queue_name(queue))

    async def qos(self, prefetch_count: int = 0, prefetch_size: int = 0,
                  global_: bool = False) -> None:
        await self._call("qos", prefetch_count, prefetch_size, global_)
        self._qos = dict(prefetch_count=prefetch_count, prefetch_size=prefetch_size,
                         global_=global_)

    # messages

    async def publish(self, exchange: str, routing_key: str, body: bytes,
                      **kwargs: Any) -> Confirmation | None:
        """As `Channel.publish`; waits for a reconnection if disconnected. A
        confirmed publish in flight when the connection drops raises
        `ConnectionClosed`."""
        channel = await self._current()
        if not exchange:  # the default exchange routes by queue name
            routing_key = self.connection.current_queue_name(routing_key)
        return await channel.publish(exchange, routing_key, body, **kwargs)

    async def wait_for_confirms(self) -> None:
        channel = self._channel
        if channel is not None:
            await channel.wait_for_confirms()

    async def get(self, queue: str, *, no_ack: bool = False) -> Message | None:
        return await self._call("get", self.connection.current_queue_name(queue), no_ack=no_ack)

    async def recover(self, requeue: bool = True) -> None:
        await self._call("recover", requeue)

    async def tx_select(self) -> None:
        await self._call("tx_select")

    async def tx_commit(self) -> None:
        await self._call("tx_commit")

    async def tx_rollback(self) -> None:
        await self._call("tx_rollback")

    async def flow(self, active: bool) -> bool:
        return await self._call("flow", active)

    @asynccontextmanager
    async def consume(self, queue: str, *, prefetch: int | None = None,
                      **kwargs: Any) -> AsyncIterator[RobustConsumer]:
        """As `Channel.consume`; the iterator survives reconnections."""
        if prefetch is not None:
            await self.qos(prefetch_count=prefetch)
        channel = await self._current()
        queue = self.connection._first_name(queue)
        current = await channel.start_consumer(self.connection.current_queue_name(queue),
                                               **kwargs)
        kwargs.pop("consumer_tag", None)
        consumer = RobustConsumer(self, queue, current, kwargs)
        self._consumers.append(consumer)
        try:
            yield consumer
        finally:
            consumer._active = False
            self._consumers.remove(consumer)
            with trio.CancelScope(shield=True):
                await consumer._current.cancel()

    async def close(self) -> None:
        self._closed_by_user = True
        for consumer in self._consumers:
            consumer._active = False
        if self._channel is not None:
            await self._channel.close()


class RobustConsumer:
    """Deliveries of a consumer that is re-created after each reconnection."""

    def __init__(self, channel: RobustChannel, queue: str, current: Any,
                 kwargs: dict) -> None:
        self.channel = channel
        self.queue = queue
        self.consumer_tag = current.consumer_tag
        self._current = current
        self._kwargs = kwargs
        self._active = True

    def __aiter__(self) -> RobustConsumer:
        return self

    async def __anext__(self) -> Message:
        while True:
            current = self._current
            try:
                return await current.__anext__()
            except ConnectionClosed:
                if not self._active or self.channel.connection._closing:
                    raise
                await self.channel.connection.wait_connected()
                while self._current is current:
                    await trio.sleep(0.01)  # the supervisor is restoring consumers

    async def get(self) -> Message:
        return await self.__anext__()


def _freeze(arguments: dict | None) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in (arguments or {}).items()))


@asynccontextmanager
async def open_robust_connection(
    params: ConnectionParameters, client_properties: dict[str, Any] | None
) -> AsyncIterator[RobustConnection]:
    with single_error():
        async with trio.open_nursery() as nursery:
            robust = RobustConnection(params, client_properties, nursery)
            await nursery.start(robust._supervise)
            try:
                yield robust
            finally:
                await robust.close()
                nursery.cancel_scope.cancel()
