"""The topology model: what a configuration file (or a RabbitMQ definitions
export) declares, as plain dataclasses.

Arguments are kept under their RabbitMQ names (``x-message-ttl`` in
milliseconds, ``alternate-exchange``...), so the model converts to and from the
definitions JSON without loss; the configuration language shows the friendlier
names (``message-ttl 30s``). Values are ``str``, ``int``, ``float``, ``bool`` or
``None`` (a void header value).

Besides a vhost's topology (exchanges, queues, bindings), a file may declare
what RabbitMQ keeps broker-wide and AMQP cannot create: vhosts, users, their
permissions and topic permissions, and vhost limits. Those name their vhost
themselves; the topology belongs to the vhost the file is applied to (see
docs/config-language.md, "Vhosts, users and permissions"), and so do the
file's policies and operator policies (``PolicyDecl``), which the management
API sets, not AMQP.

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
    "ACCESS_KINDS",
    "DEFAULT_HASHING_ALGORITHM",
    "AccessDecl",
    "BindingDecl",
    "Declaration",
    "ExchangeDecl",
    "PermissionDecl",
    "PolicyDecl",
    "QueueDecl",
    "SourceInfo",
    "TopicPermissionDecl",
    "TopologyConfig",
    "UserDecl",
    "VHostDecl",
    "VHostLimitDecl",
]

#: RabbitMQ's default password hashing module (since 3.6), as definitions name it.
DEFAULT_HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


@dataclass
class SourceInfo:
    """Where a declaration came from and the comments around it (formatter only)."""

    line: int = 0
    comments: list[str] = field(default_factory=list)
    trailing_comment: str | None = None
    blank_line_before: bool = False
    #: End-of-line comments of option lines, by argument name (``x-message-ttl``;
    #: for users and vhosts, the option's name: ``tags``, ``password-hash``).
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


@dataclass
class VHostDecl:
    """``vhost <name> ...``: a virtual host.

    ``description`` and ``tags`` are None when the file does not give them:
    RabbitMQ 3.10's export leaves them out, so "not said" must not read as
    "empty" (apply would otherwise clear what the broker has).
    """

    name: str
    description: str | None = None
    tags: list[str] | None = None
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return ("vhost", self.name)


@dataclass
class UserDecl:
    """``user <name> ...``: a user of RabbitMQ's internal database.

    Only a password *hash* is kept (RabbitMQ's base64 of salt + digest), never
    a password. ``""`` is "no password" (as in RabbitMQ's export): such a user
    cannot log in with a password. ``limits`` are RabbitMQ's user limits
    (``max-connections``, ``max-channels``).
    """

    name: str
    password_hash: str = ""
    hashing_algorithm: str = DEFAULT_HASHING_ALGORITHM
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return ("user", self.name)


@dataclass
class PermissionDecl:
    """``permission <user> on <vhost> configure P write P read P``: regular expressions."""

    user: str
    vhost: str
    configure: str = ""
    write: str = ""
    read: str = ""
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return ("permission", self.user, self.vhost)


@dataclass
class TopicPermissionDecl:
    """``topic-permission <user> on <vhost> exchange X write P read P``."""

    user: str
    vhost: str
    exchange: str
    write: str = ""
    read: str = ""
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return ("topic-permission", self.user, self.vhost, self.exchange)


@dataclass
class VHostLimitDecl:
    """``limit <vhost> max-connections N`` (or ``max-queues``): one vhost limit.

    A negative value lifts the limit, as in RabbitMQ; 0 allows none.
    """

    vhost: str
    name: str
    value: int
    origin: SourceInfo = _info()

    def key(self) -> tuple[Any, ...]:
        return ("limit", self.vhost, self.name)


@dataclass
class PolicyDecl:
    """``policy <name> pattern "<regex>" ...`` (or ``operator-policy``): a policy
    of the file's vhost. ``definition`` holds RabbitMQ's keys and values as a
    policy's JSON has them (``message-ttl`` in milliseconds...)."""

    name: str
    pattern: str
    definition: dict[str, Any] = field(default_factory=dict)
    apply_to: str = "all"
    priority: int | float = 0
    operator: bool = False
    origin: SourceInfo = _info()

    @property
    def keyword(self) -> str:
        return "operator-policy" if self.operator else "policy"

    def key(self) -> tuple[Any, ...]:
        return (self.keyword, self.name)


AccessDecl = VHostDecl | UserDecl | PermissionDecl | TopicPermissionDecl | VHostLimitDecl
Declaration = ExchangeDecl | QueueDecl | BindingDecl | AccessDecl | PolicyDecl

_ACCESS_TYPES = (VHostDecl, UserDecl, PermissionDecl, TopicPermissionDecl, VHostLimitDecl)

#: The access statements' keywords, in the order apply creates them.
ACCESS_KINDS = ("vhost", "user", "permission", "topic-permission", "limit")


@dataclass
class TopologyConfig:
    """Everything one file declares, in file order: one vhost's topology, and
    the broker-wide access statements (vhosts, users, permissions, limits)."""

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

    @property
    def vhosts(self) -> list[VHostDecl]:
        return [d for d in self.declarations if isinstance(d, VHostDecl)]

    @property
    def users(self) -> list[UserDecl]:
        return [d for d in self.declarations if isinstance(d, UserDecl)]

    @property
    def permissions(self) -> list[PermissionDecl]:
        return [d for d in self.declarations if isinstance(d, PermissionDecl)]

    @property
    def topic_permissions(self) -> list[TopicPermissionDecl]:
        return [d for d in self.declarations if isinstance(d, TopicPermissionDecl)]

    @property
    def limits(self) -> list[VHostLimitDecl]:
        return [d for d in self.declarations if isinstance(d, VHostLimitDecl)]

    @property
    def policies(self) -> list[PolicyDecl]:
        """Policies and operator policies (of the vhost the file is applied to)."""
        return [d for d in self.declarations if isinstance(d, PolicyDecl)]

    @property
    def access(self) -> list[AccessDecl]:
        """The statements AMQP cannot apply (vhosts, users, permissions, limits)."""
        return [d for d in self.declarations if isinstance(d, _ACCESS_TYPES)]

    @property
    def topology(self) -> list[ExchangeDecl | QueueDecl | BindingDecl]:
        """The exchanges, queues and bindings (of the vhost the file is applied to)."""
        return [
            d for d in self.declarations if isinstance(d, ExchangeDecl | QueueDecl | BindingDecl)
        ]

    def same_topology(self, other: TopologyConfig) -> bool:
        """Equal declarations, whatever their order (e.g. after a JSON round trip).

        Access statements count too; a user's or vhost's tags in any order.
        """

        def canon(cfg: TopologyConfig) -> list[tuple[Any, ...]]:
            out: list[tuple[Any, ...]] = []
            for d in cfg.declarations:
                if isinstance(d, VHostDecl):
                    tags = None if d.tags is None else tuple(sorted(d.tags))
                    out.append((d.key(), (d.description, tags), ()))
                    continue
                if isinstance(d, UserDecl):
                    limits = tuple(sorted(d.limits.items()))
                    extra_user = (d.password_hash, d.hashing_algorithm, tuple(sorted(d.tags)))
                    out.append((d.key(), extra_user, limits))
                    continue
                if isinstance(d, PermissionDecl):
                    out.append((d.key(), (d.configure, d.write, d.read), ()))
                    continue
                if isinstance(d, TopicPermissionDecl):
                    out.append((d.key(), (d.write, d.read), ()))
                    continue
                if isinstance(d, VHostLimitDecl):
                    out.append((d.key(), (d.value,), ()))
                    continue
                if isinstance(d, PolicyDecl):
                    definition = tuple(sorted(
                        (k, type(v).__name__, v) for k, v in d.definition.items()
                    ))
                    out.append((d.key(), (d.pattern, d.apply_to, d.priority), definition))
                    continue
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
