"""The delayed-message exchange (``x-delayed-message``), as RabbitMQ's plugin.

rabbitmq-delayed-message-exchange (``rabbit_exchange_type_delayed_message.erl``
and ``rabbit_delayed_message_utils.erl``, 3.10.x and later) adds an exchange
type that routes like the type named by its ``x-delayed-type`` argument
(``direct``, ``fanout``, ``topic``, ``headers``), except that a message whose
``x-delay`` header asks for a delay is held for that many milliseconds first
and routed then, by the bindings that exist *then*.

This module is the routing part only, pure like the rest of ``routing/``:

- ``DelayedMessageExchange``: an exchange that keeps its bindings in an
  exchange of its ``x-delayed-type`` (``inner``) and routes through it;
- ``delay_of(headers)``: the delay a message asks for, read as the plugin
  reads it (``get_delay/1``), or None for "route now";
- ``argument_problems(arguments)``: what ``exchange.declare`` refuses, with
  the plugin's reply codes and texts.

Holding the message, its timer and its durability are the broker's
(``broker.core.delayed``): the topology tells the broker which delayed
exchanges a message stopped at (``Topology.route_holding``).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import PreconditionFailed, UnknownExchangeType
from .base import Binding, Destination, Exchange
from .direct import DirectExchange
from .fanout import FanoutExchange
from .headers import HeadersExchange
from .topic import TopicExchange

__all__ = [
    "DELAYED_TYPE_ARGUMENT",
    "DELAY_HEADER",
    "DelayedMessageExchange",
    "MAX_DELAY",
    "argument_problems",
    "delay_of",
    "delayed_type_of",
]

#: The exchange argument naming the routing type.
DELAYED_TYPE_ARGUMENT = "x-delayed-type"
#: The message header asking for a delay, in milliseconds.
DELAY_HEADER = "x-delay"
#: The plugin holds a message only when 0 < delay <= 2^32 - 1 ms (the longest
#: Erlang timer, ``?ERL_MAX_T``); any other delay routes the message at once.
MAX_DELAY = 4294967295

#: The types an ``x-delayed-type`` may name here: AMQP's four. The plugin
#: accepts any registered exchange type (a consistent-hash one too); Warren
#: refuses the others rather than route by something else (compatibility.md).
_ROUTED_TYPES: dict[str, type[Exchange]] = {
    cls.TYPE: cls for cls in (DirectExchange, FanoutExchange, TopicExchange, HeadersExchange)
}
#: Every type Warren knows besides these (for the plugin's error codes).
_OTHER_KNOWN = frozenset({"x-consistent-hash"})

_MUST_EXIST = "Invalid argument, 'x-delayed-type' must be an existing exchange type"
_NOT_RECURSIVE = "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"


def delayed_type_of(arguments: Mapping[str, Any]) -> str | None:
    """The ``x-delayed-type`` argument as a string, or None if absent or not a string."""
    value = arguments.get(DELAYED_TYPE_ARGUMENT)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def argument_problems(arguments: Mapping[str, Any]) -> list[tuple[int, str]]:
    """What an ``exchange.declare`` of type ``x-delayed-message`` with these
    arguments is refused for: a list of (reply code, text), empty when fine.

    The plugin's ``validate/1``: no ``x-delayed-type`` or one that is not a
    string is 406 "must be an existing exchange type"; ``x-delayed-message``
    itself is 406 "can't be used"; a name no exchange type has is
    ``rabbit_exchange:check_type/1``'s 503 "unknown exchange type" (a
    connection error). A type Warren knows but does not delay through
    (``x-consistent-hash``) is 406 with Warren's own text.
    """
    kind = delayed_type_of(arguments)
    if kind is None:
        return [(406, _MUST_EXIST)]
    if kind == DelayedMessageExchange.TYPE:
        return [(406, _NOT_RECURSIVE)]
    if kind in _ROUTED_TYPES:
        return []
    if kind in _OTHER_KNOWN:
        return [
            (
                406,
                f"Invalid argument, 'x-delayed-type' '{kind}' is not supported by Warren's "
                "x-delayed-message (direct, fanout, topic or headers)",
            )
        ]
    return [(503, f"unknown exchange type '{kind}'")]


def _to_int(value: Any) -> int | None:
    """The plugin's ``get_delay_header/1``: integers as they are, long and
    short strings through ``binary_to_integer`` (ValueError when not a
    number: the plugin crashes there), floats and decimals truncated;
    anything else (booleans, tables, arrays, void) is no delay."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        text = value
        digits = text[1:] if text[:1] in "+-" else text
        if not digits or not digits.isascii() or not digits.isdigit():
            raise ValueError(f"x-delay '{value}' is not an integer")
        return int(text)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return int(value)
    if isinstance(value, decimal.Decimal):
        try:
            return int(value)
        except (ValueError, OverflowError):
            return None
    return None


def delay_of(headers: Mapping[str, Any] | None) -> int | None:
    """The milliseconds a message with these headers is held, or None: route now.

    No ``x-delay`` header, one that is not a number, zero, negative (what a
    delayed message carries once released: the plugin sets it to minus the
    delay, so it is not held twice) or above ``MAX_DELAY`` all mean now.
    Raises ValueError for a string that is not an integer (the plugin's
    ``binary_to_integer`` fails; the broker answers 406).
    """
    if not headers or DELAY_HEADER not in headers:
        return None
    delay = _to_int(headers[DELAY_HEADER])
    if delay is None or delay <= 0 or delay > MAX_DELAY:
        return None
    return delay


class DelayedMessageExchange(Exchange):
    """``x-delayed-message``: routes like its ``x-delayed-type``, after the delay.

    ``inner`` is an exchange of the delayed type that holds the same
    bindings; ``route`` and friends answer through it (the routing a
    message gets when it is released, or when it asks for no delay).
    ``delayed_type`` names it. An exchange built with invalid arguments (to
    be refused by ``validate_declaration``, or compared on a redeclare)
    routes as ``direct``.
    """

    TYPE = "x-delayed-message"
    ARGUMENTS = frozenset({DELAYED_TYPE_ARGUMENT})
    __slots__ = ("inner", "delayed_type")

    def __init__(
        self,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        kind = delayed_type_of(self.arguments)
        cls = _ROUTED_TYPES.get(kind or "", DirectExchange)
        self.delayed_type: str | None = kind
        self.inner: Exchange = cls(name, durable, auto_delete, internal, arguments)

    def validate_declaration(self) -> None:
        problems = argument_problems(self.arguments)
        if problems:
            code, text = problems[0]
            if code == 503:
                raise UnknownExchangeType(self.delayed_type or "")
            raise PreconditionFailed(text)
        self.inner.validate_declaration()

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        self.inner.validate_binding(routing_key, arguments)

    def _index_add(self, binding: Binding) -> None:
        self.inner.add_binding(binding)

    def _index_remove(self, binding: Binding) -> None:
        self.inner.remove_binding(binding)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        return self.inner.route(routing_key, headers)

    def route_keys(
        self, routing_keys: Iterable[str], headers: Mapping[str, Any] | None
    ) -> frozenset[Destination] | set[Destination]:
        return self.inner.route_keys(routing_keys, headers)

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        return self.inner.matching_bindings(routing_key, headers)
