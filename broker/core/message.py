"""A published message as the broker keeps it.

The content properties are kept as the raw bytes the publisher sent (the
property flags and list of the content header frame, AMQP 0-9-1 section
4.2.6.1) and forwarded unchanged to consumers: decoding and re-encoding them
for every delivery would cost more than routing the message. They are decoded
only when something needs to look inside: the headers exchange, CC/BCC
(RabbitMQ's "sender-selected distribution"), and the BCC header, which must be
removed before delivery, which means re-encoding the properties of that one
message.
"""

from __future__ import annotations

from typing import Any

from broker.core.features.ttl import parse_expiration_ms
from protocol.properties import BasicProperties, delivery_mode_of, properties_has_headers

__all__ = [
    "Envelope",
    "Message",
    "PAGED",
    "PagedOut",
    "QueuedMessage",
    "copy_properties",
    "parse_expiration",
]

# Property flags in the first octet of the property list (spec 4.2.6.1: bit
# 15 is content-type, then in declaration order): headers is bit 13,
# expiration bit 8.
_HEADERS_FLAG = 0x20
_EXPIRATION_FLAG = 0x01

# `Envelope.expiration_ms` before the expiration property has been looked at.
_UNPARSED: Any = object()


class Envelope:
    """What a publish says besides its body: exchange, routing key, properties.

    Consecutive publishes on a channel usually say the same (one routing
    key, no properties, or the same ones): their messages share one
    envelope (the channel keeps the last envelope per routing key), so a
    queued message costs one small object and its body. `decoded` and
    `expiration_ms` cache what was read out of `properties`; the channel
    drops `decoded` when it lets go of an envelope (it is decoded again on
    demand), so a message with properties of its own does not keep their
    decoded form alive while it waits in a queue.
    """

    __slots__ = ("exchange", "routing_key", "properties", "decoded", "expiration_ms")

    def __init__(self, exchange: str, routing_key: str, properties: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.decoded: BasicProperties | None = None
        self.expiration_ms: int | None = _UNPARSED


class Message:
    """One published message: its envelope (exchange, routing key, properties) and body.

    A message routed to several queues is one object shared by all of them;
    per-queue state (redelivered, position) lives in the queue's entries.
    `exchange`, `routing_key` and `properties` read through to the envelope;
    hot paths read `message.envelope` once instead.
    """

    __slots__ = ("envelope", "body")

    # A queue keeps a message that needs no per-queue state as the bare
    # message (see QueuedMessage): it then reads as an entry that has never
    # left the queue, with no deadline.
    seq: None = None
    redelivered = False
    expires_at: None = None

    @property
    def message(self) -> Message:
        """The message of a queue entry: a bare message is its own entry."""
        return self

    def __init__(self, exchange: str, routing_key: str, properties: bytes, body: bytes) -> None:
        self.envelope = Envelope(exchange, routing_key, properties)
        self.body = body

    @classmethod
    def sharing(cls, envelope: Envelope, body: bytes) -> Message:
        """A message with an existing (shared) envelope."""
        message: Message = _new(cls)
        message.envelope = envelope
        message.body = body
        return message

    @property
    def exchange(self) -> str:
        return self.envelope.exchange

    @property
    def routing_key(self) -> str:
        return self.envelope.routing_key

    @property
    def properties(self) -> bytes:
        return self.envelope.properties

    def set_decoded(self, properties: BasicProperties) -> None:
        """Remember the decoded form of `self.properties` (when we built them)."""
        self.envelope.decoded = properties

    @property
    def expiration_ms(self) -> int | None:
        """The per-message TTL in milliseconds, or None (validated at publish).

        Parsed once per envelope: the channel's check at publish and every
        queue the message is routed to read the same result.
        """
        envelope = self.envelope
        value = envelope.expiration_ms
        if value is _UNPARSED:
            raw = envelope.properties
            if not raw or not raw[0] & _EXPIRATION_FLAG:
                value = None
            else:
                value = parse_expiration(self.decoded_properties.expiration)
            envelope.expiration_ms = value
        return value

    @property
    def persistent(self) -> bool:
        """delivery_mode 2: from the decoded properties when the channel already
        decoded them at publish, else read from the raw bytes alone."""
        envelope = self.envelope
        decoded = envelope.decoded
        if decoded is not None:
            return decoded.delivery_mode == 2
        return delivery_mode_of(envelope.properties) == 2

    @property
    def decoded_properties(self) -> BasicProperties:
        """The properties decoded (once per envelope, on first use)."""
        envelope = self.envelope
        decoded = envelope.decoded
        if decoded is None:
            decoded = envelope.decoded = BasicProperties.decode(envelope.properties, 0)
        return decoded

    @property
    def headers(self) -> dict[str, Any] | None:
        """The `headers` property, decoding the properties only if it is set."""
        raw = self.envelope.properties
        if not raw or not raw[0] & _HEADERS_FLAG or not properties_has_headers(raw):
            return None
        return self.decoded_properties.headers

    def without_bcc(self) -> Message:
        """A copy whose headers lack `BCC`, for delivery (RabbitMQ removes it).

        Returns `self` when there is no BCC header, so the common case
        allocates nothing.
        """
        headers = self.headers
        if not headers or "BCC" not in headers:
            return self
        props = self.decoded_properties
        new_headers = {k: v for k, v in headers.items() if k != "BCC"}
        new_props = copy_properties(props, headers=new_headers)
        envelope = self.envelope
        copy = Message(envelope.exchange, envelope.routing_key, new_props.encode(), self.body)
        copy.envelope.decoded = new_props
        copy.envelope.expiration_ms = envelope.expiration_ms  # the same expiration property
        return copy


_new = object.__new__


class QueuedMessage:
    """A message's place in one queue: order, redelivered flag, expiry.

    The storage layer subclasses it for journalled messages
    (`broker.storage.entries`).

    The common entry needs none of these: a message that has not left the
    queue yet, without a deadline or a delivery count, is kept in the
    queue's `ready` as the bare `Message` (which reads as such an entry:
    `seq` None, `redelivered` False, `expires_at` None, `message` itself),
    and wrapped when it leaves (`Queue._popleft`). `seq` is given when an
    entry first leaves the queue: entries that never left leave in arrival
    order, so the order of departure is the order of arrival, and an entry
    whose `seq` is None is newer than every entry that has one.
    """

    __slots__ = ("seq", "message", "redelivered", "expires_at")

    def __init__(
        self,
        seq: int | None,
        message: Message,
        redelivered: bool = False,
        expires_at: float | None = None,
    ) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered
        self.expires_at = expires_at


class PagedOut(QueuedMessage):
    """The class of `PAGED` (one instance): see there."""

    __slots__ = ()

    @property
    def message(self) -> Message:
        raise RuntimeError("a paged-out message is read back by its queue's pager, never here")

    @message.setter
    def message(self, value: Message) -> None:
        raise RuntimeError("PAGED is immutable")


#: Stands in a queue's `ready` for a message whose body (and envelope) waits
#: on disk (broker.storage.paging). One shared object, so that a paged-out
#: message costs the queue one pointer: the queue's pager knows where the
#: paged-out messages are, in the order of the PAGED entries. It reads as an
#: entry that has never left the queue, without a deadline (only bare
#: messages are paged out: no TTL, no delivery count, not journalled).
PAGED: PagedOut = PagedOut.__new__(PagedOut)
PAGED.seq = None
PAGED.redelivered = False
PAGED.expires_at = None


_PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


def parse_expiration(value: str | None) -> int | None:
    """The `expiration` property as milliseconds; ValueError (with RabbitMQ's
    reason) when it is not a non-negative integer."""
    if value is None:
        return None
    # Parsed as RabbitMQ parses it (Erlang's string:to_integer/1).
    return parse_expiration_ms(value)


def copy_properties(props: BasicProperties, **changes: Any) -> BasicProperties:
    """A copy of `props` with some properties changed."""
    values = {name: getattr(props, name) for name in _PROPERTY_NAMES}
    values.update(changes)
    return BasicProperties(**values)
