"""The canonical formatter (``warren config fmt``).

One statement per declaration; flags on the first line, each valued option on
an indented line of its own (so a diff shows exactly the option that changed);
routing keys, password hashes, descriptions and permission and policy
patterns always quoted; permissions and limits on one line each, like
bindings; a policy's pattern, apply-to (unless "all") and priority (unless 0)
on its first line and each setting on a line of its own; comments and single
blank lines kept where they were. ``parse(format(m)) == m`` and
``format(parse(format(m))) == format(m)``.
"""

from __future__ import annotations

import re
from typing import Any

from ..exchanges.headers import X_MATCH_MODES
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
from .access import USER_LIMITS, USER_OPTIONS, VHOST_OPTIONS, short_algorithm, tag_needs_quotes
from .options import (
    CONSISTENT_HASH,
    DELAYED,
    DELAYED_OPTIONS,
    EXCHANGE_OPTIONS,
    HASH_OPTIONS,
    POLICY_OPTIONS,
    QUEUE_OPTIONS,
    format_duration,
    format_generic,
    format_size,
    format_text,
    quote,
)

__all__ = ["INDENT", "format_config"]

INDENT = "    "
_BIND_RESERVED = frozenset({"to", "queue", "exchange"})
_CLAUSES = frozenset({"key", "weight", "headers", "argument"})
#: The exchange options of every type but x-consistent-hash: on other types a
#: hash-header or hash-property argument is written as "argument ...".
_PLAIN_EXCHANGE_OPTIONS = {
    k: v for k, v in EXCHANGE_OPTIONS.items() if k not in HASH_OPTIONS + DELAYED_OPTIONS
}
#: The options of each type that has its own (x-delayed-type is "delayed-type"
#: on an x-delayed-message exchange only).
_TYPE_OPTIONS = {
    CONSISTENT_HASH: {k: v for k, v in EXCHANGE_OPTIONS.items() if k not in DELAYED_OPTIONS},
    DELAYED: {k: v for k, v in EXCHANGE_OPTIONS.items() if k not in HASH_OPTIONS},
}
#: A binding key the formatter writes as "weight N" (others stay key "...").
_WEIGHT = re.compile(r"[1-9][0-9]*")


def _comment(text: str) -> str:
    return f"# {text}" if text else "#"


def _option_value(kind: str, value: Any) -> str | None:
    """The written form of a known option's value, or None if it does not fit."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "duration" and is_int and value >= 0:
        return format_duration(value)
    if kind == "size" and is_int and value >= 0:
        return format_size(value)
    if kind == "count" and is_int:
        return str(value)
    if kind in ("name", "text", "choice") and isinstance(value, str):
        return quote(value) if kind == "text" else format_text(value)
    return None


def _argument_lines(arguments: dict[str, Any], table: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument name, option line) for every argument not on the first line."""
    lines: list[tuple[str, str]] = []
    done = set()
    if isinstance(arguments.get("x-queue-type"), str) and table is QUEUE_OPTIONS:
        done.add("x-queue-type")  # written on the first line as "type classic"
    for option in table.values():  # known options, in the table's order
        if option.argument in arguments and option.argument not in done:
            written = _option_value(option.kind, arguments[option.argument])
            if written is not None:
                lines.append((option.argument, f"{option.name} {written}"))
                done.add(option.argument)
    for name in sorted(arguments):
        if name in done:
            continue
        value = format_generic(arguments[name])
        if name.startswith("x-") and format_text(name) == name:
            lines.append((name, f"{name} {value}"))
        else:
            lines.append((name, f"argument {format_text(name)} {value}"))
    return lines


def _option_block(head: str, decl: ExchangeDecl | QueueDecl, table: dict[str, Any]) -> list[str]:
    out = [head]
    notes = decl.origin.option_comments
    for arg, line in _argument_lines(decl.arguments, table):
        note = notes.get(arg)
        out.append(INDENT + line + (f"  {_comment(note)}" if note is not None else ""))
    return out


def _exchange(x: ExchangeDecl) -> list[str]:
    head = f"exchange {format_text(x.name)} type {format_text(x.type)}"
    for flag, on in (
        ("durable", x.durable),
        ("auto-delete", x.auto_delete),
        ("internal", x.internal),
    ):
        if on:
            head += f" {flag}"
    table = _TYPE_OPTIONS.get(x.type, _PLAIN_EXCHANGE_OPTIONS)
    return _option_block(head, x, table)


def _queue(q: QueueDecl) -> list[str]:
    head = f"queue {format_text(q.name)}"
    qtype = q.arguments.get("x-queue-type")
    if isinstance(qtype, str):
        head += f" type {format_text(qtype)}"
    for flag, on in (("durable", q.durable), ("auto-delete", q.auto_delete)):
        if on:
            head += f" {flag}"
    return _option_block(head, q, QUEUE_OPTIONS)


def _binding(b: BindingDecl, weighted: bool = False) -> list[str]:
    """``weighted``: the source is an x-consistent-hash exchange (key = weight)."""
    dest = format_text(b.destination, _BIND_RESERVED)
    line = "bind "
    if b.destination_type == "exchange":
        line += "exchange "
    line += f"{dest} to {format_text(b.source)}"
    if weighted and _WEIGHT.fullmatch(b.routing_key):
        line += f" weight {b.routing_key}"
    elif b.routing_key:
        line += f" key {quote(b.routing_key)}"
    args = dict(b.arguments)
    mode = args.pop("x-match", None)
    voids = sorted(name for name, value in args.items() if value is None)
    if isinstance(mode, str) and mode in X_MATCH_MODES:
        line += f" headers {mode}"
    elif mode is not None:
        args["x-match"] = mode
    elif voids:
        raise ValueError(
            f"binding {b.source} -> {b.destination}: a header without a value needs "
            "an x-match mode to be written in the configuration language"
        )
    for name in sorted(n for n in args if args[n] is not None):
        line += f" {format_text(name)}={format_generic(args[name])}"
    for name in voids:
        line += f" {format_text(name, _CLAUSES)}"
    return [line]


def _tags(tags: list[str], options: tuple[str, ...], user: bool) -> str:
    return "tags " + " ".join(
        quote(t) if tag_needs_quotes(t, options, user) else t for t in tags
    )


def _with_notes(head: str, options: list[tuple[str, str]], notes: dict[str, str]) -> list[str]:
    out = [head]
    for option, line in options:
        note = notes.get(option)
        out.append(INDENT + line + (f"  {_comment(note)}" if note is not None else ""))
    return out


def _vhost(v: VHostDecl) -> list[str]:
    options: list[tuple[str, str]] = []
    if v.description is not None:
        options.append(("description", f"description {quote(v.description)}"))
    if v.tags:
        options.append(("tags", _tags(v.tags, VHOST_OPTIONS, user=False)))
    return _with_notes(f"vhost {format_text(v.name)}", options, v.origin.option_comments)


def _user(u: UserDecl) -> list[str]:
    options: list[tuple[str, str]] = []
    if u.password_hash:
        options.append(("password-hash", f"password-hash {quote(u.password_hash)}"))
    if u.hashing_algorithm != DEFAULT_HASHING_ALGORITHM:
        written = short_algorithm(u.hashing_algorithm)
        options.append(("hashing-algorithm", f"hashing-algorithm {written}"))
    if u.tags:
        options.append(("tags", _tags(u.tags, USER_OPTIONS, user=True)))
    for limit in USER_LIMITS:
        if limit in u.limits:
            options.append((limit, f"{limit} {u.limits[limit]}"))
    unknown = sorted(set(u.limits) - set(USER_LIMITS))
    if unknown:
        raise ValueError(f"user {u.name}: the configuration language has no limit {unknown[0]!r}")
    return _with_notes(f"user {format_text(u.name)}", options, u.origin.option_comments)


def _permission(p: PermissionDecl) -> list[str]:
    return [
        f"permission {format_text(p.user)} on {format_text(p.vhost)} "
        f"configure {quote(p.configure)} write {quote(p.write)} read {quote(p.read)}"
    ]


def _topic_permission(t: TopicPermissionDecl) -> list[str]:
    return [
        f"topic-permission {format_text(t.user)} on {format_text(t.vhost)} "
        f"exchange {format_text(t.exchange)} write {quote(t.write)} read {quote(t.read)}"
    ]


def _limit(limit: VHostLimitDecl) -> list[str]:
    return [f"limit {format_text(limit.vhost)} {limit.name} {limit.value}"]


def _priority(value: int | float) -> str:
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "inf" in text or "nan" in text:
            raise ValueError(f"the configuration language cannot write the priority {value!r}")
        return text
    return str(value)


def _policy(p: PolicyDecl) -> list[str]:
    head = f"{p.keyword} {format_text(p.name)} pattern {quote(p.pattern)}"
    if p.apply_to != "all":
        head += f" apply-to {p.apply_to}"
    if p.priority != 0 or isinstance(p.priority, float):
        head += f" priority {_priority(p.priority)}"
    options: list[tuple[str, str]] = []
    for option in POLICY_OPTIONS.values():  # in the table's order
        if option.name in p.definition:
            written = _option_value(option.kind, p.definition[option.name])
            if written is None:
                raise ValueError(
                    f"{p.keyword} {p.name}: the configuration language cannot write "
                    f"{option.name} {p.definition[option.name]!r}"
                )
            options.append((option.name, f"{option.name} {written}"))
    unknown = sorted(set(p.definition) - set(POLICY_OPTIONS))
    if unknown:
        raise ValueError(f"{p.keyword} {p.name}: the configuration language has no setting "
                         f"{unknown[0]!r}")
    return _with_notes(head, options, p.origin.option_comments)


def _lines(decl: Declaration, weighted: frozenset[str] = frozenset()) -> list[str]:
    if isinstance(decl, ExchangeDecl):
        return _exchange(decl)
    if isinstance(decl, QueueDecl):
        return _queue(decl)
    if isinstance(decl, BindingDecl):
        return _binding(decl, decl.source in weighted)
    if isinstance(decl, VHostDecl):
        return _vhost(decl)
    if isinstance(decl, UserDecl):
        return _user(decl)
    if isinstance(decl, PermissionDecl):
        return _permission(decl)
    if isinstance(decl, TopicPermissionDecl):
        return _topic_permission(decl)
    if isinstance(decl, PolicyDecl):
        return _policy(decl)
    return _limit(decl)


def format_config(config: TopologyConfig) -> str:
    """The canonical text of ``config`` (ends with a newline unless empty)."""
    out: list[str] = []
    previous: Declaration | None = None
    weighted = frozenset(x.name for x in config.exchanges if x.type == CONSISTENT_HASH)
    for decl in config.declarations:
        info = decl.origin
        if previous is not None and (
            info.blank_line_before or (info.line == 0 and type(previous) is not type(decl))
        ):
            out.append("")
        out.extend(_comment(c) for c in info.comments)
        lines = _lines(decl, weighted)
        if info.trailing_comment is not None:
            lines[0] += f"  {_comment(info.trailing_comment)}"
        out.extend(lines)
        previous = decl
    if config.trailing_comments:
        if out:
            out.append("")
        out.extend(_comment(c) for c in config.trailing_comments)
    return "\n".join(out) + "\n" if out else ""
