"""The exchanges, queues and bindings of one vhost, and routing across them.

The broker keeps one ``Topology`` per vhost and calls ``route`` for every
published message. ``route`` does, in order (RabbitMQ's rabbit_exchange:route/2
and rabbit_basic's CC/BCC handling):

1. the default exchange ``""`` sends the message to the queue named by the
   routing key, if it exists (AMQP 0-9-1 section 3.1.3.1, "default exchange");
2. ``CC`` and ``BCC`` headers (arrays of long strings) add routing keys: the
   message is routed with each of them as well, through every exchange it
   crosses (RabbitMQ "sender-selected distribution");
3. each exchange reached routes by its own bindings; a binding to an exchange
   sends the message on, each exchange visited at most once however the
   bindings loop; an exchange whose own bindings match nothing hands the
   message to its ``alternate-exchange``, if that exists;
4. the result is every queue reached, each once.

The common case (one key, no exchange-to-exchange bindings in the vhost, a
match) is one dict lookup, one exchange ``route`` and one list comprehension.

Errors carry their AMQP reply code (``routing.errors``); texts are RabbitMQ
3.10.8's, checked against the reference broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import deduplication
from .errors import AccessRefused, PreconditionFailed, UnknownExchange, UnknownQueue
from .exchanges import BUILTIN_EXCHANGES, Binding, Destination, Exchange, make_exchange
from .exchanges.consistent_hash import ConsistentHashExchange
from .exchanges.delayed import DELAYED_TYPE_ARGUMENT, DelayedMessageExchange, delay_of
from .exchanges.headers import HeadersExchange, field_type_name

__all__ = [
    "BUILTIN_EXCHANGES",
    "DEFAULT_EXCHANGE",
    "Changes",
    "Hop",
    "RouteTrace",
    "Topology",
]

DEFAULT_EXCHANGE = ""


_DEFAULT_REFUSED = "operation not permitted on the default exchange"


@dataclass
class Changes:
    """What an operation removed, so the broker can journal it and answer.

    ``exchanges_deleted`` lists exchanges deleted as a consequence (auto-delete
    cascades), plus the exchange itself for ``delete_exchange``.
    """

    bindings_removed: list[Binding] = field(default_factory=list)
    exchanges_deleted: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.bindings_removed or self.exchanges_deleted)


@dataclass(frozen=True)
class Hop:
    """One step of a route trace.

    ``via`` is ``"binding"`` (``binding`` says which), ``"alternate-exchange"``
    (the source matched nothing) or ``"default-exchange"`` (the implicit
    binding of every queue to ``""``). ``matched_key`` is the message routing
    key (the publish key or a CC/BCC entry) that the step used; ``None`` for
    headers exchanges and alternate-exchange steps. ``note`` says how a
    binding was chosen when its key alone does not (a consistent-hash
    exchange: what was hashed, the hash, the bucket).
    """

    source: str
    destination: Destination
    via: str
    binding: Binding | None = None
    matched_key: str | None = None
    note: str | None = None

    def describe(self) -> str:
        src = f"exchange '{self.source}'" if self.source else "the default exchange"
        if self.note is not None:
            return f"{src} -> {self.destination} by {self.note}"
        if self.via == "alternate-exchange":
            return f"{src} matched nothing -> alternate-exchange '{self.destination.name}'"
        if self.via == "default-exchange":
            return f"{src} -> queue '{self.destination.name}' (routing key names the queue)"
        assert self.binding is not None
        args = " ".join(f"{k}={v!r}" for k, v in self.binding.arguments.items())
        if self.matched_key is None:  # a headers exchange: the key plays no part
            how = f"headers {args}" if args else "headers (none: x-match all)"
        else:
            how = f"key '{self.binding.routing_key}'"
            if args:
                how += f" arguments {args}"
            how += f" matched '{self.matched_key}'"
        return f"{src} -> {self.destination} by {how}"


@dataclass
class RouteTrace:
    """The queues a message reaches and, for each, the chain of hops that led there."""

    exchange: str
    routing_keys: list[str]
    queues: list[str]
    paths: dict[str, list[Hop]]
    #: Exchanges visited, in the order the walk reached them.
    exchanges_visited: list[str]
    #: The delayed-message exchanges that would hold the message, each with
    #: the delay (ms) its ``x-delay`` header asks for; ``queues`` and
    #: ``paths`` are then where it would go if it were released now.
    delayed: list[tuple[str, int]] = field(default_factory=list)

    def describe(self) -> str:
        """A human-readable rendering (what the CLI prints)."""
        lines = [
            f"exchange '{self.exchange}' routing keys {self.routing_keys}: "
            f"{len(self.queues)} queue(s)"
        ]
        for name, delay in self.delayed:
            lines.append(
                f"  delayed by {delay} ms at exchange '{name}' (x-delay); "
                "routed when released by the bindings that exist then; now it would reach:"
            )
        for q in self.queues:
            lines.append(f"  queue '{q}'")
            for hop in self.paths[q]:
                lines.append(f"    {hop.describe()}")
        if not self.queues:
            lines.append("  unroutable: no queue reached")
        return "\n".join(lines)


def _binding_how(binding: Binding, matched_key: str | None) -> str:
    """How a binding matched, as ``Hop.describe`` says it."""
    args = " ".join(f"{k}={v!r}" for k, v in binding.arguments.items())
    if matched_key is None:  # a headers exchange: the key plays no part
        return f"headers {args}" if args else "headers (none: x-match all)"
    how = f"key '{binding.routing_key}'"
    if args:
        how += f" arguments {args}"
    return how + f" matched '{matched_key}'"


def _cc_keys(routing_key: str, headers: Mapping[str, Any]) -> list[str] | None:
    """All routing keys of a message with CC/BCC headers, or None without them.

    RabbitMQ (rabbit_basic:header_routes/1) takes the long-string elements of an
    array; a CC or BCC header of any other type makes the message invalid
    (406 PRECONDITION_FAILED).
    """
    if "CC" not in headers and "BCC" not in headers:
        return None
    keys = [routing_key]
    for name in ("CC", "BCC"):
        if name not in headers:
            continue
        value = headers[name]
        if not isinstance(value, list | tuple):
            raise PreconditionFailed(
                f'invalid message: {{unacceptable_type_in_header,"{name}",'
                f"{field_type_name(value)}}}"
            )
        for item in value:
            if isinstance(item, str):
                keys.append(item)
            elif isinstance(item, bytes):  # a long string that is not UTF-8
                keys.append(item.decode("utf-8", "surrogateescape"))
    return keys


class Topology:
    """The exchanges, queues (names only) and bindings of one vhost."""

    def __init__(self, vhost: str = "/", *, builtin_exchanges: bool = True) -> None:
        self.vhost = vhost
        self._default = make_exchange(DEFAULT_EXCHANGE, "direct", durable=True)
        self._exchanges: dict[str, Exchange] = {DEFAULT_EXCHANGE: self._default}
        self._exchanges_view = MappingProxyType(self._exchanges)  # live, read-only
        self._queues: set[str] = set()
        #: Bindings by destination, for queue deletion and exchange deletion.
        self._incoming: dict[Destination, dict[Binding, None]] = {}
        #: How many bindings lead to an exchange; zero enables route's fast path.
        self._e2e = 0
        #: How many exchanges route by a message property (consistent-hash
        #: exchanges with hash-property): zero means ``route`` needs none.
        self._property_exchanges = 0
        #: How many exchanges deduplicate (``x-message-deduplication``): zero
        #: means the broker looks for no duplicate at publish (one int test).
        self.dedup_exchanges = 0
        #: How many ``x-delayed-message`` exchanges there are: zero means no
        #: publish can be held (the broker's one check per publish).
        self.delayed_exchanges = 0
        if builtin_exchanges:
            for name, type_, internal in BUILTIN_EXCHANGES:
                self.declare_exchange(name, type_, durable=True, internal=internal, system=True)

    # -- looking things up -------------------------------------------------

    @property
    def exchanges(self) -> Mapping[str, Exchange]:
        """Every exchange by name, the default exchange ``""`` included (a live,
        read-only view: cheap enough to use per message)."""
        return self._exchanges_view

    @property
    def queues(self) -> frozenset[str]:
        """The names of the queues known to routing (a copy: use ``has_queue`` to test one)."""
        return frozenset(self._queues)

    def has_exchange(self, name: str) -> bool:
        return name in self._exchanges

    @property
    def uses_properties(self) -> bool:
        """Whether some exchange routes by a message property (``hash-property``):
        only then does ``route`` need its ``properties`` argument."""
        return self._property_exchanges > 0

    def has_queue(self, name: str) -> bool:
        return name in self._queues

    def get_exchange(self, name: str) -> Exchange:
        """The exchange called ``name``; ``UnknownExchange`` (404) if none."""
        x = self._exchanges.get(name)
        if x is None:
            raise UnknownExchange(name, self.vhost)
        return x

    def bindings(self) -> list[Binding]:
        """Every explicit binding in the vhost (the default exchange's are implicit)."""
        return [b for x in self._exchanges.values() for b in x.bindings]

    def bindings_from(self, exchange: str) -> list[Binding]:
        """Bindings whose source is ``exchange``."""
        x = self._exchanges.get(exchange)
        return [] if x is None else list(x.bindings)

    def bindings_to(self, destination: Destination) -> list[Binding]:
        """Bindings that lead to ``destination`` (a queue or an exchange)."""
        return list(self._incoming.get(destination, ()))

    def bindings_for_queue(self, name: str) -> list[Binding]:
        """Bindings that lead to queue ``name`` (what deleting it removes)."""
        return self.bindings_to(Destination("queue", name))

    def has_bindings(self, exchange: str) -> bool:
        """Whether ``exchange`` is the source of any binding (exchange.delete if-unused)."""
        x = self._exchanges.get(exchange)
        return bool(x is not None and x.bindings)

    def _rs(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.vhost}'"

    # -- exchanges ---------------------------------------------------------

    def declare_exchange(
        self,
        name: str,
        type: str = "direct",
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        *,
        system: bool = False,
    ) -> Exchange:
        """Create exchange ``name``, or check that an existing one is equivalent.

        Raises ``UnknownExchangeType`` (503) for an unknown type,
        ``AccessRefused`` (403) for ``""`` or a new name starting with ``amq.``
        (unless ``system``), the type's own error for arguments it refuses in
        a new exchange (``x-consistent-hash``: 406, or 541 for a ``hash-header``
        that is not a string), ``PreconditionFailed`` (406) if the exchange exists
        with a different type, durable, auto-delete, internal or
        alternate-exchange (the only argument RabbitMQ compares).
        Passive declares are the broker's: use ``get_exchange``.
        """
        new = make_exchange(name, type, durable, auto_delete, internal, arguments)
        if name == DEFAULT_EXCHANGE:
            raise AccessRefused(_DEFAULT_REFUSED)
        existing = self._exchanges.get(name)
        if existing is None:
            if name.startswith("amq.") and not system:
                raise AccessRefused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
            new.validate_declaration()
            dedup = self._dedup_settings(name, new.arguments)
            self._exchanges[name] = new
            if new.uses_properties:
                self._property_exchanges += 1
            if dedup is not None:
                self.dedup_exchanges += 1
            if isinstance(new, DelayedMessageExchange):
                self.delayed_exchanges += 1
            return new
        self._assert_equivalent(existing, new)
        return existing

    def _dedup_settings(
        self, name: str, arguments: Mapping[str, Any]
    ) -> deduplication.DedupSettings | None:
        """An exchange's deduplication (``routing.deduplication``); 406 for a bad value,
        worded as RabbitMQ words a bad queue argument."""
        try:
            return deduplication.dedup_settings(arguments)
        except deduplication.DedupArgumentError as error:
            raise PreconditionFailed(
                f"invalid arg '{error.key}' for {self._rs('exchange', name)}: {error.why}"
            ) from None

    def dedup_settings(self, exchange: str) -> deduplication.DedupSettings | None:
        """The deduplication exchange ``exchange`` does, or None (also for no such exchange)."""
        x = self._exchanges.get(exchange)
        if x is None or not self.dedup_exchanges:
            return None
        return deduplication.dedup_settings(x.arguments)

    def _assert_equivalent(self, old: Exchange, new: Exchange) -> None:
        # rabbit_exchange:assert_equivalence/6, then assert_args_equivalence/2.
        where = self._rs("exchange", old.name)
        for arg, had, got in (
            ("type", old.type, new.type),
            ("durable", old.durable, new.durable),
            ("auto_delete", old.auto_delete, new.auto_delete),
            ("internal", old.internal, new.internal),
        ):
            if had != got:
                had_s = str(had).lower() if isinstance(had, bool) else had
                got_s = str(got).lower() if isinstance(got, bool) else got
                raise PreconditionFailed(
                    f"inequivalent arg '{arg}' for {where}: "
                    f"received '{got_s}' but current is '{had_s}'"
                )

        def show(v: Any) -> str:
            if v is None:
                return "none"
            return f"the value '{v}' of type '{field_type_name(v)}'"

        # RabbitMQ compares alternate-exchange only; Warren also compares the
        # deduplication arguments, as it does a queue's (docs/deduplication.md),
        # and a delayed exchange's x-delayed-type: the plugin compares only
        # alternate-exchange (its inner type's assert_args_equivalence), so a
        # redeclare asking for other routing would be accepted and ignored
        # (compatibility.md).
        keys: tuple[str, ...] = ("alternate-exchange", *deduplication.ARGUMENTS)
        if isinstance(old, DelayedMessageExchange):
            keys += (DELAYED_TYPE_ARGUMENT,)
        for key in keys:
            had_v, got_v = old.arguments.get(key), new.arguments.get(key)
            if had_v != got_v or type(had_v) is not type(got_v):
                raise PreconditionFailed(
                    f"inequivalent arg '{key}' for {where}: "
                    f"received {show(got_v)} but current is {show(had_v)}"
                )

    def delete_exchange(self, name: str, if_unused: bool = False) -> Changes:
        """Delete exchange ``name`` with every binding from or to it.

        A missing exchange is not an error (RabbitMQ 3.10 answers delete-ok).
        ``""`` and the ``amq.*`` built-ins are refused (403); ``if_unused`` and
        bindings with it as source give 406 ``exchange 'x' in vhost '/' in use``.
        Removing bindings to it may auto-delete their sources (see ``Changes``).
        """
        if name == DEFAULT_EXCHANGE:
            raise AccessRefused(_DEFAULT_REFUSED)
        x = self._exchanges.get(name)
        if x is None:
            return Changes()
        if name.startswith("amq."):
            raise AccessRefused(f"deletion of system {self._rs('exchange', name)} not allowed")
        if if_unused and x.bindings:
            raise PreconditionFailed(f"{self._rs('exchange', name)} in use")
        changes = Changes()
        self._delete(x, changes)
        return changes

    def _delete(self, x: Exchange, changes: Changes) -> None:
        del self._exchanges[x.name]
        if x.uses_properties:
            self._property_exchanges -= 1
        if x.arguments.get(deduplication.DEDUPLICATION) is True:
            self.dedup_exchanges -= 1
        if isinstance(x, DelayedMessageExchange):
            self.delayed_exchanges -= 1
        changes.exchanges_deleted.append(x.name)
        for b in list(x.bindings):
            self._remove_binding(x, b, changes, auto_delete=False)
        for b in list(self._incoming.get(Destination("exchange", x.name), ())):
            src = self._exchanges.get(b.source)
            if src is not None:
                self._remove_binding(src, b, changes, auto_delete=True)

    # -- queues ------------------------------------------------------------

    def add_queue(self, name: str) -> None:
        """Make queue ``name`` routable (idempotent)."""
        self._queues.add(name)

    def remove_queue(self, name: str) -> Changes:
        """Forget queue ``name`` and remove its bindings (auto-deleting sources)."""
        self._queues.discard(name)
        changes = Changes()
        for b in list(self._incoming.get(Destination("queue", name), ())):
            src = self._exchanges.get(b.source)
            if src is not None:
                self._remove_binding(src, b, changes, auto_delete=True)
        return changes

    # -- bindings ----------------------------------------------------------

    def bind(
        self,
        source: str,
        destination: Destination | tuple[str, str],
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> bool:
        """Bind ``destination`` to exchange ``source``; False if it already was.

        403 for the default exchange on either side, 404 for a missing source
        (checked first) or destination, 406 for a key or arguments the
        exchange type refuses (headers ``x-match``, a consistent-hash weight).
        """
        dest = destination if isinstance(destination, Destination) else Destination(*destination)
        if source == DEFAULT_EXCHANGE or (dest.kind == "exchange" and dest.name == ""):
            raise AccessRefused(_DEFAULT_REFUSED)
        x = self.get_exchange(source)
        if dest.kind == "queue":
            if dest.name not in self._queues:
                raise UnknownQueue(dest.name, self.vhost)
        elif dest.name not in self._exchanges:
            raise UnknownExchange(dest.name, self.vhost)
        args = dict(arguments) if arguments else {}
        x.validate_binding(routing_key, args)
        binding = Binding(source, dest, routing_key, args)
        if not x.add_binding(binding):
            return False
        self._incoming.setdefault(dest, {})[binding] = None
        if dest.kind == "exchange":
            self._e2e += 1
        return True

    def unbind(
        self,
        source: str,
        destination: Destination | tuple[str, str],
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> Changes:
        """Remove a binding. A binding, queue or exchange that does not exist is
        not an error (RabbitMQ 3.10 answers unbind-ok); the default exchange is
        (403). Removing the last binding of an auto-delete source deletes it."""
        dest = destination if isinstance(destination, Destination) else Destination(*destination)
        if source == DEFAULT_EXCHANGE or (dest.kind == "exchange" and dest.name == ""):
            raise AccessRefused(_DEFAULT_REFUSED)
        changes = Changes()
        x = self._exchanges.get(source)
        if x is not None:
            self._remove_binding(x, Binding(source, dest, routing_key, arguments), changes, True)
        return changes

    def _remove_binding(
        self, x: Exchange, binding: Binding, changes: Changes, auto_delete: bool
    ) -> None:
        if not x.remove_binding(binding):
            return
        changes.bindings_removed.append(binding)
        incoming = self._incoming.get(binding.destination)
        if incoming is not None:
            incoming.pop(binding, None)
            if not incoming:
                del self._incoming[binding.destination]
        if binding.destination.kind == "exchange":
            self._e2e -= 1
        # RabbitMQ: an auto-delete exchange goes when its last binding as source does.
        if auto_delete and x.auto_delete and not x.bindings and self._exchanges.get(x.name) is x:
            self._delete(x, changes)

    # -- routing -----------------------------------------------------------

    def route(
        self,
        exchange: str,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        properties: Any = None,
    ) -> list[str]:
        """The names of the queues a message published to ``exchange`` reaches.

        Each queue appears once. Raises ``UnknownExchange`` (404),
        ``AccessRefused`` (403) for an internal exchange, ``PreconditionFailed``
        (406) for a CC/BCC header that is not an array. The broker strips
        ``BCC`` from the message it delivers.

        ``properties`` (a mapping, or an object with attributes, of the content
        properties by their AMQP names: ``message_id``, ``correlation_id``,
        ``timestamp``) is read only by consistent-hash exchanges that hash a
        property; callers need to pass it only when ``uses_properties`` is true
        (without it such an exchange hashes the property as absent).
        """
        x = self._exchanges.get(exchange)
        if x is None:
            raise UnknownExchange(exchange, self.vhost)
        if x.internal:
            raise AccessRefused(f"cannot publish to internal {self._rs('exchange', exchange)}")
        if headers and ("CC" in headers or "BCC" in headers):
            keys = _cc_keys(routing_key, headers)
            assert keys is not None
            return self._walk(x, keys, headers, properties)
        if x is self._default:
            return [routing_key] if routing_key in self._queues else []
        if properties is not None and x.uses_properties:
            dests = x.route_with_properties(routing_key, headers, properties)
        else:
            dests = x.route(routing_key, headers)
        if dests:
            if not self._e2e:  # no exchange-to-exchange binding anywhere: all queues
                return [d[1] for d in dests]
        elif x.alternate_exchange is None:
            return []
        return self._walk(x, [routing_key], headers, properties)

    def route_holding(
        self,
        exchange: str,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        properties: Any = None,
    ) -> tuple[list[str], list[str], int]:
        """``route`` where delayed-message exchanges may hold the message.

        Returns (queues reached now, delayed exchanges that hold it, the
        delay in ms). A message whose ``x-delay`` asks for a delay stops at
        every ``x-delayed-message`` exchange it reaches, the first one or one
        reached through an exchange-to-exchange binding (the plugin's
        ``route/2`` answers no destination and keeps the message); it goes
        on through other exchanges as usual. A message asking for no delay
        routes as ``route`` routes it. Raises what ``route`` raises, and
        ``PreconditionFailed`` (406) for an ``x-delay`` string that is not an
        integer (where the plugin's ``binary_to_integer`` crashes).
        """
        if not self.delayed_exchanges or not headers or "x-delay" not in headers:
            return self.route(exchange, routing_key, headers, properties), [], 0
        try:
            delay = delay_of(headers)
        except ValueError as error:
            raise PreconditionFailed(f"invalid message: {error}") from None
        if delay is None:
            return self.route(exchange, routing_key, headers, properties), [], 0
        x = self._exchanges.get(exchange)
        if x is None:
            raise UnknownExchange(exchange, self.vhost)
        if x.internal:
            raise AccessRefused(f"cannot publish to internal {self._rs('exchange', exchange)}")
        keys = _cc_keys(routing_key, headers) or [routing_key]
        held: list[str] = []
        queues = self._walk(x, keys, headers, properties, held)
        return queues, held, delay

    def release(
        self,
        exchange: str,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        properties: Any = None,
    ) -> list[str]:
        """The queues a message held by delayed exchange ``exchange`` reaches
        now that its delay is over (none if the exchange is gone).

        Its ``x-delay`` header is negative by now (``broker.core.delayed``),
        so no delayed exchange holds it again. Internal or not, the exchange
        routes it: it was accepted when it was published.
        """
        x = self._exchanges.get(exchange)
        if x is None:
            return []
        keys = (_cc_keys(routing_key, headers) if headers else None) or [routing_key]
        return self._walk(x, keys, headers, properties)

    def _route_one(
        self, x: Exchange, keys: list[str], headers: Mapping[str, Any] | None, properties: Any
    ) -> Iterable[Destination]:
        if x is self._default:
            return [Destination("queue", k) for k in keys if k in self._queues]
        if properties is not None and x.uses_properties:
            return x.route_with_properties(keys[0], headers, properties)
        if len(keys) == 1:
            return x.route(keys[0], headers)
        return x.route_keys(keys, headers)

    def _walk(
        self,
        start: Exchange,
        keys: list[str],
        headers: Mapping[str, Any] | None,
        properties: Any = None,
        held: list[str] | None = None,
    ) -> list[str]:
        # rabbit_exchange:route1/3: a work list of exchanges and a seen set, so
        # each exchange routes at most once however the bindings loop.
        # `held` (route_holding): delayed exchanges keep the message, named there.
        exchanges = self._exchanges
        queues: dict[str, None] = {}
        seen = {start.name}
        work = [start]
        while work:
            x = work.pop(0)
            if held is not None and isinstance(x, DelayedMessageExchange):
                held.append(x.name)
                continue
            dests = self._route_one(x, keys, headers, properties)
            if not dests:
                ae = x.alternate_exchange
                if ae is not None and ae not in seen:
                    seen.add(ae)
                    alt = exchanges.get(ae)
                    if alt is not None:
                        work.append(alt)
                continue
            for kind, name in dests:
                if kind == "queue":
                    queues[name] = None
                elif name not in seen:
                    seen.add(name)
                    nxt = exchanges.get(name)
                    if nxt is not None:
                        work.append(nxt)
        return list(queues)

    def trace(
        self,
        exchange: str,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        properties: Any = None,
        *,
        allow_internal: bool = False,
    ) -> RouteTrace:
        """Like ``route``, with the chain of hops that reached each queue.

        The walk is breadth-first, so each queue's chain is a shortest one.
        ``allow_internal`` lets operators trace an internal exchange. A hop
        through a consistent-hash exchange says what was hashed, the hash and
        the bucket (``Hop.note``).
        """
        x = self.get_exchange(exchange)
        if x.internal and not allow_internal:
            raise AccessRefused(f"cannot publish to internal {self._rs('exchange', exchange)}")
        keys = (_cc_keys(routing_key, headers) if headers else None) or [routing_key]
        try:
            delay = delay_of(headers)
        except ValueError as error:
            raise PreconditionFailed(f"invalid message: {error}") from None
        delayed: list[tuple[str, int]] = []
        paths: dict[str, list[Hop]] = {}
        chain: dict[str, list[Hop]] = {x.name: []}
        visited: list[str] = []
        work = [x]
        while work:
            x = work.pop(0)
            visited.append(x.name)
            hops: list[Hop] = []
            if delay is not None and isinstance(x, DelayedMessageExchange):
                delayed.append((x.name, delay))
            if isinstance(x, DelayedMessageExchange):
                note = f"(x-delayed-type {x.delayed_type}, "
                note += f"after {delay} ms)" if delay is not None else "no x-delay: at once)"
                inner = x.inner
                for k in keys if not isinstance(inner, HeadersExchange) else keys[:1]:
                    for b in x.matching_bindings(k, headers):
                        how = _binding_how(b, None if isinstance(inner, HeadersExchange) else k)
                        hops.append(
                            Hop(x.name, b.destination, "binding", b, k, f"{how} {note}")
                        )
            elif x is self._default:
                for k in keys:
                    if k in self._queues:
                        hops.append(Hop("", Destination("queue", k), "default-exchange", None, k))
            elif isinstance(x, HeadersExchange):
                for b in x.matching_bindings(keys[0], headers):
                    hops.append(Hop(x.name, b.destination, "binding", b, None))
            elif isinstance(x, ConsistentHashExchange):
                choice = x.choose(keys[0], headers, properties)
                if choice is not None:
                    b = choice.slot.binding
                    hops.append(
                        Hop(x.name, b.destination, "binding", b, keys[0], choice.describe())
                    )
            else:
                for k in keys:
                    for b in x.matching_bindings(k, headers):
                        hops.append(Hop(x.name, b.destination, "binding", b, k))
            if not hops and x.alternate_exchange is not None:
                hops.append(
                    Hop(x.name, Destination("exchange", x.alternate_exchange), "alternate-exchange")
                )
            for hop in hops:
                kind, name = hop.destination
                if kind == "queue":
                    if name not in paths:
                        paths[name] = [*chain[x.name], hop]
                elif name not in chain:
                    nxt = self._exchanges.get(name)
                    if nxt is not None:
                        chain[name] = [*chain[x.name], hop]
                        work.append(nxt)
        return RouteTrace(exchange, keys, list(paths), paths, visited, delayed)

    def __repr__(self) -> str:
        return (
            f"<Topology vhost={self.vhost!r} exchanges={len(self._exchanges)} "
            f"queues={len(self._queues)}>"
        )
