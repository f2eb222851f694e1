"""A channel's message counts, as the management plane reads them.

The counting itself is spread over the hot path at the cost of integer
increments (`broker.core.stats` says where); this module only adds them up:
`QueueUse` is one channel's dealings with one queue, `ChannelCounters` a
channel's whole count, by exchange and by queue, at one moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from broker.core.queue import Queue
from broker.core.stats import MessageTotals

__all__ = ["ChannelCounters", "ExchangeUse", "QueueUse"]


class CountingConsumer(Protocol):
    """What a consumer counts (`broker.session.consumers.Consumer`)."""

    no_ack: bool
    delivered: int
    redelivered: int

    @property
    def acked(self) -> int: ...


class QueueUse:
    """One channel's counts for one queue: deliveries, gets, acks (RabbitMQ's
    channel_queue_stats)."""

    __slots__ = ("deliver", "deliver_no_ack", "redeliver", "ack", "get", "get_no_ack", "get_empty")

    def __init__(self) -> None:
        self.deliver = 0
        self.deliver_no_ack = 0
        self.redeliver = 0
        self.ack = 0
        self.get = 0
        self.get_no_ack = 0
        self.get_empty = 0

    def add_consumer(self, consumer: CountingConsumer) -> None:
        """Add what a consumer of this queue counted."""
        if consumer.no_ack:
            self.deliver_no_ack += consumer.delivered
        else:
            self.deliver += consumer.delivered
            self.ack += consumer.acked
        self.redeliver += consumer.redelivered

    def add(self, other: QueueUse) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def copy(self) -> QueueUse:
        out = QueueUse()
        for name in self.__slots__:
            setattr(out, name, getattr(self, name))
        return out

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class ExchangeUse:
    """One channel's counts for one exchange it published to (channel_exchange_stats)."""

    publish: int = 0
    #: The queue copies those publishes became (the exchange's publish_out).
    publish_out: int = 0
    confirm: int = 0
    return_unroutable: int = 0
    drop_unroutable: int = 0


@dataclass(frozen=True, slots=True)
class ChannelCounters:
    """A channel's counts at one moment: the totals, by exchange, by queue."""

    totals: MessageTotals
    #: Exchange name -> counts (confirms are the channel's, filed under the
    #: exchange it published to last: a confirm does not name an exchange).
    by_exchange: dict[str, ExchangeUse] = field(default_factory=dict)
    #: Queue -> counts; the queue object may since have been deleted.
    by_queue: dict[Queue, QueueUse] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        published: dict[str, int],
        routed: dict[str, int],
        confirmed: int,
        last_exchange: str,
        returned: dict[str, int],
        dropped: dict[str, int],
        by_queue: dict[Queue, QueueUse],
        received_confirm: int = 0,
        elsewhere: QueueUse | None = None,
    ) -> ChannelCounters:
        """`elsewhere`: counts of queues no longer listed one by one (deleted)."""
        totals = MessageTotals()
        totals.received_confirm = received_confirm
        totals.publish = sum(published.values())
        totals.routed = sum(routed.values())
        totals.confirm = confirmed
        totals.return_unroutable = sum(returned.values())
        totals.drop_unroutable = sum(dropped.values())
        uses = [*by_queue.values(), elsewhere] if elsewhere is not None else by_queue.values()
        for use in uses:
            totals.deliver += use.deliver
            totals.deliver_no_ack += use.deliver_no_ack
            totals.redeliver += use.redeliver
            totals.ack += use.ack
            totals.get += use.get
            totals.get_no_ack += use.get_no_ack
            totals.get_empty += use.get_empty
        names = set(published) | set(returned) | set(dropped)
        if confirmed:
            names.add(last_exchange)
        by_exchange = {
            name: ExchangeUse(
                publish=published.get(name, 0),
                publish_out=routed.get(name, 0),
                confirm=confirmed if name == last_exchange else 0,
                return_unroutable=returned.get(name, 0),
                drop_unroutable=dropped.get(name, 0),
            )
            for name in names
        }
        return cls(totals, by_exchange, by_queue)
