"""One channel and the methods it carries (AMQP 0-9-1 section 4.2.4).

A `Channel` turns methods into calls on its vhost and keeps what RabbitMQ
keeps per channel, each job in its own module:

- publisher confirms (`confirms.PublisherConfirms`);
- transactions and the pause while a commit waits for the journal
  (`transactions.Transaction`);
- deliveries not yet acknowledged, by delivery tag (`acks.Acknowledgements`);
- its consumers, by consumer tag (`consumers.Consumer`), and its consumer
  of the direct reply-to pseudo-queue `amq.rabbitmq.reply-to`
  (`broker.core.direct_reply_to`), which is not a queue's consumer;
- prefetch: `basic.qos global=false` sets the limit for each consumer created
  afterwards on the channel, `global=true` a limit shared by the whole
  channel (RabbitMQ's reading, not the 0-9-1 text; see docs/compatibility.md).

Every handler runs synchronously inside the connection's read loop: no await,
no task per message. Errors are raised as `AMQPError` and turned into
channel.close or connection.close by the connection.
"""

from __future__ import annotations

from typing import Any, Protocol

from broker.auth.access import UserAccess
from broker.core import errors
from broker.core.direct_reply_to import REPLY_TO, is_reply_queue
from broker.core.features import consumers as consumer_rules
from broker.core.features.arguments import queue_type_of
from broker.core.message import Envelope, Message, QueuedMessage, copy_properties
from broker.core.names import new_name
from broker.core.queue import Queue
from broker.core.stream import (
    OFFSET_HEADER,
    StreamQueue,
    start_offset,
    stream_filter_of,
    stream_refusal,
)
from broker.core.stream import check_consume as check_stream_consume
from broker.core.vhost import VHost
from broker.session import authorization
from broker.session.acks import Acknowledgements, Taken
from broker.session.confirms import PublisherConfirms, confirm_methods
from broker.session.consumers import Consumer, Delivery
from broker.session.counters import ChannelCounters, QueueUse
from broker.session.output import Output
from broker.session.transactions import Transaction
from broker.storage.journal import Journal
from protocol import methods as m
from protocol.connection import Command
from protocol.frames import encode_basic_deliver, encode_basic_get_ok, encode_basic_return
from protocol.properties import BasicProperties

__all__ = ["Channel", "ChannelOwner", "FLOW_BACKLOG"]

# A content header without properties: the flags word, no bit set (spec 4.2.6.1).
_NO_PROPERTIES = b"\x00\x00"

#: Routing keys for which a channel keeps the last envelope (then it starts over).
_ENVELOPES_MAX = 1024

_new_message = object.__new__

#: A queue with consumers and more ready messages than this slows down the
#: connections publishing to it (see ClientConnection._flow_control).
FLOW_BACKLOG = 2000

#: Queues a channel keeps per-queue counts for before it merges those of the
#: deleted ones (statistics; see Channel._forget_deleted_queues).
QUEUE_USE_LIMIT = 256


class ChannelOwner(Protocol):
    """What a channel needs from its connection (`ClientConnection`)."""

    output: Output
    frame_max: int
    #: The authenticated user (publishes' user-id property is checked against it).
    user: str | None
    consumer_cancel_notify: bool
    #: Bytes of commands held by paused channels (read-loop backpressure).
    held_bytes: int

    @property
    def peer_text(self) -> str: ...

    def send_method(self, channel: int, method: Any) -> None: ...

    def note_backlog(self, queue: Queue) -> None: ...

    def owe_confirms(self, channel: Channel) -> None: ...

    def release_soon(self, channel: Channel) -> None: ...

    def consumer_timeout_hint(self, timeout: int | None) -> None:
        """Deliveries may now come from a queue with this consumer timeout (ms)."""
        ...


class Channel:
    """One open channel of a client connection."""

    def __init__(
        self,
        number: int,
        connection: ChannelOwner,
        vhost: VHost,
        access: UserAccess,
        journal: Journal | None,
    ) -> None:
        self.number = number
        self.connection = connection
        self.output = connection.output
        self.vhost = vhost
        #: What the connection's user may do in the vhost (docs/security.md).
        self.access = access
        self.journal = journal
        self.flow_active = True
        self.closing = False
        self.confirms = PublisherConfirms()
        self.transaction: Transaction | None = None  # tx.select
        #: A tx.commit waits for the journal: deliveries stop and the
        #: commands that follow are held until commit-ok is sent.
        self.paused = False
        # basic.qos
        self.prefetch_count = 0  # applied to consumers created afterwards
        self.global_prefetch = 0  # shared by all consumers of the channel
        self.acks = Acknowledgements()
        # The last envelope published with each routing key (on_basic_publish).
        self._envelopes: dict[str, Envelope] = {}
        self._last_exchange = ""
        self.consumers: dict[str, Consumer] = {}
        #: basic.consume of `amq.rabbitmq.reply-to`: (consumer tag, the name
        #: replies are addressed to), or None.
        self.reply_consumer: tuple[str, str] | None = None
        self.last_queue_name: str | None = None
        # -- statistics (broker.core.stats; read by `counters()`) -------------------
        # Publishes (and the queue copies they became) are counted in runs
        # per exchange: one compare and two increments per message, and
        # per-exchange counts without a lookup. An exchange's statistics are
        # the sums over channels (broker.core.stats).
        self.publish_exchange = ""
        self.publish_run = 0
        self.publish_run_out = 0
        self.published: dict[str, int] = {}
        self.routed: dict[str, int] = {}
        #: Confirms sent (basic.ack), counted per batch.
        self.confirmed = 0
        #: Unroutable messages returned (mandatory) or dropped, by exchange.
        self.returned_unroutable: dict[str, int] = {}
        self.dropped_unroutable: dict[str, int] = {}
        #: Consumers cancelled while deliveries of theirs wait for an ack:
        #: they still count here until those are settled.
        self.retired_consumers: list[Consumer] = []
        #: Counts per queue that outlive consumers, and basic.get's; those of
        #: deleted queues are merged into `gone_queues` past QUEUE_USE_LIMIT.
        self.queue_use: dict[Queue, QueueUse] = {}
        self.gone_queues = QueueUse()
        vhost.counters.channel_created += 1

    @property
    def unacked_count(self) -> int:
        """Deliveries to this channel's consumers not yet acknowledged (global prefetch)."""
        return self.acks.consumer_unacked

    def _reply(self, method: Any) -> None:
        self.connection.send_method(self.number, method)

    # -- delivery (called by Queue.dispatch through the Consumer) -----------------

    def deliver(self, consumer: Consumer, queue: Queue, entry: QueuedMessage) -> None:
        acks = self.acks
        tag = acks.next_tag  # inline `next_delivery_tag()`: once per message
        acks.next_tag = tag + 1
        if not consumer.no_ack:
            acks.unacked[tag] = Delivery(queue, entry, consumer)
            consumer.unacked_count += 1
            acks.consumer_unacked += 1
        message = entry.message
        envelope = message.envelope
        self.output.write(
            encode_basic_deliver(
                self.number,
                consumer.tag,
                tag,
                entry.redelivered,
                envelope.exchange,
                envelope.routing_key,
                envelope.properties,
                message.body,
                self.connection.frame_max,
            )
        )

    def deliver_reply(self, message: Message) -> None:
        """A reply to our `amq.rabbitmq.reply-to` consumer: write it now.

        As RabbitMQ (rabbit_channel handle_cast deliver_reply): no queue, no
        prefetch, never redelivered, and the delivery tag is the channel's
        next one without taking it (a no-ack delivery is never acknowledged,
        so RabbitMQ does not count it: the next delivery gets the same tag).
        """
        reply = self.reply_consumer
        if reply is None or self.closing:
            return
        envelope = message.envelope
        self.output.write(
            encode_basic_deliver(
                self.number,
                reply[0],
                self.acks.next_tag,
                False,
                envelope.exchange,
                envelope.routing_key,
                envelope.properties,
                message.body,
                self.connection.frame_max,
            )
        )

    # -- channel class ------------------------------------------------------------

    def on_channel_flow(self, method: m.ChannelFlow) -> None:
        # RabbitMQ 3.x refuses client-side flow control to stop deliveries:
        # channel.flow active=false is 540 NOT_IMPLEMENTED (rabbit_channel.erl).
        if not method.active:
            raise errors.not_implemented("active=false")
        self._reply(m.ChannelFlowOk(active=True))

    def on_channel_flow_ok(self, method: m.ChannelFlowOk) -> None:
        # We never send channel.flow, so there is nothing to acknowledge.
        return

    # -- exchange class -----------------------------------------------------------

    def on_exchange_declare(self, method: m.ExchangeDeclare) -> None:
        if not method.passive:
            authorization.declare_exchange(
                self.access, self.vhost, method.exchange, method.type, method.arguments or {}
            )
        self.vhost.declare_exchange(
            method.exchange,
            method.type,
            passive=method.passive,
            durable=method.durable,
            auto_delete=method.auto_delete,
            internal=method.internal,
            arguments=method.arguments or {},
            peer=self.connection.peer_text,
            user=self.connection.user,
        )
        if not method.nowait:
            self._reply(m.ExchangeDeclareOk())

    def on_exchange_delete(self, method: m.ExchangeDelete) -> None:
        authorization.delete_exchange(self.access, self.vhost, method.exchange)
        self.vhost.delete_exchange(
            method.exchange, if_unused=method.if_unused, peer=self.connection.peer_text
        )
        if not method.nowait:
            self._reply(m.ExchangeDeleteOk())

    def on_exchange_bind(self, method: m.ExchangeBind) -> None:
        authorization.bind_exchange(
            self.access, self.vhost, method.destination, method.source, method.routing_key
        )
        self.vhost.bind_exchange(
            method.destination, method.source, method.routing_key, method.arguments or {}
        )
        if not method.nowait:
            self._reply(m.ExchangeBindOk())

    def on_exchange_unbind(self, method: m.ExchangeUnbind) -> None:
        authorization.bind_exchange(
            self.access, self.vhost, method.destination, method.source, method.routing_key
        )
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
        if is_reply_queue(name):
            self._declare_reply_queue(name, method.nowait)
            return
        check_configure, check_new = authorization.queue_declare_checks(self.access, self.vhost)
        queue = self.vhost.declare_queue(
            self.connection,
            name,
            passive=method.passive,
            durable=method.durable,
            exclusive=method.exclusive,
            auto_delete=method.auto_delete,
            arguments=method.arguments or {},
            check_configure=check_configure,
            check_new=check_new,
        )
        self.last_queue_name = queue.name
        if not method.nowait:
            queue.expire()  # declare-ok counts no message past its TTL, as RabbitMQ
            self._reply(
                m.QueueDeclareOk(
                    queue=queue.name,
                    message_count=queue.message_count,
                    consumer_count=queue.consumer_count,
                )
            )

    def _declare_reply_queue(self, name: str, nowait: bool) -> None:
        """queue.declare of `amq.rabbitmq.reply-to` or a name under it.

        RabbitMQ treats every such declare as passive, whatever its flags and
        without a permission check: the pseudo-queue itself always exists,
        a reply name exists while its consumer does (from any connection),
        and either is said to have no message and one consumer. Any other
        name under the prefix is 404.
        """
        if not self.vhost.replies.exists(name):
            raise errors.queue_not_found(name, self.vhost.name)
        self.last_queue_name = name
        if not nowait:
            self._reply(m.QueueDeclareOk(queue=name, message_count=0, consumer_count=1))

    def on_queue_bind(self, method: m.QueueBind) -> None:
        queue = self._queue_name(method.queue)
        authorization.bind_queue(
            self.access, self.vhost, queue, method.exchange, method.routing_key
        )
        self.vhost.bind_queue(
            self.connection,
            queue,
            method.exchange,
            method.routing_key,
            method.arguments or {},
        )
        if not method.nowait:
            self._reply(m.QueueBindOk())

    def on_queue_unbind(self, method: m.QueueUnbind) -> None:
        queue = self._queue_name(method.queue)
        authorization.bind_queue(
            self.access, self.vhost, queue, method.exchange, method.routing_key
        )
        self.vhost.unbind_queue(
            self.connection,
            queue,
            method.exchange,
            method.routing_key,
            method.arguments or {},
        )
        self._reply(m.QueueUnbindOk())

    def on_queue_purge(self, method: m.QueuePurge) -> None:
        queue = self._queue_name(method.queue)
        self.access.check("read", "queue", queue)
        count = self.vhost.purge_queue(self.connection, queue)
        if not method.nowait:
            self._reply(m.QueuePurgeOk(message_count=count))

    def on_queue_delete(self, method: m.QueueDelete) -> None:
        queue = self._queue_name(method.queue)
        self.access.check("configure", "queue", queue)
        count = self.vhost.delete_queue(
            self.connection,
            queue,
            if_unused=method.if_unused,
            if_empty=method.if_empty,
        )
        if not method.nowait:
            self._reply(m.QueueDeleteOk(message_count=count))

    # -- basic class: publishing ------------------------------------------------------

    def on_basic_publish(self, method: m.BasicPublish, properties: bytes, body: bytes) -> None:
        if method.immediate:
            # RabbitMQ 3.0 dropped immediate delivery; it closes the connection.
            raise errors.not_implemented("immediate=true")
        exchange = method.exchange
        access = self.access
        if exchange not in access.writable_exchanges:  # a set lookup once cached
            access.check_publish(exchange)
            # First publish to it since the permissions (or the user's tags)
            # last changed: envelopes validated before are checked again.
            self._envelopes.clear()
        if access.topic_restricted:
            self._check_topic_publish(exchange, method.routing_key)
        # Messages share the envelope (exchange, routing key, properties) of
        # the channel's previous publish with the same routing key when it
        # says the same: no per-message copy of those, and properties that
        # were validated once are not decoded again.
        envelope = self._envelopes.get(method.routing_key)
        if (
            envelope is None
            or envelope.properties != properties
            or envelope.exchange != method.exchange
        ):
            message = self._with_new_envelope(method, properties, body, envelope)
        else:
            message = _new_message(Message)
            message.envelope = envelope
            message.body = body
        transaction = self.transaction
        if transaction is not None:
            self.vhost.check_publish(method.exchange)
            if not method.exchange:
                # RabbitMQ routes a transactional publish when it arrives and
                # only enqueues at commit: a direct reply goes to its
                # requester at once, and a rollback does not take it back.
                self.vhost.deliver_replies(message)
            transaction.publishes.append((method, message))
            return
        self._route(method, message)

    def _with_new_envelope(
        self, method: m.BasicPublish, properties: bytes, body: bytes, replaced: Envelope | None
    ) -> Message:
        """The message of a publish with a new envelope, validated; the next
        publishes with its routing key share the envelope."""
        exchange = method.exchange
        key = method.routing_key
        if replaced is not None:  # same key, other properties: share the strs
            key = replaced.routing_key
        if exchange == self._last_exchange:
            exchange = self._last_exchange  # one str per exchange name, not per message
        else:
            self._last_exchange = exchange
        envelope = Envelope(exchange, key, properties)
        message: Message = _new_message(Message)
        message.envelope = envelope
        message.body = body
        if properties != _NO_PROPERTIES:
            # RabbitMQ looks the exchange up before it reads the properties:
            # a missing exchange is 404 even when the properties are bad.
            self.vhost.check_publish(exchange)
            # Malformed properties must not reach a queue, a confirm or a
            # consumer's decoder: decode them now (once per envelope). A bad
            # header is 502 SYNTAX_ERROR on the connection; RabbitMQ, which
            # also decodes every publish's properties, closes it with 541
            # (docs/compatibility.md).
            decoded = message.decoded_properties
            if decoded.reply_to == REPLY_TO:
                decoded = self._with_reply_name(envelope, decoded)
            if decoded.user_id is not None:
                self._check_user_id(message)
            if decoded.expiration is not None:
                self._check_expiration(message)
        envelopes = self._envelopes
        if replaced is not None:
            replaced.decoded = None  # its messages decode again if they must
        elif len(envelopes) >= _ENVELOPES_MAX:
            for old in envelopes.values():  # unbounded key spaces: start over
                old.decoded = None
            envelopes.clear()
        envelopes[key] = envelope
        return message

    def _with_reply_name(self, envelope: Envelope, decoded: BasicProperties) -> BasicProperties:
        """`reply_to = amq.rabbitmq.reply-to`: rewrite it to this channel's
        reply name, in the envelope the new message has to itself (RabbitMQ's
        maybe_set_fast_reply_to, checked after the exchange and before
        user_id). The next publish with the same properties compares unequal
        to the rewritten ones, so it comes through here again."""
        reply = self.reply_consumer
        if reply is None:
            raise errors.precondition_failed("fast reply consumer does not exist")
        rewritten = copy_properties(decoded, reply_to=reply[1])
        envelope.properties = rewritten.encode()
        envelope.decoded = rewritten
        return rewritten

    def _check_topic_publish(self, exchange: str, routing_key: str) -> None:
        """A user with topic permissions publishing to a topic exchange: check
        the routing key (after the exchange's own checks, as RabbitMQ)."""
        self.vhost.check_publish(exchange)
        if self.vhost.topology.exchanges[exchange].type == "topic":
            self.access.check_topic("write", exchange, routing_key)

    def _check_user_id(self, message: Message) -> None:
        # RabbitMQ validates the user-id property against the login
        # ("Validated User-ID" extension), unless the user is tagged
        # impersonator. Decoded once, kept by the message.
        user_id = message.decoded_properties.user_id
        user = self.connection.user
        if user_id != user and not self.access.is_impersonator:
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

    def _route(self, method: m.BasicPublish, message: Message, replies: bool = True) -> None:
        """Route once, enqueue everywhere, owe a confirm: the publish hot path.

        `replies` false: direct replies were delivered already (a transaction's).
        """
        exchange = method.exchange
        queues = self.vhost.route(exchange, message, replies)
        if exchange != self.publish_exchange:
            self._publish_run_ends(exchange)
        self.publish_run += 1
        accepted = True
        if queues:
            self.publish_run_out += len(queues)
            if message.headers is not None:
                message = message.without_bcc()
            for queue in queues:
                if not queue.enqueue(message):
                    accepted = False
                if len(queue.ready) > FLOW_BACKLOG and queue.consumers:
                    self.connection.note_backlog(queue)
        elif method.mandatory:
            self.output.write(
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
            self.returned_unroutable[exchange] = self.returned_unroutable.get(exchange, 0) + 1
        else:
            self.dropped_unroutable[exchange] = self.dropped_unroutable.get(exchange, 0) + 1
        confirms = self.confirms
        if confirms.enabled:
            # With a journal, the confirm waits until everything journalled so
            # far is fsynced (group commit); confirms stay in publish order.
            journal = self.journal
            if confirms.owe(accepted, journal.appended if journal else 0):
                self.connection.owe_confirms(self)

    def _publish_run_ends(self, exchange: str) -> None:
        """Publishes go to another exchange now: file the run that ended."""
        if self.publish_run:
            previous = self.publish_exchange
            self.published[previous] = self.published.get(previous, 0) + self.publish_run
            self.routed[previous] = self.routed.get(previous, 0) + self.publish_run_out
        self.publish_exchange = exchange
        self.publish_run = self.publish_run_out = 0

    def flush_confirms(self) -> None:
        """Send the confirms owed that may go now (coalesced; see `confirms`).

        Called by the connection once per read batch, and by the journal
        (through `on_journal_synced`) after an fsync.
        """
        owed = self.confirms.owed
        if not owed:
            return
        journal = self.journal
        if journal is not None and owed[-1][2] > journal.synced:
            ready, self.confirms.owed = journal.split_synced(self, owed)
            if not ready:
                return
        else:
            ready = owed
            self.confirms.owed = []
        nacked = 0
        for method in confirm_methods(ready):
            if type(method) is m.BasicNack:
                nacked += 1
            self._reply(method)
        self.confirmed += len(ready) - nacked

    # -- confirm and tx classes -----------------------------------------------------------

    def on_confirm_select(self, method: m.ConfirmSelect) -> None:
        if self.transaction is not None:
            raise errors.precondition_failed("cannot switch from tx to confirm mode")
        self.confirms.enabled = True
        if not method.nowait:
            self._reply(m.ConfirmSelectOk())

    def on_tx_select(self, method: m.TxSelect) -> None:
        if self.confirms.enabled:
            raise errors.precondition_failed("cannot switch from confirm to tx mode")
        if self.transaction is None:
            self.transaction = Transaction()
        self._reply(m.TxSelectOk())

    def _transaction(self) -> Transaction:
        if self.transaction is None:
            raise errors.precondition_failed("channel is not transactional")
        return self.transaction

    def on_tx_commit(self, method: m.TxCommit) -> None:
        transaction = self._transaction()
        publishes, acks = transaction.take_work()
        journal = self.journal
        changes = journal.changes if journal is not None else 0
        for publish, message in publishes:
            # The exchange may have gone since the publish; RabbitMQ then
            # drops the message (it was validated when published).
            if self.vhost.has_exchange(publish.exchange):
                self._route(publish, message, replies=False)
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
                transaction.commit_at = position
                self.paused = True
                journal.wake_when_synced(self)
                return
        self._reply(m.TxCommitOk())

    def on_tx_rollback(self, method: m.TxRollback) -> None:
        transaction = self._transaction()
        transaction.publishes = []
        # Acks taken back: the deliveries are unacknowledged again, in tag order.
        self.acks.restore(transaction.acknowledged())
        self._reply(m.TxRollbackOk())

    def on_journal_synced(self) -> None:
        """The journal fsynced a batch: send the confirms and the commit-ok it covers."""
        if self.closing:
            return
        self.flush_confirms()
        transaction = self.transaction
        if transaction is None or transaction.commit_at is None:
            return
        journal = self.journal
        assert journal is not None
        if transaction.commit_at > journal.synced:
            journal.wake_when_synced(self)
            return
        transaction.commit_at = None
        self._reply(m.TxCommitOk())
        # The commands held meanwhile are handled by the connection's task.
        self.connection.release_soon(self)

    @property
    def commit_pending(self) -> bool:
        """Is a tx.commit waiting for the journal (commit-ok not sent yet)?"""
        return self.transaction is not None and self.transaction.commit_at is not None

    def hold(self, command: Command) -> None:
        """Keep a command that arrived while paused, to handle after commit-ok."""
        assert self.transaction is not None  # only a commit pauses a channel
        self.connection.held_bytes += self.transaction.hold(command)

    def resume(self) -> list[Command]:
        """Unpause (commit-ok was sent): send what the broker itself deferred
        (a basic.cancel), return the held commands for the connection to handle."""
        self.paused = False
        if self.transaction is None:
            return []
        held, size, deferred = self.transaction.release()
        self.connection.held_bytes -= size
        if not self.closing:
            for method in deferred:
                self._reply(method)
        return list(held)

    # -- basic class: consuming -------------------------------------------------------

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
        name = self._queue_name(method.queue)
        if name == REPLY_TO:
            self._consume_replies(method)
            return
        self.access.check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.connection)
        tag = method.consumer_tag or new_name("amq.ctag-")
        if tag in self.consumers:
            raise errors.not_allowed(f"attempt to reuse consumer tag '{tag}'")
        # x-priority and the other consumer arguments; exclusivity (with a
        # single active consumer: features.consumers).
        priority = consumer_rules.consumer_priority(
            queue.name, self.vhost.name, method.arguments or {}, queue_type_of(queue.arguments)
        )
        stream = isinstance(queue, StreamQueue)
        exclusive = method.exclusive
        if stream:
            offset = (method.arguments or {}).get(OFFSET_HEADER)
            start_offset(queue.log, offset)  # a bad one is refused before consume-ok
            stream_filter = stream_filter_of(queue, method.arguments or {})
            check_stream_consume(queue, method.no_ack, self.prefetch_count)
            # RabbitMQ 3.10.8 takes `exclusive` on a stream and enforces
            # nothing (a second consumer is let in): so does Warren.
            exclusive = False
        consumer_rules.check_consume(queue, exclusive, self.vhost.name)
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
        if not method.no_ack:
            self.connection.consumer_timeout_hint(queue.consumer_timeout)
        # consume-ok goes out before any delivery to the new consumer.
        if not method.nowait:
            self._reply(m.BasicConsumeOk(consumer_tag=tag))
        if stream:
            queue.add_consumer(consumer, exclusive, priority, offset, stream_filter)
        else:
            queue.add_consumer(consumer, method.exclusive, priority)

    def _consume_replies(self, method: m.BasicConsume) -> None:
        """basic.consume of `amq.rabbitmq.reply-to` (RabbitMQ 3.10's checks, in
        its order): no permission is checked, the tag must not be a queue
        consumer's (530), the consumer must be no-ack and the channel's only
        one (406); `exclusive` and arguments change nothing."""
        tag = method.consumer_tag
        if tag in self.consumers:
            raise errors.not_allowed(f"attempt to reuse consumer tag '{tag}'")
        if not method.no_ack:
            raise errors.precondition_failed("reply consumer cannot acknowledge")
        if self.reply_consumer is not None:
            raise errors.precondition_failed("reply consumer already set")
        tag = tag or new_name("amq.ctag-")
        self.reply_consumer = (tag, self.vhost.replies.register(self))
        if not method.nowait:
            self._reply(m.BasicConsumeOk(consumer_tag=tag))

    def _cancel_replies(self) -> None:
        """Forget the reply consumer: replies to its name are dropped from now on."""
        if self.reply_consumer is not None:
            self.vhost.replies.unregister(self.reply_consumer[1])
            self.reply_consumer = None

    def on_basic_cancel(self, method: m.BasicCancel) -> None:
        reply = self.reply_consumer
        if reply is not None and reply[0] == method.consumer_tag:
            # Looked at first, as RabbitMQ does: a queue consumer may share the tag.
            self._cancel_replies()
            if not method.nowait:
                self._reply(m.BasicCancelOk(consumer_tag=method.consumer_tag))
            return
        consumer = self.consumers.pop(method.consumer_tag, None)
        if not method.nowait:
            self._reply(m.BasicCancelOk(consumer_tag=method.consumer_tag))
        if consumer is not None:
            queue = consumer.queue
            queue.remove_consumer(consumer)
            self._retire(consumer)
            if queue.should_auto_delete:
                self.vhost.auto_delete_queue(queue)
            elif queue.dispatch_groups is not None and queue.dispatch_groups.dispatch_on_cancel:
                queue.dispatch()  # a single active consumer's successor starts

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: forget the consumer, tell the client if it can hear it."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        self._retire(consumer)
        if self.connection.consumer_cancel_notify and not self.closing:
            cancel = m.BasicCancel(consumer_tag=consumer.tag, nowait=True)
            if self.paused and self.transaction is not None:
                self.transaction.deferred.append(cancel)  # not before a pending commit-ok
            else:
                self._reply(cancel)

    def on_basic_get(self, method: m.BasicGet) -> None:
        name = self._queue_name(method.queue)
        self.access.check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.connection)
        consumer_rules.check_get(queue, self.vhost.name)
        entry = queue.get()
        use = self._queue_use(queue)
        if entry is None:
            use.get_empty += 1
            self._reply(m.BasicGetEmpty())
            return
        queue.handed_out(entry, method.no_ack)
        if method.no_ack:
            use.get_no_ack += 1
        else:
            use.get += 1
        if entry.redelivered:
            use.redeliver += 1
        tag = self.acks.next_delivery_tag()
        if not method.no_ack:
            self.acks.record(tag, queue, entry, None)
            self.connection.consumer_timeout_hint(queue.consumer_timeout)
        message = entry.message
        self.output.write(
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

    # -- acknowledgements ---------------------------------------------------------------

    def on_basic_ack(self, method: m.BasicAck) -> None:
        taken = self.acks.take(method.delivery_tag, method.multiple)
        if self.transaction is not None:
            self.transaction.acks.append(("ack", taken, False))
        elif len(taken) == 1:
            # The common case, one basic.ack of one delivery: no grouping.
            delivery = taken[0][1]
            delivery.queue.ack(delivery.entry)
            consumer = delivery.consumer
            if consumer is not None:
                consumer.unacked_count -= 1
                self.acks.consumer_unacked -= 1
                if self.global_prefetch:
                    self.dispatch_all()
                else:
                    consumer.queue.dispatch()
            else:
                self.acks.count_get_ack(delivery.queue)
        else:
            self._settle(taken, requeue=None)

    def _refuse_stream_settlement(self, delivery_tag: int, multiple: bool) -> None:
        """basic.nack and basic.reject of a stream's delivery: RabbitMQ 3.10.8's
        540 (whatever requeue says), before anything is settled."""
        unacked = self.acks.unacked
        if not multiple:
            delivery = unacked.get(delivery_tag)
            if delivery is not None and isinstance(delivery.queue, StreamQueue):
                raise stream_refusal(delivery.queue, "basic.nack and basic.reject")
            return
        for tag, delivery in unacked.items():  # in tag order
            if delivery_tag and tag > delivery_tag:
                break
            if isinstance(delivery.queue, StreamQueue):
                raise stream_refusal(delivery.queue, "basic.nack and basic.reject")

    def on_basic_reject(self, method: m.BasicReject) -> None:
        self._refuse_stream_settlement(method.delivery_tag, False)
        taken = self.acks.take(method.delivery_tag, False)
        if self.transaction is not None:
            self.transaction.acks.append(("reject", taken, method.requeue))
        else:
            self._settle(taken, requeue=method.requeue)

    def on_basic_nack(self, method: m.BasicNack) -> None:
        self._refuse_stream_settlement(method.delivery_tag, method.multiple)
        taken = self.acks.take(method.delivery_tag, method.multiple)
        if self.transaction is not None:
            self.transaction.acks.append(("nack", taken, method.requeue))
        else:
            self._settle(taken, requeue=method.requeue)

    def _settle(self, taken: Taken, requeue: bool | None) -> None:
        """Settle deliveries (see `Acknowledgements.settle`), then dispatch the
        queues whose consumers got credit back."""
        credited = self.acks.settle(taken, requeue)
        if self.global_prefetch:
            self.dispatch_all()
        else:
            for queue in credited:
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
        for delivery in self.acks.unacked.values():
            if isinstance(delivery.queue, StreamQueue):
                # RabbitMQ 3.10.8 fails here with 541 INTERNAL_ERROR (a crash);
                # Warren refuses as it refuses nack and reject (docs/streams.md).
                raise stream_refusal(delivery.queue, "basic.recover")
        self._settle(self.acks.take_all(), requeue=True)

    def consumer_timed_out(self, now: float, default: int | None) -> int | None:
        """The consumer timeout (ms) that the oldest unacknowledged delivery has
        outlived, or None. `default` is the node's `consumer_timeout`.

        As RabbitMQ (rabbit_channel evaluate_consumer_timeout): only the
        oldest delivery counts, consumer's or basic.get's, with its queue's
        timeout (3.12+: policy or argument) or else the node's; it has timed
        out when it was delivered more than that long ago. Called
        periodically by the connection; `now` is `time.monotonic()`.
        """
        if self.closing:
            return None
        oldest = self.acks.oldest_outstanding(now)
        if oldest is None:
            return None
        delivery, delivered_by = oldest
        timeout = delivery.queue.consumer_timeout
        if timeout is None:
            timeout = default
        if timeout is not None and (now - delivered_by) * 1000 > timeout:
            return timeout
        return None

    def shortest_consumer_timeout(self) -> int | None:
        """The shortest timeout of a queue this channel consumes from or has
        its oldest unacknowledged delivery from (None: only the node's)."""
        shortest: int | None = None
        queues = [consumer.queue for consumer in self.consumers.values()]
        if self.acks.unacked:
            queues.append(next(iter(self.acks.unacked.values())).queue)
        for queue in queues:
            timeout = queue.consumer_timeout
            if timeout is not None and (shortest is None or timeout < shortest):
                shortest = timeout
        return shortest

    def dispatch_all(self) -> None:
        """Let every queue this channel consumes from deliver what its credit allows."""
        for queue in {c.queue for c in self.consumers.values()}:
            queue.dispatch()

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """The channel is closing (either side): cancel consumers, requeue unacked.

        Spec 1.8.3.3 / RabbitMQ: unacknowledged messages of a closed channel
        are requeued; held transactional work is discarded.
        """
        if self.closing:
            return
        self.closing = True
        held: Taken = []
        if self.transaction is not None:
            self.transaction.publishes = []
            self.transaction.commit_at = None  # no commit-ok on a closed channel
            held = self.transaction.acknowledged()
        self.resume()  # held commands are dropped with the channel
        self._cancel_replies()
        consumers = list(self.consumers.values())
        self.consumers.clear()
        for consumer in consumers:
            consumer.queue.remove_consumer(consumer)
        self._settle(self.acks.take_all() + held, requeue=True)
        for consumer in consumers:
            self._retire(consumer)  # nothing is unacknowledged any more
            queue = consumer.queue
            if queue.should_auto_delete:
                self.vhost.auto_delete_queue(queue)
            elif queue.dispatch_groups is not None:
                # A single active consumer's successor starts, with the
                # requeued messages (back in place above) first.
                queue.dispatch()
        self.confirms.clear()
        # Statistics: the vhost and the broker keep what this channel counted.
        counted = self.counters()
        totals = counted.totals
        for exchange, use in counted.by_exchange.items():
            self.vhost.retire_exchange_counts(exchange, use.publish, use.publish_out)
        self.vhost.retired.add(totals)
        counters = self.vhost.counters
        counters.retired.add(totals)
        counters.channel_closed += 1

    # -- statistics -----------------------------------------------------------------------

    def _queue_use(self, queue: Queue) -> QueueUse:
        use = self.queue_use.get(queue)
        if use is None:
            if len(self.queue_use) >= QUEUE_USE_LIMIT:
                self._forget_deleted_queues()
            use = self.queue_use[queue] = QueueUse()
        return use

    def _forget_deleted_queues(self) -> None:
        """Merge the counts of queues since deleted into one: a long-lived
        channel that gets from many short-lived queues stays small."""
        gone = self.gone_queues
        for queue in [q for q in self.queue_use if q.deleted]:
            gone.add(self.queue_use.pop(queue))
        get_acked = self.acks.get_acked
        for queue in [q for q in get_acked if q.deleted]:
            gone.ack += get_acked.pop(queue)

    def _retire(self, consumer: Consumer) -> None:
        """A consumer went: keep its counts (it may still have deliveries to settle)."""
        self.retired_consumers.append(consumer)
        still: list[Consumer] = []
        for old in self.retired_consumers:
            if old.unacked_count:
                still.append(old)
            else:
                self._queue_use(old.queue).add_consumer(old)
        self.retired_consumers = still

    def counters(self) -> ChannelCounters:
        """What this channel has done so far, by exchange and by queue; changes nothing."""
        published = dict(self.published)
        routed = dict(self.routed)
        if self.publish_run:
            exchange = self.publish_exchange
            published[exchange] = published.get(exchange, 0) + self.publish_run
            routed[exchange] = routed.get(exchange, 0) + self.publish_run_out
        by_queue: dict[Queue, QueueUse] = {}
        for queue, use in self.queue_use.items():
            by_queue[queue] = use.copy()
        for consumer in (*self.consumers.values(), *self.retired_consumers):
            use = by_queue.get(consumer.queue)
            if use is None:
                use = by_queue[consumer.queue] = QueueUse()
            use.add_consumer(consumer)
        for queue, count in self.acks.get_acked.items():
            use = by_queue.get(queue)
            if use is None:
                use = by_queue[queue] = QueueUse()
            use.ack += count
        return ChannelCounters.build(
            published, routed, self.confirmed, self.publish_exchange,
            self.returned_unroutable, self.dropped_unroutable, by_queue,
            received_confirm=self.confirms.next_seq - 1, elsewhere=self.gone_queues,
        )
