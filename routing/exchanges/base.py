"""What every exchange type shares: destinations, bindings, the exchange base class.

An exchange owns the bindings whose *source* it is and answers one question per
published message: which destinations do these routing keys and headers reach?
Everything else (exchange-to-exchange walks, alternate exchanges, CC/BCC, the
default exchange) is the topology's job (``routing.topology``).

Hot path rule: ``route`` runs for every published message, so each type keeps a
precomputed index (a dict, a trie, a compiled pattern list) and ``route`` returns
an existing frozenset whenever it can instead of building a new one. Callers must
treat the returned set as read-only.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "EMPTY",
    "Binding",
    "Destination",
    "Exchange",
    "freeze_arguments",
]

#: The shared empty result; never mutated.
EMPTY: frozenset[Destination] = frozenset()


class Destination(NamedTuple):
    """Where a binding leads: ``kind`` is ``"queue"`` or ``"exchange"``."""

    kind: str
    name: str

    @classmethod
    def queue(cls, name: str) -> Destination:
        return cls("queue", name)

    @classmethod
    def exchange(cls, name: str) -> Destination:
        return cls("exchange", name)

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}'"


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a field-table value that keeps types apart.

    ``True`` and ``1`` are equal in Python but are different field values
    (``t`` and an integer), so each value is tagged with its kind.
    """
    if isinstance(value, bool):
        return ("t", value)
    if isinstance(value, int):
        return ("i", int(value))
    if isinstance(value, float):
        return ("f", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bytes | bytearray | memoryview):
        return ("x", bytes(value))
    if isinstance(value, decimal.Decimal):
        return ("D", str(value))
    if isinstance(value, datetime.datetime):
        return ("T", value.isoformat())
    if value is None:
        return ("V",)
    if isinstance(value, Mapping):
        return ("F", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("A", tuple(_freeze(v) for v in value))
    return ("?", repr(value))


def freeze_arguments(arguments: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """A hashable, order-independent key for a binding's arguments table.

    RabbitMQ tells bindings apart by source, destination, routing key and
    arguments (the table sorted by key, rabbit_binding.erl); so do we.
    """
    if not arguments:
        return ()
    return tuple(sorted((k, _freeze(v)) for k, v in arguments.items()))


class Binding:
    """One binding: ``source`` exchange to ``destination``, by key and arguments.

    Immutable and hashable; two bindings are the same binding when source,
    destination, routing key and arguments (compared as typed tables) are equal.
    """

    __slots__ = ("source", "destination", "routing_key", "arguments", "_key", "_hash")

    source: str
    destination: Destination
    routing_key: str
    arguments: Mapping[str, Any]
    _key: tuple[Any, ...]
    _hash: int

    def __init__(
        self,
        source: str,
        destination: Destination,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(destination, Destination):
            destination = Destination(*destination)
        args = dict(arguments) if arguments else {}
        key = (source, destination, routing_key, freeze_arguments(args))
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "destination", destination)
        object.__setattr__(self, "routing_key", routing_key)
        object.__setattr__(self, "arguments", args)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Binding is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Binding):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        args = f", arguments={self.arguments!r}" if self.arguments else ""
        return (
            f"Binding({self.source!r} -> {self.destination.kind} {self.destination.name!r}, "
            f"routing_key={self.routing_key!r}{args})"
        )


class _Leaf:
    """The bindings that share one index entry, and their destinations as a set.

    ``destinations`` is rebuilt on every change so ``route`` can hand it out
    without copying.
    """

    __slots__ = ("bindings", "destinations")

    def __init__(self) -> None:
        self.bindings: dict[Binding, None] = {}
        self.destinations: frozenset[Destination] = EMPTY

    def add(self, binding: Binding) -> None:
        self.bindings[binding] = None
        self.destinations = frozenset(b.destination for b in self.bindings)

    def remove(self, binding: Binding) -> None:
        del self.bindings[binding]
        self.destinations = frozenset(b.destination for b in self.bindings)

    def __bool__(self) -> bool:
        return bool(self.bindings)


class Exchange:
    """Base class of the exchange types.

    Subclasses set ``TYPE`` and implement ``_index_add``, ``_index_remove``,
    ``route`` and ``matching_bindings``; they may override ``validate_binding``.
    """

    TYPE: ClassVar[str] = ""
    #: The exchange arguments this type reads (every type also reads
    #: ``alternate-exchange``). Others are kept, compared on redeclare where
    #: RabbitMQ compares them, and logged once as ignored (RabbitMQ ignores
    #: unknown exchange arguments too).
    ARGUMENTS: ClassVar[frozenset[str]] = frozenset()

    __slots__ = (
        "name",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
        "alternate_exchange",
        "bindings",
    )

    def __init__(
        self,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: dict[str, Any] = dict(arguments) if arguments else {}
        #: Where a message that matches no binding goes (the argument's, or a
        #: policy's: ``set_policy_alternate``).
        self.alternate_exchange: str | None = self._argument_alternate()
        #: Every binding whose source is this exchange, in insertion order.
        self.bindings: dict[Binding, None] = {}

    @property
    def type(self) -> str:
        return self.TYPE

    def _argument_alternate(self) -> str | None:
        ae = self.arguments.get("alternate-exchange")
        if isinstance(ae, bytes | bytearray):
            ae = bytes(ae).decode("utf-8", "replace")
        # RabbitMQ only honours a string alternate-exchange (rabbit_misc:r_arg).
        return ae if isinstance(ae, str) else None

    def set_policy_alternate(self, alternate: str | None) -> None:
        """The alternate exchange a policy gives (None: no policy gives one).

        The exchange's own ``alternate-exchange`` argument, when it has one,
        wins over the policy's, as in RabbitMQ (rabbit_policy:get_arg/3: the
        argument if present, whatever its type, else the policy's value).
        """
        if "alternate-exchange" in self.arguments:
            self.alternate_exchange = self._argument_alternate()
        else:
            self.alternate_exchange = alternate

    # -- bindings ---------------------------------------------------------

    def validate_declaration(self) -> None:
        """Raise a ``RoutingError`` for arguments this type refuses (default: none).

        Called for a new exchange only: RabbitMQ validates an exchange's
        arguments when it creates it, not when it is redeclared.
        """

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        """Raise ``InvalidBinding`` for arguments this type refuses (default: none)."""

    def add_binding(self, binding: Binding) -> bool:
        """Add ``binding``; False if the same binding already exists (not an error)."""
        if binding in self.bindings:
            return False
        self.bindings[binding] = None
        self._index_add(binding)
        return True

    def remove_binding(self, binding: Binding) -> bool:
        """Remove ``binding``; False if it did not exist (not an error in RabbitMQ)."""
        if binding not in self.bindings:
            return False
        del self.bindings[binding]
        self._index_remove(binding)
        return True

    def _index_add(self, binding: Binding) -> None:
        raise NotImplementedError

    def _index_remove(self, binding: Binding) -> None:
        raise NotImplementedError

    # -- routing ----------------------------------------------------------

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        """The destinations one message reaches through this exchange's own bindings.

        The result may be a shared set: do not mutate it.
        """
        raise NotImplementedError

    @property
    def uses_properties(self) -> bool:
        """Whether routing reads the message's properties (``route_with_properties``).

        Only a consistent-hash exchange with ``hash-property`` does; for the
        others the topology never builds or passes the properties.
        """
        return False

    def route_with_properties(
        self, routing_key: str, headers: Mapping[str, Any] | None, properties: Any
    ) -> frozenset[Destination]:
        """``route`` for a type that also reads properties (see ``uses_properties``)."""
        return self.route(routing_key, headers)

    def route_keys(
        self, routing_keys: Iterable[str], headers: Mapping[str, Any] | None
    ) -> frozenset[Destination] | set[Destination]:
        """Like ``route`` for a message carrying several routing keys (CC/BCC)."""
        out: set[Destination] = set()
        for key in routing_keys:
            out.update(self.route(key, headers))
        return out

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        """The bindings that match, for route traces (slow path, not per message)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} bindings={len(self.bindings)}>"
