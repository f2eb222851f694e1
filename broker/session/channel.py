"""Channel state and the methods a channel carries (AMQP 0-9-1 section 4.2.4).

A `Channel` keeps what RabbitMQ keeps per channel:

- publisher confirms (`confirm.select`): the next publish sequence number and
  the confirms owed, sent once per read batch as one `basic.ack` with
  `multiple=true` where possible;
- transactions (`tx.select`): publishes and acks held until `tx.commit`;
  with a journal, commit-ok waits for the fsync of the transaction's records,
  and the channel is *paused* meanwhile (no deliveries; the connection holds
  the commands that follow), so nothing overtakes the commit-ok;
- prefetch: `basic.qos global=false` sets the limit for each consumer created
  afterwards on the channel, `global=true` a limit shared by the whole
  channel (RabbitMQ's reading, not the 0-9-1 text; see docs/compatibility.md);
- deliveries not yet acknowledged, by `delivery_tag`, in tag order;
- its consumers, by `consumer_tag`.

Every handler runs synchronously inside the connection's read loop: no await,
no task per message. Errors are raised as `AMQPError` and turned into
channel.close or connection.close by the connection.
"""

from __future__ import annotations

import base64
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from broker.core import errors
from broker.core.message import Message
from broker.core.queue import Queue, QueuedMessage
from protocol import methods as m
from protocol.frames import encode_basic_deliver, encode_basic_get_ok, encode_basic_return

if TYPE_CHECKING:
    from broker.session.connection import ClientConnection
    from protocol.connection import Command

__all__ = ["Channel", "Consumer", "new_name"]

# A content header without properties: the flags word, no bit set (spec 4.2.6.1).
_NO_PROPERTIES = b"\x00\x00"


#: A queue with consumers and more ready messages than this slows down the
#: connections publishing to it (see ClientConnection._flow_control).
FLOW_BACKLOG = 2000


def new_name(prefix: str) -> str:
    """A server-made name as RabbitMQ makes them: `amq.gen-` / `amq.ctag-` + 22 base64 chars."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


class Consumer:
    """A subscription of one channel to one queue (basic.consume)."""

    __slots__ = (
        "tag",
        "channel",
        "queue",
        "no_ack",
        "exclusive",
        "prefetch_count",
        "unacked_count",
        "arguments",
    )

    def __init__(
        self,
        tag: str,
        channel: Channel,
        queue: Queue,
        *,
        no_ack: bool,
        exclusive: bool,
        prefetch_count: int,
        arguments: dict[str, Any],
    ) -> None:
        self.tag = tag
        self.channel = channel
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch_count = prefetch_count
        self.unacked_count = 0
        self.arguments = arguments

    def has_credit(self) -> bool:
        """May the queue hand this consumer one more message now?"""
        channel = self.channel
        if not channel.flow_active or channel.closing or channel.paused:
            return False
        if not channel.connection.can_deliver():
            return False
        if self.no_ack:
            return True
        if self.prefetch_count and self.unacked_count >= self.prefetch_count:
            return False
        return not (channel.global_prefetch and channel.unacked_count >= channel.global_prefetch)

    def deliver(self, queue: Queue, entry: QueuedMessage) -> None:
        self.channel.deliver(self, queue, entry)


class Delivery:
    """A message handed out and not yet acknowledged (by delivery tag)."""

    __slots__ = ("queue", "entry", "consumer")

    def __init__(self, queue: Queue, entry: QueuedMessage, consumer: Consumer | None) -> None:
        self.queue = queue
        self.entry = entry
        self.consumer = consumer  # None for basic.get


class Channel:
    """One open channel of a client connection."""

    def __init__(self, number: int, connection: ClientConnection) -> None:
        self.number = number
        self.connection = connection
        self.vhost = connection.vhost
        self.flow_active = True
        self.closing = False
        # confirm.select (RabbitMQ extension, "Publisher Confirms")
        self.confirm = False
        self.next_publish_seq = 1
        # (publish seq, accepted, journal position the confirm waits for)
        self._confirms: list[tuple[int, bool, int]] = []
        # tx.select
        self.transactional = False
        self._tx_publishes: list[tuple[m.BasicPublish, Message]] = []
        self._tx_acks: list[tuple[str, list[tuple[int, Delivery]], bool]] = []
        # tx.commit waiting for the journal: the position commit-ok waits for
        # (None once sent); `paused` until the commands that arrived meanwhile
        # (`held`, kept by the connection) are handled.
        self.commit_at: int | None = None
        self.paused = False
        self.held: deque[Command] = deque()
        self.held_bytes = 0
        self._deferred: list[Any] = []  # server-sent methods (basic.cancel) while paused
        # basic.qos
        self.prefetch_count = 0  # applied to consumers created afterwards
        self.global_prefetch = 0  # shared by all consumers of the channel
        # deliveries
        self.next_delivery_tag = 1
        self.unacked: dict[int, Delivery] = {}
        self.unacked_count = 0  # consumer deliveries counted against prefetch
        self.consumers: dict[str, Consumer] = {}
        self.last_queue_name: str | None = None

    # -- output helpers -----------------------------------------------------

    def _reply(self, method: Any) -> None:
        self.connection.send_method(self.number, method)

    # -- delivery (called by Queue.dispatch) --------------------------------

    def deliver(self, consumer: Consumer, queue: Queue, entry: QueuedMessage) -> None:
        tag = self.next_delivery_tag
        self.next_delivery_tag = tag + 1
        if not consumer.no_ack:
            self.unacked[tag] = Delivery(queue, entry, consumer)
            consumer.unacked_count += 1
            self.unacked_count += 1
        message = entry.message
        connection = self.connection
        connection.write(
            encode_basic_deliver(
                self.number,
                consumer.tag,
                tag,
                entry.redelivered,
                message.exchange,
                message.routing_key,
                message.properties,
                message.body,
                connection.frame_max,
            )
        )

    # -- channel class ----------------------------------------------------------

    def on_channel_flow(self, method: m.ChannelFlow) -> None:
        # RabbitMQ 3.x refuses client-side flow control to stop deliveries:
        # channel.flow active=false is 540 NOT_IMPLEMENTED (rabbit_channel.erl).
        if not method.active:
            raise errors.not_implemented("active=false")
        self._reply(m.ChannelFlowOk(active=True))

    def on_channel_flow_ok(self, method: m.ChannelFlowOk) -> None:
        # We never send channel.flow, so there is nothing to acknowledge.
        return

    # -- exchange class ---------------------------------------------------------

    def on_exchange_declare(self, method: m.ExchangeDeclare) -> None:
        self.vhost.declare_exchange(
            method.exchange,
            method.type,
            passive=method.passive,
            durable=method.durable,
            auto_delete=method.auto_delete,
            internal=method.internal,
            arguments=method.arguments or {},
            peer=self.connection.peer,
        )
        if not method.nowait:
            self._reply(m.ExchangeDeclareOk())

    def on_exchange_delete(self, method: m.ExchangeDelete) -> None:
        self.vhost.delete_exchange(
            method.exchange, if_unused=method.if_unused, peer=self.connection.peer
        )
        if not method.nowait:
            self._reply(m.ExchangeDeleteOk())

    def on_exchange_bind(self, method: m.ExchangeBind) -> None:
        self.vhost.bind_exchange(
            method.destination, method.source, method.routing_key, method.arguments or {}
        )
        if not method.nowait:
            self._reply(m.ExchangeBindOk())

    def on_exchange_unbind(self, method: m.ExchangeUnbind) -> None:
        self.vhost.unbind_exchange(
            method.destination, method.source, method.routing_key, method.arguments or {}
        )
        if not method.nowait:
            self._reply(m.ExchangeUnbindOk())

    # -- queue class --------------------------------------------------------------

    def _queue_name(self, name: str) -> str:
        """Spec 1.7.2: an empty queue name means the last queue declared on the channel."""
        if name:
            return name
        if self.last_queue_name is None:
            raise errors.not_found("no previously declared queue")
        return self.last_queue_name

    def on_queue_declare(self, method: m.QueueDeclare) -> None:
        name = method.queue
        if not name and method.passive:
            name = self._queue_name(name)
        queue = self.vhost.declare_queue(
            self.connection,
            name,
            passive=method.passive,
            durable=method.durable,
            exclusive=method.exclusive,
            auto_delete=method.auto_delete,
            arguments=method.arguments or {},
        )
        self.last_queue_name = queue.name
        if not method.nowait:
            self._reply(
                m.QueueDeclareOk(
                    queue=queue.name,
                    message_count=queue.message_count,
                    consumer_count=queue.consumer_count,
                )
            )

    def on_queue_bind(self, method: m.QueueBind) -> None:
        self.vhost.bind_queue(
            self.connection,
            self._queue_name(method.queue),
            method.exchange,
            method.routing_key,
            method.arguments or {},
        )
        if not method.nowait:
            self._reply(m.QueueBindOk())

    def on_queue_unbind(self, method: m.QueueUnbind) -> None:
        self.vhost.unbind_queue(
            self.connection,
            self._queue_name(method.queue),
            method.exchange,
            method.routing_key,
            method.arguments or {},
        )
        self._reply(m.QueueUnbindOk())

    def on_queue_purge(self, method: m.QueuePurge) -> None:
        count = self.vhost.purge_queue(self.connection, self._queue_name(method.queue))
        if not method.nowait:
            self._reply(m.QueuePurgeOk(message_count=count))

    def on_queue_delete(self, method: m.QueueDelete) -> None:
        count = self.vhost.delete_queue(
            self.connection,
            self._queue_name(method.queue),
            if_unused=method.if_unused,
            if_empty=method.if_empty,
        )
        if not method.nowait:
            self._reply(m.QueueDeleteOk(message_count=count))

    # -- basic class: publishing --------------------------------------------------

    def on_basic_publish(self, method: m.BasicPublish, properties: bytes, body: bytes) -> None:
        if method.immediate:
            # RabbitMQ 3.0 dropped immediate delivery; it closes the connection.
            raise errors.not_implemented("immediate=true")
        message = Message(method.exchange, method.routing_key, properties, body)
        if properties != _NO_PROPERTIES:
            # Malformed properties must not reach a queue, a confirm or a
            # consumer's decoder: decode them now (once; the message keeps the
            # result). A bad header is 502 SYNTAX_ERROR on the connection;
            # RabbitMQ, which also decodes every publish's properties, closes
            # it with 541 (docs/compatibility.md).
            decoded = message.decoded_properties
            if decoded.user_id is not None:
                self._check_user_id(message)
            if decoded.expiration is not None:
                self._check_expiration(message)
        if self.transactional:
            self.vhost.check_publish(method.exchange)
            self._tx_publishes.append((method, message))
            return
        self._route(method, message)

    def _check_user_id(self, message: Message) -> None:
        # RabbitMQ validates the user-id property against the login
        # ("Validated User-ID" extension). Decoded once, kept by the message.
        user_id = message.decoded_properties.user_id
        user = self.connection.user
        if user_id != user:
            raise errors.precondition_failed(
                f"user_id property set to '{user_id}' but authenticated user was '{user}'"
            )

    @staticmethod
    def _check_expiration(message: Message) -> None:
        try:
            message.expiration_ms  # noqa: B018 - parsing is the check
        except ValueError as error:
            value = message.decoded_properties.expiration
            raise errors.precondition_failed(f"invalid expiration '{value}': {error}") from None

    def _route(self, method: m.BasicPublish, message: Message) -> None:
        """Route once, enqueue everywhere, owe a confirm: the publish hot path."""
        queues = self.vhost.route(method.exchange, message)
        accepted = True
        if queues:
            if message.headers is not None:
                message = message.without_bcc()
            for queue in queues:
                if not queue.enqueue(message):
                    accepted = False
                if len(queue.ready) > FLOW_BACKLOG and queue.consumers:
                    self.connection.note_backlog(queue)
        elif method.mandatory:
            self.connection.write(
                encode_basic_return(
                    self.number,
                    312,
                    "NO_ROUTE",
                    message.exchange,
                    message.routing_key,
                    message.properties,
                    message.body,
                    self.connection.frame_max,
                )
            )
        if self.confirm:
            seq = self.next_publish_seq
            self.next_publish_seq = seq + 1
            if not self._confirms:
                self.connection.owe_confirms(self)
            # With a journal, the confirm waits until everything journalled so
            # far is fsynced (group commit); confirms stay in publish order.
            journal = self.vhost.journal
            self._confirms.append((seq, accepted, journal.appended if journal else 0))

    def flush_confirms(self) -> None:
        """Send the confirms owed, coalesced: runs of acks become one multiple ack.

        Called by the connection once per read batch. Confirms are produced in
        publish order, so `multiple=true` up to the last tag of a run of acks
        is exact (it never covers a tag that still waits).
        """
        confirms = self._confirms
        if not confirms:
            return
        journal = self.vhost.journal
        if journal is not None and confirms[-1][2] > journal.synced:
            confirms, self._confirms = journal.split_synced(self, confirms)
            if not confirms:
                return
        else:
            self._confirms = []
        run_start = None
        last_ack = None
        for seq, accepted, _journalled in confirms:
            if accepted:
                if run_start is None:
                    run_start = seq
                last_ack = seq
                continue
            if last_ack is not None:
                self._reply(m.BasicAck(delivery_tag=last_ack, multiple=last_ack != run_start))
                run_start = last_ack = None
            self._reply(m.BasicNack(delivery_tag=seq, multiple=False, requeue=False))
        if last_ack is not None:
            self._reply(m.BasicAck(delivery_tag=last_ack, multiple=last_ack != run_start))

    # -- confirm and tx classes -------------------------------------------------------

    def on_confirm_select(self, method: m.ConfirmSelect) -> None:
        if self.transactional:
            raise errors.precondition_failed("cannot switch from tx to confirm mode")
        self.confirm = True
        if not method.nowait:
            self._reply(m.ConfirmSelectOk())

    def on_tx_select(self, method: m.TxSelect) -> None:
        if self.confirm:
            raise errors.precondition_failed("cannot switch from confirm to tx mode")
        self.transactional = True
        self._reply(m.TxSelectOk())

    def on_tx_commit(self, method: m.TxCommit) -> None:
        if not self.transactional:
            raise errors.precondition_failed("channel is not transactional")
        publishes, self._tx_publishes = self._tx_publishes, []
        acks, self._tx_acks = self._tx_acks, []
        journal = self.vhost.journal
        changes = journal.changes if journal is not None else 0
        for publish, message in publishes:
            # The exchange may have gone since the publish; RabbitMQ then
            # drops the message (it was validated when published).
            if self.vhost.has_exchange(publish.exchange):
                self._route(publish, message)
        for kind, deliveries, requeue in acks:
            self._settle(deliveries, requeue=requeue if kind != "ack" else None)
        if journal is not None and journal.changes != changes:
            # RabbitMQ sends commit-ok once the transaction's messages are
            # durable: here, after the fsync of its last record (publishes,
            # dead letters and acks), the position confirms wait for too.
            # The event loop goes on; this channel pauses so that nothing
            # it sends can overtake the commit-ok.
            position = journal.commit_point()
            if position > journal.synced:
                self.commit_at = position
                self.paused = True
                journal.wake_when_synced(self)
                return
        self._reply(m.TxCommitOk())

    def on_journal_synced(self) -> None:
        """The journal fsynced a batch: send the confirms and the commit-ok it covers."""
        self.flush_confirms()
        position = self.commit_at
        if position is None:
            return
        journal = self.vhost.journal
        if position > journal.synced:
            journal.wake_when_synced(self)
            return
        self.commit_at = None
        self._reply(m.TxCommitOk())
        # The commands held meanwhile are handled by the connection's task.
        self.connection.release_soon(self)

    def hold(self, command: Command) -> None:
        """Keep a command that arrived while paused, to handle after commit-ok."""
        self.held.append(command)
        size = 64 + len(command.body or b"")
        self.held_bytes += size
        self.connection.held_bytes += size

    def resume(self) -> deque[Command]:
        """Unpause (commit-ok was sent): send what the broker itself deferred
        (a basic.cancel), return the held commands for the connection to handle."""
        held, self.held = self.held, deque()
        self.connection.held_bytes -= self.held_bytes
        self.held_bytes = 0
        self.paused = False
        deferred, self._deferred = self._deferred, []
        if not self.closing:
            for method in deferred:
                self._reply(method)
        return held

    def on_tx_rollback(self, method: m.TxRollback) -> None:
        if not self.transactional:
            raise errors.precondition_failed("channel is not transactional")
        self._tx_publishes = []
        acks, self._tx_acks = self._tx_acks, []
        # Acks taken back: the deliveries are unacknowledged again, in tag order.
        restored = dict(self.unacked)
        for _kind, deliveries, _requeue in acks:
            restored.update(deliveries)
        self.unacked = dict(sorted(restored.items()))
        self._reply(m.TxRollbackOk())

    # -- basic class: consuming -----------------------------------------------------

    def on_basic_qos(self, method: m.BasicQos) -> None:
        if method.prefetch_size != 0:
            raise errors.not_implemented(f"prefetch_size!=0 ({method.prefetch_size})")
        if method.global_:
            self.global_prefetch = method.prefetch_count
            self.dispatch_all()
        else:
            self.prefetch_count = method.prefetch_count
        self._reply(m.BasicQosOk())

    def on_basic_consume(self, method: m.BasicConsume) -> None:
        queue = self.vhost.get_queue(self._queue_name(method.queue), self.connection)
        tag = method.consumer_tag or new_name("amq.ctag-")
        if tag in self.consumers:
            raise errors.not_allowed(f"attempt to reuse consumer tag '{tag}'")
        if queue.exclusive_consumer is not None or (method.exclusive and queue.consumers):
            raise errors.access_refused(f"queue '{queue.name}' in vhost '/' in exclusive use")
        consumer = Consumer(
            tag,
            self,
            queue,
            no_ack=method.no_ack,
            exclusive=method.exclusive,
            prefetch_count=self.prefetch_count,
            arguments=method.arguments or {},
        )
        self.consumers[tag] = consumer
        # consume-ok goes out before any delivery to the new consumer.
        if not method.nowait:
            self._reply(m.BasicConsumeOk(consumer_tag=tag))
        queue.add_consumer(consumer, method.exclusive)

    def on_basic_cancel(self, method: m.BasicCancel) -> None:
        consumer = self.consumers.pop(method.consumer_tag, None)
        if not method.nowait:
            self._reply(m.BasicCancelOk(consumer_tag=method.consumer_tag))
        if consumer is not None:
            self._remove_consumer(consumer)

    def _remove_consumer(self, consumer: Consumer) -> None:
        queue = consumer.queue
        queue.remove_consumer(consumer)
        if queue.should_auto_delete:
            self.vhost.auto_delete_queue(queue)

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: forget the consumer, tell the client if it can hear it."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if self.connection.consumer_cancel_notify and not self.closing:
            cancel = m.BasicCancel(consumer_tag=consumer.tag, nowait=True)
            if self.paused:
                self._deferred.append(cancel)  # not before a pending commit-ok
            else:
                self._reply(cancel)

    def on_basic_get(self, method: m.BasicGet) -> None:
        queue = self.vhost.get_queue(self._queue_name(method.queue), self.connection)
        entry = queue.get()
        if entry is None:
            self._reply(m.BasicGetEmpty())
            return
        tag = self.next_delivery_tag
        self.next_delivery_tag = tag + 1
        if not method.no_ack:
            self.unacked[tag] = Delivery(queue, entry, None)
        if queue.journal is not None:
            queue.journal.delivered(entry, method.no_ack)
        message = entry.message
        self.connection.write(
            encode_basic_get_ok(
                self.number,
                tag,
                entry.redelivered,
                message.exchange,
                message.routing_key,
                queue.message_count,
                message.properties,
                message.body,
                self.connection.frame_max,
            )
        )

    # -- acknowledgements -----------------------------------------------------------------

    def _take(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Delivery]]:
        """Remove and return the deliveries an ack/nack/reject refers to.

        An unknown tag (never delivered, or already acknowledged) is 406
        PRECONDITION_FAILED, as RabbitMQ answers; `multiple` with tag 0 means
        every outstanding delivery (spec 1.8.3.13).
        """
        unacked = self.unacked
        if multiple:
            if delivery_tag == 0:
                taken = list(unacked.items())
                unacked.clear()
                return taken
            if delivery_tag not in unacked:
                raise errors.precondition_failed(f"unknown delivery tag {delivery_tag}")
            taken = []
            for tag in list(unacked):
                if tag > delivery_tag:
                    break
                taken.append((tag, unacked.pop(tag)))
            return taken
        delivery = unacked.pop(delivery_tag, None)
        if delivery is None:
            raise errors.precondition_failed(f"unknown delivery tag {delivery_tag}")
        return [(delivery_tag, delivery)]

    def on_basic_ack(self, method: m.BasicAck) -> None:
        taken = self._take(method.delivery_tag, method.multiple)
        if self.transactional:
            self._tx_acks.append(("ack", taken, False))
        else:
            self._settle(taken, requeue=None)

    def on_basic_reject(self, method: m.BasicReject) -> None:
        taken = self._take(method.delivery_tag, False)
        if self.transactional:
            self._tx_acks.append(("reject", taken, method.requeue))
        else:
            self._settle(taken, requeue=method.requeue)

    def on_basic_nack(self, method: m.BasicNack) -> None:
        taken = self._take(method.delivery_tag, method.multiple)
        if self.transactional:
            self._tx_acks.append(("nack", taken, method.requeue))
        else:
            self._settle(taken, requeue=method.requeue)

    def _settle(self, taken: list[tuple[int, Delivery]], requeue: bool | None) -> None:
        """Finish deliveries: forget them (ack, or reject without requeue) or requeue.

        `requeue=None` is an ack. Credit comes back, so the queues that fed
        these consumers are dispatched again.
        """
        if requeue is None and len(taken) == 1:
            # The common case, one basic.ack: no grouping needed.
            _tag, delivery = taken[0]
            if delivery.queue.journal is not None:
                delivery.queue.journal.forget(delivery.entry)
            consumer = delivery.consumer
            if consumer is not None:
                consumer.unacked_count -= 1
                self.unacked_count -= 1
                if self.global_prefetch:
                    self.dispatch_all()
                else:
                    consumer.queue.dispatch()
            return
        to_requeue: dict[Queue, list[QueuedMessage]] = {}
        to_dead_letter: dict[Queue, list[QueuedMessage]] = {}
        to_dispatch: set[Queue] = set()
        for _tag, delivery in taken:
            consumer = delivery.consumer
            if consumer is not None:
                consumer.unacked_count -= 1
                self.unacked_count -= 1
                to_dispatch.add(consumer.queue)
            if requeue:
                to_requeue.setdefault(delivery.queue, []).append(delivery.entry)
            else:
                if delivery.queue.journal is not None:
                    delivery.queue.journal.forget(delivery.entry)
                if requeue is not None and delivery.queue.dead_letter_exchange is not None:
                    to_dead_letter.setdefault(delivery.queue, []).append(delivery.entry)
        for queue, entries in to_requeue.items():
            queue.requeue(entries)
        for queue, entries in to_dead_letter.items():
            queue.dead_letter(entries, "rejected")
        if self.global_prefetch:
            self.dispatch_all()
        else:
            for queue in to_dispatch:
                queue.dispatch()

    def on_basic_recover_async(self, method: m.BasicRecoverAsync) -> None:
        self._recover(method.requeue)

    def on_basic_recover(self, method: m.BasicRecover) -> None:
        self._recover(method.requeue)
        self._reply(m.BasicRecoverOk())

    def _recover(self, requeue: bool) -> None:
        # RabbitMQ implements only requeue=true (rabbit_channel.erl:
        # "NOT_IMPLEMENTED - requeue=false").
        if not requeue:
            raise errors.not_implemented("requeue=false")
        taken = list(self.unacked.items())
        self.unacked.clear()
        self._settle(taken, requeue=True)

    def dispatch_all(self) -> None:
        """Let every queue this channel consumes from deliver what its credit allows."""
        for queue in {c.queue for c in self.consumers.values()}:
            queue.dispatch()

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """The channel is closing (either side): cancel consumers, requeue unacked.

        Spec 1.8.3.3 / RabbitMQ: unacknowledged messages of a closed channel
        are requeued; held transactional work is discarded.
        """
        if self.closing:
            return
        self.closing = True
        self._tx_publishes = []
        self.commit_at = None  # no commit-ok on a closed channel
        self.resume()  # held commands are dropped with the channel
        held = [d for _k, deliveries, _r in self._tx_acks for d in deliveries]
        self._tx_acks = []
        consumers = list(self.consumers.values())
        self.consumers.clear()
        for consumer in consumers:
            consumer.queue.remove_consumer(consumer)
        taken = list(self.unacked.items()) + held
        self.unacked.clear()
        self._settle(taken, requeue=True)
        for consumer in consumers:
            if consumer.queue.should_auto_delete:
                self.vhost.auto_delete_queue(consumer.queue)
        self._confirms = []
