"""Exchange types: one module each, over ``base``.

``EXCHANGE_TYPES`` maps the AMQP type name to its class; ``make_exchange`` builds
one, raising ``UnknownExchangeType`` (503 COMMAND_INVALID) for a name it does not
know, as RabbitMQ does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UnknownExchangeType
from .base import Binding, Destination, Exchange, freeze_arguments
from .consistent_hash import ConsistentHashExchange
from .delayed import DelayedMessageExchange
from .direct import DirectExchange
from .fanout import FanoutExchange
from .headers import HeadersExchange, headers_match
from .topic import TopicExchange

__all__ = [
    "BUILTIN_EXCHANGES",
    "EXCHANGE_TYPES",
    "Binding",
    "ConsistentHashExchange",
    "DelayedMessageExchange",
    "Destination",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "freeze_arguments",
    "headers_match",
    "make_exchange",
]

#: The exchanges every RabbitMQ vhost starts with (name, type, internal); all
#: durable. The default exchange "" comes on top of these.
BUILTIN_EXCHANGES: tuple[tuple[str, str, bool], ...] = (
    ("amq.direct", "direct", False),
    ("amq.fanout", "fanout", False),
    ("amq.topic", "topic", False),
    ("amq.headers", "headers", False),
    ("amq.match", "headers", False),
    ("amq.rabbitmq.trace", "topic", True),
)

#: The types an exchange.declare may name: AMQP's four, and RabbitMQ's
#: consistent-hash plugin (``x-consistent-hash``) and its delayed-message
#: plugin (``x-delayed-message``), both always enabled here.
EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    cls.TYPE: cls
    for cls in (
        DirectExchange,
        FanoutExchange,
        TopicExchange,
        HeadersExchange,
        ConsistentHashExchange,
        DelayedMessageExchange,
    )
}


def make_exchange(
    name: str,
    type: str,
    durable: bool = False,
    auto_delete: bool = False,
    internal: bool = False,
    arguments: Mapping[str, Any] | None = None,
) -> Exchange:
    """Build an exchange of AMQP type ``type`` (``direct``, ``fanout``, ...)."""
    cls = EXCHANGE_TYPES.get(type)
    if cls is None:
        raise UnknownExchangeType(type)
    return cls(name, durable, auto_delete, internal, arguments)
