"""A channel's subscriptions (basic.consume) and what it has handed out.

`Consumer` is the session's side of a subscription; queues see it only as
a `broker.core.queue.QueueConsumer` (has_credit, deliver, cancelled_by_queue).
`Delivery` is one message handed out and not yet acknowledged, kept by its
channel under its delivery tag.
"""

from __future__ import annotations

from typing import Any, Protocol

from broker.core.message import QueuedMessage
from broker.core.queue import Queue
from broker.session.output import Output

__all__ = ["Consumer", "ConsumerChannel", "Delivery"]


class ConsumerChannel(Protocol):
    """What a consumer reads of its channel (`broker.session.channel.Channel`)."""

    flow_active: bool
    closing: bool
    paused: bool
    global_prefetch: int
    unacked_count: int
    output: Output

    def deliver(self, consumer: Consumer, queue: Queue, entry: QueuedMessage) -> None: ...

    def cancel_by_server(self, consumer: Consumer) -> None: ...


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
        "delivered",
        "redelivered",
        "not_acked",
    )

    def __init__(
        self,
        tag: str,
        channel: ConsumerChannel,
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
        # Statistics: the queue counts deliveries (`QueueConsumer.delivered`);
        # the channel counts deliveries settled otherwise than by an ack
        # (requeued, rejected), so acks are delivered - unacked - not_acked.
        self.delivered = 0
        self.redelivered = 0
        self.not_acked = 0

    @property
    def acked(self) -> int:
        """Deliveries to this consumer acknowledged so far (0 with no_ack)."""
        if self.no_ack:
            return 0
        return self.delivered - self.unacked_count - self.not_acked

    def has_credit(self) -> bool:
        """May the queue hand this consumer one more message now?"""
        channel = self.channel
        if not channel.flow_active or channel.closing or channel.paused:
            return False
        if not channel.output.can_deliver():
            return False
        if self.no_ack:
            return True
        if self.prefetch_count and self.unacked_count >= self.prefetch_count:
            return False
        return not (channel.global_prefetch and channel.unacked_count >= channel.global_prefetch)

    def deliver(self, queue: Queue, entry: QueuedMessage) -> None:
        self.channel.deliver(self, queue, entry)

    def cancelled_by_queue(self) -> None:
        self.channel.cancel_by_server(self)

    def output_blocked(self) -> bool:
        """Is this consumer's connection backed up (so it cannot drain its queue)?"""
        return not self.channel.output.below_high_water()


class Delivery:
    """A message handed out and not yet acknowledged (by delivery tag)."""

    __slots__ = ("queue", "entry", "consumer")

    def __init__(self, queue: Queue, entry: QueuedMessage, consumer: Consumer | None) -> None:
        self.queue = queue
        self.entry = entry
        self.consumer = consumer  # None for basic.get
