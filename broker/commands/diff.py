"""`warren config diff` and `warren config apply --prune`: a file against a running broker.

Reads the broker first (`read_state`: the vhost's definitions, GET
/api/definitions/VHOST, and the access state apply reads), then compares
without a request (`plan_diff`):

- what `apply` would create (`would-create`), change (`would-change`: vhosts,
  users, permissions, topic permissions and limits, which HTTP can change) or
  find conflicting (`conflict`: an exchange or queue whose properties differ,
  which AMQP cannot change; a user whose password hash differs);
- what the broker has that the file does not (`extra`, `find_extras`), which
  `apply --prune` deletes.

What counts as "the broker has it and the file does not" (docs/cli.md):

- exchanges, queues and bindings of the file's vhost, when the file declares
  any exchange, queue or binding, except the built-ins
  (the default exchange, `amq.*`), server-named queues (`amq.gen-...`: every
  `amq.` queue is the server's), exclusive queues (another connection's,
  not in an export) and bindings to queues that are neither;
- vhosts, users, permissions, topic permissions and vhost limits only when
  the file has at least one statement of that kind (a file with no `user`
  statement does not manage users), and never the default vhost `/`, the
  file's own vhost, the `guest` user or the user the API is used as (nor
  their permissions) unless the file declares them; user limits of the
  users the file declares.

The comparison of an exchange or queue is the broker's own on redeclare
(RabbitMQ 3.10 and Warren): type, durable, auto-delete, internal and
alternate-exchange; durable, auto-delete and `EQUIVALENCE_ARGS`. Another
argument that differs is a conflict too, said to be one apply cannot see.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from broker.client import Channel, Connection
from routing.model import (
    BindingDecl,
    ExchangeDecl,
    PermissionDecl,
    QueueDecl,
    TopicPermissionDecl,
    TopologyConfig,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)

from .api_client import APIError, segment
from .apply import (
    CONFLICT,
    PRESENT,
    WOULD_CREATE,
    AccessState,
    ManagementAPI,
    Outcome,
    _Declarer,
    binding_key,
    describe,
    plan_access,
)

__all__ = [
    "DELETED",
    "EXTRA",
    "FAILED_DELETE",
    "WOULD_DELETE",
    "BrokerState",
    "Extra",
    "find_extras",
    "plan_diff",
    "prune",
    "read_state",
]

EXTRA = "extra"
WOULD_DELETE = "would-delete"
DELETED = "deleted"
FAILED_DELETE = "failed"

#: Queue arguments the broker compares on redeclare (broker.core.vhost.EQUIVALENCE_ARGS,
#: RabbitMQ's declare_args list): a difference there is what apply reports as a conflict.
QUEUE_COMPARED = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-delivery-limit", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
    "x-max-in-memory-bytes", "x-max-priority", "x-overflow", "x-queue-mode", "x-queue-type",
    "x-single-active-consumer",
)
EXCHANGE_COMPARED = ("alternate-exchange",)

#: The order extras are deleted in: what hangs on something before the thing.
DELETE_ORDER = ("binding", "queue", "exchange", "topic-permission", "permission", "limit",
                "user-limit", "user", "vhost")


@dataclass
class BrokerState:
    """What the broker has that a file can declare."""

    vhost: str
    vhost_exists: bool
    exchanges: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    access: AccessState = field(default_factory=AccessState)
    #: binding_key -> properties_key, from GET /api/bindings/VHOST when the API
    #: has it (then a binding is deleted over HTTP, exactly); else None.
    properties_keys: dict[tuple, str] | None = None


def read_state(api: ManagementAPI, vhost: str) -> BrokerState:
    """Read the vhost's topology and the access state (administrator needed)."""
    client = api.client
    state = BrokerState(vhost=vhost, vhost_exists=True)
    try:
        document = client.get(f"/api/definitions/{segment(vhost)}")
    except APIError as error:
        if error.not_found or "vhost_not_found" in error.reason:
            state.vhost_exists = False
            document = {}
        else:
            raise
    if not isinstance(document, dict):
        document = {}
    for x in _items(document.get("exchanges")):
        name = x.get("name", "")
        if name and not name.startswith("amq."):
            state.exchanges[name] = x
    for q in _items(document.get("queues")):
        state.queues[q.get("name", "")] = q
    state.bindings = [b for b in _items(document.get("bindings")) if b.get("source")]
    state.access = api.access_state()
    if state.vhost_exists and state.bindings:
        try:
            listed = client.get(f"/api/bindings/{segment(vhost)}")
        except APIError as error:
            if not error.not_found:
                raise
            listed = None  # an API without it (Warren before its statistics): unbind over AMQP
        if isinstance(listed, list):
            state.properties_keys = {
                _binding_key(b): b["properties_key"]
                for b in _items(listed) if isinstance(b.get("properties_key"), str)
            }
    return state


def _items(value: Any) -> list[dict[str, Any]]:
    return [item for item in value or [] if isinstance(item, dict)] \
        if isinstance(value, list) else []


def _binding_key(b: dict[str, Any]) -> tuple:
    return binding_key(b.get("source", ""), b.get("destination_type", "queue"),
                       b.get("destination", ""), b.get("routing_key", ""),
                       b.get("arguments") or {})


# -- comparing ------------------------------------------------------------------------------


def _json_value(value: Any) -> str:
    return json.dumps("undefined" if value is None else value, sort_keys=True)


def _shown(value: Any, missing: bool = False) -> str:
    if missing:
        return "not set"
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if value is None:
        return "'undefined'"
    if isinstance(value, dict | list):
        return "'" + json.dumps(value, sort_keys=True) + "'"
    return f"'{value}'"


def _differences(
    wanted: dict[str, Any], have: dict[str, Any], properties: tuple[str, ...],
    compared_args: tuple[str, ...],
) -> list[str]:
    """`durable is 'true' on the broker, 'false' in the file` for each property
    and argument that differs; an argument the broker does not compare says so."""
    out = []
    for name in properties:
        if name in wanted and _json_value(wanted[name]) != _json_value(have.get(name)):
            out.append(f"{name} is {_shown(have.get(name))} on the broker, "
                       f"{_shown(wanted[name])} in the file")
    ours = wanted.get("arguments") or {}
    theirs = have.get("arguments") or {}
    unseen = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if name in ours and name in theirs and _json_value(a) == _json_value(b):
            continue
        text = (f"{name} is {_shown(b, name not in theirs)} on the broker, "
                f"{_shown(a, name not in ours)} in the file")
        (out if name in compared_args else unseen).append(text)
    if unseen:
        out.append("; ".join(unseen) + " (the broker does not compare "
                   + ("this argument" if len(unseen) == 1 else "these arguments")
                   + ": apply reports it present and cannot change it)")
    return out


def _topology_outcomes(model: TopologyConfig, state: BrokerState) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for x in model.exchanges:
        have = state.exchanges.get(x.name)
        identity = {"name": x.name}
        if have is None:
            outcomes.append(Outcome("exchange", describe(x), WOULD_CREATE, identity=identity))
            continue
        wanted = {"type": x.type, "durable": x.durable, "auto_delete": x.auto_delete,
                  "internal": x.internal, "arguments": dict(x.arguments)}
        diffs = _differences(wanted, have, ("type", "durable", "auto_delete", "internal"),
                             EXCHANGE_COMPARED)
        outcomes.append(Outcome("exchange", describe(x), CONFLICT if diffs else PRESENT,
                                "; ".join(diffs), identity=identity))
    for q in model.queues:
        have = state.queues.get(q.name)
        identity = {"name": q.name}
        if have is None:
            outcomes.append(Outcome("queue", describe(q), WOULD_CREATE, identity=identity))
            continue
        wanted = {"durable": q.durable, "auto_delete": q.auto_delete,
                  "arguments": dict(q.arguments)}
        diffs = _differences(wanted, have, ("durable", "auto_delete"), QUEUE_COMPARED)
        outcomes.append(Outcome("queue", describe(q), CONFLICT if diffs else PRESENT,
                                "; ".join(diffs), identity=identity))
    existing = {_binding_key(b) for b in state.bindings}
    for b in model.bindings:
        key = binding_key(b.source, b.destination_type, b.destination, b.routing_key,
                          b.arguments)
        identity = {"source": b.source, "destination_type": b.destination_type,
                    "destination": b.destination, "routing_key": b.routing_key,
                    "arguments": dict(b.arguments)}
        outcomes.append(Outcome("binding", describe(b),
                                PRESENT if key in existing else WOULD_CREATE,
                                identity=identity))
    return outcomes


@dataclass
class Extra:
    """Something the broker has and the file does not."""

    kind: str  # one of DELETE_ORDER
    declaration: str
    identity: dict[str, Any]

    def outcome(self, status: str, detail: str = "") -> Outcome:
        return Outcome(self.kind, self.declaration, status, detail, 0, dict(self.identity))


def find_extras(
    model: TopologyConfig, state: BrokerState, api_user: str
) -> list[Extra]:
    """What the broker has that the file does not, in the order to delete it."""
    extras: list[Extra] = []
    vhost = state.vhost

    file_exchanges = {x.name for x in model.exchanges}
    file_queues = {q.name for q in model.queues}
    considered_queues = set()
    # A file without exchanges, queues or bindings manages no topology.
    topology = state if model.topology else BrokerState(vhost, state.vhost_exists)
    for name in sorted(topology.queues):
        if name.startswith("amq."):
            continue  # server-named (amq.gen-...): a client's, not configuration
        considered_queues.add(name)
        if name not in file_queues:
            extras.append(Extra("queue", describe(QueueDecl(name)), {"name": name}))
    for name in sorted(topology.exchanges):
        if name not in file_exchanges:
            extras.append(Extra("exchange", describe(ExchangeDecl(name)), {"name": name}))
    file_bindings = {
        binding_key(b.source, b.destination_type, b.destination, b.routing_key, b.arguments)
        for b in model.bindings
    }
    for b in topology.bindings:
        destination = b.get("destination", "")
        if b.get("destination_type", "queue") == "queue" and \
                destination not in considered_queues | file_queues:
            continue  # to an exclusive or server-named queue: a client's
        if _binding_key(b) in file_bindings:
            continue
        arguments = {k: (None if v == "undefined" else v)
                     for k, v in (b.get("arguments") or {}).items()}
        decl = BindingDecl(b.get("source", ""), destination, b.get("destination_type", "queue"),
                           b.get("routing_key", ""), arguments)
        try:
            text = describe(decl)
        except (TypeError, ValueError):  # an argument the language cannot write
            text = (f"bind {destination} to {decl.source} key {decl.routing_key!r} "
                    f"arguments {json.dumps(b.get('arguments'))}")
        extras.append(Extra("binding", text, {
            "source": decl.source, "destination_type": decl.destination_type,
            "destination": destination, "routing_key": decl.routing_key,
            "arguments": b.get("arguments") or {},
        }))

    access = state.access
    builtin_users = {"guest", api_user} - {u.name for u in model.users}
    if model.vhosts:
        declared = {v.name for v in model.vhosts} | {"/", vhost}
        for name in sorted(set(access.vhosts) - declared):
            extras.append(Extra("vhost", describe(VHostDecl(name)), {"name": name}))
    if model.users:
        declared = {u.name for u in model.users} | builtin_users
        for name in sorted(set(access.users) - declared):
            extras.append(Extra("user", describe(UserDecl(name)), {"name": name}))
    for u in model.users:
        limits = (access.users.get(u.name) or {}).get("limits") or {}
        for name in sorted(set(limits) - set(u.limits)):
            extras.append(Extra("user-limit", f"user-limit {u.name} {name} {limits[name]}",
                                {"user": u.name, "limit": name, "value": limits[name]}))
    if model.permissions:
        declared_p = {(p.user, p.vhost) for p in model.permissions}
        for user, on in sorted(set(access.permissions) - declared_p):
            if user not in builtin_users:
                extras.append(Extra("permission", describe(PermissionDecl(user, on)),
                                    {"user": user, "vhost": on}))
    if model.topic_permissions:
        declared_t = {(t.user, t.vhost, t.exchange) for t in model.topic_permissions}
        for user, on, exchange in sorted(set(access.topic_permissions) - declared_t):
            if user not in builtin_users:
                extras.append(Extra(
                    "topic-permission", describe(TopicPermissionDecl(user, on, exchange)),
                    {"user": user, "vhost": on, "exchange": exchange}))
    if model.limits:
        declared_l = {(limit.vhost, limit.name) for limit in model.limits}
        for on in sorted(access.vhost_limits):
            for name, value in sorted(access.vhost_limits[on].items()):
                if (on, name) not in declared_l and isinstance(value, int):
                    extras.append(Extra("limit", describe(VHostLimitDecl(on, name, value)),
                                        {"vhost": on, "limit": name, "value": value}))
    extras.sort(key=lambda e: DELETE_ORDER.index(e.kind))  # stable: names stay sorted
    return extras


def plan_diff(
    model: TopologyConfig,
    state: BrokerState,
    api_user: str,
    *,
    replace_passwords: bool = False,
) -> tuple[list[Outcome], list[Extra]]:
    """(what apply would do with each declaration, what the broker has beyond the file)."""
    access = [a.outcome for a in plan_access(model, state.access, dry_run=True,
                                             replace_passwords=replace_passwords)]
    return access + _topology_outcomes(model, state), find_extras(model, state, api_user)


# -- pruning ----------------------------------------------------------------------------------


def _http_path(extra: Extra, state: BrokerState) -> str | None:
    """The DELETE that removes `extra` through the API, or None for AMQP."""
    i = extra.identity
    v = segment
    if extra.kind == "binding":
        if state.properties_keys is None:
            return None
        key = binding_key(i["source"], i["destination_type"], i["destination"],
                          i["routing_key"], i["arguments"])
        props = state.properties_keys.get(key)
        if props is None:
            return None
        kind = "q" if i["destination_type"] == "queue" else "e"
        return (f"/api/bindings/{v(state.vhost)}/e/{v(i['source'])}/{kind}/"
                f"{v(i['destination'])}/{v(props)}")
    if extra.kind in ("queue", "exchange"):
        return None  # over AMQP: every broker can, whatever its API offers
    return {
        "vhost": lambda: f"/api/vhosts/{v(i['name'])}",
        "user": lambda: f"/api/users/{v(i['name'])}",
        "user-limit": lambda: f"/api/user-limits/{v(i['user'])}/{v(i['limit'])}",
        "permission": lambda: f"/api/permissions/{v(i['vhost'])}/{v(i['user'])}",
        "topic-permission": lambda: (
            f"/api/topic-permissions/{v(i['vhost'])}/{v(i['user'])}/{v(i['exchange'])}"
        ),
        "limit": lambda: f"/api/vhost-limits/{v(i['vhost'])}/{v(i['limit'])}",
    }[extra.kind]()


async def _amqp_delete(declarer: _Declarer, extra: Extra) -> str:
    """Delete a queue, an exchange or a binding over AMQP; the broker's refusal, or ""."""
    i = extra.identity

    async def operation(ch: Channel) -> None:
        if extra.kind == "queue":
            await ch.queue_delete(i["name"])
        elif extra.kind == "exchange":
            await ch.exchange_delete(i["name"])
        else:
            arguments = {k: (None if value == "undefined" else value)
                         for k, value in i["arguments"].items()}
            if i["destination_type"] == "exchange":
                await ch.exchange_unbind(i["destination"], i["source"], i["routing_key"],
                                         arguments)
            else:
                await ch.queue_unbind(i["destination"], i["source"], i["routing_key"],
                                      arguments)

    error = await declarer.attempt(operation)
    return "" if error is None else error.reply_text


async def prune(
    api: ManagementAPI,
    conn: Connection | None,
    state: BrokerState,
    extras: list[Extra],
    report: Callable[[Outcome], None],
) -> list[Outcome]:
    """Delete each extra, in order; each is `deleted`, or `failed` with the reason
    (and the others go on). Queues, exchanges, and bindings without a
    properties key go over AMQP (`conn`), the rest through the API."""
    outcomes: list[Outcome] = []
    declarer = _Declarer(conn) if conn is not None else None
    try:
        for extra in extras:
            path = _http_path(extra, state)
            detail = ""
            status = DELETED
            if path is not None:
                try:
                    await trio.to_thread.run_sync(api.client.delete, path)
                except APIError as error:
                    if not error.not_found:  # already gone is as good as deleted
                        status, detail = FAILED_DELETE, str(error)
            elif declarer is not None:
                refused = await _amqp_delete(declarer, extra)
                if refused:
                    status, detail = FAILED_DELETE, refused
            else:
                status, detail = FAILED_DELETE, "needs an AMQP connection"
            outcome = extra.outcome(status, detail)
            outcomes.append(outcome)
            report(outcome)
    finally:
        if declarer is not None and conn is not None and conn.is_open:
            with trio.CancelScope(shield=True):
                await declarer.close()
    return outcomes
