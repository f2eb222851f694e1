"""One AMQP channel: declarations, publishing, confirms, consumers, get, tx."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, Protocol

import trio

from protocol import methods as m
from protocol.constants import ReplyCode

from . import _codec
from .confirms import Confirmation, ConfirmTracker
from .consumer import Consumer
from .errors import ChannelClosed, ConnectionClosed
from .message import Message

__all__ = ["Channel", "ChannelHost", "DeclaredQueue"]


class ChannelHost(Protocol):
    """What a channel uses of its connection (`broker.client.connection.Connection`):
    the shared write buffer, the inline wait, and the connection's bookkeeping.
    A protocol rather than an import, so that channel and connection do not
    import each other."""

    frame_max: int
    close_timeout: float
    _id: int
    _publish_gate: trio.Event | None

    def _encode_method(self, channel: int, method: m.Method) -> bytes: ...

    def _send_method(
        self, channel: int, method: m.Method, force: bool = False, flush: bool = False
    ) -> None: ...

    def _write(self, data: bytes, wake: bool = True) -> None: ...

    def _flush_now(self) -> None: ...

    async def _read_inline(self, waiting: Any) -> None: ...

    async def _wait_writable(self) -> None: ...

    def _forget_channel(self, number: int) -> None: ...


class DeclaredQueue(NamedTuple):
    """What queue.declare-ok says: the queue's name (server-named if we gave
    ``""``), how many messages are ready in it, and how many consumers it has."""

    name: str
    message_count: int
    consumer_count: int


class _Waiter:
    """A synchronous request waiting for its reply (spec 2.3.5.1: replies come in
    request order on a channel, so waiters form a FIFO)."""

    __slots__ = ("expect", "event", "result", "error", "abandoned")

    def __init__(self, expect: tuple[type, ...]) -> None:
        self.expect = expect
        self.event = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False

    @property
    def done(self) -> bool:
        return self.event.is_set()


class Channel:
    """An open channel. Get one with ``conn.open_channel()`` (an async context
    manager) or ``await conn.channel()``; every method raises `ChannelClosed`
    or `ConnectionClosed` once the channel or its connection is gone."""

    def __init__(
        self,
        connection: ChannelHost,
        number: int,
        *,
        max_in_flight: int | None = None,
        on_return: Callable[[Message], None] | None = None,
    ) -> None:
        self.connection = connection
        self.number = number
        self.confirms = False
        #: With confirms: how many publishes may wait for their confirm at once
        #: before ``publish(..., wait=False)`` blocks (None: no limit).
        self.max_in_flight = max_in_flight
        #: Returned messages (basic.return) that no confirmed publish claimed go
        #: to this callback, or else to ``returned_messages``.
        self.on_return = on_return
        self.returned_messages: deque[Message] = deque(maxlen=1000)
        self._waiters: deque[_Waiter] = deque()
        self._consumers: dict[str, Consumer] = {}
        self._confirms: ConfirmTracker | None = None
        self._closed: BaseException | None = None
        self._closing = False
        self._flow_active = True
        self._flow_event: trio.Event | None = None
        self._frame_max = connection.frame_max
        self._consumer_seq = 0

    # ----------------------------------------------------------------- state

    @property
    def is_open(self) -> bool:
        return self._closed is None

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed

    async def _rpc(self, method: m.Method, expect: tuple[type, ...]) -> Any:
        """Send a synchronous method and wait for its reply.

        A method that cannot be encoded (a name over 255 bytes, an integer
        wider than 64 bits) raises ``ValueError`` here and leaves the channel
        as it was, ready for the next request.
        """
        self._check_open()
        conn = self.connection
        # Encode before the waiter is queued: replies are matched to waiters in
        # order (spec 2.3.5.1), so a waiter for a request that never left would
        # take the next request's reply and put the channel out of step.
        frame = conn._encode_method(self.number, method)
        conn._write(frame, wake=False)
        waiter = _Waiter(expect)
        # No await since the write: the reply cannot have been read yet.
        self._waiters.append(waiter)
        conn._flush_now()
        try:
            await conn._read_inline(waiter)
            await waiter.event.wait()
        except BaseException:
            # Cancelled: the reply will still come; let it be discarded.
            waiter.abandoned = True
            raise
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    # ------------------------------------------------------------- exchanges

    async def exchange_declare(
        self,
        exchange: str,
        type: str = "direct",
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict | None = None,
    ) -> None:
        """exchange.declare; a mismatch with an existing exchange is 406."""
        await self._rpc(
            m.ExchangeDeclare(exchange=exchange, type=type, passive=passive, durable=durable,
                              auto_delete=auto_delete, internal=internal,
                              arguments=arguments),
            (m.ExchangeDeclareOk,),
        )

    async def exchange_delete(self, exchange: str, *, if_unused: bool = False) -> None:
        await self._rpc(m.ExchangeDelete(exchange=exchange, if_unused=if_unused),
                        (m.ExchangeDeleteOk,))

    async def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                            arguments: dict | None = None) -> None:
        """Bind exchange ``destination`` to exchange ``source`` (RabbitMQ extension)."""
        await self._rpc(m.ExchangeBind(destination=destination, source=source,
                                       routing_key=routing_key, arguments=arguments),
                        (m.ExchangeBindOk,))

    async def exchange_unbind(self, destination: str, source: str, routing_key: str = "",
                              arguments: dict | None = None) -> None:
        await self._rpc(m.ExchangeUnbind(destination=destination, source=source,
                                         routing_key=routing_key, arguments=arguments),
                        (m.ExchangeUnbindOk,))

    # ---------------------------------------------------------------- queues

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict | None = None,
    ) -> DeclaredQueue:
        """queue.declare; ``queue=""`` asks the broker to name it."""
        ok = await self._rpc(
            m.QueueDeclare(queue=queue, passive=passive, durable=durable, exclusive=exclusive,
                           auto_delete=auto_delete, arguments=arguments),
            (m.QueueDeclareOk,),
        )
        return DeclaredQueue(ok.queue, ok.message_count, ok.consumer_count)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str = "",
                         arguments: dict | None = None) -> None:
        await self._rpc(m.QueueBind(queue=queue, exchange=exchange, routing_key=routing_key,
                                    arguments=arguments), (m.QueueBindOk,))

    async def queue_unbind(self, queue: str, exchange: str, routing_key: str = "",
                           arguments: dict | None = None) -> None:
        await self._rpc(m.QueueUnbind(queue=queue, exchange=exchange, routing_key=routing_key,
                                      arguments=arguments), (m.QueueUnbindOk,))

    async def queue_purge(self, queue: str) -> int:
        """Remove the queue's ready messages; return how many there were."""
        ok = await self._rpc(m.QueuePurge(queue=queue), (m.QueuePurgeOk,))
        return ok.message_count

    async def queue_delete(self, queue: str, *, if_unused: bool = False,
                           if_empty: bool = False) -> int:
        """Delete the queue; return how many messages it held."""
        ok = await self._rpc(m.QueueDelete(queue=queue, if_unused=if_unused, if_empty=if_empty),
                             (m.QueueDeleteOk,))
        return ok.message_count

    # ------------------------------------------------------------- publishing

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        mandatory: bool = False,
        persistent: bool | None = None,
        properties: Any = None,
        wait: bool = True,
        **property_values: Any,
    ) -> Confirmation | None:
        """basic.publish one message.

        ``properties`` is a `protocol.properties.BasicProperties`, or pass any of
        the 14 properties by name (``content_type=``, ``headers=``,
        ``delivery_mode=``, ``priority=``, ``correlation_id=``, ``reply_to=``,
        ``expiration=``, ``message_id=``, ``timestamp=``, ``type=``,
        ``user_id=``, ``app_id=``, ``cluster_id=``, ``content_encoding=``);
        ``persistent=True`` is ``delivery_mode=2``.

        On a channel with confirms, returns once the broker confirmed the
        message, raising `PublishNacked` or `Unroutable` (mandatory and no
        queue). With ``wait=False`` it returns the `Confirmation` at once
        (wait for it, or for all with `wait_for_confirms`); it still blocks
        while ``max_in_flight`` publishes are unconfirmed.

        Without confirms it returns once the message is in the connection's
        write buffer: it reaches the socket when this task next waits, or
        when the buffer grows past a few tens of KiB.

        Publishing waits while the broker has blocked the connection
        (connection.blocked) or stopped this channel with channel.flow.
        """
        if self._closed is not None:
            raise self._closed
        conn = self.connection
        if conn._publish_gate is not None or not self._flow_active:
            await self._wait_publish_allowed()
        if property_values or persistent is not None or properties is not None:
            raw_properties = _codec.encode_properties(properties, persistent, property_values)
        else:
            raw_properties = _codec.EMPTY_PROPERTIES
        # Encoded before a confirm is registered: a publish that cannot be encoded
        # (a routing key over 255 bytes) must not take a delivery tag the broker
        # never counts, or every later confirm would be matched to the wrong publish.
        frames = _codec.encode_publish(self.number, exchange, routing_key, mandatory,
                                       raw_properties, body, self._frame_max)
        tracker = self._confirms
        if tracker is None:
            conn._write(frames)
            if conn._out_size > conn.write_high_water:
                await conn._wait_writable()
            return None
        if self.max_in_flight is not None and len(tracker) >= self.max_in_flight:
            await tracker.wait_for_window(self.max_in_flight)
            self._check_open()
        conf = tracker.add((exchange, routing_key, body) if mandatory else None)
        if wait:
            conn._write(frames, False)
            conn._flush_now()
            await conn._read_inline(conf)  # while trio is idle (broker/client/_inline.py)
            await conf.wait()
            return conf
        conn._write(frames)
        if conn._out_size > conn.write_high_water:
            await conn._wait_writable()
        return conf

    async def wait_for_confirms(self) -> None:
        """Wait until every publish on this channel is confirmed.

        Raises the first failure (`PublishNacked`, `Unroutable`, or the
        channel's close) among the publishes whose `Confirmation` nobody
        awaited; with many failures, a note lists their delivery tags.
        """
        if self._confirms is None:
            raise RuntimeError("this channel has no publisher confirms (open it with confirms=True)")
        await self._confirms.wait_all()
        self._check_open()

    @property
    def unconfirmed(self) -> int:
        """How many publishes wait for the broker's confirm."""
        return len(self._confirms) if self._confirms is not None else 0

    async def _wait_publish_allowed(self) -> None:
        while True:
            self._check_open()
            gate = self.connection._publish_gate
            if gate is not None:
                await gate.wait()
                continue
            if not self._flow_active:
                if self._flow_event is None:
                    self._flow_event = trio.Event()
                await self._flow_event.wait()
                continue
            return

    async def confirm_select(self) -> None:
        """Put the channel in confirm mode (done by ``open_channel(confirms=True)``)."""
        if self._confirms is None:
            await self._rpc(m.ConfirmSelect(), (m.ConfirmSelectOk,))
            self._confirms = ConfirmTracker()
            self.confirms = True

    # -------------------------------------------------------------- consuming

    async def qos(self, prefetch_count: int = 0, prefetch_size: int = 0,
                  global_: bool = False) -> None:
        """basic.qos. RabbitMQ reads ``global_=False`` as per consumer and
        ``global_=True`` as per channel (its documented departure from the spec)."""
        await self._rpc(m.BasicQos(prefetch_size=prefetch_size, prefetch_count=prefetch_count,
                                   global_=global_), (m.BasicQosOk,))

    @asynccontextmanager
    async def consume(
        self,
        queue: str,
        *,
        prefetch: int | None = None,
        no_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str = "",
        arguments: dict | None = None,
    ) -> AsyncIterator[Consumer]:
        """Consume from ``queue``: ``async with ch.consume(q) as messages:``
        then ``async for message in messages``.

        ``prefetch`` sets basic.qos first. Leaving the block cancels the
        consumer; deliveries that arrived but were never handed out are
        given back to the queue (basic.nack requeue).
        """
        consumer = await self.start_consumer(queue, prefetch=prefetch, no_ack=no_ack,
                                             exclusive=exclusive, consumer_tag=consumer_tag,
                                             arguments=arguments)
        try:
            yield consumer
        finally:
            with trio.CancelScope(shield=True):
                await consumer.cancel()

    async def start_consumer(
        self,
        queue: str,
        *,
        prefetch: int | None = None,
        no_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str = "",
        arguments: dict | None = None,
    ) -> Consumer:
        """basic.consume without a block; call ``await consumer.cancel()`` yourself."""
        if prefetch is not None:
            await self.qos(prefetch_count=prefetch)
        if not consumer_tag:
            # We pick the tag so the consumer is registered before the first
            # basic.deliver, which can follow consume-ok in the same read.
            self._consumer_seq += 1
            consumer_tag = f"warren.{self.connection._id}.{self.number}.{self._consumer_seq}"
        if consumer_tag in self._consumers:
            raise ValueError(f"consumer tag {consumer_tag!r} is in use on this channel")
        consumer = Consumer(self, queue, consumer_tag, no_ack)
        self._consumers[consumer_tag] = consumer
        try:
            await self._rpc(
                m.BasicConsume(queue=queue, consumer_tag=consumer_tag, no_ack=no_ack,
                               exclusive=exclusive, arguments=arguments),
                (m.BasicConsumeOk,),
            )
        except BaseException:
            self._consumers.pop(consumer_tag, None)
            raise
        return consumer

    async def cancel(self, consumer_tag: str) -> None:
        """basic.cancel a consumer by tag."""
        consumer = self._consumers.get(consumer_tag)
        if consumer is not None:
            await consumer.cancel()
        else:
            await self._rpc(m.BasicCancel(consumer_tag=consumer_tag), (m.BasicCancelOk,))

    async def get(self, queue: str, *, no_ack: bool = False) -> Message | None:
        """basic.get: one message from ``queue``, or None if it is empty."""
        return await self._rpc(m.BasicGet(queue=queue, no_ack=no_ack),
                               (m.BasicGetOk, m.BasicGetEmpty))

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self._check_open()
        conn = self.connection
        conn._write(_codec.encode_ack(self.number, delivery_tag, multiple))
        if conn._out_size > conn.write_high_water:
            await conn._wait_writable()

    async def basic_nack(self, delivery_tag: int, multiple: bool = False,
                         requeue: bool = True) -> None:
        self._check_open()
        self.connection._send_method(
            self.number, m.BasicNack(delivery_tag=delivery_tag, multiple=multiple,
                                     requeue=requeue))

    async def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        self._check_open()
        self.connection._send_method(
            self.number, m.BasicReject(delivery_tag=delivery_tag, requeue=requeue))

    async def recover(self, requeue: bool = True) -> None:
        """basic.recover: redeliver every unacked message of this channel."""
        await self._rpc(m.BasicRecover(requeue=requeue), (m.BasicRecoverOk,))

    # ----------------------------------------------------------- flow and tx

    async def flow(self, active: bool) -> bool:
        """channel.flow: ask the broker to stop (False) or resume (True)
        deliveries to this channel. RabbitMQ refuses active=False with 540."""
        ok = await self._rpc(m.ChannelFlow(active=active), (m.ChannelFlowOk,))
        return ok.active

    async def tx_select(self) -> None:
        await self._rpc(m.TxSelect(), (m.TxSelectOk,))

    async def tx_commit(self) -> None:
        await self._rpc(m.TxCommit(), (m.TxCommitOk,))

    async def tx_rollback(self) -> None:
        await self._rpc(m.TxRollback(), (m.TxRollbackOk,))

    # ---------------------------------------------------------------- closing

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """channel.close and wait for close-ok. Closing twice does nothing."""
        if self._closed is not None or self._closing:
            return
        method = m.ChannelClose(reply_code=reply_code, reply_text=reply_text)
        # A reply_text over 255 bytes raises ValueError here, before the close
        # is recorded anywhere, so the channel stays open and usable.
        method.encode_arguments()
        self._closing = True
        waiter = _Waiter((m.ChannelCloseOk,))
        self._waiters.append(waiter)
        try:
            self.connection._send_method(self.number, method)
        except ConnectionClosed:
            self._on_closed(ChannelClosed(reply_code, reply_text))
            return
        with trio.move_on_after(self.connection.close_timeout):
            await waiter.event.wait()
        if self._closed is None:
            self._on_closed(ChannelClosed(reply_code, reply_text))

    # ---------------------------------------------------- reader-side events

    def _on_deliver(self, method: Any, raw_properties: bytes | None, body: bytes) -> None:
        consumer = self._consumers.get(method.consumer_tag)
        message = Message(self, method.delivery_tag, method.redelivered, method.exchange,
                          method.routing_key, raw_properties, body, method.consumer_tag,
                          None, False)
        if consumer is None:
            # A delivery for a consumer we no longer know (cannot happen after
            # cancel-ok, spec 1.8.3.4); give it back rather than leak it.
            self.connection._send_method(
                self.number, m.BasicNack(delivery_tag=method.delivery_tag, requeue=True))
            return
        if consumer.no_ack:
            message._settled = True
        consumer._push(message)

    def _on_command(self, method: Any, raw_properties: bytes | None, body: bytes | None) -> None:
        kind = type(method)
        if kind is m.BasicAck:
            if self._confirms is not None:
                self._confirms.on_ack(method.delivery_tag, method.multiple)
            return
        if kind is m.BasicNack:
            if self._confirms is not None:
                self._confirms.on_nack(method.delivery_tag, method.multiple)
            return
        if kind is m.BasicReturn:
            body = body or b""
            if self._confirms is not None and self._confirms.on_return(
                    method.reply_code, method.reply_text, method.exchange, method.routing_key,
                    body):
                return
            message = Message(self, 0, False, method.exchange, method.routing_key,
                              raw_properties, body, settled=True)
            if self.on_return is not None:
                self.on_return(message)
            else:
                self.returned_messages.append(message)
            return
        if kind is m.ChannelClose:
            self.connection._send_method(self.number, m.ChannelCloseOk(), force=True)
            self._on_closed(ChannelClosed(method.reply_code, method.reply_text,
                                          method.class_id, method.method_id))
            return
        if kind is m.ChannelCloseOk:
            self._on_closed(ChannelClosed(ReplyCode.REPLY_SUCCESS, "channel closed by client"))
            return
        if kind is m.ChannelFlow:
            self._flow_active = method.active
            self.connection._send_method(self.number, m.ChannelFlowOk(active=method.active))
            if method.active and self._flow_event is not None:
                self._flow_event.set()
                self._flow_event = None
            return
        if kind is m.BasicCancel:
            # The broker cancelled a consumer (RabbitMQ consumer_cancel_notify).
            consumer = self._consumers.pop(method.consumer_tag, None)
            if consumer is not None:
                consumer._on_cancelled_by_broker()
            if not method.nowait:
                self.connection._send_method(
                    self.number, m.BasicCancelOk(consumer_tag=method.consumer_tag))
            return
        # Everything else is the reply to our oldest synchronous request.
        while self._waiters:
            waiter = self._waiters.popleft()
            if kind not in waiter.expect:
                # Out of order reply: the broker and we disagree about the
                # protocol; fail the waiter rather than hang it.
                waiter.error = ChannelClosed(ReplyCode.UNEXPECTED_FRAME,
                                             f"unexpected reply {method!r}")
                waiter.event.set()
                return
            if kind is m.BasicGetOk:
                waiter.result = Message(self, method.delivery_tag, method.redelivered,
                                        method.exchange, method.routing_key, raw_properties,
                                        body or b"", "", method.message_count, False)
            elif kind is m.BasicGetEmpty:
                waiter.result = None
            else:
                waiter.result = method
            if kind is m.BasicCancelOk:
                consumer = self._consumers.pop(method.consumer_tag, None)
                if consumer is not None:
                    consumer._on_cancel_ok()
            waiter.event.set()
            return

    def _on_closed(self, error: BaseException) -> None:
        """The channel is gone (closed by either side, or its connection died)."""
        if self._closed is not None:
            return
        self._closed = error
        self.connection._forget_channel(self.number)
        for waiter in self._waiters:
            waiter.error = error
            waiter.event.set()
        self._waiters.clear()
        for consumer in list(self._consumers.values()):
            consumer._on_channel_closed(error)
        self._consumers.clear()
        if self._confirms is not None:
            self._confirms.fail_all(error)
        if self._flow_event is not None:
            self._flow_event.set()
            self._flow_event = None

    def __repr__(self) -> str:
        state = "open" if self._closed is None else "closed"
        return f"<Channel {self.number} {state}>"
