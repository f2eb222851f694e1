"""A queue: ready messages in order, consumers in round-robin order.

Dispatch is synchronous: `Queue.dispatch()` hands ready messages to the next
consumer that has prefetch credit until either runs out. It is called after
anything that can make progress possible: a publish, an ack (credit), a new
consumer, a `basic.qos`, a requeue, and a consumer connection whose output
buffer drained (backpressure released).

Requeued messages go back to their original position, ordered by arrival:
RabbitMQ does the same for classic queues, and clients rely on it (a
rejected message is the next one redelivered). Every entry carries the
sequence number it got on arrival; in the common case all requeued entries
are older than every ready one and the insert is an `appendleft`.

Queue features (RabbitMQ's `x-` arguments), each kept small:

- `x-max-length` / `x-max-length-bytes` with `x-overflow` drop-head (the
  oldest ready messages make room, dead-lettered as `maxlen`), reject-publish
  (the publisher gets basic.nack) or reject-publish-dlx (nack, and the refused
  message is dead-lettered);
- `x-message-ttl` and the per-message `expiration` property: the lower wins;
  as in RabbitMQ's classic queues a message expires when it is at the head of
  the queue (a message being delivered or unacknowledged never expires), and
  an expired message is dead-lettered as `expired`;
- `x-dead-letter-exchange` / `x-dead-letter-routing-key` (broker.core.features.dead_lettering);
- `x-delivery-limit` (broker.core.features.delivery_limit);
- `x-expires`: the queue is deleted after that long without consumers and
  without being used (declared, got from, consumed from).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Protocol

from broker.core.features.delivery_limit import DELIVERY_LIMIT, counted, returned
from broker.core.message import Message, QueuedMessage
from broker.core.snapshots import QueueSnapshot
from broker.core.stats import QueueCounters, QueueStats
from broker.core.timers import Scheduler

__all__ = [
    "MessageStore",
    "OVERFLOW_DROP_HEAD",
    "OVERFLOW_REJECT_PUBLISH",
    "OVERFLOW_REJECT_PUBLISH_DLX",
    "Queue",
    "QueueConsumer",
    "QueueOwner",
]

OVERFLOW_DROP_HEAD = "drop-head"
OVERFLOW_REJECT_PUBLISH = "reject-publish"
OVERFLOW_REJECT_PUBLISH_DLX = "reject-publish-dlx"


class QueueConsumer(Protocol):
    """A subscription as a queue sees it (basic.consume, from any session).

    The queue knows nothing else of channels and connections: the session's
    `Consumer` implements this, as LavinMQ's queue knows only an abstract
    consumer.
    """

    #: Deliveries need no acknowledgement (basic.consume no-ack).
    no_ack: bool
    #: basic.consume's consumer tag, for logs and snapshots.
    tag: str
    #: Messages the queue handed this consumer, and how many of them were
    #: redeliveries: counted by the queue (statistics; folded into the
    #: queue's own counts when the consumer goes).
    delivered: int
    redelivered: int

    def has_credit(self) -> bool:
        """May the queue hand this consumer one more message now?

        False when its prefetch is used up, its channel is paused or closing,
        or its connection's output is backed up (backpressure).
        """
        ...

    def deliver(self, queue: Queue, entry: QueuedMessage) -> None:
        """Take `entry`, which has just left `queue`'s ready messages."""
        ...

    def cancelled_by_queue(self) -> None:
        """The queue was deleted under the consumer (RabbitMQ's basic.cancel)."""
        ...


class MessageStore(Protocol):
    """The journal hooks a durable queue calls; all synchronous and cheap.

    The storage layer's `Journal` implements them (docs/durability.md).
    """

    def persist(self, queue: Queue, entry: QueuedMessage) -> QueuedMessage:
        """`entry` joins `queue`: the entry the queue keeps (journalled if persistent)."""
        ...

    def delivered(self, entry: QueuedMessage, no_ack: bool) -> None:
        """`entry` was handed out (basic.deliver or basic.get-ok)."""
        ...

    def forget(self, entry: QueuedMessage) -> None:
        """`entry` left its queue for good (acked, dropped, dead-lettered)."""
        ...

    def queue_deleted(self, queue: Queue) -> None:
        """A durable queue was deleted: none of its messages may come back."""
        ...


class QueueOwner(Protocol):
    """What a queue needs from its vhost: deadlines, its own expiry, dead letters."""

    #: The vhost's name (the journal records it with each message).
    name: str
    #: Runs TTL and x-expires deadlines; None where nothing drives timers
    #: (a vhost used without a running broker, as in benchmarks).
    timers: Scheduler | None

    def expire_queue(self, queue: Queue) -> None:
        """`x-expires` ran out: delete the queue."""
        ...

    def dead_letter(self, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
        """Republish `entries`, which died in `queue`, to its dead-letter exchange."""
        ...


class Queue:
    """One AMQP queue of a vhost.

    `exclusive_owner` is the connection that declared it exclusive (spec
    1.7.2.1: "exclusive queues may only be accessed by the current
    connection, and are deleted when that connection closes"), else None;
    the core compares it by identity only.

    Reading a queue's state never changes it: `message_count` and
    `snapshot()` do not expire messages (a statistics read must not
    dead-letter messages or write journal records). Expiry runs on the
    queue's own deadline, on publish, get and dispatch, and where a client
    asks for a count (`expire()` before queue.declare-ok).
    """

    def __init__(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        vhost: QueueOwner | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        self.vhost = vhost
        #: Set by the vhost for durable queues when the broker has a journal.
        self.journal: MessageStore | None = None
        self.ready: deque[QueuedMessage] = deque()
        self.ready_bytes = 0
        self.consumers: deque[QueueConsumer] = deque()
        self.exclusive_consumer: QueueConsumer | None = None
        #: Delivered (to a consumer or basic.get) and not yet settled: the
        #: session reports settlements with `settled()`.
        self.unacked_count = 0
        self.had_consumer = False
        self.deleted = False
        #: The arrival sequence: every message that joined the queue took one.
        self._next_seq = 0
        #: Statistics that cannot be derived (broker.core.stats), in one
        #: object of their own: the queue's hot attributes stay few.
        self.stats = QueueStats()
        # Arguments are validated by the vhost before the queue is made.
        args = self.arguments
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.overflow: str = args.get("x-overflow", OVERFLOW_DROP_HEAD)
        self.message_ttl: int | None = args.get("x-message-ttl")
        self.expires: int | None = args.get("x-expires")
        self.dead_letter_exchange: str | None = args.get("x-dead-letter-exchange")
        self.dead_letter_routing_key: str | None = args.get("x-dead-letter-routing-key")
        self.delivery_limit: int | None = args.get("x-delivery-limit")  # features.delivery_limit
        self._may_expire = self.message_ttl is not None
        self._timer_at: float | None = None
        self.last_used = time.monotonic()
        if self.expires is not None:
            self._schedule(self.last_used + self.expires / 1000)

    # -- counters (queue.declare-ok, basic.get-ok, management) -------------

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (not counting unacknowledged ones).

        A read only: messages past their TTL are counted until the queue
        expires them (call `expire()` first for RabbitMQ's declare-ok count).
        """
        return len(self.ready)

    def arrived_not_published(self, count: int = 1) -> None:
        """`count` messages joined the queue otherwise than by a publish
        (recovered, dead-lettered in): statistics do not count them as publishes."""
        self.stats.arrivals_not_published += count

    @property
    def published(self) -> int:
        """Messages published to this queue so far (statistics)."""
        return self._next_seq - self.stats.arrivals_not_published

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def vhost_name(self) -> str:
        """The name of the vhost the queue is in ("/" for a queue outside any)."""
        return self.vhost.name if self.vhost is not None else "/"

    def state_key(self) -> tuple[Any, ...]:
        """A value that changes whenever anything `snapshot()` reports does
        (a cache of the queue's statistics can compare it, cheaply)."""
        consumers = self.consumers
        stats = self.stats
        return (
            self._next_seq, stats.arrivals_not_published, len(self.ready), self.ready_bytes,
            self.unacked_count, self.last_used, stats.got, stats.got_no_ack, stats.get_empty,
            stats.settled_without_ack, stats.delivered_base, stats.delivered_no_ack_base,
            stats.redelivered_base,
            self.exclusive_consumer.tag if self.exclusive_consumer is not None else None,
            tuple((c.delivered, c.redelivered, c.has_credit()) for c in consumers)
            if consumers else (),
        )

    def snapshot(self) -> QueueSnapshot:
        """The queue's state now, changing nothing (see `broker.core.snapshots`)."""
        return QueueSnapshot(
            name=self.name,
            vhost=self.vhost_name,
            durable=self.durable,
            auto_delete=self.auto_delete,
            exclusive=self.exclusive_owner is not None,
            arguments=dict(self.arguments),
            messages_ready=len(self.ready),
            messages_unacknowledged=self.unacked_count,
            message_bytes_ready=self.ready_bytes,
            consumers=len(self.consumers),
            last_used=self.last_used,
            counters=self.counters(),
            exclusive_consumer_tag=(
                self.exclusive_consumer.tag if self.exclusive_consumer is not None else None
            ),
        )

    def counters(self) -> QueueCounters:
        """The queue's message counts now (RabbitMQ's `message_stats`), changing nothing."""
        stats = self.stats
        delivered = stats.delivered_base
        no_ack = stats.delivered_no_ack_base
        redelivered = stats.redelivered_base
        for consumer in self.consumers:
            if consumer.no_ack:
                no_ack += consumer.delivered
            else:
                delivered += consumer.delivered
            redelivered += consumer.redelivered
        return QueueCounters(
            publish=self.published,
            deliver=delivered,
            deliver_no_ack=no_ack,
            get=stats.got,
            get_no_ack=stats.got_no_ack,
            get_empty=stats.get_empty,
            redeliver=redelivered,
            # Every delivery needing an ack is acked, returned or still out.
            ack=delivered + stats.got - stats.settled_without_ack - self.unacked_count,
        )

    # -- messages in ------------------------------------------------------

    def _over_limit(self, extra_count: int, extra_bytes: int) -> bool:
        if self.max_length is not None and len(self.ready) + extra_count > self.max_length:
            return True
        return (
            self.max_length_bytes is not None
            and self.ready_bytes + extra_bytes > self.max_length_bytes
        )

    def enqueue(self, message: Message) -> bool:
        """Add a message at the tail and dispatch. False if the queue refused it.

        A queue refuses only with `x-overflow: reject-publish(-dlx)` when
        full; the publisher then gets a basic.nack if it asked for confirms.
        """
        size = len(message.body)
        seq = self._next_seq
        self._next_seq = seq + 1
        entry = QueuedMessage(seq, message)
        limited = self.max_length is not None or self.max_length_bytes is not None
        # drop-head hands a message to a consumer waiting on an empty queue
        # before it looks at the limit (RabbitMQ's deliver_or_enqueue, then
        # maybe_drop_head: even x-max-length 0 passes messages through).
        passing = (
            limited
            and self.overflow == OVERFLOW_DROP_HEAD
            and not self.ready
            and bool(self.consumers)
        )
        if limited and not passing and self._over_limit(1, size):
            if self.overflow != OVERFLOW_DROP_HEAD:
                if self.overflow == OVERFLOW_REJECT_PUBLISH_DLX:
                    self.dead_letter([entry], "maxlen")
                return False
            dropped = []
            while self.ready and self._over_limit(1, size):
                head = self.ready.popleft()
                self.ready_bytes -= len(head.message.body)
                dropped.append(head)
            if self._over_limit(1, size):
                dropped.append(entry)  # a limit of 0: the message itself goes
            self.dead_letter(dropped, "maxlen")
            if dropped and dropped[-1] is entry:
                return True
        ttl = self.message_ttl
        own = message.expiration_ms  # parsed once, when published
        if own is not None and (ttl is None or own < ttl):
            ttl = own
        if ttl is not None:
            now = time.monotonic()
            entry.expires_at = now + ttl / 1000
            if self.ready:
                self.expire(now)  # older messages that are due go first
            self._may_expire = True
        if self.delivery_limit is not None:
            entry.message = counted(message, 0)  # x-delivery-count, as quorum queues
        if self.journal is not None:
            entry = self.journal.persist(self, entry)  # persistent: journalled
        self.ready.append(entry)
        self.ready_bytes += size
        if self.consumers:
            self._deliver_ready(now if ttl is not None else None)
            if passing and self.ready and self._over_limit(0, 0):
                self._drop_head()  # nobody could take it after all
        if ttl is not None:
            # Expiration 0 means "now or never": delivered above if a
            # consumer could take it, else it expires here.
            self.expire(now)
        return True

    def _drop_head(self) -> None:
        """Drop (dead-letter as `maxlen`) the oldest ready messages until within limits."""
        dropped = []
        while self.ready and self._over_limit(0, 0):
            head = self.ready.popleft()
            self.ready_bytes -= len(head.message.body)
            dropped.append(head)
        self.dead_letter(dropped, "maxlen")

    def requeue(self, entries: list[QueuedMessage]) -> None:
        """Put delivered-but-unacked entries back at their original place."""
        self.unacked_count -= len(entries)
        self.stats.settled_without_ack += len(entries)
        if self.deleted:
            if self.journal is not None:
                for entry in entries:
                    self.journal.forget(entry)
            return
        if self.delivery_limit is not None:
            entries, over = returned(self.delivery_limit, entries)
            if over:
                self.dead_letter(over, DELIVERY_LIMIT)
        ready = self.ready
        for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
            entry.redelivered = True
            self.ready_bytes += len(entry.message.body)
            if not ready or entry.seq < ready[0].seq:
                ready.appendleft(entry)
                continue
            # Rare: older ready messages exist before it (e.g. a message
            # requeued while others were still waiting). Linear insert.
            index = 0
            for index, other in enumerate(ready):  # noqa: B007
                if other.seq > entry.seq:
                    break
            else:
                index = len(ready)
            ready.insert(index, entry)
        if self.consumers:
            self.dispatch()
        if self._may_expire:
            self.expire()

    def get(self) -> QueuedMessage | None:
        """basic.get: take the head of the queue, or None when empty.

        The caller hands it out and reports that with `handed_out`.
        """
        self.touch()
        if self._may_expire:
            self.expire()
        if not self.ready:
            self.stats.get_empty += 1
            return None
        entry = self.ready.popleft()
        self.ready_bytes -= len(entry.message.body)
        return entry

    def handed_out(self, entry: QueuedMessage, no_ack: bool) -> None:
        """`entry`, taken by `get`, went to a client (basic.get-ok): count it
        as unacknowledged unless no_ack, and tell the journal."""
        if no_ack:
            self.stats.got_no_ack += 1
        else:
            self.stats.got += 1
            self.unacked_count += 1
        if entry.redelivered:
            self.stats.redelivered_base += 1
        if self.journal is not None:
            self.journal.delivered(entry, no_ack)

    # -- settling deliveries (basic.ack, reject, nack, recover, channel close) --

    def ack(self, entry: QueuedMessage) -> None:
        """An unacknowledged delivery was acknowledged: it is gone for good."""
        self.unacked_count -= 1
        if self.journal is not None:
            self.journal.forget(entry)

    def reject(self, entries: list[QueuedMessage]) -> None:
        """Deliveries rejected without requeue: dead-lettered as `rejected`, or dropped."""
        self.unacked_count -= len(entries)
        self.stats.settled_without_ack += len(entries)
        self.dead_letter(entries, "rejected")

    def purge(self) -> int:
        """Drop every ready message (unacked ones stay); return how many."""
        count = len(self.ready)
        if self.journal is not None:
            for entry in self.ready:
                self.journal.forget(entry)
        self.ready.clear()
        self.ready_bytes = 0
        return count

    # -- dead-lettering and expiry ------------------------------------------------

    def dead_letter(self, entries: list[QueuedMessage], reason: str) -> None:
        """Rejected without requeue (or expired, or overflowed): to the DLX, if any."""
        if self.journal is not None:  # they leave this queue for good
            for entry in entries:
                self.journal.forget(entry)
        if entries and self.dead_letter_exchange is not None and self.vhost is not None:
            self.vhost.dead_letter(self, entries, reason)

    def expire(self, now: float | None = None) -> None:
        """Drop (dead-letter) expired messages at the head; schedule the next check."""
        ready = self.ready
        if not ready:
            return
        now = time.monotonic() if now is None else now
        expired = []
        while ready:
            head = ready[0]
            expires_at = head.expires_at
            if expires_at is None or expires_at > now:
                break
            ready.popleft()
            self.ready_bytes -= len(head.message.body)
            expired.append(head)
        if expired:
            self.dead_letter(expired, "expired")
        if ready and ready[0].expires_at is not None:
            self._schedule(ready[0].expires_at)

    def touch(self, now: float | None = None) -> None:
        """The queue was used: renew its `x-expires` lease (and note when, for `idle_since`)."""
        self.last_used = time.monotonic() if now is None else now
        if self.expires is not None:
            if not self.consumers:
                self._schedule(self.last_used + self.expires / 1000)

    def _schedule(self, deadline: float) -> None:
        timers = self.vhost.timers if self.vhost is not None else None
        if timers is None:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return  # an earlier check is pending; it reschedules as needed
        self._timer_at = deadline
        timers.call_at(deadline, self._on_timer)

    def _on_timer(self, now: float) -> None:
        if self.deleted:
            return
        self._timer_at = None
        if self._may_expire:
            self.expire(now)
        if self.expires is not None and not self.consumers:
            deadline = self.last_used + self.expires / 1000
            if now >= deadline:
                assert self.vhost is not None
                self.vhost.expire_queue(self)
                return
            self._schedule(deadline)

    # -- consumers ----------------------------------------------------------

    def add_consumer(self, consumer: QueueConsumer, exclusive: bool) -> None:
        self.consumers.append(consumer)
        self.had_consumer = True
        self.touch()
        if exclusive:
            self.exclusive_consumer = consumer
        self.dispatch()

    def remove_consumer(self, consumer: QueueConsumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        # Its deliveries are final: the queue keeps counting them.
        if consumer.no_ack:
            self.stats.delivered_no_ack_base += consumer.delivered
        else:
            self.stats.delivered_base += consumer.delivered
        self.stats.redelivered_base += consumer.redelivered
        if not self.consumers:
            self.touch()

    @property
    def should_auto_delete(self) -> bool:
        """Auto-delete: gone once it had a consumer and the last one left."""
        return self.auto_delete and self.had_consumer and not self.consumers and not self.deleted

    def dispatch(self) -> None:
        """Deliver ready messages round robin to consumers that have credit.

        Stops when the queue is empty or a whole round of consumers had no
        credit (prefetch exhausted, or their connection's output buffer is
        full: backpressure keeps the messages here).
        """
        if not self.ready or not self.consumers:
            return
        if self._may_expire:
            self.expire()
        self._deliver_ready()

    def _deliver_ready(self, now: float | None = None) -> None:
        ready = self.ready
        consumers = self.consumers
        refused = 0
        count = len(consumers)
        journal = self.journal
        # RabbitMQ drops expired messages at the head after every fetch, so
        # one that expired behind a longer-lived message is never delivered.
        # (`now` is the publish time when called from enqueue: a TTL of 0
        # still reaches a consumer ready at that moment.)
        expiring = self._may_expire
        if now is None:
            now = time.monotonic() if expiring else 0.0
        while ready and refused < count:
            consumer = consumers[0]
            if count > 1:
                consumers.rotate(-1)
            if consumer.has_credit():
                entry = ready.popleft()
                self.ready_bytes -= len(entry.message.body)
                if expiring and entry.expires_at is not None and entry.expires_at < now:
                    self.dead_letter([entry], "expired")
                    continue
                if consumer.no_ack:
                    if journal is not None:
                        journal.forget(entry)  # delivered without ack: gone
                else:
                    self.unacked_count += 1
                    if journal is not None:
                        journal.delivered(entry, False)
                consumer.deliver(self, entry)
                consumer.delivered += 1
                if entry.redelivered:
                    consumer.redelivered += 1
                refused = 0
            else:
                refused += 1
