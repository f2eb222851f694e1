"""One AMQP connection: the socket, its reader, writer and heartbeat tasks.

Structured concurrency: `open_connection` opens a nursery that owns the three
tasks; leaving its ``async with`` closes the connection (connection.close,
then close-ok, spec 1.4.2.5) and cancels them, so no task outlives it.

Speed comes from batching (docs/architecture.md, "Batch the hot path"): the
reader parses every frame of each ``receive_some`` and dispatches them
synchronously; everything we send is appended to one buffer that the writer
task writes with one ``send_all`` per wake-up, so a burst of publishes or acks
costs one socket write.
"""

from __future__ import annotations

import itertools
import os
import platform
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from protocol import methods as m
from protocol.connection import Command, ProtocolFailure, Role, client_start_ok
from protocol.connection import Connection as ProtocolConnection
from protocol.constants import ReplyCode

from ._inline import InlineWaiter
from .channel import Channel
from .errors import ChannelClosed, ConnectionClosed
from .url import ConnectionParameters

__all__ = ["Connection"]

# 64 KiB: large enough to take ~1,000 small deliveries per read, and below
# glibc's mmap threshold (128 KiB), so the bytes object for each read comes
# from the heap: at 256 KiB every read cost an mmap, an mremap and a munmap.
RECEIVE_SIZE = 64 * 1024
_HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"  # spec 4.2.7
_connection_ids = itertools.count(1)

CLIENT_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


class Connection:
    """An open AMQP connection; create it with `broker.client.open_connection`."""

    #: Bytes buffered for the socket above which publish/ack wait for the writer.
    write_high_water = 128 * 1024
    #: Seconds to wait for close-ok when closing a channel or the connection.
    close_timeout = 5.0

    def __init__(self, params: ConnectionParameters, nursery: trio.Nursery,
                 client_properties: dict[str, Any] | None = None) -> None:
        self.params = params
        self._nursery = nursery
        self._id = next(_connection_ids)
        self._client_properties = client_properties or {}
        self._stream: trio.abc.Stream | None = None
        self._proto = ProtocolConnection(Role.CLIENT)
        self._channels: dict[int, Channel] = {}
        self._out: list[bytes] = []
        self._out_size = 0
        self._writer_wake: trio.Event | None = None
        self._writable: trio.Event | None = None
        self._closed: ConnectionClosed | None = None
        self._closing = False
        self._closed_by_us = False
        self._close_ok = trio.Event()
        self._tasks_done = trio.Event()
        #: Set while the broker has blocked us (connection.blocked): publishers wait on it.
        self._publish_gate: trio.Event | None = None
        self.blocked_reason: str | None = None
        self.server_properties: dict[str, Any] = {}
        self.channel_max = params.channel_max
        self.frame_max = params.frame_max
        self.heartbeat = params.heartbeat
        self._last_send = 0.0
        self._last_receive = 0.0
        self._pending_handshake: list[Any] = []
        # Plain TCP: the socket's file descriptor, for the raw read/write fast
        # path (TLS goes through the trio stream).
        self._fd: int | None = None
        self._sending = False  # a write to the socket is in progress
        self._inline: InlineWaiter | None = None
        self._task_scopes: list[trio.CancelScope] = []

    # ------------------------------------------------------------ public API

    @property
    def is_open(self) -> bool:
        return self._closed is None and not self._closing

    @property
    def is_blocked(self) -> bool:
        """True while the broker has sent connection.blocked (publishes wait)."""
        return self._publish_gate is not None

    async def channel(self, *, confirms: bool = False, max_in_flight: int | None = None,
                      on_return: Any = None) -> Channel:
        """Open a channel (channel.open); close it with ``await ch.close()``."""
        self._check_open()
        number = self._free_channel_number()
        channel = Channel(self, number, max_in_flight=max_in_flight, on_return=on_return)
        self._channels[number] = channel
        try:
            await channel._rpc(m.ChannelOpen(), (m.ChannelOpenOk,))
            if confirms:
                await channel.confirm_select()
        except BaseException:
            if channel.is_open:
                with trio.CancelScope(shield=True):
                    await channel.close()
            raise
        return channel

    @asynccontextmanager
    async def open_channel(self, *, confirms: bool = False, max_in_flight: int | None = None,
                           on_return: Any = None) -> AsyncIterator[Channel]:
        """``async with conn.open_channel(confirms=True) as ch:`` — closed on exit."""
        channel = await self.channel(confirms=confirms, max_in_flight=max_in_flight,
                                     on_return=on_return)
        try:
            yield channel
        finally:
            with trio.CancelScope(shield=True):
                await channel.close()

    async def wait_closed(self) -> ConnectionClosed:
        """Wait until the connection is closed (by either side, or lost); return why."""
        await self._close_ok.wait()
        assert self._closed is not None
        return self._closed

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """connection.close, wait for close-ok, stop the tasks. Idempotent."""
        if self._closed is None and not self._closing:
            self._closing = True
            self._closed_by_us = True
            self._append(self._proto.send(0, m.ConnectionClose(reply_code=reply_code,
                                                               reply_text=reply_text)))
            with trio.move_on_after(self.close_timeout):
                await self._close_ok.wait()
            if self._closed is None:
                self._on_lost(ConnectionClosed(reply_code, reply_text))
        for scope in self._task_scopes:
            scope.cancel()
        self._nursery.cancel_scope.cancel()
        if self._stream is not None:
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    # --------------------------------------------------------- handshake

    async def _connect(self) -> None:
        params = self.params
        try:
            with trio.fail_after(params.connection_timeout):
                stream: trio.abc.Stream = await trio.open_tcp_stream(params.host, params.port)
                if params.tls:
                    stream = trio.SSLStream(stream, params.make_ssl_context(),
                                            server_hostname=params.server_hostname
                                            or params.host)
                    await stream.do_handshake()
                self._stream = stream
                await self._handshake()
                if isinstance(stream, trio.SocketStream):
                    self._fd = stream.socket.fileno()
                    waiter = InlineWaiter(self._fd)
                    self._inline = waiter if waiter.enabled else None
        except trio.TooSlowError:
            raise ConnectionClosed(0, f"timed out connecting to {params.host}:{params.port} "
                                      f"after {params.connection_timeout:g}s") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectionClosed(0, f"cannot connect to {params.host}:{params.port}: "
                                      f"{_socket_reason(exc)}") from exc
        now = trio.current_time()
        self._last_send = self._last_receive = now
        self._spawn(self._reader)
        self._spawn(self._writer)
        if self.heartbeat:
            self._spawn(self._heartbeater)

    def _spawn(self, task: Any) -> None:
        """Start a background task that only `close` stops.

        Shielded: when the application's block is cancelled from outside,
        the reader must live on to receive close-ok, or closing would wait
        for its timeout.
        """
        scope = trio.CancelScope(shield=True)
        self._task_scopes.append(scope)

        async def run() -> None:
            with scope:
                await task()

        self._nursery.start_soon(run)

    async def _handshake(self) -> None:
        """Spec 2.2.4: header, start/start-ok, tune/tune-ok, open/open-ok."""
        assert self._stream is not None
        params = self.params
        await self._stream.send_all(self._proto.send_protocol_header())
        start = await self._expect(m.ConnectionStart)
        self.server_properties = start.server_properties or {}
        mechanisms = start.mechanisms.split() if start.mechanisms else []
        if "PLAIN" not in mechanisms:
            raise ConnectionClosed(ReplyCode.ACCESS_REFUSED,
                                   f"the broker offers no PLAIN login (offers {mechanisms})")
        properties = {
            "product": "warren.client",
            "platform": f"Python {platform.python_version()}",
            "version": "0.1.0",
            "capabilities": CLIENT_CAPABILITIES,
            **self._client_properties,
        }
        await self._send_now(client_start_ok(params.username, params.password,
                                             client_properties=properties))
        tune = await self._expect(m.ConnectionTune)
        self.channel_max = _negotiate(params.channel_max, tune.channel_max) or 65535
        self.frame_max = _negotiate(params.frame_max, tune.frame_max) or params.frame_max
        # A heartbeat of 0 asked by the client disables heartbeats (RabbitMQ
        # reads tune-ok's 0 that way); otherwise the smaller non-zero value.
        self.heartbeat = 0 if params.heartbeat == 0 else _negotiate(params.heartbeat,
                                                                    tune.heartbeat)
        await self._send_now(m.ConnectionTuneOk(channel_max=self.channel_max,
                                                frame_max=self.frame_max,
                                                heartbeat=self.heartbeat))
        await self._send_now(m.ConnectionOpen(virtual_host=params.vhost))
        await self._expect(m.ConnectionOpenOk)

    async def _send_now(self, method: m.Method) -> None:
        assert self._stream is not None
        await self._stream.send_all(self._proto.send(0, method))

    async def _expect(self, kind: type) -> Any:
        """Read until the next method on channel 0; it must be ``kind``."""
        assert self._stream is not None
        while True:
            if self._pending_handshake:
                event = self._pending_handshake.pop(0)
            else:
                data = await self._stream.receive_some(RECEIVE_SIZE)
                if not data:
                    raise ConnectionClosed(
                        0, "the broker closed the socket during the handshake "
                           "(wrong vhost or credentials on an old broker?)")
                self._pending_handshake.extend(self._proto.receive_data(data))
                continue
            if isinstance(event, ProtocolFailure):
                raise ConnectionClosed(event.error.reply_code, event.error.reply_text)
            if not isinstance(event, Command):
                continue
            method = event.method
            if isinstance(method, m.ConnectionClose):
                # e.g. 403 ACCESS_REFUSED (bad login), 530 NOT_ALLOWED (vhost)
                try:
                    await self._send_now(m.ConnectionCloseOk())
                except (OSError, trio.BrokenResourceError):
                    pass
                raise ConnectionClosed(method.reply_code, method.reply_text, method.class_id,
                                       method.method_id)
            if not isinstance(method, kind):
                raise ConnectionClosed(ReplyCode.UNEXPECTED_FRAME,
                                       f"expected {kind.__name__}, the broker sent {method!r}")
            return method

    # ---------------------------------------------------------- the tasks

    async def _reader(self) -> None:
        stream = self._stream
        assert stream is not None
        pending, self._pending_handshake = self._pending_handshake, []
        try:
            self._handle_events(pending)
            fd = self._fd
            more = False
            while self._closed is None:
                if fd is None:
                    data = await stream.receive_some(RECEIVE_SIZE)
                else:
                    # Plain TCP: wait, then one read() (trio's receive_some
                    # would try a read first, fail with EAGAIN, wait, read
                    # again, and pass through the scheduler once more).
                    if more:
                        await trio.lowlevel.checkpoint()
                    else:
                        await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, RECEIVE_SIZE)
                    except BlockingIOError:
                        more = False
                        continue
                    more = len(data) == RECEIVE_SIZE
                if not data:
                    raise ConnectionClosed(0, "connection lost: the broker closed the socket")
                self._handle(data)
        except ConnectionClosed as exc:
            self._on_lost(exc)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._on_lost(ConnectionClosed(0, f"connection lost: {exc or type(exc).__name__}"))
        except Exception as exc:  # a bug of ours: report it, never lose it
            self._on_lost(ConnectionClosed(ReplyCode.INTERNAL_ERROR,
                                           f"client error: {exc!r}"))
            raise

    def _handle(self, data: bytes) -> None:
        """Parse bytes from the socket and dispatch every event in them."""
        self._last_receive = trio.current_time()
        # A confirm, one at a time. receive_data takes the same shortcut, but
        # asking for the bare tuple skips building a Command and dispatching
        # it: 5.0 instead of 7.0 us of Python per confirmed publish.
        ack = self._proto.receive_basic_ack(data)
        if ack is not None:
            channel = self._channels.get(ack[0])
            if channel is not None and channel._confirms is not None:
                channel._confirms.on_ack(ack[1], ack[2])
            return
        self._handle_events(self._proto.receive_data(data))

    def _handle_events(self, events: list[Any]) -> None:
        channels = self._channels
        for event in events:
            if type(event) is Command:
                method = event.method
                if event.channel:
                    channel = channels.get(event.channel)
                    if channel is None:
                        continue  # a closed channel: spec 2.3.7, discard
                    if type(method) is m.BasicDeliver:
                        channel._on_deliver(method, event.properties, event.body)
                    else:
                        channel._on_command(method, event.properties, event.body)
                else:
                    self._on_connection_method(method)
            elif type(event) is ProtocolFailure:
                self._on_protocol_failure(event)
            # HeartbeatReceived: _last_receive is all it means

    async def _read_inline(self, waiting: Any) -> None:
        """Read and dispatch in the calling task until ``waiting.done``, while
        trio has nothing else to do (see `broker.client._inline`); return
        early, leaving the rest to the reader task, when it has. Call it right
        after `_flush_now`, before waiting on ``waiting`` through trio."""
        waiter = self._inline
        if waiter is None or self._out:
            return  # no fast path, or bytes left for the writer task to send
        await trio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller raises as in trio
        fd = self._fd
        try:
            while not waiting.done and self._closed is None and waiter.wait_readable():
                try:
                    data = os.read(fd, RECEIVE_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionClosed(0, "connection lost: the broker closed the socket")
                self._handle(data)
        except ConnectionClosed as exc:
            self._on_lost(exc)
        except OSError as exc:
            self._on_lost(ConnectionClosed(0, f"connection lost: {exc}"))
        except Exception as exc:  # a bug of ours: the caller sees it
            self._on_lost(ConnectionClosed(ReplyCode.INTERNAL_ERROR, f"client error: {exc!r}"))
            raise

    def _on_protocol_failure(self, event: ProtocolFailure) -> None:
        """A ProtocolFailure event: close the channel (soft error) or the connection."""
        error = event.error
        channel = self._channels.get(event.channel) if event.channel else None
        if channel is not None and not error.closes_connection:
            # A soft error on one channel (a body over max_body_size): the
            # machine already treats the channel as closing; tell the broker.
            self._append(self._proto.send(event.channel, m.ChannelClose(
                reply_code=error.reply_code, reply_text=error.reply_text[:255],
                class_id=error.class_id, method_id=error.method_id)))
            channel._on_closed(ChannelClosed(error.reply_code, error.reply_text,
                                             error.class_id, error.method_id))
            return
        # The broker broke the protocol: tell it why and give up (spec 4.2.3).
        try:
            self._append(self._proto.send(0, m.ConnectionClose(
                reply_code=error.reply_code, reply_text=error.reply_text[:255],
                class_id=error.class_id, method_id=error.method_id)))
        except Exception:
            pass
        raise ConnectionClosed(error.reply_code, f"broker sent bad data: {error.reply_text}",
                               error.class_id, error.method_id)

    def _on_connection_method(self, method: Any) -> None:
        kind = type(method)
        if kind is m.ConnectionClose:
            self._append(self._proto.send(0, m.ConnectionCloseOk()))
            raise ConnectionClosed(method.reply_code, method.reply_text, method.class_id,
                                   method.method_id)
        if kind is m.ConnectionCloseOk:
            self._close_ok.set()
            raise ConnectionClosed(ReplyCode.REPLY_SUCCESS, "connection closed by client")
        if kind is m.ConnectionBlocked:
            self.blocked_reason = method.reason
            if self._publish_gate is None:
                self._publish_gate = trio.Event()
            return
        if kind is m.ConnectionUnblocked:
            self.blocked_reason = None
            gate, self._publish_gate = self._publish_gate, None
            if gate is not None:
                gate.set()
            return
        if kind is m.ConnectionUpdateSecretOk:
            return

    async def _writer(self) -> None:
        stream = self._stream
        assert stream is not None
        out = self._out
        fd = self._fd
        try:
            while True:
                if not out:
                    if self._closed is not None:
                        return
                    wake = self._writer_wake = trio.Event()
                    await wake.wait()
                    continue
                if self._sending:
                    # _flush_now() left a partial write: it is at the front
                    # of the buffer; wait for it to give the socket back.
                    wake = self._writer_wake = trio.Event()
                    await wake.wait()
                    continue
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self._out_size = 0
                writable = self._writable
                if writable is not None:
                    # Double buffering: publishers refill while this send runs.
                    self._writable = None
                    writable.set()
                self._sending = True
                try:
                    if fd is None:
                        await stream.send_all(data)
                    else:
                        await _write_all(fd, data)
                finally:
                    self._sending = False
                self._last_send = trio.current_time()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._on_lost(ConnectionClosed(0, f"connection lost: {exc or type(exc).__name__}"))

    async def _heartbeater(self) -> None:
        """Spec 4.2.7: send a heartbeat when we have been silent for half the
        interval; the peer is dead after two intervals without any bytes."""
        interval = self.heartbeat
        while self._closed is None:
            await trio.sleep(interval / 2)
            now = trio.current_time()
            if now - self._last_receive > 2 * interval:
                self._on_lost(ConnectionClosed(
                    0, f"missed heartbeats: nothing from the broker for {2 * interval}s"))
                if self._stream is not None:
                    await self._stream.aclose()
                return
            if now - self._last_send >= interval / 2 and not self._out:
                self._append(_HEARTBEAT_FRAME)

    # ------------------------------------------------------------- writing

    def _append(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        wake = self._writer_wake
        if wake is not None:
            self._writer_wake = None
            wake.set()

    def _write(self, data: bytes, wake: bool = True) -> None:
        """Queue bytes for the socket (raises if the connection is closed).

        With ``wake=False`` the writer task is not woken: the caller will call
        `_flush_now` before it waits.
        """
        if self._closed is not None or self._closing:
            self._check_open()
        self._out.append(data)
        self._out_size += len(data)
        if wake:
            writer = self._writer_wake
            if writer is not None:
                self._writer_wake = None
                writer.set()

    def _flush_now(self) -> None:
        """Write the buffer from the calling task, now, when it is about to
        wait for an answer (a confirm, a synchronous reply).

        On that latency-bound path this saves waking the writer task: one
        trip through the scheduler per message. Plain TCP only, and only when
        no write is in progress (else the writer takes these bytes next).
        A partial write puts the rest back at the front for the writer.
        """
        out = self._out
        if not out:
            return
        if self._fd is None or self._sending or self._closed is not None:
            writer = self._writer_wake
            if writer is not None:
                self._writer_wake = None
                writer.set()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._on_lost(ConnectionClosed(0, f"connection lost: {exc}"))
            return
        self._last_send = trio.current_time()
        if written < len(data):
            rest = data[written:]
            out.insert(0, rest)
            self._out_size += len(rest)
            writer = self._writer_wake
            if writer is not None:
                self._writer_wake = None
                writer.set()

    def _encode_method(self, channel: int, method: m.Method) -> bytes:
        """The frame for ``method``, nothing queued yet; raises ``ValueError``
        for a method that cannot be encoded (a short string over 255 bytes, an
        integer wider than 64 bits in a table)."""
        return self._proto.send(channel, method)

    def _send_method(self, channel: int, method: m.Method, force: bool = False,
                     flush: bool = False) -> None:
        if force:
            if self._closed is None:
                self._append(self._encode_method(channel, method))
            return
        if flush:
            self._write(self._encode_method(channel, method), wake=False)
            self._flush_now()
        else:
            self._write(self._encode_method(channel, method))

    async def _wait_writable(self) -> None:
        """Wait until the writer has taken the buffer (publish backpressure)."""
        while self._out_size > self.write_high_water:
            self._check_open()
            if self._writable is None:
                self._writable = trio.Event()
            await self._writable.wait()
        self._check_open()

    # ------------------------------------------------------------- closing

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self._closing:
            raise ConnectionClosed(ReplyCode.REPLY_SUCCESS, "the connection is closing")

    def _on_lost(self, error: ConnectionClosed) -> None:
        """The connection is over: every channel, waiter and consumer learns why."""
        if self._closed is not None:
            return
        # Forget where the reader raised it: a traceback on it later means
        # that some code of the application saw it (see open_connection).
        error.__traceback__ = None
        self._closed = error
        self._close_ok.set()
        for channel in list(self._channels.values()):
            channel._on_closed(error)
        self._channels.clear()
        gate, self._publish_gate = self._publish_gate, None
        if gate is not None:
            gate.set()
        if self._writable is not None:
            self._writable.set()
        # The writer still flushes what is buffered (close-ok), then stops.
        wake = self._writer_wake
        if wake is not None:
            self._writer_wake = None
            wake.set()

    def _forget_channel(self, number: int) -> None:
        self._channels.pop(number, None)

    def _free_channel_number(self) -> int:
        for number in range(1, self.channel_max + 1):
            if number not in self._channels:
                return number
        raise ConnectionClosed(ReplyCode.CHANNEL_ERROR,
                               f"all {self.channel_max} channels are in use")

    @property
    def closed_error(self) -> ConnectionClosed | None:
        """Why the connection closed (None while open)."""
        return self._closed

    def __repr__(self) -> str:
        p = self.params
        state = "open" if self.is_open else "closed"
        return f"<Connection {p.host}:{p.port} vhost={p.vhost!r} {state}>"


async def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a non-blocking socket, waiting when it is full."""
    try:
        written = os.write(fd, data)
    except BlockingIOError:
        written = 0
    if written == len(data):
        return
    view = memoryview(data)
    while written < len(data):
        await trio.lowlevel.wait_writable(fd)
        try:
            written += os.write(fd, view[written:])
        except BlockingIOError:
            pass


def _socket_reason(exc: BaseException) -> str:
    """The root cause of a connect failure ("Connection refused"), not trio's summary."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
            continue
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__
    return str(exc) or type(exc).__name__


def _negotiate(ours: int, theirs: int) -> int:
    """The smaller of two limits where 0 means "no limit" (spec 1.4.2.6)."""
    if not ours:
        return theirs
    if not theirs:
        return ours
    return min(ours, theirs)
