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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from broker.message import Message

if TYPE_CHECKING:
    from broker.channel import Consumer

__all__ = ["Queue", "QueuedMessage", "OVERFLOW_DROP_HEAD", "OVERFLOW_REJECT_PUBLISH"]

OVERFLOW_DROP_HEAD = "drop-head"
OVERFLOW_REJECT_PUBLISH = "reject-publish"


class QueuedMessage:
    """A message's place in one queue: arrival order and redelivered flag."""

    __slots__ = ("seq", "message", "redelivered")

    def __init__(self, seq: int, message: Message, redelivered: bool = False) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered


class Queue:
    """One AMQP queue of a vhost.

    `exclusive_owner` is the connection that declared it exclusive (spec
    1.7.2.1: "exclusive queues may only be accessed by the current
    connection, and are deleted when that connection closes"), else None.
    """

    def __init__(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: Any = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        self.ready: deque[QueuedMessage] = deque()
        self.ready_bytes = 0
        self.consumers: deque[Consumer] = deque()
        self.exclusive_consumer: Consumer | None = None
        self.had_consumer = False
        self.deleted = False
        self._next_seq = 0
        # x-max-length / x-max-length-bytes / x-overflow (RabbitMQ queue
        # arguments); validated by the vhost before the queue is made.
        self.max_length: int | None = self.arguments.get("x-max-length")
        self.max_length_bytes: int | None = self.arguments.get("x-max-length-bytes")
        self.overflow: str = self.arguments.get("x-overflow", OVERFLOW_DROP_HEAD)

    # -- counters (queue.declare-ok, basic.get-ok, management) -------------

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (not counting unacknowledged ones)."""
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

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

        A queue refuses only with `x-overflow: reject-publish` when full; the
        publisher then gets a basic.nack if it asked for confirms.
        """
        size = len(message.body)
        if (self.max_length is not None or self.max_length_bytes is not None) and self._over_limit(
            1, size
        ):
            if self.overflow != OVERFLOW_DROP_HEAD:  # reject-publish(-dlx)
                return False
            # drop-head: make room by dropping the oldest ready messages
            # (dead-lettering them is a later feature).
            while self.ready and self._over_limit(1, size):
                dropped = self.ready.popleft()
                self.ready_bytes -= len(dropped.message.body)
            if self._over_limit(1, size):
                return True  # a limit of 0: the message is dropped at once
        seq = self._next_seq
        self._next_seq = seq + 1
        self.ready.append(QueuedMessage(seq, message))
        self.ready_bytes += size
        if self.consumers:
            self.dispatch()
        return True

    def requeue(self, entries: Iterable[QueuedMessage]) -> None:
        """Put delivered-but-unacked entries back at their original place."""
        if self.deleted:
            return
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

    def get(self) -> QueuedMessage | None:
        """basic.get: the head of the queue, or None when empty."""
        if not self.ready:
            return None
        entry = self.ready.popleft()
        self.ready_bytes -= len(entry.message.body)
        return entry

    def purge(self) -> int:
        """Drop every ready message (unacked ones stay); return how many."""
        count = len(self.ready)
        self.ready.clear()
        self.ready_bytes = 0
        return count

    # -- consumers ----------------------------------------------------------

    def add_consumer(self, consumer: Consumer, exclusive: bool) -> None:
        self.consumers.append(consumer)
        self.had_consumer = True
        if exclusive:
            self.exclusive_consumer = consumer
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None

    @property
    def should_auto_delete(self) -> bool:
        """Auto-delete: gone once it had a consumer and the last one left."""
        return self.auto_delete and self.had_consumer and not self.consumers and not self.deleted

    def dispatch(self) -> None:
        """Deliver ready messages round robin to consumers that have credit.

        Stops when the queue is empty or a whole round of consumers had no
        credit (prefetch exhausted, channel flow off, or their connection's
        output buffer is full: backpressure keeps the messages here).
        """
        ready = self.ready
        consumers = self.consumers
        if not ready or not consumers:
            return
        refused = 0
        count = len(consumers)
        while ready and refused < count:
            consumer = consumers[0]
            if count > 1:
                consumers.rotate(-1)
            if consumer.has_credit():
                entry = ready.popleft()
                self.ready_bytes -= len(entry.message.body)
                consumer.deliver(self, entry)
                refused = 0
            else:
                refused += 1
