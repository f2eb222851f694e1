"""Read-only views of the model, for statistics and the management plane.

A snapshot is taken synchronously on the event loop (so it is consistent)
and changes nothing: taking one never expires a message, writes a journal
record or renews an `x-expires` lease. The management layer turns snapshots
into JSON and rates; the model only keeps the counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.core.policies import Policy
from broker.core.stats import QueueCounters

__all__ = ["QueueSnapshot"]


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One queue at one moment (RabbitMQ's /api/queues fields, where Warren has them)."""

    name: str
    vhost: str
    durable: bool
    auto_delete: bool
    exclusive: bool
    arguments: dict[str, Any]
    #: Messages ready for delivery (RabbitMQ's `messages_ready`).
    messages_ready: int
    #: Delivered and not yet acknowledged (`messages_unacknowledged`).
    messages_unacknowledged: int
    #: Body bytes of the ready messages (`message_bytes_ready`).
    message_bytes_ready: int
    consumers: int
    #: `time.monotonic()` of the last use (declare, get, consume), for `idle_since`.
    last_used: float
    #: Message counts since the queue was made (`message_stats`).
    counters: QueueCounters = field(default_factory=QueueCounters)
    #: The tag of the exclusive consumer, if one holds the queue.
    exclusive_consumer_tag: str | None = None
    #: The policy and operator policy that apply (None: none does).
    policy: Policy | None = None
    operator_policy: Policy | None = None
    #: With `x-single-active-consumer`: the tag of the consumer that is active
    #: (None without a consumer, or on a queue without single active consumer).
    single_active_consumer_tag: str | None = None

    @property
    def messages(self) -> int:
        """Ready plus unacknowledged, as RabbitMQ's `messages`."""
        return self.messages_ready + self.messages_unacknowledged
