"""The topology model: what a configuration file (or a RabbitMQ definitions
export) declares, as plain dataclasses.

Arguments are kept under their RabbitMQ names (``x-message-ttl`` in
milliseconds, ``alternate-exchange``...), so the model converts to and from the
definitions JSON without loss; the configuration language shows the friendlier
names (``message-ttl 30s``). Values are ``str``, ``int``, ``float``, ``bool`` or
``None`` (a void header value).

Comments and blank lines ride along for the formatter but take no part in
equality: two models are equal when they declare the same things in the same
order. ``TopologyConfig.same_topology`` ignores the order too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exchanges import BUILTIN_EXCHANGES, Destination

if TYPE_CHECKING:
    from .topology import Topology


__all__ = [
    "BindingDecl",
    "Declaration",
    "ExchangeDecl",
    "QueueDecl",
    "SourceInfo",
    "TopologyConfig",
]


@dataclass
class SourceInfo:
    """Where a declaration came from and the comments around it (formatter only)."""

    line: int = 0
    comments: list[str] = field(default_factory=list)
    trailing_comment: str | None = None
    blank_line_before: bool = False
    #: End-of-line comments of option lines, by argument name (``x-message-ttl``).
    option_comments: dict[str, str] = field(default_factory=dict)


def _info() -> Any:
    return field(default_factory=SourceInfo, compare=False, repr=False)


@dataclass
class ExchangeDecl:
    """``exchange <name> type <type> ...``: one exchange."""

    name: str
    type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    origin: SourceInfo = _info()

    @property
    def alternate_exchange(self) -> str | None:
        ae = self.arguments.get("alternate-exchange")
        return ae if isinstance(ae, str) else None

    def key(self) -> tuple[Any, ...]:
        return ("exchange", self.name)


@dataclass
class QueueDecl:
    """``queue <name> ...``: one queue (exclusive queues belong to connections)."""

    name: str
    durable: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return ("queue", self.name)


@dataclass
class BindingDecl:
    """``bind [exchange] <destination> to <source> ...``: one binding."""

    source: str
    destination: str
    destination_type: str = "queue"  # or "exchange"
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return (
            "binding",
            self.source,
            self.destination_type,
            self.destination,
            self.routing_key,
            tuple(sorted((k, type(v).__name__, v) for k, v in self.arguments.items())),
        )


Declaration = ExchangeDecl | QueueDecl | BindingDecl


@dataclass
class TopologyConfig:
    """Everything one file declares for one vhost, in file order."""

    declarations: list[Declaration] = field(default_factory=list)
    #: Comments after the last declaration (formatter only).
    trailing_comments: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def exchanges(self) -> list[ExchangeDecl]:
        return [d for d in self.declarations if isinstance(d, ExchangeDecl)]

    @property
    def queues(self) -> list[QueueDecl]:
        return [d for d in self.declarations if isinstance(d, QueueDecl)]

    @property
    def bindings(self) -> list[BindingDecl]:
        return [d for d in self.declarations if isinstance(d, BindingDecl)]

    def same_topology(self, other: TopologyConfig) -> bool:
        """Equal declarations, whatever their order (e.g. after a JSON round trip)."""

        def canon(cfg: TopologyConfig) -> list[tuple[Any, ...]]:
            out = []
            for d in cfg.declarations:
                if isinstance(d, ExchangeDecl):
                    extra: tuple[Any, ...] = (d.type, d.durable, d.auto_delete, d.internal)
                elif isinstance(d, QueueDecl):
                    extra = (d.durable, d.auto_delete)
                else:
                    extra = ()
                args = tuple(sorted((k, type(v).__name__, v) for k, v in d.arguments.items()))
                out.append((d.key(), extra, args))
            return sorted(out, key=repr)

        return canon(self) == canon(other)

    @classmethod
    def from_topology(
        cls, topology: Topology, queues: list[QueueDecl] | None = None
    ) -> TopologyConfig:
        """The declarations that rebuild ``topology`` (e.g. for a definitions export).

        Built-in exchanges are left out, as RabbitMQ's export leaves them out.
        Routing knows queues by name only: pass ``queues`` (with durability and
        arguments, from the broker) or get plain ``QueueDecl(name)`` entries.
        """
        builtin = {name for name, _, _ in BUILTIN_EXCHANGES} | {""}
        decls: list[Declaration] = [
            ExchangeDecl(x.name, x.type, x.durable, x.auto_delete, x.internal, dict(x.arguments))
            for name, x in topology.exchanges.items()
            if name not in builtin
        ]
        if queues is None:
            queues = [QueueDecl(name) for name in sorted(topology.queues)]
        decls.extend(queues)
        decls.extend(
            BindingDecl(
                b.source,
                b.destination.name,
                b.destination.kind,
                b.routing_key,
                dict(b.arguments),
            )
            for b in topology.bindings()
        )
        return cls(decls)

    def apply_to(self, topology: Topology) -> None:
        """Declare everything in ``topology``: exchanges, then queues, then bindings.

        Uses the topology's own checks, so a conflict with what already exists
        raises the same ``routing.errors`` exception an AMQP client would get.
        Queues are only names to routing; the broker creates the queue objects
        from ``self.queues`` (durable, arguments) itself.
        """
        for x in self.exchanges:
            topology.declare_exchange(
                x.name, x.type, x.durable, x.auto_delete, x.internal, x.arguments
            )
        for q in self.queues:
            topology.add_queue(q.name)
        for b in self.bindings:
            topology.bind(
                b.source,
                Destination(b.destination_type, b.destination),
                b.routing_key,
                b.arguments,
            )
