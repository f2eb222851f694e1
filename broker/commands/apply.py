"""`warren config apply`: declare a configuration file's topology on a running broker.

Works on Warren and on RabbitMQ alike, through `broker.client` (AMQP only),
and deletes nothing. For each exchange and queue, in that order (then the
bindings, so a binding may name a queue declared below it in the file):

1. a passive declare says whether it exists (404 NOT_FOUND: it does not;
   the 404 closes the channel, so the next step opens a new one);
2. a declare with the file's properties creates it, or, if it exists,
   checks it against the file: the broker answers 406 PRECONDITION_FAILED
   naming the first property that differs ("inequivalent arg 'durable' for
   queue 'billing' in vhost '/': received 'false' but current is 'true'").

So each object is reported `created`, `present` or `conflict` (with the
property). A declare of something that exists with the same properties
changes nothing, and one whose properties differ is refused, so even a dry
run performs step 2 for objects that exist: only objects that do not exist
are left alone ("would create"). Eight channels declare at once (each
declare is a round trip; overlapping them makes thousands of objects 2-3
times quicker), and the outcomes are reported in file order.

AMQP has no passive bind. Binding twice is a no-op (spec 1.7.2.3.1, a
binding is identified by its exchange, queue, routing key and arguments), so
without more information bindings are reported `bound`. Given the management
API of a RabbitMQ broker (`--management-url`), the existing bindings are read
first (GET /api/bindings/VHOST) and each binding is `created` or `present`.

What the broker compares on redeclare is all a conflict can show: RabbitMQ
3.10 (and Warren) compare an exchange's type, durable, auto-delete, internal
and alternate-exchange, and a queue's durable, auto-delete and the
x-arguments in rabbit_amqqueue's declare_args list (x-message-ttl,
x-dead-letter-exchange, x-max-length, ...). Other arguments that differ go
unnoticed; this is the broker's notion of "equivalent", not ours.

Policies and operator policies (of the URL's vhost) go through the management
API too, after the access statements and before the topology, so that queues
and exchanges are declared with them: GET /api/policies/VHOST and
/api/operator-policies/VHOST, then a PUT for each that is new (`created`) or
differs (`changed`, naming what changed: pattern, apply-to, priority, each
setting); one that is the same is `present`. A policy the broker refuses is
`failed` with its reason ("Validation failed ...").

Vhosts, users, permissions, topic permissions and vhost limits cannot be made
over AMQP: they go through the management HTTP API (`--management-url`),
before the topology (a permission needs its vhost and user, and the file's
own vhost may be one it creates). Everything is read first (GET /api/vhosts,
/api/users, /api/permissions, /api/topic-permissions, /api/vhost-limits), then
compared (`plan_access`, which makes no request), then written with PUT: each
item is `created`, `present`, `changed` (HTTP can change these, unlike a
queue; what changed is named) or `conflict`. A user's password hash that
differs from the broker's is a conflict, and nothing of that user changes,
unless `--replace-passwords`: hashes are salted, so a password set anywhere
else always differs, and apply would otherwise undo it silently.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import trio

from broker.client import Channel, ChannelClosed, Connection
from protocol.constants import ReplyCode
from routing.model import (
    AccessDecl,
    BindingDecl,
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

from ._common import CommandError

__all__ = [
    "CHANGED",
    "CONFLICT",
    "CREATED",
    "BOUND",
    "FAILED",
    "PRESENT",
    "WOULD_BIND",
    "WOULD_CHANGE",
    "WOULD_CREATE",
    "AccessAction",
    "AccessState",
    "ManagementAPI",
    "Outcome",
    "PolicyState",
    "apply_access",
    "apply_topology",
    "describe",
    "needs_management",
    "plan_access",
    "plan_policies",
    "would_create",
]

CREATED = "created"
PRESENT = "present"
CONFLICT = "conflict"
BOUND = "bound"
FAILED = "failed"
WOULD_CREATE = "would-create"
WOULD_BIND = "would-bind"
CHANGED = "changed"
WOULD_CHANGE = "would-change"


@dataclass
class Outcome:
    """What apply did (or would do) with one declaration."""

    kind: str  # "exchange", "queue", "binding", "vhost", "user", "permission"...
    declaration: str  # as the configuration language writes it: `queue billing`
    status: str  # one of the constants above
    #: For a conflict: the property that differs; for a failure: the broker's reason.
    detail: str = ""
    reply_code: int = 0
    #: What identifies the object: its name, or a binding's source, destination...
    identity: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """`created      exchange orders` (the status padded to one column)."""
        text = f"{self.status:<12} {self.declaration}"
        return f"{text}: {self.detail}" if self.detail else text

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "kind": self.kind, **self.identity,
                               "declaration": self.declaration}
        if self.detail:
            out["detail"] = self.detail
        if self.reply_code:
            out["reply_code"] = self.reply_code
        return out


def describe(decl: ExchangeDecl | QueueDecl | BindingDecl | AccessDecl | PolicyDecl) -> str:
    """A declaration's first line in the configuration language (`bind billing to orders ...`);
    for a permission, what identifies it (`permission alice on prod`)."""
    from routing.config.formatter import format_config
    from routing.config.options import format_text

    if isinstance(decl, VHostDecl):
        return f"vhost {format_text(decl.name)}"
    if isinstance(decl, UserDecl):
        return f"user {format_text(decl.name)}"
    if isinstance(decl, PermissionDecl):
        return f"permission {format_text(decl.user)} on {format_text(decl.vhost)}"
    if isinstance(decl, TopicPermissionDecl):
        return (
            f"topic-permission {format_text(decl.user)} on {format_text(decl.vhost)} "
            f"exchange {format_text(decl.exchange)}"
        )
    if isinstance(decl, VHostLimitDecl):
        return f"limit {format_text(decl.vhost)} {decl.name} {decl.value}"
    if isinstance(decl, PolicyDecl):
        return f"{decl.keyword} {format_text(decl.name)}"
    if isinstance(decl, ExchangeDecl):
        return f"exchange {format_text(decl.name)}"
    if isinstance(decl, QueueDecl):
        return f"queue {format_text(decl.name)}"
    clean = BindingDecl(decl.source, decl.destination, decl.destination_type,
                        decl.routing_key, dict(decl.arguments))
    lines = format_config(TopologyConfig([clean])).splitlines()
    return " ".join(line.strip() for line in lines if line.strip())


# RabbitMQ's rabbit_misc:assert_args_equivalence text, which Warren copies.
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']*)' for (?:exchange|queue) '.*' in vhost '.*': "
    r"received (?P<received>.*) but current is (?P<current>.*)$"
)
_TYPED = re.compile(r"^the value '(?P<value>.*)' of type '[^']*'$")


def _shown(value: str) -> str:
    if value == "none":
        return "not set"
    typed = _TYPED.match(value)
    return f"'{typed['value']}'" if typed else value


def conflict_detail(reply_text: str) -> str:
    """`durable is 'true' on the broker, 'false' in the file` from a 406's text."""
    match = _INEQUIVALENT.search(reply_text)
    if match is None:
        return reply_text
    return (
        f"{match['arg']} is {_shown(match['current'])} on the broker, "
        f"{_shown(match['received'])} in the file"
    )


class HTTPFailure(Exception):
    """The management API answered with an error status."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code}: {reason}")
        self.code = code
        self.reason = reason


def _reason(error: urllib.error.HTTPError) -> str:
    """RabbitMQ's reason for refusing a request (its JSON body), or the status text."""
    try:
        body = json.loads(error.read() or b"null")
    except ValueError:
        body = None
    if isinstance(body, dict) and "reason" in body:
        return " ".join(_erlang_text(body["reason"]).split())  # one line
    return str(error.reason)


def _erlang_text(value: Any) -> str:
    """RabbitMQ's reason as text: it may be an Erlang term, where a string is a
    list of code points (an invalid regular expression's reason is
    ["invalid_regexp", "(", ["missing )", 1]], each string as numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if value and all(isinstance(c, int) and 0 < c < 0x110000 for c in value):
            return "".join(map(chr, value))
        if len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], list):
            return f"{_erlang_text(value[0])} at {value[1]}"  # PCRE's message and offset
        return ": ".join(_erlang_text(v) for v in value)
    return json.dumps(value)


def _tags(value: Any) -> list[str]:
    """Tags as the management API shows them: a list, or (older) a comma-separated string."""
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list):
        return [t for t in value if isinstance(t, str)]
    return []


@dataclass
class AccessState:
    """What the broker has, by what identifies each thing (from `ManagementAPI.access_state`)."""

    vhosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    topic_permissions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    vhost_limits: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PolicyState:
    """The vhost's policies and operator policies on the broker, by name."""

    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    operator_policies: dict[str, dict[str, Any]] = field(default_factory=dict)


class ManagementAPI:
    """RabbitMQ's management HTTP API: the vhost's bindings (GET /api/bindings/VHOST),
    and the vhosts, users, permissions and limits apply reads and writes.

    Credentials come from the management URL (http://user:pass@host:15672)
    or else from the AMQP URL's.
    """

    def __init__(self, url: str, username: str, password: str, vhost: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CommandError(f"--management-url must be an http(s):// URL, got {url!r}")
        self.username = parts.username or username
        self.password = parts.password or password
        netloc = parts.netloc.rpartition("@")[2]
        self.base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
        self.vhost = vhost

    def _request(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """The JSON answer (None for an empty one). An HTTP error status raises
        `HTTPFailure`; not reaching the API at all is a `CommandError`."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise HTTPFailure(error.code, _reason(error)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CommandError(f"management API {self.base}: {reason}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise CommandError(f"management API {self.base}{path}: not JSON") from None

    def _get(self, path: str) -> Any:
        try:
            return self._request(path)
        except HTTPFailure as failure:
            raise CommandError(
                f"management API {self.base}{path}: HTTP {failure.code} {failure.reason}"
            ) from None

    def put(self, path: str, body: dict[str, Any]) -> None:
        """PUT `body`; `HTTPFailure` if the broker refuses it."""
        self._request(path, "PUT", body)

    def access_state(self) -> AccessState:
        """What the broker has of what access statements declare (five GETs)."""

        def listing(path: str) -> list[dict[str, Any]]:
            data = self._get(path)
            if not isinstance(data, list):
                raise CommandError(f"management API {self.base}{path}: expected a list")
            return [item for item in data if isinstance(item, dict)]

        state = AccessState()
        for item in listing("/api/vhosts"):
            metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
            state.vhosts[item.get("name", "")] = {
                "description": item.get("description", metadata.get("description", "")) or "",
                "tags": _tags(item.get("tags", metadata.get("tags", []))),
            }
        for item in listing("/api/users"):
            state.users[item.get("name", "")] = {
                "password_hash": item.get("password_hash", ""),
                "hashing_algorithm": item.get("hashing_algorithm", ""),
                "tags": _tags(item.get("tags", [])),
                "limits": item.get("limits") if isinstance(item.get("limits"), dict) else {},
            }
        for item in listing("/api/permissions"):
            state.permissions[(item.get("user", ""), item.get("vhost", ""))] = item
        for item in listing("/api/topic-permissions"):
            key = (item.get("user", ""), item.get("vhost", ""), item.get("exchange", ""))
            state.topic_permissions[key] = item
        for item in listing("/api/vhost-limits"):
            value = item.get("value")
            state.vhost_limits[item.get("vhost", "")] = value if isinstance(value, dict) else {}
        return state

    def policy_state(self) -> PolicyState:
        """The policies and operator policies of the vhost (two GETs); none when the
        vhost does not exist yet (a file may create it)."""
        state = PolicyState()
        for kind, table in (("policies", state.policies),
                            ("operator-policies", state.operator_policies)):
            path = f"/api/{kind}/{quote(self.vhost, safe='')}"
            try:
                data = self._request(path)
            except HTTPFailure as failure:
                if failure.code == 404:
                    continue
                raise CommandError(
                    f"management API {self.base}{path}: HTTP {failure.code} {failure.reason}"
                ) from None
            if not isinstance(data, list):
                raise CommandError(f"management API {self.base}{path}: expected a list")
            for item in data:
                if isinstance(item, dict):
                    table[str(item.get("name", ""))] = item
        return state

    def binding_keys(self) -> set[tuple] | None:
        """Every binding of the vhost, as `binding_key` tuples; None when the API has
        no /api/bindings (Warren's, so far): bindings are then reported `bound`."""
        path = f"/api/bindings/{quote(self.vhost, safe='')}"
        try:
            data = self._request(path)
        except HTTPFailure as failure:
            if failure.code == 404 and failure.reason == "Not Found":
                return None  # the path is unknown (a missing vhost is "vhost_not_found")
            raise CommandError(
                f"management API {self.base}{path}: HTTP {failure.code} {failure.reason}"
            ) from None
        if not isinstance(data, list):
            raise CommandError(f"management API {self.base}: unexpected answer for bindings")
        return {
            binding_key(
                item.get("source", ""),
                item.get("destination_type", "queue"),
                item.get("destination", ""),
                item.get("routing_key", ""),
                item.get("arguments") or {},
            )
            for item in data
            if isinstance(item, dict)
        }


def binding_key(
    source: str, destination_type: str, destination: str, routing_key: str, arguments: dict
) -> tuple:
    """What identifies a binding (spec 1.7.2.3.1), hashable, argument types included.

    RabbitMQ's management API shows a void value (a header that must only be
    present) as the string "undefined", so void and that string compare equal.
    """
    args = tuple(sorted(
        (k, type(v).__name__, repr(v))
        for k, v in ((k, "undefined" if v is None else v) for k, v in arguments.items())
    ))
    return (source, destination_type, destination, routing_key, args)


def _unsendable(arguments: dict[str, Any]) -> str:
    """Why `arguments` cannot go in an AMQP field table (e.g. an integer wider
    than 64 bits, which the language accepts), or "" if they can."""
    from protocol.fields import encode_table

    try:
        encode_table(arguments)
    except (ValueError, OverflowError) as error:
        return f"cannot be sent in AMQP: {error}"
    return ""


class _Declarer:
    """One connection's worth of declares, reopening the channel a 404/406 closes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._channel: Channel | None = None

    async def channel(self) -> Channel:
        if self._channel is None or not self._channel.is_open:
            self._channel = await self.conn.channel()
        return self._channel

    async def attempt(self, operation: Callable[[Channel], Any]) -> ChannelClosed | None:
        """Run `operation(channel)`; the channel error it met, or None if it succeeded."""
        ch = await self.channel()
        try:
            await operation(ch)
        except ChannelClosed as error:
            if error.reply_code in (0, ReplyCode.REPLY_SUCCESS):
                raise  # the connection went away, not an answer about this object
            self._channel = None
            return error
        return None

    async def close(self) -> None:
        if self._channel is not None and self._channel.is_open:
            await self._channel.close()


async def _declare(
    declarer: _Declarer,
    decl: ExchangeDecl | QueueDecl,
    passive: Callable[[Channel], Any],
    declare: Callable[[Channel], Any],
    dry_run: bool,
) -> Outcome:
    kind = "exchange" if isinstance(decl, ExchangeDecl) else "queue"

    def outcome(status: str, error: ChannelClosed | None = None, detail: str = "") -> Outcome:
        code = error.reply_code if error is not None else 0
        return Outcome(kind, describe(decl), status, detail, code, {"name": decl.name})

    unsendable = _unsendable(decl.arguments)
    if unsendable:
        return outcome(FAILED, None, unsendable)
    error = await declarer.attempt(passive)
    if error is not None and error.reply_code != ReplyCode.NOT_FOUND:
        if error.reply_code == ReplyCode.RESOURCE_LOCKED:  # someone's exclusive queue
            return outcome(CONFLICT, error, error.reply_text)
        return outcome(FAILED, error, error.reply_text)
    exists = error is None
    if not exists and dry_run:
        return outcome(WOULD_CREATE)
    error = await declarer.attempt(declare)
    if error is None:
        return outcome(PRESENT if exists else CREATED)
    if error.reply_code in (ReplyCode.PRECONDITION_FAILED, ReplyCode.RESOURCE_LOCKED):
        return outcome(CONFLICT, error, conflict_detail(error.reply_text))
    return outcome(FAILED, error, error.reply_text)


#: Channels declaring at once: each declare is a round trip, and overlapping
#: them keeps both the client and the broker busy (thousands of objects).
WORKERS = 8


async def _exchange(declarer: _Declarer, x: ExchangeDecl, dry_run: bool) -> Outcome:
    return await _declare(
        declarer, x,
        lambda ch: ch.exchange_declare(x.name, passive=True),
        lambda ch: ch.exchange_declare(
            x.name, x.type, durable=x.durable, auto_delete=x.auto_delete,
            internal=x.internal, arguments=dict(x.arguments)),
        dry_run,
    )


async def _queue(declarer: _Declarer, q: QueueDecl, dry_run: bool) -> Outcome:
    return await _declare(
        declarer, q,
        lambda ch: ch.queue_declare(q.name, passive=True),
        lambda ch: ch.queue_declare(
            q.name, durable=q.durable, auto_delete=q.auto_delete, arguments=dict(q.arguments)),
        dry_run,
    )


async def apply_topology(
    conn: Connection,
    model: TopologyConfig,
    *,
    dry_run: bool = False,
    existing_bindings: set[tuple] | None = None,
    report: Callable[[Outcome], None] = lambda outcome: None,
    workers: int = WORKERS,
) -> list[Outcome]:
    """Declare `model` on the broker behind `conn`; report and return each outcome.

    Exchanges, then queues, then bindings; within each, `workers` channels
    declare at once, and outcomes are reported in file order. Declaring one
    exchange or queue never depends on another (an alternate or dead-letter
    exchange need not exist yet), and bindings come after both.
    `existing_bindings` (from `ManagementAPI.binding_keys`) lets bindings be
    reported `created`/`present` instead of `bound`. Raises `ConnectionClosed`
    if the connection is lost; channel errors are outcomes, never raised.
    """
    declarers = [_Declarer(conn) for _ in range(max(1, workers))]
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        report(outcome)

    async def phase(items: list[Any], work: Callable[[_Declarer, Any], Any]) -> None:
        results: list[Outcome | None] = [None] * len(items)
        taken = 0
        reported = 0

        async def worker(declarer: _Declarer) -> None:
            nonlocal taken, reported
            while taken < len(items):
                i = taken
                taken += 1
                results[i] = await work(declarer, items[i])
                while reported < len(items) and results[reported] is not None:
                    done(results[reported])  # type: ignore[arg-type]
                    reported += 1

        try:
            async with trio.open_nursery() as nursery:
                for declarer in declarers[: len(items)]:
                    nursery.start_soon(worker, declarer)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None

    try:
        await phase(model.exchanges, lambda d, x: _exchange(d, x, dry_run))
        await phase(model.queues, lambda d, q: _queue(d, q, dry_run))
        await phase(model.bindings, lambda d, b: _bind(d, b, dry_run, existing_bindings))
    finally:
        with trio.CancelScope(shield=True):
            for declarer in declarers:
                if conn.is_open:
                    await declarer.close()
    return outcomes


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from workers that failed together (e.g. the connection
    was lost under all of them): the first that is not a cancellation."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    for leaf in leaves:
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return leaves[0]


async def _bind(
    declarer: _Declarer, b: BindingDecl, dry_run: bool, existing: set[tuple] | None
) -> Outcome:
    def outcome(status: str, error: ChannelClosed | None = None, detail: str = "") -> Outcome:
        identity = {
            "source": b.source,
            "destination_type": b.destination_type,
            "destination": b.destination,
            "routing_key": b.routing_key,
            "arguments": dict(b.arguments),
        }
        if error is not None:
            detail = error.reply_text
        code = error.reply_code if error is not None else 0
        return Outcome("binding", describe(b), status, detail, code, identity)

    unsendable = _unsendable(b.arguments)
    if unsendable:
        return outcome(FAILED, None, unsendable)

    present = existing is not None and binding_key(
        b.source, b.destination_type, b.destination, b.routing_key, b.arguments
    ) in existing
    if present:
        return outcome(PRESENT)
    if dry_run:
        return outcome(WOULD_CREATE if existing is not None else WOULD_BIND)

    async def bind(ch: Channel) -> None:
        if b.destination_type == "exchange":
            await ch.exchange_bind(b.destination, b.source, b.routing_key, dict(b.arguments))
        else:
            await ch.queue_bind(b.destination, b.source, b.routing_key, dict(b.arguments))

    error = await declarer.attempt(bind)
    if error is not None:
        return outcome(FAILED, error)
    return outcome(CREATED if existing is not None else BOUND)


# -- access: vhosts, users, permissions, topic permissions, limits -------------------


@dataclass
class AccessAction:
    """One access statement's outcome, and the requests that make it so."""

    outcome: Outcome
    #: (path, body) to PUT, in order; none for `present`, `conflict` and a dry run.
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _q(name: str) -> str:
    return quote(name, safe="")


def _shown_value(value: Any) -> str:
    if isinstance(value, list):
        return "'" + " ".join(value) + "'" if value else "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"'{value}'"


def _changes(pairs: list[tuple[str, Any, Any]]) -> list[str]:
    """`tags were 'a', now 'a b'` for each (what, on the broker, in the file) that differs."""
    out = []
    for what, current, wanted in pairs:
        if current != wanted:
            verb = "were" if what == "tags" else "was"
            if current is None:
                out.append(f"{what} set to {_shown_value(wanted)}")
            else:
                out.append(f"{what} {verb} {_shown_value(current)}, now {_shown_value(wanted)}")
    return out


def _same_tags(a: list[str], b: list[str]) -> bool:
    return sorted(set(a)) == sorted(set(b))


def plan_access(
    model: TopologyConfig,
    state: AccessState,
    *,
    dry_run: bool = False,
    replace_passwords: bool = False,
) -> list[AccessAction]:
    """Compare the file's access statements with `state`; what to report and to PUT.

    In the order apply writes them: vhosts, users, permissions, topic
    permissions, limits (file order within each). Makes no request.
    """
    actions: list[AccessAction] = []

    def act(decl: AccessDecl, kind: str, identity: dict[str, Any], exists: bool,
            changes: list[str], requests: list[tuple[str, dict[str, Any]]],
            conflict: str = "") -> None:
        if conflict:
            status, detail, requests = CONFLICT, conflict, []
        elif not exists:
            status, detail = (WOULD_CREATE if dry_run else CREATED), ""
        elif changes:
            status, detail = (WOULD_CHANGE if dry_run else CHANGED), "; ".join(changes)
        else:
            status, detail, requests = PRESENT, "", []
        outcome = Outcome(kind, describe(decl), status, detail, 0, identity)
        actions.append(AccessAction(outcome, [] if dry_run else requests))

    for v in model.vhosts:
        current = state.vhosts.get(v.name)
        exists = current is not None
        have = current or {"description": "", "tags": []}
        # PUT sets both: keep the broker's for what the file does not say.
        description = v.description if v.description is not None else have["description"]
        tags = v.tags if v.tags is not None else have["tags"]
        changes = _changes([("description", have["description"], description)])
        if not _same_tags(have["tags"], tags):
            changes += _changes([("tags", have["tags"], tags)])
        body = {"description": description, "tags": ",".join(tags)}
        act(v, "vhost", {"name": v.name}, exists, changes, [(f"/api/vhosts/{_q(v.name)}", body)])

    for u in model.users:
        current = state.users.get(u.name)
        requests: list[tuple[str, dict[str, Any]]] = []
        limit_changes = []
        for limit, value in u.limits.items():
            had = (current or {}).get("limits", {}).get(limit)
            if had != value:
                limit_changes += _changes([(limit, had, value)])
                requests.append((f"/api/user-limits/{_q(u.name)}/{limit}", {"value": value}))
        if current is None:
            body = {"password_hash": u.password_hash, "hashing_algorithm": u.hashing_algorithm,
                    "tags": ",".join(u.tags)}
            act(u, "user", {"name": u.name}, False, [],
                [(f"/api/users/{_q(u.name)}", body), *requests])
            continue
        password_differs = (current["password_hash"], current["hashing_algorithm"]) != (
            u.password_hash, u.hashing_algorithm
        )
        conflict = ""
        changes = []
        if password_differs and not replace_passwords:
            conflict = (
                "password hash differs from the broker's; nothing changed (pass "
                "--replace-passwords to replace it)"
            )
        elif password_differs:
            changes.append("password hash replaced")
        tags_differ = not _same_tags(current["tags"], u.tags)
        if tags_differ:
            changes += _changes([("tags", current["tags"], u.tags)])
        if password_differs or tags_differ:
            keep = not (password_differs and replace_passwords)
            body = {
                "password_hash": current["password_hash"] if keep else u.password_hash,
                "hashing_algorithm": current["hashing_algorithm"] if keep else u.hashing_algorithm,
                "tags": ",".join(u.tags),
            }
            requests.insert(0, (f"/api/users/{_q(u.name)}", body))
        act(u, "user", {"name": u.name}, True, changes + limit_changes, requests, conflict)

    for p in model.permissions:
        have_p = state.permissions.get((p.user, p.vhost))
        wanted = {"configure": p.configure, "write": p.write, "read": p.read}
        changes = _changes([(k, (have_p or {}).get(k), wanted[k]) for k in wanted])
        act(p, "permission", {"user": p.user, "vhost": p.vhost}, have_p is not None, changes,
            [(f"/api/permissions/{_q(p.vhost)}/{_q(p.user)}", wanted)])

    for t in model.topic_permissions:
        have_t = state.topic_permissions.get((t.user, t.vhost, t.exchange))
        wanted = {"write": t.write, "read": t.read}
        changes = _changes([(k, (have_t or {}).get(k), wanted[k]) for k in wanted])
        act(t, "topic-permission", {"user": t.user, "vhost": t.vhost, "exchange": t.exchange},
            have_t is not None, changes,
            [(f"/api/topic-permissions/{_q(t.vhost)}/{_q(t.user)}",
              {"exchange": t.exchange, **wanted})])

    for limit in model.limits:
        had_limit = state.vhost_limits.get(limit.vhost, {}).get(limit.name)
        changes = [] if had_limit == limit.value else [
            f"was {_shown_value(had_limit)}, now {limit.value}"
        ]
        act(limit, "limit", {"vhost": limit.vhost, "limit": limit.name, "value": limit.value},
            had_limit is not None, changes,
            [(f"/api/vhost-limits/{_q(limit.vhost)}/{limit.name}", {"value": limit.value})])
    return actions


def plan_policies(
    model: TopologyConfig, state: PolicyState, vhost: str, *, dry_run: bool = False
) -> list[AccessAction]:
    """Compare the file's policies with `state`: what to report and to PUT
    (`PUT /api/policies/VHOST/NAME`, or operator-policies), in file order."""
    actions: list[AccessAction] = []
    for p in model.policies:
        kind = p.keyword
        have = (state.operator_policies if p.operator else state.policies).get(p.name)
        wanted: dict[str, Any] = {"pattern": p.pattern, "definition": dict(p.definition),
                                  "priority": p.priority, "apply-to": p.apply_to}
        changes: list[str] = []
        if have is not None:
            for key in ("pattern", "apply-to", "priority"):
                if have.get(key) != wanted[key]:
                    changes += _changes([(key, have.get(key), wanted[key])])
            had = have.get("definition") if isinstance(have.get("definition"), dict) else {}
            for key in sorted(set(had) | set(p.definition)):
                if key not in p.definition:
                    changes.append(f"{key} {_shown_value(had[key])} removed")
                elif had.get(key) != p.definition[key]:
                    changes += _changes([(key, had.get(key), p.definition[key])])
        if have is None:
            status = WOULD_CREATE if dry_run else CREATED
        elif changes:
            status = WOULD_CHANGE if dry_run else CHANGED
        else:
            status = PRESENT
        path = f"/api/{'operator-policies' if p.operator else 'policies'}/{_q(vhost)}/{_q(p.name)}"
        requests = [] if dry_run or status == PRESENT else [(path, wanted)]
        outcome = Outcome(kind, describe(p), status, "; ".join(changes), 0,
                          {"vhost": vhost, "name": p.name})
        actions.append(AccessAction(outcome, requests))
    return actions


def needs_management(path: str, model: TopologyConfig) -> str:
    """The one line for a file with access statements or policies and no --management-url."""
    counts = []
    for kind, items, plural in (
        ("vhost", model.vhosts, "vhosts"),
        ("user", model.users, "users"),
        ("permission", model.permissions, "permissions"),
        ("topic-permission", model.topic_permissions, "topic-permissions"),
        ("limit", model.limits, "limits"),
        ("policy", [p for p in model.policies if not p.operator], "policies"),
        ("operator-policy", [p for p in model.policies if p.operator], "operator-policies"),
    ):
        if items:
            counts.append(f"{len(items)} {kind if len(items) == 1 else plural}")
    access: list[Any] = [*model.access, *model.policies]
    first = access[0]
    more = f" and {len(access) - 1} more" if len(access) > 1 else ""
    return (
        f"{path}:{first.origin.line}: {describe(first)}{more} ({', '.join(counts)}) cannot be "
        "applied over AMQP: pass --management-url http://HOST:15672 (RabbitMQ's management "
        "API); nothing was applied"
    )


def would_create(model: TopologyConfig) -> list[Outcome]:
    """The topology's outcomes in a dry run whose vhost the file creates: all new."""
    outcomes = [
        Outcome("exchange" if isinstance(d, ExchangeDecl) else "queue", describe(d),
                WOULD_CREATE, identity={"name": d.name})
        for d in (*model.exchanges, *model.queues)
    ]
    outcomes += [
        Outcome("binding", describe(b), WOULD_CREATE, identity={
            "source": b.source, "destination_type": b.destination_type,
            "destination": b.destination, "routing_key": b.routing_key,
            "arguments": dict(b.arguments),
        })
        for b in model.bindings
    ]
    return outcomes


def apply_access(
    api: ManagementAPI,
    actions: list[AccessAction],
    report: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """PUT each action's requests, in order; an item the broker refuses is `failed`
    with its reason, and the others go on. Returns (and reports) the outcomes."""
    outcomes = []
    for action in actions:
        outcome = action.outcome
        for path, body in action.requests:
            try:
                api.put(path, body)
            except HTTPFailure as failure:
                outcome = Outcome(outcome.kind, outcome.declaration, FAILED,
                                  f"HTTP {failure.code}: {failure.reason}", 0, outcome.identity)
                break
        outcomes.append(outcome)
        report(outcome)
    return outcomes


def summary(outcomes: list[Outcome], dry_run: bool) -> str:
    """`3 created, 2 present, 1 conflicting` (in a fixed order, zero counts left out)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    order = (CREATED, WOULD_CREATE, CHANGED, WOULD_CHANGE, PRESENT, BOUND, WOULD_BIND, CONFLICT,
             FAILED)
    words = {CONFLICT: "conflicting"}
    parts = [
        f"{counts[s]} {words.get(s, s.replace('-', ' '))}" for s in order if counts.get(s)
    ]
    head = "dry run, nothing changed: " if dry_run else ""
    return head + (", ".join(parts) if parts else "the file declares nothing")
