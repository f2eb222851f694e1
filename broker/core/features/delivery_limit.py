"""x-delivery-limit: dead-letter a message that keeps coming back (SQS "max receive count").

RabbitMQ 3.10 has this on quorum queues only; Warren honours it on every
queue, with the quorum queues' visible behaviour (checked against the
reference broker with a quorum queue and x-delivery-limit 2):

- every delivery carries an `x-delivery-count` header (a `long`): 0 the
  first time, then the number of times the message came back to the queue
  (basic.reject/nack with requeue=true, basic.recover, the channel or
  connection closing with it unacknowledged);
- when a message comes back and its count then exceeds the limit, it is not
  requeued but dead-lettered with reason `delivery_limit` (or dropped if the
  queue has no dead-letter exchange). With limit 2 a message is delivered
  three times (counts 0, 1, 2);
- the dead-lettered copy does not carry `x-delivery-count`.

The count lives in the entry's own copy of the message (its headers), so it
costs nothing on queues without the argument and nothing extra per delivery:
the properties are re-encoded once on entry and once per return.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.core.headers import Long, raw_header_fields, with_headers
from broker.core.message import Message, QueuedMessage

__all__ = ["DELIVERY_LIMIT", "HEADER", "counted", "delivery_count", "returned"]

HEADER = "x-delivery-count"
DELIVERY_LIMIT = "delivery_limit"


def delivery_count(message: Message) -> int:
    """The x-delivery-count this queue wrote into its copy of the message (0 if none)."""
    count = (message.headers or {}).get(HEADER)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def counted(message: Message, count: int) -> Message:
    """A copy of `message` whose headers carry x-delivery-count = `count`."""
    props = message.decoded_properties
    headers = raw_header_fields(message.properties)  # the others byte for byte
    headers[HEADER] = Long(count)
    return Message(
        message.exchange, message.routing_key, with_headers(props, headers), message.body
    )


def returned(
    limit: int, entries: Iterable[QueuedMessage]
) -> tuple[list[QueuedMessage], list[QueuedMessage]]:
    """Count a return for each entry: (those to requeue, those past `limit`).

    The queue dead-letters the second list with reason `DELIVERY_LIMIT`.
    """
    keep: list[QueuedMessage] = []
    over: list[QueuedMessage] = []
    for entry in entries:
        count = delivery_count(entry.message) + 1
        if count > limit:
            over.append(entry)
        else:
            entry.message = counted(entry.message, count)
            keep.append(entry)
    return keep, over
