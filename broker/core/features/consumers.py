"""Consumer priorities (`x-priority`) and single active consumer.

What RabbitMQ 3.10.8 does, checked against the reference broker
(conformance/tests/test_consumer_priorities.py, test_single_active_consumer.py):

Consumer priorities. basic.consume's `x-priority` argument is an integer
(any size, negative allowed; default 0). A queue hands each message to a
consumer of the highest priority that can take it (has prefetch credit and
its connection is not backed up); consumers of equal priority share round
robin; a lower-priority consumer gets messages only while every
higher-priority one is blocked. Classic and quorum queues alike.

Single active consumer. A queue declared with `x-single-active-consumer`
true delivers to one consumer at a time, the first registered; the others
wait (they count in consumer_count). When the active consumer goes
(basic.cancel, its channel or connection closing) the next one takes over;
on a channel close the messages it had not acknowledged are requeued first,
so the new active consumer gets them first, in their original order. After
a basic.cancel, a classic queue hands the successor its waiting messages
only when something next runs the queue (RabbitMQ 3.10 then even gives it
newer messages first; Warren delivers in queue order), a quorum queue at
once. Which one takes over: on a classic queue, the waiting consumer of the
highest `x-priority`, the earliest registered among equals; on a quorum
queue (3.10), the earliest registered, whatever its priority. A consumer
of higher priority arriving later does not displace the active one.
Around it: an exclusive basic.consume on a classic SAC queue is 403
"in exclusive use" even with no consumer (a quorum SAC queue allows it);
basic.get works on a classic SAC queue and is 405 on a quorum one.

The queue (broker/core/queue.py) keeps every consumer in `consumers`; when
consumers have priorities or only one may be active it also keeps one of
these objects in `dispatch_groups`, whose `groups()` are the deques the
queue's round-robin loop runs over, highest priority first. A queue whose
consumers all have priority 0 and no single active consumer has none, so
its dispatch is what it always was.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from broker.core import errors
from broker.core.errors import amqp_type
from broker.core.features.arguments import log_ignored_once

__all__ = [
    "ConsumedQueue",
    "ConsumerPriorities",
    "SingleActiveConsumer",
    "check_consume",
    "check_get",
    "consumer_priority",
]


#: A consumer as a queue sees it (broker.core.queue.QueueConsumer); this
#: module does not import the queue, which imports it.
QueueConsumer = Any


class ConsumedQueue(Protocol):
    """What the basic.consume / basic.get checks read of a queue."""

    name: str
    arguments: dict[str, Any]
    consumers: deque[QueueConsumer]
    exclusive_consumer: QueueConsumer | None
    dispatch_groups: ConsumerPriorities | SingleActiveConsumer | None


class ConsumerPriorities:
    """Consumers by `x-priority`: one round-robin deque per priority, highest first."""

    __slots__ = ("_by_priority", "_groups", "_priority")

    def __init__(self) -> None:
        self._by_priority: dict[int, deque[QueueConsumer]] = {}
        self._groups: list[deque[QueueConsumer]] = []
        self._priority: dict[int, int] = {}  # id(consumer) -> priority

    def add(self, consumer: QueueConsumer, priority: int) -> None:
        group = self._by_priority.get(priority)
        if group is None:
            group = self._by_priority[priority] = deque()
            self._groups = [self._by_priority[p] for p in sorted(self._by_priority, reverse=True)]
        group.append(consumer)
        self._priority[id(consumer)] = priority

    def remove(self, consumer: QueueConsumer) -> None:
        priority = self._priority.pop(id(consumer), None)
        if priority is None:
            return
        group = self._by_priority[priority]
        group.remove(consumer)
        if not group:
            del self._by_priority[priority]
            self._groups = [self._by_priority[p] for p in sorted(self._by_priority, reverse=True)]

    #: Cancelling a consumer gives no other one credit: nothing to dispatch.
    dispatch_on_cancel = False

    @property
    def only_default(self) -> bool:
        """Are all consumers (if any) of priority 0? Then plain round robin does."""
        return not self._by_priority or list(self._by_priority) == [0]

    def groups(self) -> list[deque[QueueConsumer]]:
        return self._groups


class SingleActiveConsumer:
    """`x-single-active-consumer`: the active consumer and those waiting."""

    __slots__ = ("_active", "_waiting", "_by_priority")

    def __init__(self, by_priority: bool) -> None:
        #: The active consumer, alone in a deque (what dispatch runs over).
        self._active: deque[QueueConsumer] = deque()
        #: (priority, consumer) in registration order.
        self._waiting: list[tuple[int, QueueConsumer]] = []
        self._by_priority = by_priority

    @property
    def dispatch_on_cancel(self) -> bool:
        """Does the successor get the waiting messages at once on basic.cancel?

        A quorum queue (3.10) hands them over at once. A classic queue does
        not run itself on a basic.cancel: they wait for the next event that
        does (a publish, an ack, a requeue, a new consumer). That is what
        keeps "unacknowledged messages first" for a client that cancels its
        consumers and then closes the channel, as pika's close does.
        """
        return not self._by_priority

    @property
    def active(self) -> QueueConsumer | None:
        return self._active[0] if self._active else None

    def add(self, consumer: QueueConsumer, priority: int) -> None:
        if not self._active:
            self._active.append(consumer)
        else:
            self._waiting.append((priority, consumer))

    def remove(self, consumer: QueueConsumer) -> None:
        if self._active and self._active[0] is consumer:
            self._active.clear()
            self._promote()
            return
        self._waiting = [(p, c) for p, c in self._waiting if c is not consumer]

    def _promote(self) -> None:
        waiting = self._waiting
        if not waiting:
            return
        index = 0
        if self._by_priority:  # classic queues: highest priority, then earliest
            best = waiting[0][0]
            for i, (priority, _consumer) in enumerate(waiting):
                if priority > best:
                    best, index = priority, i
        _priority, consumer = waiting.pop(index)
        self._active.append(consumer)

    def groups(self) -> list[deque[QueueConsumer]]:
        return [self._active]


def consumer_priority(
    queue: str, vhost: str, arguments: dict[str, Any], queue_type: str = "classic"
) -> int:
    """Check basic.consume's arguments as RabbitMQ 3.10 does; the consumer's priority.

    406 texts (read off the reference broker):

        invalid arg 'x-priority' for queue 'q' in vhost '/': "expected integer, got longstr"
        invalid arg 'x-cancel-on-ha-failover' for queue 'q' in vhost '/': {unacceptable_type,longstr}
        invalid arg 'x-stream-offset' for queue 'q' in vhost '/' of queue type rabbit_classic_queue
    """
    priority = 0
    for key, value in arguments.items():
        if queue_type == "stream" and key in ("x-priority", "x-cancel-on-ha-failover"):
            # RabbitMQ 3.10.8: a stream consumer takes neither (whatever the value).
            raise errors.precondition_failed(
                f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' "
                "of queue type rabbit_stream_queue"
            )
        if key == "x-priority":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid(queue, vhost, key, f'"expected integer, got {amqp_type(value)}"')
            priority = value
        elif key == "x-cancel-on-ha-failover":
            if not isinstance(value, bool):
                raise _invalid(queue, vhost, key, f"{{unacceptable_type,{amqp_type(value)}}}")
            # Mirrored queues only; a single node has no mirror to fail over to.
            log_ignored_once(vhost, queue, key, "no mirrors on a single node", what="consumer")
        elif key == "x-stream-offset":
            if queue_type == "stream":
                continue  # checked by broker.core.stream.start_offset
            raise errors.precondition_failed(
                f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' "
                f"of queue type rabbit_{queue_type}_queue"
            )
        elif key in ("x-stream-filter", "x-stream-match-unfiltered") and queue_type == "stream":
            continue  # RabbitMQ 3.13's filtering: broker.core.stream.stream_filter_of
        elif key == "x-credit":
            # RabbitMQ 3.10 fails with 541 INTERNAL_ERROR on an AMQP 0-9-1
            # consumer's x-credit (an AMQP 1.0 plugin's argument); a clean 406.
            raise _invalid(queue, vhost, key, '"x-credit is not supported by Warren"')
        else:
            log_ignored_once(vhost, queue, key, "unknown consumer argument", what="consumer")
    return priority


def _invalid(queue: str, vhost: str, key: str, why: str) -> Exception:
    return errors.precondition_failed(
        f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
    )


def check_consume(queue: ConsumedQueue, exclusive: bool, vhost: str) -> None:
    """basic.consume's exclusivity rules (403), single active consumer included."""
    sac_classic = (
        exclusive
        and isinstance(queue.dispatch_groups, SingleActiveConsumer)
        and queue.arguments.get("x-queue-type", "classic") == "classic"
    )
    if queue.exclusive_consumer is not None or (exclusive and queue.consumers) or sac_classic:
        raise errors.access_refused(f"queue '{queue.name}' in vhost '{vhost}' in exclusive use")


def check_get(queue: ConsumedQueue, vhost: str) -> None:
    """basic.get on a quorum queue with a single active consumer is 405 (RabbitMQ 3.10)."""
    if (
        isinstance(queue.dispatch_groups, SingleActiveConsumer)
        and queue.arguments.get("x-queue-type") == "quorum"
    ):
        raise errors.resource_locked(
            f"cannot obtain access to locked queue '{queue.name}' in vhost '{vhost}'. "
            "basic.get operations are not supported by quorum queues with single active consumer"
        )
