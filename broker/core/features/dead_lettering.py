"""Dead-lettering: x-dead-letter-exchange, x-dead-letter-routing-key, x-death.

What RabbitMQ 3.10 does (rabbit_dead_letter.erl, and checked header for
header against the reference broker with pika):

- Reasons: `rejected` (basic.reject / basic.nack with requeue=false),
  `expired` (TTL), `maxlen` (dropped or refused by a length limit) and
  `delivery_limit` (redelivered more than x-delivery-limit).
- The dead-lettered message is republished to the dead-letter exchange with
  x-dead-letter-routing-key if the queue has one, else with the routing keys
  it had (its routing key and CC header). With a dead-letter routing key the
  CC header is removed. The `expiration` property is removed (so the message
  does not expire again) and kept as `original-expiration` in x-death.
- `x-death` is an array of tables, most recent death first, one table per
  (queue, reason): `count` (long, `l`), `reason`, `queue`, `time` (timestamp,
  `T`, seconds), `exchange` (where the message was published to before this
  death), `routing-keys` (array of long strings: its routing key and CC keys)
  and `original-expiration` where the message had one. A repeat death in the
  same queue for the same reason increments that table's count and moves it
  to the front; its other fields are kept (3.10 does not refresh `time`) and
  its keys are then written in sorted order, as RabbitMQ writes them.
- `x-first-death-reason`, `x-first-death-queue` and `x-first-death-exchange`
  are set at the first death and never changed. RabbitMQ 3.10 writes no
  x-last-death-* headers (they came with 3.13), so Warren writes none either.
- The headers table is written with its keys sorted (RabbitMQ sorts a table
  it changes).
- Cycles: a message dead-lettered for a reason other than `rejected` is not
  delivered to a queue it already died in unless a `rejected` death lies on
  the way (RabbitMQ's detect_cycles/is_cycle): fully automatic cycles (TTL
  or length limits bouncing a message between queues) end with the message
  dropped instead of looping forever.
- A dead-letter exchange that does not exist drops the message silently.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from broker.core.headers import Long, Raw, raw_header_fields, with_headers
from broker.core.message import Message, QueuedMessage, copy_properties
from broker.logging import get_logger
from protocol.fields import Timestamp

__all__ = [
    "REASONS",
    "DeadLetterSource",
    "DeadLetterTarget",
    "dead_letter",
    "dead_lettered_copy",
    "is_cycle",
]

log = get_logger("warren.dead_letter")

REASONS = ("rejected", "expired", "maxlen", "delivery_limit")


class DeadLetterSource(Protocol):
    """The queue a message died in: what dead-lettering reads of it."""

    name: str
    dead_letter_exchange: str | None
    dead_letter_routing_key: str | None
    delivery_limit: int | None


class DeadLetterQueue(Protocol):
    #: Messages `enqueue` has taken (statistics).
    arrived: int

    def arrived_not_published(self, count: int = 1) -> None:
        """Statistics: an arrival that is not a publish (`broker.core.stats`)."""
        ...

    def enqueue(self, message: Message) -> bool: ...


class DeadLetterTarget(Protocol):
    """The vhost a dead letter is republished in."""

    def has_exchange(self, name: str) -> bool: ...

    def route_names(
        self,
        exchange: str,
        routing_key: str,
        headers: dict[str, Any] | None,
        message: Message | None = None,
    ) -> list[str]: ...

    def queue_named(self, name: str) -> DeadLetterQueue | None: ...

    def deliver_replies(self, message: Message) -> None: ...

def _routing_keys(message: Message, headers: dict[str, Any]) -> list[str]:
    """The routing key and the CC keys (BCC was removed at publish)."""
    keys = [message.routing_key]
    cc = headers.get("CC")
    if isinstance(cc, list):
        keys.extend(k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in cc)
    return keys


def _death_key(entry: Any) -> tuple[Any, Any] | None:
    if not isinstance(entry, dict):
        return None
    return entry.get("queue"), entry.get("reason")


def dead_lettered_copy(
    queue: DeadLetterSource, message: Message, reason: str, *, now: float | None = None
) -> Message:
    """The message as it is republished to `queue`'s dead-letter exchange."""
    props = message.decoded_properties
    decoded = props.headers or {}
    # Values we do not change are written back byte for byte.
    headers = raw_header_fields(message.properties)
    if queue.delivery_limit is not None:
        # Quorum queues add x-delivery-count to deliveries only.
        headers.pop("x-delivery-count", None)
    info: dict[str, Any] = {
        "count": Long(1),
        "reason": reason,
        "queue": queue.name,
        "time": Timestamp(int(time.time() if now is None else now)),
        "exchange": message.exchange,
        "routing-keys": _routing_keys(message, decoded),
    }
    if props.expiration is not None:
        info["original-expiration"] = props.expiration
    deaths = decoded.get("x-death") if "x-death" in headers else None
    if not isinstance(deaths, list):
        # First death (or an x-death a client mangled, which RabbitMQ resets).
        if "x-death" not in headers:
            headers["x-first-death-reason"] = reason
            headers["x-first-death-queue"] = queue.name
            headers["x-first-death-exchange"] = message.exchange
        deaths = [info]
    else:
        # A later death: RabbitMQ writes the table with its keys sorted.
        key = (queue.name, reason)
        same = [d for d in deaths if _death_key(d) == key]
        others = [d for d in deaths if _death_key(d) != key]
        if same:
            info = dict(same[0])
            count = info.get("count")
            info["count"] = count + 1 if isinstance(count, int) else 1
        deaths = [dict(sorted(info.items())), *others]
    # Counts read back from an earlier death were decoded as plain ints.
    headers["x-death"] = [_long_count(d) for d in deaths]
    routing_key = queue.dead_letter_routing_key
    if routing_key is not None:
        headers.pop("CC", None)  # rabbit_dead_letter: the CC keys no longer apply
    else:
        routing_key = message.routing_key
    headers = dict(sorted(headers.items()))
    raw = with_headers(props, headers, expiration=None)
    letter = Message(queue.dead_letter_exchange or "", routing_key, raw, message.body)
    # Its decoded form, so that routing and the cycle check need not decode it.
    plain = {k: decoded[k] if type(v) is Raw else v for k, v in headers.items()}
    letter.set_decoded(copy_properties(props, headers=plain, expiration=None))
    return letter


def _long_count(death: Any) -> Any:
    if isinstance(death, dict) and isinstance(death.get("count"), int):
        death = dict(death)
        death["count"] = Long(death["count"])
    return death


def is_cycle(queue: str, deaths: list[Any]) -> bool:
    """Would delivering to `queue` close a cycle with no `rejected` death in it?

    `deaths` is the new x-death (most recent first). The cycle is everything
    up to and including the most recent death in `queue` (rabbit_dead_letter
    is_cycle/2); a table that is not a death table counts as a client's doing,
    so the cycle is not automatic.
    """
    for index, death in enumerate(deaths):
        if isinstance(death, dict) and death.get("queue") == queue:
            return all(
                isinstance(d, dict) and d.get("reason") != "rejected" for d in deaths[: index + 1]
            )
    return False


def dead_letter(
    vhost: DeadLetterTarget,
    queue: DeadLetterSource,
    entries: Iterable[QueuedMessage],
    reason: str,
) -> None:
    """Republish `entries`, which died in `queue` for `reason`, to its dead-letter exchange.

    Synchronous, like the rest of the publish path: each dead letter is routed
    and enqueued (and dispatched) before this returns. No dead-letter exchange,
    or one that does not exist: the messages are dropped, as RabbitMQ does.
    """
    exchange = queue.dead_letter_exchange
    if exchange is None or not vhost.has_exchange(exchange):
        return
    for entry in entries:
        letter = dead_lettered_copy(queue, entry.message, reason)
        headers = letter.headers or {}
        names = vhost.route_names(exchange, letter.routing_key, headers, letter)
        if not exchange:
            # To the default exchange, as a publish: a direct reply-to name
            # among its keys reaches that requester (RabbitMQ routes dead
            # letters through rabbit_exchange:route/2 too).
            vhost.deliver_replies(letter)
        if reason != "rejected" and names:
            deaths = headers.get("x-death") or []
            cycling = [name for name in names if is_cycle(name, deaths)]
            if cycling:
                _log_cycle_once(queue.name, reason, cycling)
                names = [name for name in names if name not in cycling]
        for name in names:
            destination = vhost.queue_named(name)
            if destination is not None:
                arrived = destination.arrived
                destination.enqueue(letter)
                if destination.arrived != arrived:  # taken (not refused, not dropped)
                    destination.arrived_not_published()  # statistics: not a publish


_cycles_logged: set[tuple[str, ...]] = set()


def _log_cycle_once(queue: str, reason: str, cycling: list[str]) -> None:
    # RabbitMQ logs each cycle once ("This cycle will NOT be reported again").
    key = (queue, reason, *cycling)
    if key in _cycles_logged or len(_cycles_logged) > 1000:
        return
    _cycles_logged.add(key)
    log.warning("dead_letter.cycle_dropped", queue=queue, reason=reason, targets=cycling)
