"""The headers exchange: bindings match on the message's header table.

Semantics are RabbitMQ 3.10's (rabbit_exchange_type_headers.erl), which extend
AMQP 0-9-1 section 3.1.3.4:

- ``x-match`` is ``all`` (the default when absent), ``any``, ``all-with-x`` or
  ``any-with-x``; any other value, or a value that is not a string, is refused
  when binding (406 PRECONDITION_FAILED);
- binding arguments whose name starts with ``x-`` take no part in matching,
  except in the two ``-with-x`` modes; ``x-match`` itself never does;
- a binding argument with no value (field type ``V``, Python ``None``) matches
  when the header is present, whatever its value;
- ``all``: every remaining binding argument matches (so a binding with none
  matches every message); ``any``: at least one does (so one with none matches
  nothing).

Value equality
--------------
RabbitMQ compares values with Erlang's ``==``, which ignores the AMQP field type
of top-level values but not their Erlang shape. ``protocol.fields`` decodes
several wire types into one Python type, and Python's ``==`` differs from
Erlang's in places, so each value is first turned into a comparison key that
reproduces Erlang's answer:

- integers of every width and timestamps are integers: ``5`` (``b``) equals
  ``5`` (``l``), and a timestamp equals the integer of its seconds;
- floats compare numerically with integers (Erlang ``1 == 1.0`` is true);
- booleans are atoms in Erlang, so ``True`` does not equal ``1`` (it does in
  Python);
- long strings (``S``) and byte arrays (``x``) are both binaries: ``"abc"``,
  ``b"abc"`` and ``bytearray(b"abc")`` are equal;
- decimals are ``{Scale, Value}`` pairs: ``Decimal("1.0")`` does not equal
  ``Decimal("1")`` nor ``1``;
- nested tables and arrays compare element by element in wire order with these
  rules; both are Erlang lists, so an empty table equals an empty array. RabbitMQ also compares the field types of nested values; we cannot,
  because the decoder folds e.g. every integer width into ``int``, so we are
  more lenient there (documented in ``docs/routing.md``).

Cost: one pass over the bindings per message, like RabbitMQ; each binding's
pattern is compiled to (name, comparison key) pairs when it is added.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidBinding
from .base import EMPTY, Binding, Destination, Exchange

__all__ = ["HeadersExchange", "X_MATCH_MODES", "compile_pattern", "header_key", "headers_match"]

X_MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")

_UTC = datetime.UTC
#: The comparison key of a void binding value: "present, any value".
_PRESENT = object()


def header_key(value: Any) -> Any:
    """The comparison key of one field value; equal keys mean Erlang ``==``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("t", value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")  # equal to the same text sent as a str
        except UnicodeDecodeError:
            return raw
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):  # NaN / infinity cannot be on the wire
            return ("D?", str(value))
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        if exponent > 0:
            unscaled *= 10**exponent
            exponent = 0
        return ("D", -exponent, unscaled)
    if value is None:
        return ("V",)
    # Erlang holds a table as a list of {Key, Type, Value} and an array as a list
    # of {Type, Value}: both are lists, so an empty table equals an empty array.
    if isinstance(value, Mapping):
        return ("L", tuple(("kv", k, header_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("L", tuple(header_key(v) for v in value))
    return ("?", repr(value))


class _Pattern:
    """A binding's arguments compiled for matching."""

    __slots__ = ("binding", "match_all", "pairs")

    def __init__(
        self, binding: Binding | None, match_all: bool, pairs: tuple[Any, ...]
    ) -> None:
        self.binding = binding
        self.match_all = match_all
        self.pairs = pairs


def compile_pattern(arguments: Mapping[str, Any], binding: Binding | None = None) -> _Pattern:
    """Compile binding arguments into the form ``headers_match`` uses."""
    mode = arguments.get("x-match", "all")
    if isinstance(mode, bytes | bytearray):
        mode = bytes(mode).decode("utf-8", "replace")
    if mode not in X_MATCH_MODES:
        mode = "all"  # RabbitMQ: "legacy; we didn't validate"
    with_x = mode.endswith("-with-x")
    pairs = []
    for name, value in sorted(arguments.items()):
        if name == "x-match" or (name.startswith("x-") and not with_x):
            continue
        pairs.append((name, _PRESENT if value is None else header_key(value)))
    return _Pattern(binding, mode.startswith("all"), tuple(pairs))


def _matches(pattern: _Pattern, headers: Mapping[str, Any]) -> bool:
    if pattern.match_all:
        for name, want in pattern.pairs:
            if name not in headers:
                return False
            if want is not _PRESENT and header_key(headers[name]) != want:
                return False
        return True
    for name, want in pattern.pairs:
        if name in headers and (want is _PRESENT or header_key(headers[name]) == want):
            return True
    return False


def headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any] | None) -> bool:
    """Whether a binding with ``arguments`` matches a message with ``headers``."""
    return _matches(compile_pattern(arguments), headers or {})


def field_type_name(value: Any) -> str:
    """The Erlang type atom RabbitMQ would print for a decoded value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        # pika writes integers as ``I`` (Erlang ``signedint``) when they fit.
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, bytearray | memoryview):
        return "binary"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    if value is None:
        return "void"
    return "longstr"


class HeadersExchange(Exchange):
    TYPE = "headers"
    __slots__ = ("_patterns",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._patterns: dict[Binding, _Pattern] = {}

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        if "x-match" not in arguments:
            return  # allowed: RabbitMQ takes it as "all"
        mode = arguments["x-match"]
        if isinstance(mode, bytes):
            mode = mode.decode("utf-8", "replace")
        if isinstance(mode, str):
            if mode not in X_MATCH_MODES:
                raise InvalidBinding(
                    f'Invalid x-match field value <<"{mode}">>; '
                    "expected all, any, all-with-x, or any-with-x"
                )
            return
        raise InvalidBinding(
            f"Invalid x-match field type {field_type_name(mode)} (value {mode!r}); expected longstr"
        )

    def _index_add(self, binding: Binding) -> None:
        self._patterns[binding] = compile_pattern(binding.arguments, binding)

    def _index_remove(self, binding: Binding) -> None:
        del self._patterns[binding]

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        if not self._patterns:
            return EMPTY
        if headers is None:
            headers = {}
        out = {
            p.binding.destination
            for p in self._patterns.values()
            if p.binding is not None and _matches(p, headers)
        }
        return frozenset(out) if out else EMPTY

    def route_keys(
        self, routing_keys: Iterable[str], headers: Mapping[str, Any] | None
    ) -> frozenset[Destination]:
        return self.route("", headers)  # the routing key plays no part

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        headers = headers or {}
        return [b for b, p in self._patterns.items() if _matches(p, headers)]
