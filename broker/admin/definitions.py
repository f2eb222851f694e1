"""RabbitMQ's definitions JSON, both ways: the broker's vhosts, users and topology.

The same document RabbitMQ exports (`GET /api/definitions`,
`rabbitmqctl export_definitions`) and loads (`load_definitions` in
rabbitmq.conf, `POST /api/definitions`):

    {"rabbit_version": "3.10.8", "users": [...], "vhosts": [...],
     "permissions": [...], "topic_permissions": [...], "parameters": [...],
     "global_parameters": [...], "policies": [...],
     "queues": [...], "exchanges": [...], "bindings": [...]}

`export_definitions` writes it; `import_definitions` applies one, item by
item through the same checks clients meet (so an `amq.` exchange or an
inequivalent redeclaration is reported, not forced). Policies are
`policies` items and operator policies `parameters` of component
`operator_policy`, as RabbitMQ 3.10 exports them; they are validated as the
management API validates them (broker.core.policies) and set before the
queues and exchanges, so those get them when they are declared. What Warren
cannot honour is never dropped quietly: a policy Warren refuses (a setting
it does not implement, such as `ha-mode`) and parameters other than vhost
limits and operator policies make the import fail before anything is
applied, with one line per item (`DefinitionsRejected`); the cluster name
and internal id RabbitMQ always exports are accepted and logged once, since
Warren has no cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker import __version__
from broker.auth.access import AccessControl
from broker.core.policies import OperatorPolicy, Policy, PolicyInvalid, validate_policy
from broker.core.vhost import VHost
from broker.core.vhosts import VHostRegistry
from broker.logging import get_logger
from protocol.errors import AMQPError
from routing.errors import RoutingError

__all__ = ["DefinitionsRejected", "ImportResult", "export_definitions", "import_definitions"]

log = get_logger("warren.definitions")

#: Global parameters RabbitMQ exports from every node; meaningless without a cluster.
CLUSTER_PARAMETERS = ("cluster_name", "internal_cluster_id")
#: Top-level keys that describe the export, not the broker.
METADATA_KEYS = ("rabbit_version", "rabbitmq_version", "product_name", "product_version")
KNOWN_KEYS = (
    *METADATA_KEYS, "users", "vhosts", "permissions", "topic_permissions", "parameters",
    "global_parameters", "policies", "queues", "exchanges", "bindings",
)


class DefinitionsRejected(ValueError):
    """The document holds what Warren cannot apply; nothing was applied."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ImportResult:
    """What an import did: counts per kind, and the items it could not apply."""

    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


def _items(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise DefinitionsRejected([f"{key}: expected a list, got {type(value).__name__}"])
    return value


#: The runtime parameter components Warren imports.
PARAMETER_COMPONENTS = ("vhost-limits", OperatorPolicy.COMPONENT)


def _policies(
    document: dict[str, Any], vhost: str | None
) -> tuple[list[Policy], list[str]]:
    """The document's policies and operator policies, validated; and the problems.

    A policy item holds its fields; an operator policy is a parameter whose
    `value` holds them (its name and vhost are the parameter's).
    """
    entries: list[tuple[str, Any, Any, bool]] = [
        (f"policies[{index}]", item, item, False)
        for index, item in enumerate(_items(document, "policies"))
    ]
    entries += [
        (f"parameters[{index}]", item, item.get("value"), True)
        for index, item in enumerate(_items(document, "parameters"))
        if isinstance(item, dict) and item.get("component") == OperatorPolicy.COMPONENT
    ]
    found: list[Policy] = []
    problems: list[str] = []
    for where, outer, fields, operator in entries:
        if not isinstance(outer, dict) or not isinstance(fields, dict):
            problems.append(f"{where}: expected an object, got {fields!r}")
            continue
        name = outer.get("name")
        target = vhost if vhost is not None else outer.get("vhost", "/")
        label = f"{where} ({'operator policy' if operator else 'policy'} {name!r})"
        if not isinstance(name, str) or not isinstance(target, str):
            problems.append(f"{label}: a policy needs a name and a vhost")
            continue
        missing = [k for k in ("pattern", "definition") if k not in fields]
        if missing:
            problems.append(f"{label}: missing {' and '.join(missing)}")
            continue
        try:
            found.append(validate_policy(
                target, name, pattern=fields["pattern"], definition=fields["definition"],
                priority=fields.get("priority", 0), apply_to=fields.get("apply-to", "all"),
                operator=operator,
            ))
        except PolicyInvalid as invalid:
            problems.append(f"{label}: " + "; ".join(invalid.problems))
    return found, problems


def _unsupported(document: dict[str, Any], vhost: str | None = None) -> list[str]:
    """What the document asks for that Warren does not do (the import refuses it)."""
    problems = [f"unknown key {key!r}" for key in document if key not in KNOWN_KEYS]
    problems += _policies(document, vhost)[1]
    for index, parameter in enumerate(_items(document, "parameters")):
        if not isinstance(parameter, dict) or parameter.get("component") not in (
            PARAMETER_COMPONENTS
        ):
            component = parameter.get("component") if isinstance(parameter, dict) else parameter
            problems.append(
                f"parameters[{index}]: component {component!r} is not supported "
                "(only vhost-limits and operator_policy)"
            )
    for index, parameter in enumerate(_items(document, "global_parameters")):
        name = parameter.get("name") if isinstance(parameter, dict) else parameter
        if name not in CLUSTER_PARAMETERS:
            problems.append(f"global_parameters[{index}]: {name!r} is not supported")
    return problems


def import_definitions(
    vhosts: VHostRegistry,
    access: AccessControl,
    document: dict[str, Any],
    *,
    vhost: str | None = None,
) -> ImportResult:
    """Apply a definitions document; with `vhost`, a single vhost's export
    (its items carry no "vhost" field). Raises `DefinitionsRejected` before
    applying anything when the document holds what Warren cannot honour."""
    if not isinstance(document, dict):
        raise DefinitionsRejected(["a definitions document is a JSON object"])
    problems = _unsupported(document, vhost)
    if problems:
        raise DefinitionsRejected(problems)
    for parameter in _items(document, "global_parameters"):
        log.info("definitions.cluster_parameter_ignored", name=parameter.get("name"),
                 reason="Warren is a single node")
    result = ImportResult()

    def where(item: dict[str, Any]) -> str:
        return vhost if vhost is not None else str(item.get("vhost", "/"))

    for index, item in enumerate(_items(document, "vhosts")):
        try:
            metadata = item.get("metadata") or {}
            description = item.get("description", metadata.get("description", "")) or ""
            tags = item.get("tags", metadata.get("tags")) or ()
            if isinstance(tags, str):
                tags = [t for t in tags.split(",") if t]
            vhosts.create(str(item["name"]), str(description), tuple(str(t) for t in tags))
            result.add("vhosts")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            result.problems.append(f"vhosts[{index}]: {error}")
    auth_part = {k: document.get(k) for k in ("users", "permissions", "topic_permissions")}
    if vhost is not None:
        for key in ("permissions", "topic_permissions"):
            auth_part[key] = [dict(p, vhost=vhost) for p in auth_part[key] or []]
    result.problems += access.load(auth_part, vhosts)
    result.counts["users"] = len(_items(document, "users"))
    result.counts["permissions"] = len(_items(document, "permissions"))
    for index, item in enumerate(_items(document, "parameters")):
        if item.get("component") != "vhost-limits":
            continue  # operator policies: below, with the policies
        try:
            target = vhosts[where(item)]
            value = item["value"]
            target.limits.max_connections = _limit(value, "max-connections")
            target.limits.max_queues = _limit(value, "max-queues")
            target.stored()
            result.add("vhost_limits")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            result.problems.append(f"parameters[{index}]: {error}")
    # Policies before the queues and exchanges, as RabbitMQ imports them: each
    # is declared with the policies that match it.
    for policy in _policies(document, vhost)[0]:
        target = vhosts.get(policy.vhost)
        kind = "operator_policies" if isinstance(policy, OperatorPolicy) else "policies"
        if target is None:
            result.problems.append(f"{kind}: {policy.name!r}: no vhost {policy.vhost!r}")
            continue
        target.set_policy(policy)
        result.add(kind)
    for index, item in enumerate(_items(document, "exchanges")):
        _apply(result, f"exchanges[{index}]", "exchanges", lambda i=item: _exchange(
            vhosts[where(i)], i))
    for index, item in enumerate(_items(document, "queues")):
        _apply(result, f"queues[{index}]", "queues", lambda i=item: vhosts[where(i)].declare_queue(
            None, str(i["name"]), durable=bool(i.get("durable", True)),
            auto_delete=bool(i.get("auto_delete", False)), arguments=dict(i.get("arguments") or {}),
        ))
    for index, item in enumerate(_items(document, "bindings")):
        _apply(result, f"bindings[{index}]", "bindings", lambda i=item: _binding(
            vhosts[where(i)], i))
    for problem in result.problems:
        log.warning("definitions.item_skipped", problem=problem)
    return result


def _limit(value: dict[str, Any], key: str) -> int | None:
    limit = value.get(key)
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"{key} should be a number, actually was {limit!r}")
    return limit


def _apply(result: ImportResult, where: str, kind: str, action: Any) -> None:
    try:
        action()
        result.add(kind)
    except AMQPError as error:
        result.problems.append(f"{where}: {error.reply_text}")
    except RoutingError as error:
        result.problems.append(f"{where}: {error}")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        result.problems.append(f"{where}: {error!r}")


def _exchange(vhost: VHost, item: dict[str, Any]) -> None:
    vhost.declare_exchange(
        str(item["name"]),
        str(item.get("type", "direct")),
        durable=bool(item.get("durable", True)),
        auto_delete=bool(item.get("auto_delete", False)),
        internal=bool(item.get("internal", False)),
        arguments=dict(item.get("arguments") or {}),
    )


def _binding(vhost: VHost, item: dict[str, Any]) -> None:
    arguments = dict(item.get("arguments") or {})
    key = str(item.get("routing_key", ""))
    if item.get("destination_type", "queue") == "exchange":
        vhost.bind_exchange(str(item["destination"]), str(item["source"]), key, arguments)
    else:
        vhost.bind_queue(None, str(item["destination"]), str(item["source"]), key, arguments)


def export_definitions(
    vhosts: VHostRegistry, access: AccessControl, *, vhost: str | None = None
) -> dict[str, Any]:
    """The broker (or one vhost, without users and vhosts) as RabbitMQ 3.10 exports it."""
    chosen: Iterable[VHost] = (
        [vhosts[vhost]] if vhost is not None else [vhosts[name] for name in vhosts]
    )
    exchanges: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    parameters: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for v in chosen:
        tag = {} if vhost is not None else {"vhost": v.name}
        for name, x in v.topology.exchanges.items():
            if not name or name.startswith("amq."):
                continue
            exchanges.append({"name": name, **tag, "type": x.type, "durable": x.durable,
                              "auto_delete": x.auto_delete, "internal": x.internal,
                              "arguments": _json(dict(x.arguments))})
        for name, queue in v.queues.items():
            if queue.exclusive_owner is not None:
                continue
            queues.append({"name": name, **tag, "durable": queue.durable,
                           "auto_delete": queue.auto_delete,
                           "arguments": _json(dict(queue.arguments))})
        for binding in v.topology.bindings():
            if not binding.source:
                continue  # the default exchange's implicit bindings
            kind, name = binding.destination
            bindings.append({"source": binding.source, **tag, "destination": name,
                             "destination_type": kind, "routing_key": binding.routing_key,
                             "arguments": _json(dict(binding.arguments))})
        limits = v.limits.as_dict()
        if limits:
            parameters.append({"value": limits, **tag, "component": "vhost-limits",
                               "name": "limits"})
        # RabbitMQ 3.10 names the vhost of a policy even in a vhost's own export.
        policies += [p.as_json() for p in v.policies.listing()]
        parameters += [p.as_parameter() for p in v.policies.listing(operator=True)]
    document: dict[str, Any] = {"rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
                                "product_name": "Warren", "product_version": __version__}
    if vhost is None:
        auth = access.export()
        document.update(
            users=auth["users"],
            vhosts=vhosts.describe(),
            permissions=auth["permissions"],
            topic_permissions=auth["topic_permissions"],
        )
    document.update(parameters=parameters, policies=policies, queues=queues, exchanges=exchanges,
                    bindings=bindings)
    if vhost is None:
        document["global_parameters"] = []
    return document


def _json(value: Any) -> Any:
    """Argument values as JSON can hold them (bytes as text, tables recursively)."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
