"""One client connection: a reader, a writer and a heartbeat task, over any trio Stream.

The reader reads large chunks (`receive_some(65536)`), feeds them to the
sans-I/O state machine (`protocol.connection.Connection` in the server role)
and handles every event of the chunk synchronously: route, enqueue, dispatch,
with no await and no task per message. Whatever the handling produces, for this
connection or for consumers on other connections, is appended to the target
connection's `Output`, whose writer sends the whole buffer with one
`send_all` (writes are coalesced per batch).

The stream may be a plain socket stream or a `trio.SSLStream` around one:
the session never looks underneath (TLS is a wrapper, not a branch). What it
knows of the peer comes in a `ConnectionInfo`; what it knows of the broker,
in a `SessionContext`.

Memory per connection is bounded: the output buffer by its high-water mark
(`broker.session.output`), frame size by the negotiated frame_max, content
size by `MAX_MESSAGE_SIZE` (RabbitMQ's 3.10 default, 128 MiB).

A transactional channel waiting for its commit-ok (the journal's fsync) is
paused: commands that arrive for it meanwhile are held, in order, and handled
by the connection's releaser task once the commit-ok is written; other
channels go on. Held commands count against `HELD_HIGH_WATER`, above which the
reader stops reading until they are handled.

While a resource alarm is on (`broker.alarms`), a connection that has
published is blocked at its next message boundary: it is sent
`connection.blocked` (if it announced the capability) and not read from
until every alarm has cleared, then `connection.unblocked`.

A channel whose oldest unacknowledged delivery has waited longer than the
consumer timeout is closed (406), as RabbitMQ does: one task per connection
looks at each channel's oldest delivery every tenth of the shortest timeout
in play (at most every `CONSUMER_TIMEOUT_CHECK_MAX` seconds, RabbitMQ's
channel tick), so nothing is timed per message (`_consumer_timeouts`).
"""

from __future__ import annotations

import time
from typing import Any

import trio

from broker.auth.access import UserAccess
from broker.core import errors
from broker.core.queue import Queue
from broker.core.vhost import VHost
from broker.logging import get_logger
from broker.session.channel import FLOW_BACKLOG, Channel
from broker.session.consumers import Consumer
from broker.session.context import SessionContext
from broker.session.handshake import Handshake, LoginFailed
from broker.session.info import ConnectionInfo
from broker.session.output import Output
from broker.storage.journal import Journal
from protocol import methods as m
from protocol.connection import (
    Command,
    Connection,
    ConnectionState,
    HeartbeatReceived,
    ProtocolFailure,
    ProtocolHeaderReceived,
    Role,
)
from protocol.constants import ReplyCode
from protocol.errors import AMQPError, BadProtocolHeader, error_for

__all__ = ["ClientConnection", "HELD_HIGH_WATER"]

log = get_logger("warren.connection")

#: Bytes of commands held for paused channels (waiting for a tx.commit's
#: fsync) before the reader stops reading this connection.
HELD_HIGH_WATER = 4 * 1024 * 1024
#: Size of one read. Large, so that one read carries many frames.
RECEIVE_SIZE = 65536
#: How long we wait for connection.close-ok after sending connection.close.
CLOSE_TIMEOUT = 3.0
#: After our close-ok, how long at most the client has to close the socket
#: (RabbitMQ's ?CLOSING_TIMEOUT, or the heartbeat interval when shorter).
CLOSING_TIMEOUT = 30.0

#: Consumer timeouts: a check every timeout / CONSUMER_TIMEOUT_CHECKS, within
#: these bounds (seconds). A delivery's time is known to within one check
#: (`Acknowledgements.oldest_outstanding`), so a channel is closed between
#: the timeout and the timeout plus two checks after the delivery. The
#: longest interval is RabbitMQ's channel_tick_interval (60 s), with which
#: RabbitMQ 3.10 checks whatever the timeout.
CONSUMER_TIMEOUT_CHECKS = 10
CONSUMER_TIMEOUT_CHECK_MIN = 0.05
CONSUMER_TIMEOUT_CHECK_MAX = 60.0

#: Publisher flow control (see ClientConnection._flow_control).
FLOW_MAX_WAIT = 0.02
FLOW_POLL = 0.001


def _wire_text(error: AMQPError) -> str:
    """RabbitMQ's reply texts start with the code's name ("NOT_FOUND - ...")."""
    text = error.reply_text
    try:
        name = ReplyCode(error.reply_code).name
    except ValueError:
        name = ""
    if name and not text.startswith(name):
        text = f"{name} - {text}"
    return _shortstr(text)


def _close_fields(error: AMQPError, method: Any) -> tuple[int, int, str]:
    """class-id, method-id and reply-text of the channel.close or
    connection.close answering `error`: the failing method's ids unless the
    error names others (spec 1.5.2.5 channel.close, 1.4.2.9 connection.close)."""
    class_id = error.class_id or getattr(method, "CLASS_ID", 0)
    method_id = error.method_id or getattr(method, "METHOD_ID", 0)
    return class_id, method_id, _wire_text(error)


def _shortstr(text: str) -> str:
    """Fit a reply text in a shortstr (255 octets) as RabbitMQ does: cut, add "..."."""
    encoded = text.encode("utf-8")
    if len(encoded) <= 255:
        return text
    return encoded[:252].decode("utf-8", "ignore") + "..."


def _local_text(info: ConnectionInfo) -> str:
    host = f"[{info.local_host}]" if ":" in info.local_host else info.local_host
    return f"{host}:{info.local_port}"


def _handshake_stage(amqp: Connection, user: str | None) -> str:
    """How far a connection dropped by handshake_timeout got, for its log line."""
    if amqp.state is ConnectionState.AWAIT_HEADER:
        return "protocol header"
    if user is None:
        return "connection.start-ok"
    return "connection.tune-ok/open"


def _can_drain(queue: Queue) -> bool:
    """Has the queue a consumer that is not held back by its own connection's output?"""
    return not queue.deleted and any(
        isinstance(c, Consumer) and not c.output_blocked() for c in queue.consumers
    )


class ClientConnection:
    """The broker side of one AMQP connection."""

    def __init__(
        self, stream: trio.abc.Stream, info: ConnectionInfo, context: SessionContext
    ) -> None:
        self.stream = stream
        self.info = info
        self.context = context
        self.journal: Journal | None = context.journal
        self.amqp = Connection(Role.SERVER, max_body_size=context.limits.max_message_size)
        self.handshake = Handshake(
            info, context.vhosts, context.access, context.limits,
            open_connections=lambda: context.open_connections,
        )
        #: The vhost opened by connection.open (None before), and what the
        #: user may do in it.
        self.vhost: VHost | None = None
        self.access: UserAccess | None = None
        self.output = Output(stream)
        self.output.on_resume = self._resume_dispatch
        self.channels: dict[int, Channel] = {}
        self.opened = False
        self.closing = False  # connection.close sent or received
        self._tuned = trio.Event()
        self.publisher = False  # has published: resource alarms block it
        self._owed_confirms: list[Channel] = []
        self._close_reason: tuple[int, str] | None = None
        self._done = trio.Event()
        self.output.on_broken = self._done.set
        self._nursery: trio.Nursery | None = None
        self._backlogged: set[Queue] = set()
        # Paused channels whose commit-ok was sent: the releaser handles
        # their held commands. `held_bytes` is kept up to date by the channels.
        self.held_bytes = 0
        self._to_release: list[Channel] = []
        self._release_due = trio.Event()
        self._released = trio.Event()
        # Consumer timeouts: the shortest timeout the checks are paced for
        # (ms), and an event that wakes them up for a shorter one.
        self._timeout_basis: int | None = None
        self._timeouts_changed = trio.Event()
        #: Bytes read, and how many reads (RabbitMQ's recv_oct, recv_cnt): for
        #: statistics, and for heartbeats (is the peer alive?).
        self.recv_oct = 0
        self.recv_cnt = 0
        #: When the connection was accepted (ms since the epoch, RabbitMQ's connected_at).
        self.connected_at = int(time.time() * 1000)
        #: Torn down: its channels closed and its counts handed to the vhost
        #: (the server forgets it a moment later).
        self.torn_down = False

    # -- what channels and the vhost read ------------------------------------------

    @property
    def peer_text(self) -> str:
        return self.info.peer_text

    @property
    def live(self) -> bool:
        """Open (past connection.open-ok) and not yet torn down: what statistics list."""
        return self.opened and not self.torn_down

    @property
    def user(self) -> str | None:
        return self.handshake.user

    @property
    def frame_max(self) -> int:
        return self.handshake.frame_max

    @property
    def consumer_cancel_notify(self) -> bool:
        return self.handshake.consumer_cancel_notify

    @property
    def client_properties(self) -> dict[str, Any]:
        return self.handshake.client_properties

    # -- output -------------------------------------------------------------------

    def send_method(self, channel: int, method: Any) -> None:
        self.output.write(self.amqp.send(channel, method))

    def note_backlog(self, queue: Queue) -> None:
        """A queue we published to is backed up while it has consumers."""
        self._backlogged.add(queue)

    def owe_confirms(self, channel: Channel) -> None:
        self._owed_confirms.append(channel)

    def _flush_confirms(self) -> None:
        owed = self._owed_confirms
        if owed:
            self._owed_confirms = []
            for channel in owed:
                channel.flush_confirms()

    def _resume_dispatch(self) -> None:
        """The output drained after queues held deliveries back: dispatch again."""
        queues = {c.queue for ch in self.channels.values() for c in ch.consumers.values()}
        for queue in queues:
            queue.dispatch()
        self._flush_confirms()

    async def _flow_control(self) -> None:
        """Publisher flow control, in the spirit of RabbitMQ's credit flow.

        When our last read left a queue with consumers more than
        FLOW_BACKLOG messages behind, we pause before reading more from this
        publisher, until the queue's consumers have taken some (half the
        backlog) or FLOW_MAX_WAIT has passed. On a busy machine this hands
        the CPU to the consumers (and to their client processes) instead of
        growing the queue. The wait is bounded, so a consumer that never acks
        slows a publisher down but never stops it; a queue whose consumers
        cannot take anything (their connections are backed up) does not
        count.
        """
        queues = [q for q in self._backlogged if _can_drain(q)]
        self._backlogged.clear()
        if not queues:
            return
        with trio.move_on_after(FLOW_MAX_WAIT):
            while any(len(q.ready) > FLOW_BACKLOG // 2 and _can_drain(q) for q in queues):
                await trio.sleep(FLOW_POLL)

    # -- paused channels (tx.commit waiting for the journal) -------------------------

    def release_soon(self, channel: Channel) -> None:
        """`channel` sent its commit-ok: have the releaser handle what it held."""
        self._to_release.append(channel)
        self._release_due.set()

    async def _releaser(self) -> None:
        """Handle the commands held by channels that were paused, in arrival order.

        Its own task (not the journal's, which wakes the channel): the
        commands run with this connection's error handling, as in the reader.
        """
        while True:
            await self._release_due.wait()
            self._release_due = trio.Event()
            channels, self._to_release = self._to_release, []
            for channel in channels:
                if channel.closing or channel.commit_pending:
                    continue
                for command in channel.resume():
                    # A held tx.commit may pause the channel again: the
                    # commands after it are then held again, in order.
                    self._on_command(command)
                    if self._finished:
                        return
                if not channel.paused:
                    channel.dispatch_all()  # its consumers waited too
            self._flush_confirms()
            self._released.set()
            self._released = trio.Event()

    async def _wait_released(self) -> None:
        while self.held_bytes >= HELD_HIGH_WATER:
            await self._released.wait()

    # -- consumer timeouts -------------------------------------------------------------

    def consumer_timeout_hint(self, timeout: int | None) -> None:
        """A channel may get deliveries from a queue with this timeout (ms):
        check sooner if it is shorter than what the checks are paced for."""
        if timeout is not None and (self._timeout_basis is None or timeout < self._timeout_basis):
            self._timeouts_changed.set()

    def _shortest_consumer_timeout(self) -> int | None:
        shortest = self.context.limits.consumer_timeout
        for channel in self.channels.values():
            timeout = channel.shortest_consumer_timeout()
            if timeout is not None and (shortest is None or timeout < shortest):
                shortest = timeout
        return shortest

    async def _consumer_timeouts(self) -> None:
        """Close the channels whose oldest delivery waits too long for its ack.

        RabbitMQ (rabbit_channel, evaluate_consumer_timeout on each channel
        tick) closes such a channel with 406 PRECONDITION_FAILED and its
        unacknowledged messages are requeued; so here. The timeout is the
        node's `consumer_timeout` (default 30 minutes) unless the delivery's
        queue has its own (`Queue.consumer_timeout`).
        """
        default = self.context.limits.consumer_timeout
        while True:
            basis = self._timeout_basis = self._shortest_consumer_timeout()
            changed = self._timeouts_changed
            if basis is None:
                await changed.wait()
            else:
                interval = basis / 1000 / CONSUMER_TIMEOUT_CHECKS
                interval = min(CONSUMER_TIMEOUT_CHECK_MAX,
                               max(CONSUMER_TIMEOUT_CHECK_MIN, interval))
                with trio.move_on_after(interval):
                    await changed.wait()
            if changed.is_set():
                self._timeouts_changed = trio.Event()
            if self.closing:
                continue
            now = time.monotonic()
            for channel in list(self.channels.values()):
                timeout = channel.consumer_timed_out(now, default)
                if timeout is not None:
                    self._consumer_timed_out(channel, timeout)

    def _consumer_timed_out(self, channel: Channel, timeout: int) -> None:
        number = channel.number
        log.warning(
            "consumer.timeout",
            peer=self.peer_text,
            channel=number,
            timeout_ms=timeout,
            unacked=len(channel.acks.unacked),
        )
        # RabbitMQ's words (rabbit_channel handle_consumer_timed_out); the
        # error names no method, so class and method id are 0.
        self._channel_error(
            number,
            errors.precondition_failed(
                f"delivery acknowledgement on channel {number} timed out. "
                f"Timeout value used: {timeout} ms. "
                "This timeout value can be configured, see consumers doc guide to learn more"
            ),
            None,
        )

    # -- resource alarms -------------------------------------------------------------

    async def _block(self) -> None:
        """Block this publishing connection until no resource alarm is on.

        As RabbitMQ: connection.blocked (to clients that announced the
        capability) with the alarms' reason, no reading meanwhile, then
        connection.unblocked. One pair whatever the reasons, however many.
        """
        alarms = self.context.alarms
        notify = self.handshake.wants_blocked and not self.closing
        if notify:
            self.send_method(0, m.ConnectionBlocked(reason=alarms.reason()))
        await alarms.wait_clear()
        if notify and not self.closing:
            self.send_method(0, m.ConnectionUnblocked())

    # -- the connection's life ----------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    nursery.start_soon(self.output.run_writer)
                    nursery.start_soon(self._heartbeats)
                    nursery.start_soon(self._releaser)
                    nursery.start_soon(self._watch_done)
                    await self._reader()
                    # Give the writer a moment to send the last replies (close-ok...).
                    with trio.move_on_after(CLOSE_TIMEOUT):
                        await self.output.wait_flushed()
                    nursery.cancel_scope.cancel()
                finally:
                    # Once the body is left the nursery takes no new task: a
                    # close from the broker's shutdown then just ends it.
                    self._nursery = None
        finally:
            self._done.set()  # for force_close: the peer may just drop the socket
            self._teardown()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(0.5):
                    await self.stream.aclose()
            if self.opened:
                code, text = self._close_reason or (0, "connection lost")
                log.info(
                    "connection.closed",
                    peer=self.peer_text,
                    user=self.user,
                    reply_code=code,
                    reply_text=text,
                )

    async def _watch_done(self) -> None:
        await self._done.wait()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _reader(self) -> None:
        stream = self.stream
        amqp = self.amqp
        output = self.output
        alarms = self.context.alarms
        # RabbitMQ's handshake_timeout: a peer that does not finish opening
        # the connection in time is dropped.
        with trio.move_on_after(self.context.limits.handshake_timeout) as handshake:
            while not self.opened:
                if not await self._read_once(stream, amqp):
                    return
        if not self.opened:
            if handshake.cancelled_caught:
                # One line per dropped socket, as connection.tls_timeout for
                # TLS. RabbitMQ logs "closing AMQP connection ... (peer ->
                # local): {handshake_timeout,handshake}" (at error level).
                log.warning(
                    "connection.handshake_timeout",
                    peer=self.peer_text,
                    listener=self.info.listener,
                    local=_local_text(self.info),
                    stage=_handshake_stage(amqp, self.handshake.user),
                    received_bytes=self.recv_oct,
                    timeout_s=self.context.limits.handshake_timeout,
                )
            return
        while True:
            if not output.below_high_water():
                await output.wait_below_high_water()
            if self.held_bytes >= HELD_HIGH_WATER:
                await self._wait_released()
            if self._backlogged:
                await self._flow_control()
            # Block at a message boundary: clients (pika) write a publish's
            # method, header and body frames separately, and a message cut in
            # half would hold its confirm back until the alarm clears.
            if (
                alarms.active
                and self.publisher
                and not self.closing
                and not amqp.receiving_content
            ):
                await self._block()
            if not await self._read_once(stream, amqp):
                return

    async def _read_once(self, stream: trio.abc.Stream, amqp: Connection) -> bool:
        """Read one chunk and handle all its events. False when the connection is over."""
        try:
            data = await stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        if not data:
            return False
        self.recv_oct += len(data)
        self.recv_cnt += 1
        ok = self._receive(amqp, data)
        # During the handshake the machine hands out one handshake method at a
        # time (what follows connection.open depends on our answer to it).
        while ok and amqp.frames_held and not self._finished:
            ok = self._receive(amqp, b"")
        self._flush_confirms()
        return ok and not self._finished

    def _receive(self, amqp: Connection, data: bytes) -> bool:
        """Feed bytes to the state machine and handle every event they complete."""
        try:
            events = amqp.receive_data(data, now=time.monotonic())
        except BadProtocolHeader:
            # Spec 4.2.2: answer with the header we speak, then close.
            self.output.write(b"AMQP\x00\x00\x09\x01")
            return False
        except AMQPError as error:  # defensive: the machine reports via ProtocolFailure
            self._connection_error(error)
            return not self._finished
        for event in events:
            kind = type(event)
            if kind is Command:
                self._on_command(event)
            elif kind is HeartbeatReceived:
                pass
            elif kind is ProtocolHeaderReceived:
                self.send_method(0, self.handshake.start())
            elif kind is ProtocolFailure:
                error = event.error
                if error.closes_connection:
                    self._connection_error(error)
                    break
                # A soft error (a body over max_body_size): the machine
                # already treats the channel as closing; we close it.
                self._channel_error(event.channel, error, None)
            if self._finished:
                break
        return not self._finished

    @property
    def _finished(self) -> bool:
        return self._done.is_set()

    # -- commands ------------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        method = command.method
        number = command.channel
        if number == 0:
            try:
                self._on_connection_method(method)
            except LoginFailed as failed:
                self._refuse_login(failed)
            except AMQPError as error:
                self._connection_error(error, method)
            return
        if self.closing:
            return  # spec 4.2.3: after connection.close only close/close-ok count
        channel = self.channels.get(number)
        try:
            if channel is None:
                self._on_closed_channel(number, method)
                return
            if channel.closing:
                # Spec 4.2.3 / 1.5.2.5: after channel.close we drop everything
                # but close/close-ok on that channel.
                if type(method) is m.ChannelCloseOk:
                    del self.channels[number]
                elif type(method) is m.ChannelClose:
                    self.send_method(number, m.ChannelCloseOk())
                    del self.channels[number]
                return
            if channel.paused:
                # Its tx.commit waits for the journal: this waits behind it.
                channel.hold(command)
                return
            if type(method) is m.BasicPublish:
                self.publisher = True
                channel.on_basic_publish(method, command.properties or b"", command.body or b"")
                return
            handler = _CHANNEL_HANDLERS.get(type(method))
            if handler is None:
                self._on_channel_special(channel, method)
                return
            handler(channel, method)
        except AMQPError as error:
            if error.closes_connection:
                self._connection_error(error, method)
            else:
                self._channel_error(number, error, method)

    def _on_closed_channel(self, number: int, method: Any) -> None:
        kind = type(method)
        if kind is m.ChannelOpen:
            # Channels open only after connection.open-ok.
            assert self.vhost is not None and self.access is not None
            # The user's max-channels, over all its connections: RabbitMQ
            # closes the connection (530) with no method named (class 0, method 0).
            try:
                self.context.access.check_user_channel_limit(self.access.user)
            except AMQPError as error:
                self._connection_error(error, None)
                return
            self.channels[number] = Channel(number, self, self.vhost, self.access, self.journal)
            self.send_method(number, m.ChannelOpenOk())
        elif kind is m.ChannelCloseOk:
            return
        elif kind is m.ChannelClose:
            # Closing a channel that is not open: RabbitMQ just answers close-ok.
            self.send_method(number, m.ChannelCloseOk())
        else:
            raise errors.channel_error("expected 'channel.open'")

    def _on_channel_special(self, channel: Channel, method: Any) -> None:
        kind = type(method)
        if kind is m.ChannelOpen:
            raise errors.channel_error("second 'channel.open' seen")
        if kind is m.ChannelClose:
            channel.close()
            self.send_method(channel.number, m.ChannelCloseOk())
            del self.channels[channel.number]
            return
        if kind is m.ChannelCloseOk:
            return
        # A method a client may not send (a server-to-client method, e.g. basic.deliver).
        raise errors.command_invalid(f"unexpected method {method.NAME}")

    def _channel_error(self, number: int, error: AMQPError, method: Any) -> None:
        class_id, method_id, reply_text = _close_fields(error, method)
        log.info(
            "channel.error",
            peer=self.peer_text,
            channel=number,
            reply_code=error.reply_code,
            reply_text=reply_text,
            method=getattr(method, "NAME", None),
        )
        channel = self.channels.get(number)
        if channel is not None:
            channel.close()
        self.send_method(
            number,
            m.ChannelClose(
                reply_code=error.reply_code,
                reply_text=reply_text,
                class_id=class_id,
                method_id=method_id,
            ),
        )

    def _connection_error(self, error: AMQPError, method: Any = None) -> None:
        """Hard error: connection.close with the code, then wait for close-ok."""
        if self.closing:
            return
        class_id, method_id, reply_text = _close_fields(error, method)
        log.warning(
            "protocol.error",
            peer=self.peer_text,
            reply_code=error.reply_code,
            reply_text=reply_text,
            class_id=class_id,
            method_id=method_id,
        )
        self.close(error.reply_code, reply_text, class_id, method_id)

    def _refuse_login(self, failed: LoginFailed) -> None:
        """A refused login: answer (after the throttle's delay) and end.

        Nothing the client sends afterwards is handled (`closing`); the
        answer is connection.close to a client that announced
        authentication_failure_close, else only the socket closing.
        """
        self.closing = True
        self._close_reason = (failed.reply_code, failed.reply_text)
        if self._nursery is None:
            if failed.on_answered is not None:
                failed.on_answered()
            self._done.set()
            return
        self._nursery.start_soon(self._answer_login_failure, failed)

    async def _answer_login_failure(self, failed: LoginFailed) -> None:
        if failed.delay:
            try:
                await trio.sleep(failed.delay)
            finally:
                # Answered now, or the connection is gone: no longer waiting.
                if failed.on_answered is not None:
                    failed.on_answered()
        if failed.notify:
            try:
                self.send_method(0, m.ConnectionClose(
                    reply_code=failed.reply_code, reply_text=failed.reply_text,
                    class_id=0, method_id=0,
                ))
            except AMQPError:
                pass
        await self._finish_after(0.0)

    def close(self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Send connection.close (we initiate); the reader then waits for close-ok."""
        if self.closing:
            return
        self.closing = True
        self._close_reason = (reply_code, reply_text)
        self._close_channels()
        try:
            self.send_method(
                0,
                m.ConnectionClose(
                    reply_code=reply_code,
                    reply_text=reply_text,
                    class_id=class_id,
                    method_id=method_id,
                ),
            )
        except AMQPError:
            self._done.set()
            return
        if not self.opened:
            # Before connection.open-ok, a client may not answer close-ok
            # (pika does not); RabbitMQ closes the socket after close.
            self._finish_soon()
            return
        # After a framing error (501) the peer's bytes can no longer be parsed,
        # so no close-ok can be recognised: close once the close is written.
        self._finish_soon(0.0 if reply_code == ReplyCode.FRAME_ERROR else CLOSE_TIMEOUT)

    def _finish_soon(self, delay: float = 0.0) -> None:
        """End the connection after the writer flushed, or after `delay` at most."""
        if self._nursery is None:
            self._done.set()
            return
        self._nursery.start_soon(self._finish_after, delay)

    async def _finish_after(self, delay: float) -> None:
        # First let the writer send what is queued (the close or close-ok),
        # then give the peer `delay` seconds to answer close-ok.
        with trio.move_on_after(0.5):
            await self.output.wait_flushed()
        if delay:
            with trio.move_on_after(delay):
                await self._done.wait()
        self._done.set()

    # -- connection class (channel 0) ------------------------------------------------------

    def _on_connection_method(self, method: Any) -> None:
        kind = type(method)
        if kind is m.ConnectionStartOk:
            self.send_method(0, self.handshake.on_start_ok(method))
        elif kind is m.ConnectionSecureOk:
            # Warren never sends connection.secure (no mechanism here needs it).
            raise LoginFailed(self.handshake.mechanism or "PLAIN", True, 0.0)
        elif kind is m.ConnectionTuneOk:
            self.handshake.on_tune_ok(method, self.amqp.frame_max)
            self._tuned.set()
        elif kind is m.ConnectionOpen:
            self.vhost = self.handshake.on_open(method)
            self.access = self.handshake.access
            self.opened = True
            if self._nursery is not None:
                # Not before: a socket that never opens costs no task for it.
                self._nursery.start_soon(self._consumer_timeouts)
            self.vhost.connection_count += 1
            if self.user is not None:
                self.context.access.connection_opened(self.user, self)
            self.vhost.counters.connection_created += 1
            self.context.open_connections += 1
            self.send_method(0, m.ConnectionOpenOk())
            log.info(
                "connection.opened",
                peer=self.peer_text,
                user=self.user,
                vhost=self.vhost.name,
                client=_client_name(self.client_properties),
            )
        elif kind is m.ConnectionClose:
            # The client closes: answer close-ok and end (spec 1.4.2.5).
            self._close_reason = (method.reply_code, method.reply_text or "client closed")
            self._close_channels()
            self.closing = True
            self.send_method(0, m.ConnectionCloseOk())
            # Keep reading (and dropping) until the client closes the socket,
            # as RabbitMQ does (rabbit_reader close_connection: the heartbeat
            # interval, CLOSING_TIMEOUT at most): closing at once resets the
            # connection under a client still flushing buffered publishes,
            # which then gets EPIPE and may never read its close-ok.
            heartbeat = self.amqp.heartbeat
            self._finish_soon(heartbeat if 0 < heartbeat < CLOSING_TIMEOUT else CLOSING_TIMEOUT)
        elif kind is m.ConnectionCloseOk:
            self._done.set()
        elif kind is m.ConnectionUpdateSecret:
            self.send_method(0, m.ConnectionUpdateSecretOk())
        elif kind in (m.ConnectionBlocked, m.ConnectionUnblocked):
            return
        else:
            raise error_for(
                ReplyCode.COMMAND_INVALID,
                f"COMMAND_INVALID - unexpected method {method.NAME} on channel 0",
            )

    # -- heartbeats ----------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        """Heartbeats as RabbitMQ sends and counts them (rabbit_heartbeat.erl, spec 4.2.7).

        Every heartbeat/2 seconds a heartbeat is sent if nothing was sent
        since the last look (and at the first look, whatever was sent).
        Every heartbeat seconds the bytes received are looked at; after two
        looks in a row with nothing received the peer is dead: between two
        and three intervals of silence. A client that only answers our
        heartbeats (some do) is heard from every half interval and lives.
        """
        await self._tuned.wait()  # RabbitMQ starts its heartbeaters at tune-ok
        heartbeat = self.amqp.heartbeat
        if not heartbeat:
            return
        output = self.output
        sent_at_last_look: int | None = None
        received_at_last_look = 0  # as RabbitMQ: the first look always sees bytes
        silent_looks = 0
        ticks = 0
        while True:
            await trio.sleep(heartbeat / 2)
            ticks += 1
            if sent_at_last_look is None or output.bytes_sent == sent_at_last_look:
                output.write(self.amqp.send_heartbeat())
            sent_at_last_look = output.bytes_sent
            if ticks % 2:
                continue
            received = self.recv_oct
            silent_looks = silent_looks + 1 if received == received_at_last_look else 0
            received_at_last_look = received
            if silent_looks >= 2:
                log.warning("connection.heartbeat_timeout", peer=self.peer_text,
                            heartbeat=heartbeat)
                self._close_reason = (
                    0, f"missed heartbeats from client, timeout: {heartbeat}s"
                )
                self._done.set()
                return

    # -- teardown --------------------------------------------------------------------------------

    def _close_channels(self) -> None:
        channels = list(self.channels.values())
        self.channels.clear()
        for channel in channels:
            channel.close()

    def _teardown(self) -> None:
        """The socket is gone: release channels and exclusive queues."""
        self._close_channels()
        if self.vhost is not None:
            self.vhost.connection_closed(self)
            if self.opened:
                self.vhost.connection_count -= 1
                if self.user is not None:
                    self.context.access.connection_closed(self.user, self)
                self.context.open_connections -= 1
                # Statistics: the vhost and the broker keep this connection's bytes.
                counters = self.vhost.counters
                counters.connection_closed += 1
                for totals in (self.vhost.retired, counters.retired):
                    totals.recv_oct += self.recv_oct
                    totals.send_oct += self.output.send_oct
        self.torn_down = True

    async def force_close(self, reply_code: int, reply_text: str) -> None:
        """Broker shutdown: connection.close with `reply_code` (320), wait for close-ok."""
        if not self.opened or self._nursery is None:
            self._done.set()
            return
        self.close(reply_code, reply_text)
        with trio.move_on_after(CLOSE_TIMEOUT):
            await self._done.wait()
        self._done.set()


def _client_name(props: dict[str, Any]) -> str | None:
    product = props.get("product")
    if isinstance(product, bytes):
        product = product.decode("utf-8", "replace")
    return product


_CHANNEL_HANDLERS: dict[type, Any] = {
    m.ChannelFlow: Channel.on_channel_flow,
    m.ChannelFlowOk: Channel.on_channel_flow_ok,
    m.ExchangeDeclare: Channel.on_exchange_declare,
    m.ExchangeDelete: Channel.on_exchange_delete,
    m.ExchangeBind: Channel.on_exchange_bind,
    m.ExchangeUnbind: Channel.on_exchange_unbind,
    m.QueueDeclare: Channel.on_queue_declare,
    m.QueueBind: Channel.on_queue_bind,
    m.QueueUnbind: Channel.on_queue_unbind,
    m.QueuePurge: Channel.on_queue_purge,
    m.QueueDelete: Channel.on_queue_delete,
    m.BasicQos: Channel.on_basic_qos,
    m.BasicConsume: Channel.on_basic_consume,
    m.BasicCancel: Channel.on_basic_cancel,
    m.BasicGet: Channel.on_basic_get,
    m.BasicAck: Channel.on_basic_ack,
    m.BasicReject: Channel.on_basic_reject,
    m.BasicNack: Channel.on_basic_nack,
    m.BasicRecoverAsync: Channel.on_basic_recover_async,
    m.BasicRecover: Channel.on_basic_recover,
    m.ConfirmSelect: Channel.on_confirm_select,
    m.TxSelect: Channel.on_tx_select,
    m.TxCommit: Channel.on_tx_commit,
    m.TxRollback: Channel.on_tx_rollback,
}
