"""Errors raised by routing, each carrying the AMQP reply code RabbitMQ would send.

The broker maps these to ``channel.close`` / ``connection.close`` without a lookup
table: every class has a ``reply_code`` (an ``int``, the values of
``protocol.constants.ReplyCode``) and every instance a ``reply_text`` worded as
RabbitMQ words it, so clients that match on the text keep working.

``routing/`` may not import ``protocol/`` (see ``docs/internals.md``), so the codes
are written here as plain integers with their names beside them.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_REFUSED",
    "COMMAND_INVALID",
    "INTERNAL_ERROR",
    "NOT_FOUND",
    "PRECONDITION_FAILED",
    "AccessRefused",
    "InternalError",
    "InvalidBinding",
    "PreconditionFailed",
    "RoutingError",
    "UnknownExchange",
    "UnknownExchangeType",
    "UnknownQueue",
]

# Reply codes (AMQP 0-9-1 section 1.2, "constants").
ACCESS_REFUSED = 403
NOT_FOUND = 404
PRECONDITION_FAILED = 406
COMMAND_INVALID = 503
INTERNAL_ERROR = 541


class RoutingError(Exception):
    """Base class: ``reply_code`` and ``reply_text`` for the broker to send."""

    reply_code: int = 0

    def __init__(self, reply_text: str) -> None:
        super().__init__(reply_text)
        self.reply_text = reply_text

    def __str__(self) -> str:  # KeyError would otherwise print the repr
        return self.reply_text

    @property
    def closes_connection(self) -> bool:
        """True for the hard (connection) errors: 503 COMMAND_INVALID and 541 here."""
        return self.reply_code >= 500


class UnknownExchange(RoutingError, KeyError):
    """404 NOT_FOUND: ``no exchange 'x' in vhost '/'``."""

    reply_code = NOT_FOUND

    def __init__(self, name: str, vhost: str = "/") -> None:
        super().__init__(f"no exchange '{name}' in vhost '{vhost}'")
        self.name = name
        self.vhost = vhost


class UnknownQueue(RoutingError, KeyError):
    """404 NOT_FOUND: ``no queue 'q' in vhost '/'``."""

    reply_code = NOT_FOUND

    def __init__(self, name: str, vhost: str = "/") -> None:
        super().__init__(f"no queue '{name}' in vhost '{vhost}'")
        self.name = name
        self.vhost = vhost


class AccessRefused(RoutingError):
    """403 ACCESS_REFUSED: the default exchange, ``amq.*`` names, internal exchanges."""

    reply_code = ACCESS_REFUSED


class PreconditionFailed(RoutingError):
    """406 PRECONDITION_FAILED: inequivalent redeclare, exchange in use, bad header."""

    reply_code = PRECONDITION_FAILED


class InvalidBinding(PreconditionFailed):
    """406 PRECONDITION_FAILED: binding arguments the exchange type rejects.

    RabbitMQ's ``validate_binding`` returns ``binding_invalid``, which the channel
    turns into ``precondition_failed`` (rabbit_channel.erl, ``binding_action``).
    """


class UnknownExchangeType(RoutingError):
    """503 COMMAND_INVALID: ``unknown exchange type 'x'`` (a connection error).

    RabbitMQ answers an exchange.declare naming a type it does not know with a
    connection-level 503 (rabbit_exchange:check_type/1), not a channel error.
    """

    reply_code = COMMAND_INVALID

    def __init__(self, type_name: str) -> None:
        super().__init__(f"unknown exchange type '{type_name}'")
        self.type_name = type_name


class InternalError(RoutingError):
    """541 INTERNAL_ERROR (a connection error): where RabbitMQ itself crashes.

    RabbitMQ answers 541 when the code handling a method fails unexpectedly.
    Where that is what a client reliably gets (the consistent-hash plugin given
    a ``hash-header`` that is not a string), routing raises this, so the client
    sees the same code; the text says what was wrong (RabbitMQ's is just
    ``INTERNAL_ERROR``).
    """

    reply_code = INTERNAL_ERROR
