"""Dead-lettering (RabbitMQ's extension): where rejected, expired and
overflowing messages go when their queue has `x-dead-letter-exchange`.

The dead-lettered copy is republished to the dead-letter exchange with:

- routing key `x-dead-letter-routing-key` if the queue has one, else the
  message's own routing key (and its CC keys, which still route);
- an `x-death` header: one table per (queue, reason), the most recent death
  first, whose `count` grows when the message dies the same way in the same
  queue again; each records the exchange and routing keys the message had when
  it died (and `original-expiration` when it had a per-message expiration);
- `x-first-death-reason` / `-queue` / `-exchange`, set once;
- no `expiration` property, so it does not expire again for the same reason.

The wording and layout are RabbitMQ 3.10's (rabbit_dead_letter.erl), which is
what Celery, kombu and Spring read back. A message that would come back to a
queue it already died in, with no rejection anywhere in its history, is
dropped: that cycle would never end (RabbitMQ does the same).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from broker.message import Message, copy_properties

if TYPE_CHECKING:
    from broker.queue import Queue, QueuedMessage
    from broker.vhost import VHost

__all__ = ["dead_letter", "REJECTED", "EXPIRED", "MAXLEN"]

REJECTED = "rejected"
EXPIRED = "expired"
MAXLEN = "maxlen"


def _routing_keys(message: Message, headers: dict[str, Any]) -> list[str]:
    keys = [message.routing_key]
    cc = headers.get("CC")
    if isinstance(cc, list):
        keys.extend(k if isinstance(k, str) else bytes(k).decode("utf-8", "replace") for k in cc)
    return keys


def dead_lettered_copy(queue: Queue, message: Message, reason: str) -> Message:
    """The message as it is republished to the queue's dead-letter exchange."""
    props = message.decoded_properties
    headers = dict(props.headers or {})
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    deaths = [dict(d) for d in headers.get("x-death") or [] if isinstance(d, dict)]
    for index, death in enumerate(deaths):
        if death.get("queue") == queue.name and death.get("reason") == reason:
            death = deaths.pop(index)
            death["count"] = int(death.get("count", 0)) + 1
            death["time"] = now
            break
    else:
        death = {
            "count": 1,
            "reason": reason,
            "queue": queue.name,
            "time": now,
            "exchange": message.exchange,
            "routing-keys": _routing_keys(message, headers),
        }
        if props.expiration is not None:
            death["original-expiration"] = props.expiration
    deaths.insert(0, death)
    headers["x-death"] = deaths
    if "x-first-death-reason" not in headers:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue.name
        headers["x-first-death-exchange"] = message.exchange
    new_props = copy_properties(props, headers=headers, expiration=None)
    routing_key = queue.dead_letter_routing_key
    copy = Message(
        queue.dead_letter_exchange or "",
        routing_key if routing_key is not None else message.routing_key,
        new_props.encode(),
        message.body,
    )
    copy.set_decoded(new_props)
    return copy


def _is_endless_cycle(target: str, message: Message) -> bool:
    deaths = (message.headers or {}).get("x-death") or []
    seen = [d for d in deaths if isinstance(d, dict)]
    if any(d.get("reason") == REJECTED for d in seen):
        return False
    return any(d.get("queue") == target for d in seen)


def dead_letter(vhost: VHost, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
    """Republish `entries` of `queue` to its dead-letter exchange (drop if it has none)."""
    exchange = queue.dead_letter_exchange
    if exchange is None or not vhost.has_exchange(exchange):
        return  # RabbitMQ drops the message when the exchange does not exist
    for entry in entries:
        copy = dead_lettered_copy(queue, entry.message, reason)
        headers = copy.headers
        if queue.dead_letter_routing_key is not None and headers:
            # With a dead-letter routing key, the CC keys no longer route.
            headers = {k: v for k, v in headers.items() if k not in ("CC", "BCC")}
        targets = vhost.route_names(exchange, copy.routing_key, headers)
        for target in targets:
            if reason != REJECTED and _is_endless_cycle(target, copy):
                continue
            destination = vhost.queues.get(target)
            if destination is not None:
                destination.enqueue(copy)
