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

__all__ = ["Message", "QueuedMessage", "copy_properties", "parse_expiration"]

# Property flags in the first octet of the property list (spec 4.2.6.1: bit
# 15 is content-type, then in declaration order): headers is bit 13,
# expiration bit 8.
_HEADERS_FLAG = 0x20
_EXPIRATION_FLAG = 0x01

# `Message._expiration_ms` before the expiration property has been looked at.
_UNPARSED: Any = object()


class Message:
    """One published message: where it was published to, properties, body.

    A message routed to several queues is one object shared by all of them;
    per-queue state (redelivered, position) lives in the queue's entries.
    """

    __slots__ = ("exchange", "routing_key", "properties", "body", "_decoded", "_expiration_ms")

    def __init__(self, exchange: str, routing_key: str, properties: bytes, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.body = body
        self._decoded: BasicProperties | None = None
        self._expiration_ms: int | None = _UNPARSED

    def set_decoded(self, properties: BasicProperties) -> None:
        """Remember the decoded form of `self.properties` (when we built them)."""
        self._decoded = properties

    @property
    def expiration_ms(self) -> int | None:
        """The per-message TTL in milliseconds, or None (validated at publish).

        Parsed once: the channel's check at publish and every queue the
        message is routed to read the same result.
        """
        value = self._expiration_ms
        if value is _UNPARSED:
            raw = self.properties
            if not raw or not raw[0] & _EXPIRATION_FLAG:
                value = None
            else:
                value = parse_expiration(self.decoded_properties.expiration)
            self._expiration_ms = value
        return value

    @property
    def persistent(self) -> bool:
        """delivery_mode 2: from the decoded properties when the channel already
        decoded them at publish, else read from the raw bytes alone."""
        decoded = self._decoded
        if decoded is not None:
            return decoded.delivery_mode == 2
        return delivery_mode_of(self.properties) == 2

    @property
    def decoded_properties(self) -> BasicProperties:
        """The properties decoded (once, on first use)."""
        if self._decoded is None:
            self._decoded = BasicProperties.decode(self.properties, 0)
        return self._decoded

    @property
    def headers(self) -> dict[str, Any] | None:
        """The `headers` property, decoding the properties only if it is set."""
        raw = self.properties
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
        copy = Message(self.exchange, self.routing_key, new_props.encode(), self.body)
        copy._decoded = new_props
        copy._expiration_ms = self._expiration_ms  # the same expiration property
        return copy


class QueuedMessage:
    """A message's place in one queue: arrival order, redelivered flag, expiry.

    The storage layer subclasses it for journalled messages
    (`broker.storage.entries`).
    """

    __slots__ = ("seq", "message", "redelivered", "expires_at")

    def __init__(
        self,
        seq: int,
        message: Message,
        redelivered: bool = False,
        expires_at: float | None = None,
    ) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered
        self.expires_at = expires_at


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
