"""A channel's unacknowledged deliveries, by delivery tag (AMQP 0-9-1 section 1.8.3).

Delivery tags are per channel and count up from 1 (basic.deliver and
basic.get-ok share the sequence). A delivery stays here until the client
settles it: basic.ack forgets it, basic.reject / basic.nack requeue it or
drop it (dead-lettering it where its queue has a dead-letter exchange),
basic.recover and a closing channel requeue everything outstanding.

How long the oldest outstanding delivery has waited (the consumer timeout,
`oldest_outstanding`) is known without reading a clock per delivery: tags
count up in delivery order, and each periodic check leaves a mark (time,
next tag) saying "every tag below this one was delivered by then". The first
mark above a delivery's tag bounds its delivery time from above, late by at
most the interval between checks; never early.
"""

from __future__ import annotations

from collections import deque

from broker.core import errors
from broker.core.message import QueuedMessage
from broker.core.queue import Queue
from broker.session.consumers import Consumer, Delivery

__all__ = ["Acknowledgements", "Taken"]

#: Marks kept at most by `Acknowledgements.oldest_outstanding`.
_MAX_MARKS = 256

#: Deliveries taken off the table by one ack/nack/reject: (tag, delivery).
Taken = list[tuple[int, Delivery]]


class Acknowledgements:
    """The deliveries of one channel that wait for an acknowledgement."""

    __slots__ = ("next_tag", "unacked", "consumer_unacked", "_marks", "get_acked")

    def __init__(self) -> None:
        self.next_tag = 1
        #: In tag order (dict insertion order; rollback restores the order).
        self.unacked: dict[int, Delivery] = {}
        #: Deliveries to consumers outstanding (basic.qos global counts these).
        self.consumer_unacked = 0
        # (monotonic time, next_tag then), oldest first; see oldest_outstanding.
        self._marks: deque[tuple[float, int]] = deque()
        #: Statistics: basic.get deliveries acknowledged, by queue (acks of
        #: consumers' deliveries are derived, see `Consumer.acked`).
        self.get_acked: dict[Queue, int] = {}

    def next_delivery_tag(self) -> int:
        tag = self.next_tag
        self.next_tag = tag + 1
        return tag

    def record(self, tag: int, queue: Queue, entry: QueuedMessage, consumer: Consumer | None) -> None:
        """Remember a delivery that needs an acknowledgement."""
        self.unacked[tag] = Delivery(queue, entry, consumer)
        if consumer is not None:
            consumer.unacked_count += 1
            self.consumer_unacked += 1

    def oldest_outstanding(self, now: float) -> tuple[Delivery, float] | None:
        """The oldest delivery not yet settled and a time by which it had been
        made, or None when nothing is outstanding. Called periodically (the
        connection's consumer-timeout checks), with `time.monotonic()`.

        The time is that of the first check after the delivery: late by at
        most one check interval. A delivery taken back by tx.rollback may be
        older than the marks still kept; it then counts from a later mark
        (later, never earlier, than the truth).
        """
        marks = self._marks
        unacked = self.unacked
        if not unacked:
            marks.clear()
            return None
        next_tag = self.next_tag
        if not marks or marks[-1][1] != next_tag:
            if len(marks) >= _MAX_MARKS:
                # An oldest delivery outstanding for a very long time (its
                # queue's timeout is long) while deliveries go on: forget a
                # mark, which only makes some deliveries count from later.
                del marks[1]
            marks.append((now, next_tag))
        tag = next(iter(unacked))  # tag order (see `unacked`)
        # Marks taken before this delivery say nothing about it. The last
        # mark's tag (next_tag) is above every delivered tag: one remains.
        while marks[0][1] <= tag:
            marks.popleft()
        return unacked[tag], marks[0][0]

    def take(self, delivery_tag: int, multiple: bool) -> Taken:
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

    def count_get_ack(self, queue: Queue) -> None:
        """A basic.get delivery from `queue` was acknowledged (statistics)."""
        self.get_acked[queue] = self.get_acked.get(queue, 0) + 1

    def take_all(self) -> Taken:
        """Every outstanding delivery (basic.recover, channel close)."""
        taken = list(self.unacked.items())
        self.unacked.clear()
        return taken

    def restore(self, taken: Taken) -> None:
        """Put deliveries back as unacknowledged, in tag order (tx.rollback)."""
        restored = dict(self.unacked)
        restored.update(taken)
        self.unacked = dict(sorted(restored.items()))

    def settle(self, taken: Taken, requeue: bool | None) -> set[Queue]:
        """Finish deliveries: `requeue=None` is an ack, False drops (or
        dead-letters), True requeues. Returns the queues whose consumers got
        credit back, for the channel to dispatch."""
        to_requeue: dict[Queue, list[QueuedMessage]] = {}
        to_reject: dict[Queue, list[QueuedMessage]] = {}
        credited: set[Queue] = set()
        for _tag, delivery in taken:
            consumer = delivery.consumer
            if consumer is not None:
                consumer.unacked_count -= 1
                self.consumer_unacked -= 1
                credited.add(consumer.queue)
                if requeue is not None:
                    consumer.not_acked += 1
            elif requeue is None:
                self.count_get_ack(delivery.queue)
            if requeue is None:
                delivery.queue.ack(delivery.entry)
            elif requeue:
                to_requeue.setdefault(delivery.queue, []).append(delivery.entry)
            else:
                to_reject.setdefault(delivery.queue, []).append(delivery.entry)
        for queue, entries in to_requeue.items():
            queue.requeue(entries)
        for queue, entries in to_reject.items():
            queue.reject(entries)
        return credited
