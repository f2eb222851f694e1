"""Counters the model keeps for statistics: plain integers, summed when read.

The hot path (publish, deliver, ack) pays for statistics with integer
increments on objects it already holds, and only where a count cannot be
derived from state that exists anyway:

- a queue's publishes are its arrival sequence (`Queue._next_seq`) minus
  the arrivals that were not publishes (recovered, dead-lettered in);
- deliveries are counted on the consumer the queue hands the message to
  (`QueueConsumer.delivered`, `.redelivered`), and folded into the queue
  when the consumer goes;
- acknowledgements are derived: delivered (with acks) minus still
  unacknowledged minus returned (requeued, rejected), so `basic.ack` costs
  nothing more;
- a channel counts its publishes, and the queue copies they became, in runs
  per exchange (one compare and two increments per message); an exchange's
  `publish_in`/`publish_out` are the sums over channels (the closed ones'
  kept by the vhost, `VHost.retired_exchanges`).

A queue keeps what it cannot derive (gets, the counts of consumers that
went, ...) in a slotted `QueueStats`, not in attributes of its own: past 30
attributes CPython 3.11 stops sharing an instance's keys, and every
attribute read on the hot path gets slower (measured: 2% of the whole
publish-deliver-ack path).

Everything else (totals per vhost and for the broker, rates) is computed by
the management plane when it samples, off the hot path. This module holds
the few counters that outlive the objects that counted them: a closed
channel's message counts (`MessageTotals`, kept per vhost) and the broker's
churn and dead-letter counts (`BrokerCounters`, one per broker).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BrokerCounters",
    "DEAD_LETTER_REASONS",
    "MESSAGE_FIELDS",
    "MessageTotals",
    "QueueCounters",
    "QueueStats",
]

#: RabbitMQ's `message_stats` counters of a channel, a vhost and the broker
#: (rabbit_mgmt's fine stats), in the order /api/overview lists them.
MESSAGE_FIELDS: Final = (
    "ack",
    "confirm",
    "deliver",
    "deliver_no_ack",
    "drop_unroutable",
    "get",
    "get_empty",
    "get_no_ack",
    "publish",
    "redeliver",
    "return_unroutable",
)


class MessageTotals:
    """Message counts summed over channels (`MESSAGE_FIELDS`), plus the bytes of connections."""

    __slots__ = (*MESSAGE_FIELDS, "received_confirm", "routed", "recv_oct", "send_oct")

    def __init__(self) -> None:
        self.ack = 0
        self.confirm = 0
        self.deliver = 0
        self.deliver_no_ack = 0
        self.drop_unroutable = 0
        self.get = 0
        self.get_empty = 0
        self.get_no_ack = 0
        self.publish = 0
        self.redeliver = 0
        self.return_unroutable = 0
        #: Publishes on channels in confirm mode.
        self.received_confirm = 0
        #: The queue copies publishes became.
        self.routed = 0
        self.recv_oct = 0
        self.send_oct = 0

    def add(self, other: MessageTotals) -> None:
        """Add `other`'s counts to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def copy(self) -> MessageTotals:
        out = MessageTotals()
        out.add(self)
        return out

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.as_dict().items() if v)
        return f"MessageTotals({shown})"


class QueueStats:
    """A queue's statistics that cannot be derived: not touched per message."""

    __slots__ = ("arrivals_not_published", "delivered_base", "delivered_no_ack_base",
                 "redelivered_base", "got", "got_no_ack", "get_empty", "settled_without_ack")

    def __init__(self) -> None:
        #: Arrivals that were not publishes (recovered from the journal,
        #: dead-lettered in): publishes are the arrival sequence minus these.
        self.arrivals_not_published = 0
        #: Deliveries of the consumers that have gone (the live ones count their own).
        self.delivered_base = 0
        self.delivered_no_ack_base = 0
        self.redelivered_base = 0
        #: basic.get: handed out with and without ack, found empty.
        self.got = 0
        self.got_no_ack = 0
        self.get_empty = 0
        #: Deliveries settled otherwise than by an ack (requeued, rejected):
        #: acks are deliveries minus these minus the unacknowledged.
        self.settled_without_ack = 0


class QueueCounters:
    """One queue's message counts (RabbitMQ's queue `message_stats`)."""

    __slots__ = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty",
                 "redeliver", "ack")

    def __init__(
        self,
        publish: int = 0,
        deliver: int = 0,
        deliver_no_ack: int = 0,
        get: int = 0,
        get_no_ack: int = 0,
        get_empty: int = 0,
        redeliver: int = 0,
        ack: int = 0,
    ) -> None:
        self.publish = publish
        self.deliver = deliver
        self.deliver_no_ack = deliver_no_ack
        self.get = get
        self.get_no_ack = get_no_ack
        self.get_empty = get_empty
        self.redeliver = redeliver
        self.ack = ack

    @property
    def deliver_get(self) -> int:
        """RabbitMQ's deliver_get: every message handed out, however."""
        return self.deliver + self.deliver_no_ack + self.get + self.get_no_ack

    def any(self) -> bool:
        """Has anything happened (RabbitMQ shows `message_stats` only then)?"""
        return any(getattr(self, name) for name in self.__slots__)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QueueCounters) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.as_dict().items() if v)
        return f"QueueCounters({shown})"


#: Reasons a message is dead-lettered (x-death's `reason`, RabbitMQ's metric labels).
DEAD_LETTER_REASONS: Final = ("expired", "maxlen", "rejected", "delivery_limit")


class BrokerCounters:
    """Counts for the whole broker that no single object outlives: churn, dead letters.

    One object is shared by every vhost of a broker (`VHostRegistry.counters`);
    sessions count connections and channels in it through their vhost.
    """

    __slots__ = (
        "connection_created",
        "connection_closed",
        "channel_created",
        "channel_closed",
        "queue_declared",
        "queue_created",
        "queue_deleted",
        "dead_lettered",
        "retired",
    )

    def __init__(self) -> None:
        self.connection_created = 0
        self.connection_closed = 0
        self.channel_created = 0
        self.channel_closed = 0
        self.queue_declared = 0
        self.queue_created = 0
        self.queue_deleted = 0
        #: Messages dead-lettered, by reason (only where a dead-letter exchange is set).
        self.dead_lettered: dict[str, int] = dict.fromkeys(DEAD_LETTER_REASONS, 0)
        #: The message counts of every channel closed so far, all vhosts
        #: (deleted ones included): the broker's totals are these plus the
        #: open channels'.
        self.retired = MessageTotals()

    def churn(self) -> dict[str, int]:
        """RabbitMQ's `churn_rates` counters."""
        return {
            "channel_closed": self.channel_closed,
            "channel_created": self.channel_created,
            "connection_closed": self.connection_closed,
            "connection_created": self.connection_created,
            "queue_created": self.queue_created,
            "queue_declared": self.queue_declared,
            "queue_deleted": self.queue_deleted,
        }
