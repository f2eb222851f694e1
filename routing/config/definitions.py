"""RabbitMQ definitions JSON, both ways.

The shape is what RabbitMQ 3.10's management API exports from
``GET /api/definitions`` (and imports with ``POST``)::

    {"users":     [{"name", "password_hash", "hashing_algorithm", "tags": [...],
                    "limits": {"max-connections": N, "max-channels": N}}],
     "vhosts":    [{"name"}],     # 3.10.8 exports the name only; it imports
                                  # "description" and "tags" (or "metadata")
     "permissions":       [{"user", "vhost", "configure", "write", "read"}],
     "topic_permissions": [{"user", "vhost", "exchange", "write", "read"}],
     "parameters": [{"value": {"max-connections": N, "max-queues": N},
                     "vhost", "component": "vhost-limits", "name": "limits"}],
     "exchanges": [{"name", "vhost", "type", "durable", "auto_delete",
                    "internal", "arguments"}],
     "queues":    [{"name", "vhost", "durable", "auto_delete", "arguments"}],
     "bindings":  [{"source", "vhost", "destination", "destination_type",
                    "routing_key", "arguments"}],
     "policies":  [{"vhost", "name", "pattern", "apply-to", "definition",
                    "priority"}]}

and an operator policy is a parameter: ``{"value": {"pattern", "definition",
"priority", "apply-to"}, "vhost", "component": "operator_policy", "name"}``.

(every shape checked against a RabbitMQ 3.10.8 export; user tags may also be a
comma-separated string, as RabbitMQ's import accepts). A whole-broker export
holds every vhost's topology; ``from_definitions`` keeps one vhost's (items
without a ``vhost`` field, as in a per-vhost export, belong to any) and every
user, vhost, permission, topic permission and vhost limit, which name their
vhost themselves, and the policies and operator policies of that vhost. It
also accepts ``null`` argument values as void, which RabbitMQ's import
refuses. What the language cannot write is left out and reported, never
silently: items with nested (table or array) arguments, policies with a
setting Warren does not implement (``ha-mode``...), other parameters, global
parameters (``warn``), and the other vhosts' topology and policies (``note``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ..exchanges import EXCHANGE_TYPES
from ..exchanges.consistent_hash import argument_problems, binding_key_problem
from ..exchanges.delayed import argument_problems as delayed_argument_problems
from ..model import (
    DEFAULT_HASHING_ALGORITHM,
    BindingDecl,
    Declaration,
    ExchangeDecl,
    PermissionDecl,
    PolicyDecl,
    QueueDecl,
    TopicPermissionDecl,
    TopologyConfig,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)
from .access import USER_LIMITS, VHOST_LIMITS, algorithm_name
from .options import (
    CONSISTENT_HASH,
    DELAYED,
    OPERATOR_POLICY_OPTIONS,
    OPTION_BY_ARGUMENT,
    POLICY_APPLY_TO,
    POLICY_OPTIONS,
    POLICY_REFUSED,
    ValueProblem,
    check_generic,
    read_value,
)

__all__ = [
    "VOID_IN_JSON",
    "DefinitionsError",
    "DefinitionsWarning",
    "from_definitions",
    "to_definitions",
]


class DefinitionsError(ValueError):
    """Definitions JSON that does not describe a valid topology; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


#: What RabbitMQ 3.10 exports for a void (``V``) argument value: the string
#: "undefined" (its import refuses ``null`` with ``null_not_allowed``). A binding
#: that matches on a header's presence therefore does not survive a trip through
#: RabbitMQ's JSON; we write what RabbitMQ writes, so the output imports there.
VOID_IN_JSON = "undefined"


def _json_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    return {k: VOID_IN_JSON if v is None else v for k, v in arguments.items()}


def _access_definitions(config: TopologyConfig) -> dict[str, list[dict[str, Any]]]:
    """users, vhosts, permissions, topic_permissions and parameters (vhost limits)."""
    vhosts: list[dict[str, Any]] = []
    for v in config.vhosts:
        item: dict[str, Any] = {"name": v.name}
        if v.description is not None:
            item["description"] = v.description
        if v.tags is not None:
            item["tags"] = list(v.tags)
        vhosts.append(item)
    limits: dict[str, dict[str, int]] = {}  # one parameter per vhost, as RabbitMQ keeps them
    for limit in config.limits:
        limits.setdefault(limit.vhost, {})[limit.name] = limit.value
    return {
        "users": [
            {
                "name": u.name,
                "password_hash": u.password_hash,
                "hashing_algorithm": u.hashing_algorithm,
                "tags": list(u.tags),
                "limits": dict(u.limits),
            }
            for u in config.users
        ],
        "vhosts": vhosts,
        "permissions": [
            {
                "user": p.user,
                "vhost": p.vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            }
            for p in config.permissions
        ],
        "topic_permissions": [
            {
                "user": t.user,
                "vhost": t.vhost,
                "exchange": t.exchange,
                "write": t.write,
                "read": t.read,
            }
            for t in config.topic_permissions
        ],
        "parameters": [
            {"value": value, "vhost": name, "component": "vhost-limits", "name": "limits"}
            for name, value in limits.items()
        ],
    }


def to_definitions(config: TopologyConfig, vhost: str = "/") -> dict[str, list[dict[str, Any]]]:
    """The definitions JSON (as Python data) for ``config``, its topology in ``vhost``.

    Void argument values become the string ``"undefined"``, as in RabbitMQ's
    own export (see ``VOID_IN_JSON``). ``users``, ``vhosts``, ``permissions``,
    ``topic_permissions`` and ``parameters`` (the vhost limits) are there when
    the file has access statements.
    """
    access: dict[str, list[dict[str, Any]]] = (
        _access_definitions(config) if config.access else {}
    )
    policies = [p for p in config.policies if not p.operator]
    operator_policies = [p for p in config.policies if p.operator]
    if operator_policies:
        access["parameters"] = [*access.get("parameters", []), *(
            {
                "value": {"pattern": p.pattern, "definition": dict(p.definition),
                          "priority": p.priority, "apply-to": p.apply_to},
                "vhost": vhost,
                "component": "operator_policy",
                "name": p.name,
            }
            for p in operator_policies
        )]
    if policies:
        access["policies"] = [
            {"vhost": vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to,
             "definition": dict(p.definition), "priority": p.priority}
            for p in policies
        ]
    return {
        **access,
        "exchanges": [
            {
                "name": x.name,
                "vhost": vhost,
                "type": x.type,
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": _json_arguments(x.arguments),
            }
            for x in config.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": q.durable,
                "auto_delete": q.auto_delete,
                "arguments": _json_arguments(q.arguments),
            }
            for q in config.queues
        ],
        "bindings": [
            {
                "source": b.source,
                "vhost": vhost,
                "destination": b.destination,
                "destination_type": b.destination_type,
                "routing_key": b.routing_key,
                "arguments": _json_arguments(b.arguments),
            }
            for b in config.bindings
        ],
    }


_SCALARS = (str, int, float, bool, type(None))


class DefinitionsWarning(UserWarning):
    """An item of a definitions export that ``from_definitions`` left out."""


def _warn(message: str) -> None:
    # _warn <- from_definitions <- its caller, which the warning names.
    warnings.warn(message, DefinitionsWarning, stacklevel=3)


def _nested_argument(item: dict[str, Any]) -> str | None:
    """Why ``item`` cannot be written in the language (an argument that is a
    table or an array), or None."""
    args = item.get("arguments")
    if not isinstance(args, dict):
        return None  # reported as malformed by the reader below
    for name, value in args.items():
        if isinstance(value, dict):
            return f"argument {name!r} is a table, which the configuration language cannot write"
        if isinstance(value, list):
            return f"argument {name!r} is an array, which the configuration language cannot write"
    return None


#: The sections of RabbitMQ 3.10's export (GET /api/definitions).
SECTIONS = frozenset({
    "rabbit_version", "rabbitmq_version", "product_name", "product_version",
    "users", "vhosts", "permissions", "topic_permissions", "parameters",
    "global_parameters", "policies", "queues", "exchanges", "bindings",
})
#: The global parameter every RabbitMQ node makes for itself: not configuration.
CLUSTER_ID = "internal_cluster_id"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) if not isinstance(n, str) or not n or " " in n else n for n in names)


def from_definitions(
    data: dict[str, Any],
    vhost: str = "/",
    *,
    warn: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> TopologyConfig:
    """The topology of ``vhost`` in a definitions export, and its users,
    vhosts, permissions, topic permissions and vhost limits (all of them,
    whatever their vhost: those statements name their vhost).

    The built-in exchanges (``""``, ``amq.*``) are skipped: they always exist.
    An exchange, queue or binding with a nested (table or array) argument is
    skipped too, since the language cannot write one, and so is every binding
    to or from a skipped exchange or queue; so are policies, operator
    policies, parameters other than vhost limits, global parameters, and
    fields the language has no statement for (a vhost's default queue type).
    Each is passed to ``warn`` as a message naming it, one per item or one per
    kind with the names (without ``warn``, it is issued as a
    ``DefinitionsWarning`` through the ``warnings`` module). What is left out
    by choice, not for want of a way to write it, goes to ``note`` (without
    it, nowhere): the topology of the other vhosts, and the node's own
    ``internal_cluster_id``. The rest is kept. Raises ``DefinitionsError``
    listing every malformed item.
    """
    problems: list[str] = []
    dropped: list[str] = []
    noted: list[str] = []
    topology = TopologyConfig()
    skipped_exchanges: set[str] = set()
    #: The x-consistent-hash exchanges read: their bindings' keys are weights.
    weighted: set[str] = set()
    skipped_queues: set[str] = set()
    #: Other vhosts' topology: vhost -> kind -> count.
    elsewhere: dict[str, dict[str, int]] = {}

    def section(name: str) -> list[Any]:
        value = data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            problems.append(f"{name}: expected an array, got {type(value).__name__}")
            return []
        return value

    def mine(item: Any, where: str, kind: str = "") -> bool:
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object, got {type(item).__name__}")
            return False
        if item.get("vhost", vhost) == vhost:
            return True
        if kind and not (kind == "exchange" and _builtin(item.get("name"))):
            counts = elsewhere.setdefault(str(item.get("vhost")), {})
            counts[kind] = counts.get(kind, 0) + 1
        return False

    def obj(item: Any, where: str) -> bool:
        if isinstance(item, dict):
            return True
        problems.append(f"{where}: expected an object, got {type(item).__name__}")
        return False

    def text(item: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = item.get(key, default)
        if not isinstance(value, str):
            problems.append(f"{where}.{key}: expected a string, got {value!r}")
            return ""
        return value

    def flag(item: dict[str, Any], key: str, where: str) -> bool:
        value = item.get(key, False)
        if not isinstance(value, bool):
            problems.append(f"{where}.{key}: expected true or false, got {value!r}")
            return False
        return value

    def integer(value: Any, where: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected a whole number, got {value!r}")
            return None
        if not -(2**63) <= value < 2**63:
            problems.append(f"{where}: {value} does not fit 64 bits")
            return None
        return value

    def tag_list(value: Any, where: str) -> list[str]:
        """RabbitMQ's tags: an array of strings, or a comma-separated string."""
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            problems.append(f"{where}: expected an array of strings, got {value!r}")
            return []
        tags: list[str] = []
        for tag in value:
            if not tag or "," in tag or tag != tag.strip():
                problems.append(f"{where}: tag {tag!r} cannot be written (RabbitMQ reads tags "
                                "as a comma-separated list)")
            elif tag not in tags:
                tags.append(tag)
        return tags

    def arguments(item: dict[str, Any], where: str) -> dict[str, Any]:
        args = item.get("arguments") or {}
        if not isinstance(args, dict):
            problems.append(f"{where}.arguments: expected an object, got {args!r}")
            return {}
        out: dict[str, Any] = {}
        for name, value in args.items():
            if not isinstance(value, _SCALARS):  # not JSON (tables, arrays were skipped)
                problems.append(f"{where}.arguments.{name}: unsupported value {value!r}")
                continue
            option = OPTION_BY_ARGUMENT.get(name)
            try:
                if option is not None and value is not None:
                    value = read_value(option, value)
                else:
                    value = check_generic(value)
            except ValueProblem as problem:
                problems.append(f"{where}.arguments.{name}: {problem.message}")
                continue
            out[name] = value
        return out

    def skip(where: str, what: str, why: str) -> None:
        dropped.append(f"{where}: skipped {what}: {why}")

    # -- vhosts, users, permissions, topic permissions, vhost limits ----------
    vhosts: list[Declaration] = []
    for i, item in enumerate(section("vhosts")):
        where = f"vhosts[{i}]"
        if not obj(item, where):
            continue
        name = text(item, "name", where)
        metadata = item.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            problems.append(f"{where}.metadata: expected an object, got {metadata!r}")
            metadata = None
        fields = {**(metadata or {}), **{k: v for k, v in item.items() if k != "metadata"}}
        description = fields.get("description")
        if description is not None and not isinstance(description, str):
            problems.append(f"{where}.description: expected a string, got {description!r}")
            description = None
        tags = tag_list(fields["tags"], f"{where}.tags") if "tags" in fields else []
        for key in sorted(set(fields) - {"name", "description", "tags"}):
            value = fields[key]
            if key == "default_queue_type" and value in (None, "undefined", "classic"):
                continue  # what RabbitMQ does without one
            if key == "tracing" and value is False:
                continue
            if key == "limits" and value in ({}, []):
                continue
            skip(where, f"{key} {value!r} of vhost {name!r}",
                 "the configuration language has no way to write it")
        vhosts.append(VHostDecl(name, description or None, tags or None))
    users: list[Declaration] = []
    for i, item in enumerate(section("users")):
        where = f"users[{i}]"
        if not obj(item, where):
            continue
        name = text(item, "name", where)
        password_hash = text(item, "password_hash", where, "")
        written = text(item, "hashing_algorithm", where, DEFAULT_HASHING_ALGORITHM)
        algorithm = algorithm_name(written)
        if algorithm is None:
            problems.append(f"{where}.hashing_algorithm: unknown password hashing algorithm "
                            f"{written!r}")
            algorithm = DEFAULT_HASHING_ALGORITHM
        tags = tag_list(item.get("tags", []), f"{where}.tags")
        limits: dict[str, int] = {}
        raw_limits = item.get("limits") or {}
        if not isinstance(raw_limits, dict):
            problems.append(f"{where}.limits: expected an object, got {raw_limits!r}")
            raw_limits = {}
        for limit, value in raw_limits.items():
            if limit not in USER_LIMITS:
                skip(where, f"user limit {limit!r} of user {name!r}",
                     f"RabbitMQ 3.10's user limits are {' and '.join(USER_LIMITS)}")
                continue
            number = integer(value, f"{where}.limits.{limit}")
            if number is not None:
                limits[limit] = number
        for key in sorted(set(item) - {"name", "password_hash", "hashing_algorithm", "tags",
                                       "limits"}):
            skip(where, f"field {key!r} of user {name!r}",
                 "the configuration language has no way to write it")
        users.append(UserDecl(name, password_hash, algorithm, tags, limits))
    permissions: list[Declaration] = []
    for i, item in enumerate(section("permissions")):
        where = f"permissions[{i}]"
        if obj(item, where):
            permissions.append(PermissionDecl(
                text(item, "user", where), text(item, "vhost", where, vhost),
                text(item, "configure", where), text(item, "write", where),
                text(item, "read", where),
            ))
    for i, item in enumerate(section("topic_permissions")):
        where = f"topic_permissions[{i}]"
        if obj(item, where):
            permissions.append(TopicPermissionDecl(
                text(item, "user", where), text(item, "vhost", where, vhost),
                text(item, "exchange", where), text(item, "write", where),
                text(item, "read", where),
            ))
    limits_decls: list[Declaration] = []
    other_parameters: dict[str, list[str]] = {}
    operator_items: list[tuple[str, Any, Any]] = []
    for i, item in enumerate(section("parameters")):
        where = f"parameters[{i}]"
        if not obj(item, where):
            continue
        component = item.get("component")
        owner = item.get("vhost", vhost)
        if component == "operator_policy":
            operator_items.append((where, item, item.get("value")))
            continue
        if component != "vhost-limits":
            other_parameters.setdefault(str(component), []).append(
                f"{owner}/{item.get('name')}"
            )
            continue
        owner = text(item, "vhost", where, vhost)
        value = item.get("value")
        if value == []:
            continue  # what RabbitMQ 3.10 exports once a vhost's last limit is cleared
        if not isinstance(value, dict):
            problems.append(f"{where}.value: expected an object, got {value!r}")
            continue
        for limit, number in value.items():
            if limit not in VHOST_LIMITS:
                skip(where, f"vhost limit {limit!r} of vhost {owner!r}",
                     f"RabbitMQ 3.10's vhost limits are {' and '.join(VHOST_LIMITS)}")
                continue
            checked = integer(number, f"{where}.value.{limit}")
            if checked is not None:
                limits_decls.append(VHostLimitDecl(owner, limit, checked))

    # -- policies and operator policies of ``vhost`` ------------------------------
    policy_decls: list[Declaration] = []
    other_policies: dict[str, int] = {}
    entries = [(f"policies[{i}]", item, item, False) for i, item in enumerate(section("policies"))]
    entries += [(where, item, value, True) for where, item, value in operator_items]
    for where, outer, fields, operator in entries:
        if not obj(outer, where):
            continue
        owner = outer.get("vhost", vhost)
        if owner != vhost:
            other_policies[str(owner)] = other_policies.get(str(owner), 0) + 1
            continue
        if not isinstance(fields, dict):
            problems.append(f"{where}.value: expected an object, got {fields!r}")
            continue
        decl = _policy_decl(where, outer, fields, operator, problems, skip)
        if decl is not None:
            policy_decls.append(decl)
    if other_policies:
        parts = [f"{name} ({_plural(count, 'policy', 'policies')})"
                 for name, count in sorted(other_policies.items())]
        noted.append(
            f"left out the policies of {_plural(len(other_policies), 'other vhost')} (a file's "
            f"policies are its own vhost's; convert each with --vhost): {', '.join(parts)}"
        )

    # -- what the language has no statement for ---------------------------------
    for component, names in other_parameters.items():
        what = _plural(len(names), f"parameter of component {component!r}",
                       f"parameters of component {component!r}")
        dropped.append(
            f"parameters: left out {what} (the configuration language has no runtime "
            f"parameters other than vhost limits): {_names(names)}"
        )
    global_names = [
        str(g.get("name")) if isinstance(g, dict) else repr(g)
        for g in section("global_parameters")
    ]
    if CLUSTER_ID in global_names:
        global_names.remove(CLUSTER_ID)
        noted.append(
            f"global_parameters: left out {CLUSTER_ID}, the node's own cluster id (not "
            "configuration: importing it would give another cluster the same id)"
        )
    if global_names:
        dropped.append(
            f"global_parameters: left out "
            f"{_plural(len(global_names), 'global parameter')} (the configuration language "
            f"has no global parameters): {_names(global_names)}"
        )
    unknown = sorted(set(data) - SECTIONS)
    if unknown:
        dropped.append(
            f"left out {_plural(len(unknown), 'section')} that RabbitMQ 3.10's definitions "
            f"do not have: {_names(unknown)}"
        )

    # -- the topology of ``vhost`` --------------------------------------------------
    for i, item in enumerate(section("exchanges")):
        where = f"exchanges[{i}]"
        if not mine(item, where, "exchange"):
            continue
        name = text(item, "name", where)
        if _builtin(name):
            continue
        nested = _nested_argument(item)
        if nested is not None:
            skip(where, f"exchange {name!r}", nested)
            skipped_exchanges.add(name)
            continue
        type_ = text(item, "type", where)
        if type_ not in EXCHANGE_TYPES:
            problems.append(f"{where}.type: unknown exchange type {type_!r}")
        exchange = ExchangeDecl(
            name,
            type_,
            durable=flag(item, "durable", where),
            auto_delete=flag(item, "auto_delete", where),
            internal=flag(item, "internal", where),
            arguments=arguments(item, where),
        )
        if type_ == CONSISTENT_HASH:
            # What RabbitMQ's plugin refuses when it declares the exchange.
            for _, problem in argument_problems(exchange.arguments)[:1]:
                problems.append(f"{where}.arguments: {problem}")
            weighted.add(name)
        elif type_ == DELAYED:
            # What the delayed-message plugin (and Warren) refuse at declaration.
            for _, problem in delayed_argument_problems(exchange.arguments)[:1]:
                problems.append(f"{where}.arguments: {problem}")
        topology.declarations.append(exchange)
    for i, item in enumerate(section("queues")):
        where = f"queues[{i}]"
        if not mine(item, where, "queue"):
            continue
        name = text(item, "name", where)
        nested = _nested_argument(item)
        if nested is not None:
            skip(where, f"queue {name!r}", nested)
            skipped_queues.add(name)
            continue
        topology.declarations.append(
            QueueDecl(
                name,
                durable=flag(item, "durable", where),
                auto_delete=flag(item, "auto_delete", where),
                arguments=arguments(item, where),
            )
        )
    for i, item in enumerate(section("bindings")):
        where = f"bindings[{i}]"
        if not mine(item, where, "binding"):
            continue
        dest_type = text(item, "destination_type", where, "queue")
        if dest_type not in ("queue", "exchange"):
            problems.append(f"{where}.destination_type: expected queue or exchange")
        source = text(item, "source", where)
        destination = text(item, "destination", where)
        what = f"binding of {dest_type} {destination!r} to exchange {source!r}"
        nested = _nested_argument(item)
        if nested is not None:
            skip(where, what, nested)
            continue
        # A binding cannot outlive its ends: it goes with a skipped one.
        if source in skipped_exchanges:
            skip(where, what, f"exchange {source!r} was skipped")
            continue
        skipped_ends = skipped_queues if dest_type == "queue" else skipped_exchanges
        if destination in skipped_ends:
            skip(where, what, f"{dest_type} {destination!r} was skipped")
            continue
        routing_key = text(item, "routing_key", where, "")
        if source in weighted:
            weight_problem = binding_key_problem(routing_key)
            if weight_problem is not None:  # RabbitMQ's 406 text
                problems.append(f"{where}.routing_key: {weight_problem}")
        topology.declarations.append(
            BindingDecl(
                source=source,
                destination=destination,
                destination_type=dest_type,
                routing_key=routing_key,
                arguments=arguments(item, where),
            )
        )
    if elsewhere:
        parts = []
        for name in sorted(elsewhere):
            counts = elsewhere[name]
            kinds = ", ".join(_plural(counts[k], k) for k in ("exchange", "queue", "binding")
                              if counts.get(k))
            parts.append(f"{name} ({kinds})")
        noted.append(
            f"left out the topology of {_plural(len(elsewhere), 'other vhost')} (one file "
            f"holds one vhost's topology; convert each with --vhost): {', '.join(parts)}"
        )

    report = warn if warn is not None else _warn
    for message in dropped:
        report(message)
    if note is not None:
        for message in noted:
            note(message)
    if problems:
        raise DefinitionsError(problems)
    return TopologyConfig([*vhosts, *limits_decls, *users, *permissions, *policy_decls,
                           *topology.declarations])


def _policy_decl(
    where: str,
    outer: dict[str, Any],
    fields: dict[str, Any],
    operator: bool,
    problems: list[str],
    skip: Callable[[str, str, str], None],
) -> PolicyDecl | None:
    """One policy (or operator policy) as a declaration; None if it was skipped."""
    name = outer.get("name")
    kind = "operator policy" if operator else "policy"
    if not isinstance(name, str):
        problems.append(f"{where}.name: expected a string, got {name!r}")
        return None
    pattern = fields.get("pattern")
    if not isinstance(pattern, str):
        problems.append(f"{where}: {kind} {name!r}: pattern: expected a string, got {pattern!r}")
        return None
    # A pattern Python's re refuses (PCRE reads a few more) is kept, as a
    # permission's is: checking the converted text names it.
    apply_to = fields.get("apply-to", "all")
    if apply_to not in POLICY_APPLY_TO:
        problems.append(f"{where}: {kind} {name!r}: apply-to {apply_to!r} is not one of "
                        f"{', '.join(POLICY_APPLY_TO)}")
        return None
    priority = fields.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        problems.append(f"{where}: {kind} {name!r}: priority: expected a number, got "
                        f"{priority!r}")
        return None
    definition = fields.get("definition")
    if not isinstance(definition, dict) or not definition:
        problems.append(f"{where}: {kind} {name!r}: definition: expected a non-empty object, "
                        f"got {definition!r}")
        return None
    allowed = OPERATOR_POLICY_OPTIONS if operator else tuple(POLICY_OPTIONS)
    values: dict[str, Any] = {}
    for key, value in definition.items():
        if key not in allowed:
            why = (f"setting {key!r} is a RabbitMQ policy setting Warren does not implement "
                   f"({POLICY_REFUSED[key]})" if key in POLICY_REFUSED
                   else f"setting {key!r} is not a setting of {'an operator' if operator else 'a'}"
                   " policy the language knows")
            skip(where, f"{kind} {name!r}", why)
            return None
        try:
            values[key] = read_value(POLICY_OPTIONS[key], value)
        except ValueProblem as trouble:
            problems.append(f"{where}: {kind} {name!r}: {trouble.message}")
            return None
        option = POLICY_OPTIONS[key]
        if option.kind == "choice" and values[key] not in option.choices:
            problems.append(f"{where}: {kind} {name!r}: {key} {value!r} is not one of "
                            f"{', '.join(option.choices)}")
            return None
    return PolicyDecl(name, pattern, values, apply_to, priority, operator)


def _builtin(name: Any) -> bool:
    return name == "" or (isinstance(name, str) and name.startswith("amq."))
