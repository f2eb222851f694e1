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
  without being used (declared, got from, consumed from);
- `x-max-priority`: the subclass `PriorityQueue` (broker.core.features.priority)
  keeps `ready` as one FIFO per level; this class only calls `_put_back`;
- consumer priorities (`x-priority`) and `x-single-active-consumer`: the
  consumers dispatch runs over come from `dispatch_groups`
  (broker.core.features.consumers), None in the common case.
- `x-consumer-timeout` and the policy key `consumer-timeout`: how long a
  delivery from this queue may stay unacknowledged before its channel is
  closed (`consumer_timeout`; the session enforces it).

Paging. A queue whose ready messages cost more memory than its
`page_limit` (broker.storage.paging sets it: `warren.paging.queue_bytes`,
lower under memory pressure) hands each new bare message to its `pager`,
which writes it to disk, and keeps the shared `PAGED` marker in its place;
while any message is paged out, every new bare message is (so that the
paged-out ones stay a run at the end: only bare messages, the ones without a
deadline or a journal record, are paged). The pager reads them back in
order ahead of delivery (`refill`, asynchronous: the queue asks when its
departures reach the pager's `refill_at`); a consumer that reaches a PAGED entry
before it is read back waits for that read (dispatch stops there), and
basic.get, drop-head and the like read it at once (`take`).
Priority queues do not page (`pageable`): their ready messages are in one
FIFO per level, and a paged-out run is read back in arrival order.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, ClassVar, Protocol

from broker.core.features.consumers import ConsumerPriorities, SingleActiveConsumer
from broker.core.features.deduplication import DUPLICATE, QUEUE, DedupCache
from broker.core.features.delivery_limit import DELIVERY_LIMIT, counted, returned
from broker.core.message import PAGED, Message, QueuedMessage
from broker.core.policies import QUEUE_KEYS, Policy
from broker.core.snapshots import QueueSnapshot
from broker.core.stats import QueueCounters, QueueStats
from broker.core.timers import Scheduler
from routing.deduplication import dedup_settings

__all__ = [
    "MESSAGE_COST",
    "DispatchGroups",
    "MessageStore",
    "NEVER",
    "OVERFLOW_DROP_HEAD",
    "OVERFLOW_REJECT_PUBLISH",
    "OVERFLOW_REJECT_PUBLISH_DLX",
    "Queue",
    "QueueConsumer",
    "QueueOwner",
    "QueuePager",
    "QueuePaging",
]

OVERFLOW_DROP_HEAD = "drop-head"
OVERFLOW_REJECT_PUBLISH = "reject-publish"
OVERFLOW_REJECT_PUBLISH_DLX = "reject-publish-dlx"
#: What a ready message costs in memory besides its body, for paging: the
#: Message object, the body's bytes header, the deque slot (measured:
#: about 90 bytes with CPython 3.11).
MESSAGE_COST = 96
#: A `page_limit` or `refill_at` never reached (an int: an int compared
#: with a float costs the hot path twice as much).
NEVER = 1 << 62

#: Consumer priorities or a single active consumer (broker.core.features.consumers).
DispatchGroups = ConsumerPriorities | SingleActiveConsumer


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


class QueuePager(Protocol):
    """Where a queue's paged-out messages wait (broker.storage.paging).

    The queue keeps `PAGED` in `ready` for each; the pager knows them in
    that order.
    """

    #: `refill` is asked for once the queue's `_next_seq` reaches this.
    refill_at: int

    def page(self, message: Message) -> None:
        """Write `message` out; the queue appends `PAGED` for it."""
        ...

    def take(self) -> Message:
        """The message of the first `PAGED` entry, read now (it is leaving the queue)."""
        ...

    def refill(self, stalled: bool = False) -> None:
        """Read the next paged-out messages back, soon (not now: no I/O here);
        `stalled`: a consumer is waiting for them."""
        ...

    def requeued(self, count: int) -> None:
        """`count` entries went back in front of the paged-out ones."""
        ...

    def purged(self) -> None:
        """Every ready message is gone (purge, delete): forget the paged-out ones."""
        ...


class QueuePaging(Protocol):
    """The broker's paging store as a queue sees it."""

    def register(self, queue: Queue) -> None:
        """A new queue: set its `page_limit`."""
        ...

    def pager_for(self, queue: Queue) -> QueuePager:
        """The pager of `queue` (made on first use)."""
        ...


class QueueOwner(Protocol):
    """What a queue needs from its vhost: deadlines, its own expiry, dead letters."""

    #: The vhost's name (the journal records it with each message).
    name: str
    #: Runs TTL and x-expires deadlines; None where nothing drives timers
    #: (a vhost used without a running broker, as in benchmarks).
    timers: Scheduler | None
    #: Moves bodies of long queues to disk; None: every message stays in memory.
    paging: QueuePaging | None

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

    # Slots: the publish-deliver-ack path reads a dozen of these per message,
    # and a queue has more attributes than CPython 3.11 shares keys for (30),
    # past which instance dicts are not split and attribute reads are slower.
    __slots__ = (
        "name", "durable", "exclusive_owner", "auto_delete", "arguments", "vhost",
        "journal", "ready", "ready_bytes", "consumers", "exclusive_consumer",
        "dispatch_groups", "unacked_count", "had_consumer", "deleted", "_next_seq",
        "arrived", "stats", "max_length", "max_length_bytes", "overflow",
        "message_ttl", "expires", "dead_letter_exchange", "dead_letter_routing_key",
        "delivery_limit", "policy", "operator_policy", "effective",
        "argument_consumer_timeout", "policy_consumer_timeout", "_may_expire",
        "_timer_at", "last_used", "pager", "page_limit", "dedup", "__weakref__",
    )  # fmt: skip

    #: Whether the broker may page this queue's ready messages out to disk
    #: (PriorityQueue: no; see the module docstring).
    pageable: ClassVar[bool] = True

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
        #: Bare `Message`s (the common case) and `QueuedMessage`s, oldest
        #: first; `_popleft` takes one out as a `QueuedMessage`.
        self.ready: deque[QueuedMessage | Message] = deque()
        self.ready_bytes = 0
        self.consumers: deque[QueueConsumer] = deque()
        self.exclusive_consumer: QueueConsumer | None = None
        #: None while dispatch is plain round robin over `consumers`; else
        #: consumer priorities or a single active consumer, whose `groups()`
        #: dispatch runs over instead (broker.core.features.consumers).
        self.dispatch_groups: DispatchGroups | None = None
        #: Delivered (to a consumer or basic.get) and not yet settled: the
        #: session reports settlements with `settled()`.
        self.unacked_count = 0
        self.had_consumer = False
        self.deleted = False
        self._next_seq = 0  # the next `seq` handed out (see QueuedMessage)
        #: Messages that joined the queue through `enqueue` (statistics: the
        #: publishes, with the dead letters among them subtracted). Not
        #: `_next_seq`: a seq is handed out when a message leaves `ready`.
        self.arrived = 0
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
        #: `x-message-deduplication`: the keys seen (features.deduplication), else None.
        self.dedup: DedupCache | None = None
        dedup = dedup_settings(args)
        if dedup is not None:
            self.dedup = DedupCache(QUEUE, self.vhost_name, name, dedup)
        #: The policy and operator policy that apply, and the settings in
        #: effect by policy key ("message-ttl": 30000, ...): the arguments and
        #: the policies resolved (broker.core.policies). Set by the vhost with
        #: `configure`; other code reads `effective`, never the arguments.
        self.policy: Policy | None = None
        self.operator_policy: Policy | None = None
        self.effective: dict[str, Any] = {
            key[2:]: value for key, value in args.items() if key[2:] in QUEUE_KEYS
        }
        if args.get("x-single-active-consumer") is True:
            # RabbitMQ 3.10's quorum queues hand over in registration order,
            # its classic queues to the highest consumer priority.
            self.dispatch_groups = SingleActiveConsumer(
                by_priority=args.get("x-queue-type", "classic") == "classic"
            )
        #: `x-consumer-timeout` in milliseconds (validated), None when not given.
        self.argument_consumer_timeout: int | None = args.get("x-consumer-timeout")
        #: The `consumer-timeout` (milliseconds) that policies give this queue,
        #: None without one: `configure` sets it from the effective settings.
        #: It takes effect at the next check of each channel's oldest delivery
        #: (see `consumer_timeout`). RabbitMQ 3.12's policy key (3.10 has none;
        #: broker.core.policies: MIN against the argument).
        self.policy_consumer_timeout: int | None = None
        self._may_expire = self.message_ttl is not None
        self._timer_at: float | None = None
        #: Paging (see the module docstring): new bare messages are paged
        #: out while `ready_bytes + MESSAGE_COST * len(ready)` is above
        #: `page_limit` (kept by the pager and the paging store; an int:
        #: an int compared with a float costs the hot path twice as much).
        self.pager: QueuePager | None = None
        self.page_limit = NEVER
        paging = vhost.paging if vhost is not None else None
        if paging is not None and self.pageable:
            paging.register(self)
        self.last_used = time.monotonic()
        if self.expires is not None:
            self._schedule(self.last_used + self.expires / 1000)

    # -- policies ---------------------------------------------------------------

    def configure(self, effective: dict[str, Any]) -> None:
        """Take new effective settings (a policy was set or cleared), with their
        consequences, as RabbitMQ's process_args_policy does:

        - a lower max-length or max-length-bytes drops (dead-letters as
          `maxlen`) the oldest messages at once, with overflow drop-head;
        - a new message TTL applies to messages that arrive from now on: the
          ones queued keep the expiry they got on arrival (none, or the old
          TTL's), and expire from the head as before;
        - a new expires restarts the queue's lease from now;
        - the dead-letter exchange and routing key, the overflow mode and the
          delivery limit apply to what happens next.
        """
        self.effective = dict(effective)
        self.message_ttl = effective.get("message-ttl")
        self.expires = effective.get("expires")
        self.max_length = effective.get("max-length")
        self.max_length_bytes = effective.get("max-length-bytes")
        self.overflow = effective.get("overflow", OVERFLOW_DROP_HEAD)
        self.dead_letter_exchange = effective.get("dead-letter-exchange")
        self.dead_letter_routing_key = effective.get("dead-letter-routing-key")
        self.delivery_limit = effective.get("delivery-limit")
        self.policy_consumer_timeout = effective.get("consumer-timeout")
        if self.message_ttl is not None:
            self._may_expire = True  # never reset: queued messages keep their expiry
        if self.expires is not None:
            self.touch()
        if self.overflow == OVERFLOW_DROP_HEAD and self.ready and self._over_limit(0, 0):
            self._drop_head()
        if self._may_expire:
            self.expire()

    # -- counters (queue.declare-ok, basic.get-ok, management) -------------

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (not counting unacknowledged ones).

        A read only: messages past their TTL are counted until the queue
        expires them (call `expire()` first for RabbitMQ's declare-ok count).
        """
        return len(self.ready)

    def arrived_not_published(self, count: int = 1) -> None:
        """`count` messages that `enqueue` takes next are not publishes (dead
        letters): statistics do not count them as publishes."""
        self.stats.arrivals_not_published += count

    @property
    def published(self) -> int:
        """Messages published to this queue so far (statistics)."""
        return self.arrived - self.stats.arrivals_not_published

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def consumer_timeout(self) -> int | None:
        """How long (ms) a delivery from this queue may stay unacknowledged,
        or None for the node's `consumer_timeout`.

        RabbitMQ 3.12+ semantics (rabbit_channel get_queue_consumer_timeout,
        rabbit_queue_type_util:args_policy_lookup): the lower of the policy's
        `consumer-timeout` and the `x-consumer-timeout` argument when both
        are set, else whichever is. RabbitMQ 3.10 has neither.
        """
        policy = self.policy_consumer_timeout
        argument = self.argument_consumer_timeout
        if policy is None:
            return argument
        if argument is None:
            return policy
        return min(policy, argument)

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
            self.arrived, stats.arrivals_not_published, len(self.ready), self.ready_bytes,
            self.unacked_count, self.last_used, stats.got, stats.got_no_ack, stats.get_empty,
            stats.settled_without_ack, stats.delivered_base, stats.delivered_no_ack_base,
            stats.redelivered_base,
            self.exclusive_consumer.tag if self.exclusive_consumer is not None else None,
            tuple((c.delivered, c.redelivered, c.has_credit()) for c in consumers)
            if consumers else (),
            self.policy, self.operator_policy, self.single_active_consumer_tag,
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
            policy=self.policy,
            operator_policy=self.operator_policy,
            single_active_consumer_tag=self.single_active_consumer_tag,
        )

    @property
    def single_active_consumer_tag(self) -> str | None:
        """With `x-single-active-consumer`, the active consumer's tag (None
        without consumers, and on any other queue). A read only."""
        groups = self.dispatch_groups
        if isinstance(groups, SingleActiveConsumer):
            active = groups.active
            return active.tag if active is not None else None
        return None

    def consumer_activity(self, consumer: QueueConsumer) -> str:
        """RabbitMQ's `activity_status` of one of this queue's consumers:
        "single_active" or "waiting" with `x-single-active-consumer`, "up"
        otherwise (consumer priorities included). A read only."""
        groups = self.dispatch_groups
        if isinstance(groups, SingleActiveConsumer):
            return "single_active" if groups.active is consumer else "waiting"
        return "up"

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
        A duplicate (`x-message-deduplication`) is accepted and not kept: its
        publisher gets basic.ack, as LavinMQ does.
        """
        dedup = self.dedup
        if dedup is not None:
            key = dedup.check(message.headers)
            if key == DUPLICATE:
                return True
        size = len(message.body)
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
                    self.dead_letter([QueuedMessage(None, message)], "maxlen")
                # Refused: its key is not remembered, so a retry can get in
                # (LavinMQ remembers it; docs/deduplication.md).
                return False
            dropped = []
            while self.ready and self._over_limit(1, size):
                head = self._popleft()
                self.ready_bytes -= len(head.message.body)
                dropped.append(head)
            if self._over_limit(1, size):
                # A limit of 0: the message itself goes.
                if dedup is not None and key:
                    dedup.remember(key, message.headers)
                dropped.append(QueuedMessage(None, message))
                self.dead_letter(dropped, "maxlen")
                return True
            self.dead_letter(dropped, "maxlen")
        if dedup is not None and key:
            dedup.remember(key, message.headers)
        ttl = self.message_ttl
        own = message.expiration_ms  # parsed once, when published
        if own is not None and (ttl is None or own < ttl):
            ttl = own
        journal = self.journal
        now = 0.0
        entry: QueuedMessage | Message
        if ttl is None and self.delivery_limit is None and (
            journal is None or not message.persistent
        ):
            entry = message  # the common case: no wrapper (see QueuedMessage)
            if self.ready_bytes + MESSAGE_COST * len(self.ready) > self.page_limit:
                entry = self._page(message)
        else:
            wrapped = QueuedMessage(None, message)
            if ttl is not None:
                now = time.monotonic()
                wrapped.expires_at = now + ttl / 1000
                if self.ready:
                    self.expire(now)  # older messages that are due go first
                self._may_expire = True
            if self.delivery_limit is not None:
                wrapped.message = counted(message, 0)  # x-delivery-count, as quorum queues
            if journal is not None:
                wrapped = journal.persist(self, wrapped)  # persistent: journalled
            entry = wrapped
        self.ready.append(entry)
        self.ready_bytes += size
        self.arrived += 1
        if self.consumers:
            self._deliver_ready(now if ttl is not None else None)
            if passing and self.ready and self._over_limit(0, 0):
                self._drop_head()  # nobody could take it after all
        if ttl is not None:
            # Expiration 0 means "now or never": delivered above if a
            # consumer could take it, else it expires here.
            self.expire(now)
        return True

    def _page(self, message: Message) -> QueuedMessage:
        """Page `message` out: the entry the queue keeps for it (`PAGED`)."""
        pager = self.pager
        if pager is None:
            assert self.vhost is not None and self.vhost.paging is not None
            pager = self.pager = self.vhost.paging.pager_for(self)
        pager.page(message)
        return PAGED

    def _popleft(self) -> QueuedMessage:
        """Take the oldest ready entry, as a `QueuedMessage` with its `seq`."""
        entry = self.ready.popleft()
        if isinstance(entry, QueuedMessage):
            if entry is not PAGED:
                if entry.seq is None:
                    entry.seq = self._next_seq
                    self._next_seq += 1
                return entry
            assert self.pager is not None
            entry = self.pager.take()
        seq = self._next_seq
        self._next_seq = seq + 1
        pager = self.pager
        if pager is not None and seq >= pager.refill_at:
            pager.refill()
        return QueuedMessage(seq, entry)

    def _drop_head(self) -> None:
        """Drop (dead-letter as `maxlen`) the oldest ready messages until within limits."""
        dropped = []
        while self.ready and self._over_limit(0, 0):
            head = self._popleft()
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
        # Delivered entries all have their seq (given when they left).
        for entry in sorted(entries, key=lambda e: e.seq or 0, reverse=True):
            entry.redelivered = True
            self.ready_bytes += len(entry.message.body)
            self._put_back(entry)
        if self.pager is not None:
            self.pager.requeued(len(entries))
        if self.consumers:
            self.dispatch()
        if self._may_expire:
            self.expire()

    def _put_back(self, entry: QueuedMessage) -> None:
        """Requeue one entry at its original place (a priority queue: in its level)."""
        put_back(self.ready, entry)

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
        entry = self._popleft()
        self.ready_bytes -= len(entry.message.body)
        if self._may_expire:
            # RabbitMQ drops expired heads after a fetch too: get-ok's
            # message_count counts none that expired behind this one.
            self.expire()
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
                if isinstance(entry, QueuedMessage):  # a bare message is not journalled
                    self.journal.forget(entry)
        self.ready.clear()
        self.ready_bytes = 0
        if self.pager is not None:
            self.pager.purged()
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
            taken = self._popleft()
            self.ready_bytes -= len(taken.message.body)
            expired.append(taken)
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

    def add_consumer(self, consumer: QueueConsumer, exclusive: bool, priority: int = 0) -> None:
        """A new consumer; `priority` is its x-priority (features.consumers)."""
        self.consumers.append(consumer)
        self.had_consumer = True
        self.touch()
        if exclusive:
            self.exclusive_consumer = consumer
        groups = self.dispatch_groups
        if groups is None and priority:
            # The first consumer with a priority: the others (priority 0)
            # keep their round-robin order in the group of priority 0.
            groups = self.dispatch_groups = ConsumerPriorities()
            for other in self.consumers:
                if other is not consumer:
                    groups.add(other, 0)
        if groups is not None:
            groups.add(consumer, priority)
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
        groups = self.dispatch_groups
        if groups is not None:
            groups.remove(consumer)  # a single active consumer hands over here
            if isinstance(groups, ConsumerPriorities) and groups.only_default:
                self.dispatch_groups = None  # back to plain round robin
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

    def _deliver_ready(
        self, now: float | None = None, consumers: deque[QueueConsumer] | None = None
    ) -> None:
        """Round robin over `consumers` (default: all of them, or each of
        `dispatch_groups` in turn) until the queue is empty or all refuse."""
        if consumers is None:
            groups = self.dispatch_groups
            if groups is not None:
                # Highest priority first; a group gets messages only once
                # every group above it has refused (no credit): credit cannot
                # come back during a dispatch, so one pass per group is the
                # same as choosing per message (features.consumers).
                for group in groups.groups():
                    if not self.ready:
                        return
                    if group:
                        self._deliver_ready(now, group)
                return
            consumers = self.consumers
        ready = self.ready
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
                item = ready.popleft()  # Queue._popleft, inlined
                if isinstance(item, QueuedMessage):
                    if item is PAGED:
                        # Not read back yet: the consumers wait for the pager,
                        # which dispatches again once it is.
                        ready.appendleft(item)
                        assert self.pager is not None
                        self.pager.refill(stalled=True)
                        break
                    entry = item
                    if entry.seq is None:
                        entry.seq = self._next_seq
                        self._next_seq += 1
                else:
                    seq = self._next_seq
                    self._next_seq = seq + 1
                    entry = QueuedMessage(seq, item)
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
        pager = self.pager
        if pager is not None and self._next_seq >= pager.refill_at:
            pager.refill()


def put_back(ready: deque[QueuedMessage | Message], entry: QueuedMessage) -> None:
    """Insert a requeued `entry` into `ready` (in arrival order) at its original place.

    Entries are ordered by `seq`; one whose `seq` is None never left and is
    newer than every entry that has one. In the common case all requeued
    entries are older than every ready one and this is an `appendleft`.
    """
    seq = entry.seq or 0
    head_seq = ready[0].seq if ready else None
    if head_seq is None or seq < head_seq:
        ready.appendleft(entry)
        return
    # Rare: older ready messages exist before it (e.g. a message
    # requeued while others were still waiting). Linear insert.
    index = 0
    for index, other in enumerate(ready):  # noqa: B007
        other_seq = other.seq
        if other_seq is None or other_seq > seq:
            break
    else:
        index = len(ready)
    ready.insert(index, entry)
