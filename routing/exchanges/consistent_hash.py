"""The consistent-hash exchange, ``x-consistent-hash``, as RabbitMQ's plugin has it.

rabbitmq_consistent_hash_exchange (rabbit_exchange_type_consistent_hash.erl,
RabbitMQ 3.10.8) sends each message to exactly one of its bindings, chosen by a
hash, so that a stream of keys spreads over the bound queues in proportion to
their weights and one key always lands in the same queue:

- **The ring.** A binding's key is its weight, a whole number of 1 or more.
  Bindings take consecutive *buckets* in the order they were made: the first
  with weight 2 takes buckets 0 and 1, the next with weight 3 takes 2 to 4, and
  so on. A destination takes buckets once: a second binding to the same queue
  (another key, or other arguments) leaves the ring as it is. Removing a
  binding takes its destination's buckets out and moves the later ones down.
- **The choice.** The value hashed is the message's routing key (the first one:
  CC/BCC keys take no part), or the header named by the ``hash-header``
  argument, or the property named by ``hash-property`` (``message_id``,
  ``correlation_id``, ``timestamp``). Its ``erlang:phash2`` goes through a jump
  consistent hash (Lamping and Veach) over the number of buckets; the binding
  holding that bucket is where the message goes. Growing the ring moves only
  the keys that land in the new buckets.

Everything is computed as RabbitMQ computes it (``routing.exchanges.erlang``),
so the same bindings made in the same order route the same keys to the same
queues; ``tests/routing/test_consistent_hash_against_broker.py`` checks this
against a RabbitMQ with the plugin. What cannot match, and why, is in
``docs/routing.md`` ("Consistent hash"): header values other than strings are
hashed with their AMQP field type, which our decoder does not keep for
integers, and RabbitMQ rebuilds its rings in another order when it restarts.

Errors, with RabbitMQ's codes and texts:

- a binding key that is not an integer: 406 ``The binding key must be an
  integer: <<"abc">>``; one below 1: 406 ``The binding key must be greater
  than 0``;
- declaring with both arguments: 406 ``hash-header and hash-property are
  mutually exclusive``; with another property: 406 ``Unsupported property:
  foo``; with a value that is not a string: RabbitMQ's plugin crashes and the
  connection is closed with 541 INTERNAL_ERROR, so that is what we send.
  As in RabbitMQ, only a new exchange's arguments are checked.
"""

from __future__ import annotations

import datetime
import decimal
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InternalError, InvalidBinding, PreconditionFailed
from .base import EMPTY, Binding, Destination, Exchange
from .erlang import UNDEFINED, Atom, format_binary, jump_consistent_hash, phash2

__all__ = [
    "CACHE_SIZE",
    "HASH_HEADER",
    "HASH_PROPERTY",
    "PROPERTIES",
    "Choice",
    "ConsistentHashExchange",
    "RingSlot",
    "argument_problems",
    "binding_key_problem",
    "field_term",
    "property_term",
]

HASH_HEADER = "hash-header"
HASH_PROPERTY = "hash-property"
#: The properties ``hash-property`` may name, as the plugin spells them.
PROPERTIES = ("correlation_id", "message_id", "timestamp")

#: Hashed values whose destination an exchange remembers (emptied when the
#: ring changes, and when full). Hashing costs tens of microseconds in Python.
CACHE_SIZE = 4096

#: What Erlang's list_to_integer/1 accepts.
_INTEGER = re.compile(r"[+-]?[0-9]+")
#: The error text before the ``~p`` of the key: where its column starts.
_NOT_INTEGER = "The binding key must be an integer: "

_LONGSTR = Atom("longstr")
_UTC = datetime.UTC


def binding_key_problem(routing_key: str) -> str | None:
    """RabbitMQ's error text for a binding key that is not a weight, or None.

    The plugin reads the key with ``list_to_integer``: an optional sign and
    ASCII digits, nothing else (no spaces); the weight must be 1 or more.
    """
    if _INTEGER.fullmatch(routing_key) is None:
        raw = routing_key.encode("utf-8", "surrogateescape")
        return _NOT_INTEGER + format_binary(raw, len(_NOT_INTEGER))
    if int(routing_key) < 1:
        return "The binding key must be greater than 0"
    return None


def _text(value: Any) -> str | None:
    """A longstr argument's text (RabbitMQ only reads longstr arguments)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return None


def argument_problems(arguments: Mapping[str, Any]) -> list[tuple[int, str]]:
    """What the plugin's ``validate/1`` refuses in an exchange's arguments.

    ``(reply_code, text)`` pairs, the first one being what RabbitMQ answers: 541
    for a ``hash-header`` or ``hash-property`` that is not a string (the
    plugin crashes on it), then 406 for both at once or an unknown property.
    """
    problems: list[tuple[int, str]] = []
    for name in (HASH_HEADER, HASH_PROPERTY):
        if name in arguments and _text(arguments[name]) is None:
            problems.append((541, f"{name} must be a string (a longstr field)"))
    if problems:
        return problems
    header = HASH_HEADER in arguments
    prop = _text(arguments.get(HASH_PROPERTY)) if HASH_PROPERTY in arguments else None
    if header and prop is not None:
        return [(406, "hash-header and hash-property are mutually exclusive")]
    if prop is not None and prop not in PROPERTIES:
        return [(406, f"Unsupported property: {prop}")]
    return []


def field_term(value: Any) -> tuple[Any, ...]:
    """The ``{Type, Value}`` term RabbitMQ holds for a decoded header value.

    The type is the AMQP field type as RabbitMQ names it. Our decoder keeps it
    for every type but integers (``b s u I i l`` all become ``int``) and
    floats (``f`` and ``d``): an integer is taken as pika writes it, ``signedint``
    when it fits 32 bits and ``long`` otherwise, and a float as ``double``.
    """
    if isinstance(value, str):
        return (_LONGSTR, value.encode("utf-8", "surrogateescape"))
    if isinstance(value, bool):
        return (Atom("bool"), Atom("true" if value else "false"))
    if isinstance(value, bytes):  # a long string that is not UTF-8
        return (_LONGSTR, value)
    if isinstance(value, bytearray | memoryview):
        return (Atom("binary"), bytes(value))
    if isinstance(value, int):
        if type(value).__name__ == "Timestamp":  # protocol.fields' T beyond year 9999
            return (Atom("timestamp"), int(value))
        if -(2**31) <= value < 2**31:
            return (Atom("signedint"), int(value))
        # RabbitMQ reads l and L as signed 64-bit integers.
        return (Atom("long"), (value + 2**63) % 2**64 - 2**63)
    if isinstance(value, float):
        return (Atom("double"), value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return (Atom("timestamp"), int(value.timestamp()))
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        if not isinstance(exponent, int):
            exponent = 0
        if exponent > 0:
            unscaled *= 10**exponent
            exponent = 0
        # rabbit_binary_parser reads the value as an unsigned 32-bit integer.
        return (Atom("decimal"), (-exponent, unscaled & 0xFFFFFFFF))
    if value is None:
        return (Atom("void"), UNDEFINED)
    if isinstance(value, Mapping):
        return (
            Atom("table"),
            [(str(k).encode("utf-8"), *field_term(v)) for k, v in value.items()],
        )
    if isinstance(value, list | tuple):
        return (Atom("array"), [field_term(v) for v in value])
    raise TypeError(f"not a field value: {type(value).__name__}")


def _property(properties: Any, name: str) -> Any:
    if properties is None:
        return None
    if isinstance(properties, Mapping):
        return properties.get(name)
    return getattr(properties, name, None)


def property_term(properties: Any, name: str) -> Any:
    """What the plugin hashes for property ``name``: the binary, or ``undefined``.

    ``properties`` is a mapping or an object with attributes (``message_id``,
    ``correlation_id``: text; ``timestamp``: a ``datetime`` or seconds). The
    plugin hashes a timestamp as the decimal text of its seconds.
    """
    value = _property(properties, name)
    if value is None:
        return UNDEFINED
    if name == "timestamp":
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_UTC)
            value = int(value.timestamp())
        return str(int(value)).encode()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


class RingSlot:
    """The buckets one destination holds: ``first`` to ``first + weight - 1``."""

    __slots__ = ("binding", "first", "weight", "destinations")

    def __init__(self, binding: Binding, first: int, weight: int) -> None:
        self.binding = binding
        self.first = first
        self.weight = weight
        self.destinations: frozenset[Destination] = frozenset((binding.destination,))

    @property
    def last(self) -> int:
        return self.first + self.weight - 1

    def __repr__(self) -> str:
        return f"<RingSlot {self.binding.destination} buckets {self.first}-{self.last}>"


@dataclass(frozen=True)
class Choice:
    """How one message was placed: what was hashed, its hash, its bucket, its slot."""

    #: What was hashed, in words: ``routing key 'k'``, ``header 'user'``...
    hashed: str
    #: The Erlang term hashed (a binary, ``undefined``, or a header's {Type, Value}).
    term: Any
    #: ``erlang:phash2`` of the term.
    hash: int
    #: The bucket (0 .. buckets - 1) and how many there were.
    bucket: int
    buckets: int
    slot: RingSlot

    def describe(self) -> str:
        slot = self.slot
        held = (
            f"bucket {slot.first}"
            if slot.weight == 1
            else f"buckets {slot.first}-{slot.last}"
        )
        return (
            f"consistent hash of {self.hashed}: phash2 {self.hash}, "
            f"bucket {self.bucket} of {self.buckets} (binding key '{slot.binding.routing_key}' "
            f"holds {held})"
        )


class ConsistentHashExchange(Exchange):
    TYPE = "x-consistent-hash"
    ARGUMENTS = frozenset({"hash-header", "hash-property"})
    __slots__ = ("_slots", "_starts", "_by_destination", "_buckets", "_hash_on", "_cache")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots: list[RingSlot] = []
        #: The first bucket of each slot, for bisect.
        self._starts: list[int] = []
        self._by_destination: dict[Destination, RingSlot] = {}
        self._buckets = 0
        self._cache: dict[Any, frozenset[Destination]] = {}
        # The plugin's hash_on/1: a longstr hash-header, else a longstr
        # hash-property, else the routing key. (Other values never get past
        # validate_declaration.)
        header = _text(self.arguments.get(HASH_HEADER))
        prop = _text(self.arguments.get(HASH_PROPERTY))
        self._hash_on: tuple[str, str] | None = None
        if header is not None:
            self._hash_on = ("header", header)
        elif prop is not None:
            self._hash_on = ("property", prop)

    # -- declaring and binding --------------------------------------------------

    def validate_declaration(self) -> None:
        problems = argument_problems(self.arguments)
        if problems:
            code, text = problems[0]
            if code == 541:
                raise InternalError(text)
            raise PreconditionFailed(text)

    @property
    def uses_properties(self) -> bool:
        return self._hash_on is not None and self._hash_on[0] == "property"

    @property
    def hash_on(self) -> tuple[str, str] | None:
        """``None`` (the routing key), ``("header", name)`` or ``("property", name)``."""
        return self._hash_on

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        problem = binding_key_problem(routing_key)
        if problem is not None:
            raise InvalidBinding(problem)

    def _index_add(self, binding: Binding) -> None:
        if binding.destination in self._by_destination:
            # The plugin: "NOT adding binding ... because this binding
            # (possibly with a different routing key) already exists".
            return
        weight = int(binding.routing_key)
        if weight < 1:
            raise ValueError(f"binding key {binding.routing_key!r} is not a weight")
        slot = RingSlot(binding, self._buckets, weight)
        self._slots.append(slot)
        self._starts.append(slot.first)
        self._by_destination[binding.destination] = slot
        self._buckets += weight
        self._cache.clear()

    def _index_remove(self, binding: Binding) -> None:
        # The plugin removes every bucket of the binding's *destination*,
        # whichever of its bindings took them, and moves later buckets down.
        slot = self._by_destination.pop(binding.destination, None)
        if slot is None:
            return
        i = self._slots.index(slot)
        del self._slots[i]
        del self._starts[i]
        for later in self._slots[i:]:
            later.first -= slot.weight
        self._starts[i:] = [s.first for s in self._slots[i:]]
        self._buckets -= slot.weight
        self._cache.clear()

    @property
    def buckets(self) -> int:
        """How many buckets the ring has (the sum of the weights on it)."""
        return self._buckets

    def ring(self) -> list[RingSlot]:
        """The slots in bucket order (a copy)."""
        return list(self._slots)

    # -- routing ----------------------------------------------------------------

    def _term(self, routing_key: str, headers: Mapping[str, Any] | None, properties: Any) -> Any:
        hash_on = self._hash_on
        if hash_on is None:
            return routing_key.encode("utf-8", "surrogateescape")
        kind, name = hash_on
        if kind == "header":
            if not headers or name not in headers:
                return UNDEFINED
            return field_term(headers[name])
        if name in PROPERTIES:
            return property_term(properties, name)
        return UNDEFINED

    def _slot_for(self, term: Any) -> tuple[int, int, RingSlot]:
        key_hash = phash2(term)
        bucket = jump_consistent_hash(key_hash, self._buckets)
        return key_hash, bucket, self._slots[bisect_right(self._starts, bucket) - 1]

    def _route_term(self, term: Any) -> frozenset[Destination]:
        cache = self._cache
        try:
            hit = cache.get(term)
        except TypeError:  # a term holding a list (a table or array header)
            return self._slot_for(term)[2].destinations
        if hit is not None:
            return hit
        result = self._slot_for(term)[2].destinations
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[term] = result
        return result

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        if not self._slots:
            return EMPTY
        if self._hash_on is None:
            hit = self._cache.get(routing_key)
            if hit is not None:
                return hit
            result = self._slot_for(routing_key.encode("utf-8", "surrogateescape"))[2].destinations
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[routing_key] = result
            return result
        return self._route_term(self._term(routing_key, headers, None))

    def route_with_properties(
        self, routing_key: str, headers: Mapping[str, Any] | None, properties: Any
    ) -> frozenset[Destination]:
        if not self._slots:
            return EMPTY
        return self._route_term(self._term(routing_key, headers, properties))

    def route_uncached(
        self,
        routing_key: str,
        headers: Mapping[str, Any] | None = None,
        properties: Any = None,
    ) -> frozenset[Destination]:
        """``route`` without the cache: the hash and the jump every time (benchmarks)."""
        if not self._slots:
            return EMPTY
        return self._slot_for(self._term(routing_key, headers, properties))[2].destinations

    def route_keys(
        self, routing_keys: Iterable[str], headers: Mapping[str, Any] | None
    ) -> frozenset[Destination]:
        # The plugin hashes hd(RoutingKeys): the publish key, never a CC/BCC one.
        for key in routing_keys:
            return self.route(key, headers)
        return EMPTY

    def choose(
        self, routing_key: str, headers: Mapping[str, Any] | None, properties: Any = None
    ) -> Choice | None:
        """How a message is placed (for route traces); None when nothing is bound."""
        if not self._slots:
            return None
        term = self._term(routing_key, headers, properties)
        key_hash, bucket, slot = self._slot_for(term)
        hash_on = self._hash_on
        if hash_on is None:
            hashed = f"routing key '{routing_key}'"
        else:
            kind, name = hash_on
            hashed = f"{kind} '{name}'"
            if term is UNDEFINED:
                hashed += " (absent: undefined)"
            elif kind == "header" and headers is not None:
                hashed += f" = {headers[name]!r}"
            else:
                hashed += f" = {_property(properties, name)!r}"
        return Choice(hashed, term, key_hash, bucket, self._buckets, slot)

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        choice = self.choose(routing_key, headers)
        return [] if choice is None else [choice.slot.binding]
