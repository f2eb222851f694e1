"""From configuration text to a ``TopologyConfig``, with every error at once.

Two passes. The first parses each statement (``grammar``) and reads its options
(``options``, ``access``), reporting misspelt options, bad values and syntax
errors. The second checks the file as a whole: duplicate declarations, bindings
and dead-letter/alternate exchanges (of queues, exchanges and policies) that
name something not declared, and permissions and limits that name a user or
vhost the file does not declare.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyparsing as pp

from ..deduplication import DEDUPLICATION, DedupArgumentError, dedup_settings
from ..exchanges import BUILTIN_EXCHANGES
from ..exchanges.consistent_hash import argument_problems, binding_key_problem
from ..exchanges.delayed import argument_problems as delayed_argument_problems
from ..exchanges.headers import X_MATCH_MODES
from ..model import (
    DEFAULT_HASHING_ALGORITHM,
    BindingDecl,
    Declaration,
    ExchangeDecl,
    PermissionDecl,
    PolicyDecl,
    QueueDecl,
    SourceInfo,
    TopicPermissionDecl,
    TopologyConfig,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)
from .access import (
    HASHING_ALGORITHMS,
    KNOWN_USER_TAGS,
    LIMIT_MAX,
    LIMIT_MIN,
    USER_LIMITS,
    USER_OPTIONS,
    VHOST_LIMITS,
    VHOST_OPTIONS,
    algorithm_name,
    check_password_hash,
    escape_problem,
    near_known_tag,
    pattern_problem,
)
from .errors import ConfigError, did_you_mean
from .grammar import (
    Assignment,
    Chunk,
    LineIndex,
    ParsedStatement,
    Token,
    parse_statement,
    split_statements,
)
from .options import (
    CONSISTENT_HASH,
    DELAYED,
    DELAYED_OPTIONS,
    EXCHANGE_OPTIONS,
    HASH_OPTIONS,
    OPERATOR_POLICY_OPTIONS,
    OPTION_BY_ARGUMENT,
    POLICY_APPLY_TO,
    POLICY_CLAUSES,
    POLICY_OPTIONS,
    POLICY_REFUSED,
    QUEUE_OPTIONS,
    Option,
    ValueProblem,
    read_generic,
    read_value,
)

__all__ = ["STATEMENTS", "parse_config"]

STATEMENTS = (
    "exchange", "queue", "bind", "vhost", "user", "permission", "topic-permission", "limit",
    "policy", "operator-policy",
)
PERMISSION_CLAUSES = ("configure", "write", "read")
TOPIC_PERMISSION_CLAUSES = ("exchange", "write", "read")
BIND_CLAUSES = ("key", "weight", "headers", "argument")
BUILTIN_NAMES = frozenset(name for name, _, _ in BUILTIN_EXCHANGES)

_FIRST_WORD = re.compile(r'[^\s"=#]+')
#: A weight as the ``weight`` clause takes it (RabbitMQ also accepts "+5", "05").
_WEIGHT = re.compile(r"[1-9][0-9]*")
_TYPES = ", ".join(EXCHANGE_OPTIONS["type"].choices)


@dataclass
class _Where:
    """The tokens of one declaration that later checks point at."""

    name: Token
    refs: dict[str, Token] = field(default_factory=dict)


class _Context:
    def __init__(self, text: str, filename: str, vhost: str = "/") -> None:
        self.text = text
        self.filename = filename
        #: The vhost the file's topology goes to: it exists, like "/".
        self.vhost = vhost
        self.lines = LineIndex(text)
        self.errors: list[ConfigError] = []

    def error(self, offset: int, length: int, message: str, hint: str | None = None) -> None:
        line, column = self.lines.position(offset)
        source = self.lines.line_text(line)
        length = max(1, min(length, len(source) - column + 1))
        self.errors.append(ConfigError(self.filename, line, column, message, source, length, hint))

    def at(self, tok: Token, message: str, hint: str | None = None) -> None:
        self.error(tok.offset, tok.length, message, hint)

    def after(self, tok: Token, message: str, hint: str | None = None) -> None:
        self.error(tok.offset + tok.length, 1, message, hint)


class _Items:
    """The items of a statement, read one at a time."""

    def __init__(self, items: list[Token | Assignment]) -> None:
        self.items = items
        self.i = 0

    def __iter__(self) -> Iterator[Token | Assignment]:
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            yield item

    def value(self) -> Token | None:
        """The next item if it is a plain value (not ``name=value``), consumed."""
        if self.i < len(self.items) and isinstance(self.items[self.i], Token):
            tok = self.items[self.i]
            self.i += 1
            assert isinstance(tok, Token)
            return tok
        return None


def _shown(tok: Token) -> str:
    return f'"{tok.value}"' if tok.quoted else tok.value


def _read_option(
    ctx: _Context,
    option: Option,
    word: Token,
    items: _Items,
    arguments: dict[str, Any],
    where: _Where,
    seen: dict[str, Token],
) -> Any:
    """Read the value of a valued option into ``arguments``; return the raw value."""
    value = items.value()
    if value is None:
        ctx.after(word, f"{option.name} needs a value", _value_hint(option))
        return None
    if option.name in seen:
        ctx.at(word, f"{option.name} is given twice", "keep one of them")
        return None
    seen[option.name] = word
    try:
        parsed = read_value(option, value.value)
    except ValueProblem as problem:
        ctx.at(value, problem.message, problem.hint)
        return None
    if option.kind == "choice" and parsed not in option.choices:
        ctx.at(
            value,
            f"unknown {option.name} '{parsed}'{did_you_mean(parsed, option.choices)}",
            f"{option.name} is one of: {', '.join(option.choices)}",
        )
        return None
    if option.argument:
        arguments[option.argument] = parsed
        where.refs[option.argument] = value
    return parsed


def _value_hint(option: Option) -> str | None:
    return {
        "duration": "for example 30s, 5m or 1h",
        "count": "a whole number",
        "size": "for example 10MiB",
        "choice": f"one of: {', '.join(option.choices)}",
        "name": "the name of an exchange",
    }.get(option.kind)


def _generic_argument(
    ctx: _Context, word: Token, items: _Items, arguments: dict[str, Any], where: _Where
) -> None:
    """``x-anything VALUE`` (or ``argument NAME VALUE``): any RabbitMQ argument."""
    name = word.value
    value = items.value()
    if value is None:
        ctx.after(word, f"argument {name} needs a value")
        return
    if name in arguments:
        ctx.at(word, f"argument {name} is given twice", "keep one of them")
        return
    known = OPTION_BY_ARGUMENT.get(name)
    if known is not None:
        try:
            arguments[name] = read_value(known, value.value)
        except ValueProblem as problem:
            ctx.at(value, problem.message.replace(known.name, name, 1), problem.hint)
            return
        where.refs[name] = value
        return
    ok, parsed = _read_generic(ctx, value)
    if ok:
        arguments[name] = parsed
        where.refs[name] = value


def _read_generic(ctx: _Context, tok: Token) -> tuple[bool, Any]:
    """``(True, value)`` for a generic value, or ``(False, None)`` after reporting
    one that no AMQP field can carry (an integer wider than 64 bits...)."""
    try:
        return True, read_generic(tok.value, tok.quoted)
    except ValueProblem as problem:
        ctx.at(tok, problem.message, problem.hint)
        return False, None


def _declaration(
    ctx: _Context, stmt: ParsedStatement, kind: str
) -> tuple[ExchangeDecl | QueueDecl, _Where]:
    table = EXCHANGE_OPTIONS if kind == "exchange" else QUEUE_OPTIONS
    other = QUEUE_OPTIONS if kind == "exchange" else EXCHANGE_OPTIONS
    name = stmt.name.value
    where = _Where(stmt.name)
    flags: dict[str, bool] = {}
    arguments: dict[str, Any] = {}
    seen: dict[str, Token] = {}
    type_value: str | None = None
    #: hash-header / hash-property written as options (x-consistent-hash only).
    hash_options: dict[str, Token] = {}
    items = _Items(stmt.items)
    for item in items:
        if isinstance(item, Assignment):
            ctx.at(
                item.name,
                f"'{item.name.value}=...' is not an option of a {kind}",
                f"write arguments as '{item.name.value} {item.value.value}' "
                "(name=value is for binding headers)",
            )
            continue
        if item.quoted:
            ctx.at(item, f"unexpected {_shown(item)}: expected an option of a {kind}")
            continue
        word = item.value
        option = table.get(word)
        if option is not None and option.kind == "flag":
            if word in flags:
                ctx.at(item, f"{word} is given twice", "keep one of them")
            flags[word] = True
        elif option is not None and option.kind == "type" and kind == "exchange":
            value = items.value()
            if value is None:
                ctx.after(item, "type needs a value", _TYPES)
            elif "type" in seen:
                ctx.at(item, "type is given twice", "keep one of them")
            else:
                seen["type"] = item
                type_value = value.value
                where.refs["type"] = value
        elif option is not None:
            if kind == "exchange" and word in HASH_OPTIONS + DELAYED_OPTIONS:
                hash_options[word] = item
            _read_option(ctx, option, item, items, arguments, where, seen)
        elif word == "argument":
            arg_name = items.value()
            if arg_name is None:
                ctx.after(
                    item, "argument needs a name and a value", "e.g. argument x-queue-mode lazy"
                )
            else:
                _generic_argument(ctx, arg_name, items, arguments, where)
        elif word.startswith("x-"):
            _generic_argument(ctx, item, items, arguments, where)
        elif kind == "queue" and word == "exclusive":
            ctx.at(
                item,
                "a queue in a configuration file cannot be exclusive",
                "exclusive queues belong to the connection that declares them",
            )
        elif word in other:
            ctx.at(
                item,
                f"{word} is an option of {'a queue' if kind == 'exchange' else 'an exchange'}, not of a {kind}",
            )
            if other[word].kind != "flag":
                items.value()
        elif word in STATEMENTS:
            ctx.at(
                item,
                f"unexpected '{word}' inside a {kind} statement",
                "a statement starts at the beginning of a line; an indented line "
                "continues the statement above it",
            )
            break  # the rest belongs to the statement the author meant to start
        else:
            ctx.at(
                item,
                f"unknown {kind} option '{word}'{did_you_mean(word, [*table, 'argument'])}",
                f"{kind} options: {', '.join(table)}, x-<argument> <value>",
            )
    if not name:
        ctx.at(stmt.name, f"a {kind} needs a name", "server-named queues cannot be configured")
    _check_short(ctx, stmt.name, f"{kind} name")
    if kind == "exchange":
        if name.startswith("amq."):
            ctx.at(
                stmt.name,
                f"exchange name '{name}' uses the reserved prefix 'amq.'",
                "the amq.* exchanges are built in; choose another name",
            )
        if type_value is None:
            ctx.at(
                stmt.name,
                f"exchange '{name}' needs a type",
                "add 'type direct', 'type fanout', 'type topic' or 'type headers'",
            )
            type_value = "direct"
        elif type_value not in EXCHANGE_OPTIONS["type"].choices:
            ctx.at(
                where.refs["type"],
                f"unknown exchange type '{type_value}'"
                f"{did_you_mean(type_value, EXCHANGE_OPTIONS['type'].choices)}",
                None
                if did_you_mean(type_value, EXCHANGE_OPTIONS["type"].choices)
                else f"exchange types: {_TYPES}",
            )
        if type_value == CONSISTENT_HASH:
            _check_hash_arguments(ctx, arguments, where)
        elif type_value == DELAYED and "delayed-type" not in hash_options:
            # (A delayed-type option with a bad value is reported already.)
            _check_delayed_arguments(ctx, arguments, where, stmt.name)
        for word, tok in hash_options.items():
            owner = CONSISTENT_HASH if word in HASH_OPTIONS else DELAYED
            if owner != type_value:
                ctx.at(
                    tok,
                    f"{word} is an option of {owner} exchanges, and '{name}' is "
                    f"type {type_value}",
                    f"write type {owner}, or 'argument {EXCHANGE_OPTIONS[word].argument} ...' "
                    "to set the argument anyway",
                )
        decl: ExchangeDecl | QueueDecl = ExchangeDecl(
            name,
            type_value,
            durable=flags.get("durable", False),
            auto_delete=flags.get("auto-delete", False),
            internal=flags.get("internal", False),
            arguments=arguments,
        )
    else:
        decl = QueueDecl(
            name,
            durable=flags.get("durable", False),
            auto_delete=flags.get("auto-delete", False),
            arguments=arguments,
        )
    try:
        dedup_settings(arguments)  # what the broker would refuse with 406
    except DedupArgumentError as problem:
        ctx.at(
            where.refs.get(problem.key, stmt.name),
            f"{problem.key}: {problem.why.strip(chr(34))}",
            "x-message-deduplication takes true or false" if problem.key == DEDUPLICATION
            else None,
        )
    return decl, where


def _check_delayed_arguments(
    ctx: _Context, arguments: dict[str, Any], where: _Where, name_token: Any
) -> None:
    """What RabbitMQ's delayed-message plugin (and Warren) refuse when the
    exchange is declared: no x-delayed-type, or one it cannot route by."""
    problems = delayed_argument_problems(arguments)
    if not problems:
        return
    code, text = problems[0]
    if "x-delayed-type" not in arguments:
        ctx.at(
            name_token,
            f"an {DELAYED} exchange needs a delayed-type",
            "add 'delayed-type direct' (or fanout, topic, headers): how it routes once "
            "the delay is over",
        )
    else:
        tok = where.refs.get("x-delayed-type", where.refs.get("delayed-type", name_token))
        ctx.at(
            tok,
            f"{text} ({'503 COMMAND_INVALID' if code == 503 else '406 PRECONDITION_FAILED'})",
            "delayed-type is one of: direct, fanout, topic, headers",
        )


def _check_hash_arguments(ctx: _Context, arguments: dict[str, Any], where: _Where) -> None:
    """What RabbitMQ's consistent-hash plugin refuses when the exchange is declared."""
    problems = argument_problems(arguments)
    if not problems:
        return
    _, text = problems[0]
    if text.startswith("Unsupported property"):
        # Written as "argument hash-property ..." (the option form checks its choices).
        ctx.at(
            where.refs["hash-property"],
            f"unknown hash-property '{arguments['hash-property']}'",
            "hash-property is one of: " + ", ".join(EXCHANGE_OPTIONS["hash-property"].choices),
        )
    elif "mutually exclusive" in text:
        ctx.at(
            where.refs["hash-property"],
            "hash-header and hash-property cannot both be given",
            "an x-consistent-hash exchange hashes one header, or one property, or the "
            "routing key",
        )
    else:  # only a definitions file can carry a value that is not a string
        ctx.at(where.name, text)


def _binding(ctx: _Context, stmt: ParsedStatement) -> tuple[BindingDecl, _Where]:
    assert stmt.source is not None
    dest_type = (
        "exchange"
        if stmt.destination_kind and stmt.destination_kind.value == "exchange"
        else "queue"
    )
    _check_short(ctx, stmt.name, f"{dest_type} name")
    _check_short(ctx, stmt.source, "exchange name")
    where = _Where(stmt.name, {"source": stmt.source})
    routing_key: str | None = None
    arguments: dict[str, Any] = {}
    in_headers = False
    items = _Items(stmt.items)
    for item in items:
        if isinstance(item, Assignment):
            name = item.name.value
            if name in arguments:
                ctx.at(item.name, f"binding argument '{name}' is given twice", "keep one of them")
                continue
            if name == "x-match":
                if not _check_mode(ctx, item.value):
                    continue
            ok, value = _read_generic(ctx, item.value)
            if ok:
                arguments[name] = value
            continue
        if in_headers and (item.quoted or item.value not in BIND_CLAUSES):
            # After "headers <mode>", a bare name matches on presence (a void value).
            if item.value in arguments:
                ctx.at(item, f"header '{item.value}' is given twice", "keep one of them")
            arguments[item.value] = None
            continue
        if item.quoted:
            ctx.at(
                item,
                f"unexpected {_shown(item)}",
                'a routing key follows the word key: key "a.b.#"',
            )
            continue
        word = item.value
        if word == "key":
            value = items.value()
            if value is None:
                ctx.after(item, "key needs a routing key", 'e.g. key "order.*.created"')
            elif "weight" in where.refs:
                ctx.at(item, "a binding has a weight or a key, not both",
                       "the weight is the binding key of an x-consistent-hash binding")
            elif routing_key is not None:
                ctx.at(item, "key is given twice", "bind twice to bind with two keys")
            else:
                routing_key = value.value
                where.refs["key"] = value
                _check_short(ctx, value, "routing key")
        elif word == "weight":
            value = items.value()
            if "weight" in where.refs:
                ctx.at(item, "weight is given twice", "keep one of them")
                continue
            where.refs["weight"] = item
            if value is None:
                ctx.after(item, "weight needs a whole number", "e.g. weight 1")
            elif "key" in where.refs:
                ctx.at(item, "a binding has a weight or a key, not both",
                       "the weight is the binding key of an x-consistent-hash binding")
            elif value.quoted or not _WEIGHT.fullmatch(value.value):
                ctx.at(value, f"weight takes a whole number of 1 or more, not {_shown(value)}",
                       "e.g. weight 1 (the share of keys grows with it)")
            else:
                routing_key = value.value
                _check_short(ctx, value, "weight")
        elif word == "headers":
            value = items.value()
            if value is None:
                ctx.after(item, "headers needs a match mode", "all, any, all-with-x or any-with-x")
            elif "x-match" in arguments:
                ctx.at(item, "the match mode is given twice", "keep one of them")
            elif _check_mode(ctx, value):
                arguments["x-match"] = value.value
                in_headers = True
        elif word == "argument":
            arg_name = items.value()
            if arg_name is None:
                ctx.after(item, "argument needs a name and a value")
                continue
            value = items.value()
            if value is None:
                ctx.after(arg_name, f"argument {arg_name.value} needs a value")
                continue
            ok, parsed = _read_generic(ctx, value)
            if ok:
                arguments[arg_name.value] = parsed
        else:
            ctx.at(
                item,
                f"unknown binding clause '{word}'{did_you_mean(word, BIND_CLAUSES)}",
                "a binding takes key <routing key>, headers <mode> name=value..., "
                "or name=value arguments",
            )
            nxt = items.items[items.i] if items.i < len(items.items) else None
            if isinstance(nxt, Token) and nxt.quoted:
                items.i += 1  # its value: one mistake, one error
    decl = BindingDecl(
        source=stmt.source.value,
        destination=stmt.name.value,
        destination_type=dest_type,
        routing_key=routing_key or "",
        arguments=arguments,
    )
    return decl, where


# -- policy and operator-policy ------------------------------------------------------

_POLICY_FORM = 'policy <name> pattern "<regex>" [apply-to queues|exchanges|all] [priority <n>]'
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _policy(ctx: _Context, stmt: ParsedStatement, keyword: str) -> tuple[PolicyDecl, _Where]:
    """``policy NAME pattern "RE" [apply-to K] [priority N]`` and its settings,
    one per indented line (``message-ttl 30s``...), under RabbitMQ's key names."""
    operator = keyword == "operator-policy"
    an = "an operator policy" if operator else "a policy"
    allowed = OPERATOR_POLICY_OPTIONS if operator else tuple(POLICY_OPTIONS)
    where = _Where(stmt.name)
    seen: dict[str, Token] = {}
    definition: dict[str, Any] = {}
    pattern: str | None = None
    apply_to = "all"
    priority: int | float = 0
    errors_before = len(ctx.errors)
    items = _Items(stmt.items)
    for item in items:
        if isinstance(item, Assignment):
            ctx.at(
                item.name,
                f"'{item.name.value}=...' is not an option of {an}",
                f"write options as '{item.name.value} {_shown(item.value)}', without '='",
            )
            continue
        if item.quoted:
            ctx.at(item, f"unexpected {_shown(item)}: expected a setting of {an}",
                   f"{keyword} settings: {', '.join(allowed)}")
            continue
        word = item.value
        if word in POLICY_CLAUSES:
            value = items.value()
            if value is None:
                hints = {"pattern": 'a regular expression in quotes, e.g. "^orders\\."',
                         "apply-to": "queues, exchanges or all",
                         "priority": "a number; the highest priority that matches applies"}
                ctx.after(item, f"{word} needs a value", hints[word])
                continue
            if word in seen:
                ctx.at(item, f"{word} is given twice", "keep one of them")
                continue
            seen[word] = item
            where.refs[word] = value
            if word == "pattern":
                pattern = _read_pattern(ctx, "pattern", value)
            elif word == "apply-to":
                if value.value in POLICY_APPLY_TO:
                    apply_to = value.value
                else:
                    ctx.at(value, f"unknown apply-to '{value.value}'"
                           f"{did_you_mean(value.value, POLICY_APPLY_TO)}",
                           "apply-to is queues, exchanges or all (the default)")
            elif _NUMBER.fullmatch(value.value) and not value.quoted:
                number = float(value.value) if "." in value.value else int(value.value)
                if isinstance(number, int) and not -(2**63) <= number < 2**63:
                    ctx.at(value, f"priority {value.value} does not fit 64 bits")
                else:
                    priority = number
            else:
                ctx.at(value, f"priority takes a number, not {_shown(value)}",
                       "the highest priority that matches applies; 0 by default")
        elif word in allowed:
            _read_option(ctx, POLICY_OPTIONS[word], item, items, definition, where, seen)
        elif word in POLICY_OPTIONS:
            ctx.at(item, f"{word} is not a setting of an operator policy",
                   f"operator policies set the limits only: {', '.join(allowed)}")
            items.value()
        elif word in POLICY_REFUSED:
            ctx.at(item, f"{word} is a RabbitMQ policy setting that Warren does not implement",
                   POLICY_REFUSED[word])
            items.value()
        elif word in STATEMENTS:
            ctx.at(
                item,
                f"unexpected '{word}' inside {an} statement",
                "a statement starts at the beginning of a line; an indented line "
                "continues the statement above it",
            )
            break
        else:
            ctx.at(
                item,
                f"unknown {keyword} setting '{word}'"
                f"{did_you_mean(word, [*POLICY_CLAUSES, *allowed])}",
                f"{keyword} settings: {', '.join(allowed)}",
            )
            nxt = items.items[items.i] if items.i < len(items.items) else None
            if isinstance(nxt, Token) and (nxt.quoted or nxt.value not in allowed):
                items.i += 1  # its value: one mistake, one error
    mistaken = len(ctx.errors) > errors_before
    if not stmt.name.value:
        ctx.at(stmt.name, f"{an} needs a name")
    if "pattern" not in seen and not mistaken:
        ctx.after(stmt.name, f"{an} needs a pattern", _POLICY_FORM.replace("policy", keyword, 1))
    elif not definition and not mistaken:
        ctx.at(
            stmt.name,
            f"{an} needs at least one setting",
            f"on the indented lines below it, e.g. {allowed[0]} "
            f"{'30s' if allowed[0] == 'message-ttl' else '...'}",
        )
    decl = PolicyDecl(stmt.name.value, pattern or "", definition, apply_to, priority, operator)
    return decl, where


# -- access statements: vhost, user, permission, topic-permission, limit -------------

_AN = {"vhost": "a vhost", "user": "a user", "permission": "a permission",
       "topic-permission": "a topic permission", "limit": "a limit"}

#: An option written on the wrong statement: (message, hint).
_MISPLACED: dict[str, dict[str, tuple[str, str]]] = {
    "vhost": {
        limit: (
            f"{limit} is not an option of a vhost: vhost limits are statements of their own",
            f"limit <vhost> {limit} <n>",
        )
        for limit in VHOST_LIMITS
    },
    "user": {
        "max-queues": (
            "max-queues is a vhost limit, not a user limit",
            "limit <vhost> max-queues <n>; a user has max-connections and max-channels",
        ),
        "password": (
            "a configuration file holds password hashes, never passwords",
            'password-hash "..." (warren config hash-password prints one)',
        ),
    },
    "permission": {
        "exchange": (
            "a permission has no exchange: it covers every resource whose name matches",
            'per topic exchange: topic-permission <user> on <vhost> exchange <name> '
            'write "<regex>" read "<regex>"',
        ),
    },
    "topic-permission": {
        "configure": (
            "a topic permission has no configure pattern, only write and read",
            'topic-permission <user> on <vhost> exchange <name> write "<regex>" read "<regex>"',
        ),
    },
    "limit": {
        "max-channels": (
            "max-channels is a user limit, not a vhost limit",
            "write it on the user: user <name> max-channels <n>",
        ),
    },
}

_VALUE_HINTS = {
    "description": 'e.g. description "production, EU"',
    "password-hash": 'e.g. password-hash "..." (warren config hash-password prints one)',
    "hashing-algorithm": "sha256 (RabbitMQ's default), sha512 or md5",
    "configure": 'a regular expression in quotes, e.g. ".*"; "" allows nothing',
    "write": 'a regular expression in quotes, e.g. ".*"; "" allows nothing',
    "read": 'a regular expression in quotes, e.g. ".*"; "" allows nothing',
    "exchange": 'the name of a topic exchange ("" is the default exchange)',
}
_LIMIT_HINT = "a whole number; 0 allows none, a negative number lifts the limit"


def _read_tags(
    ctx: _Context, items: _Items, word: Token, options: tuple[str, ...], user: bool
) -> list[str]:
    """The tags after ``tags``: every item up to the next option of the statement."""
    tokens: list[Token] = []
    while items.i < len(items.items):
        nxt = items.items[items.i]
        if isinstance(nxt, Assignment) or (not nxt.quoted and nxt.value in options):
            break
        items.i += 1
        tokens.append(nxt)
    if not tokens:
        ctx.after(word, "tags needs at least one tag", "e.g. tags administrator monitoring")
    tags: list[str] = []
    for tok in tokens:
        tag = tok.value
        if not tag or "," in tag or tag != tag.strip():
            ctx.at(
                tok,
                f"a tag cannot be empty, hold ',' or start or end with a space, got {_shown(tok)}",
                "RabbitMQ reads tags as a comma-separated list",
            )
            continue
        if tag in tags:
            ctx.at(tok, f"tag '{tag}' is given twice", "keep one of them")
            continue
        near = near_known_tag(tag) if user and not tok.quoted else None
        if near is not None:
            ctx.at(
                tok,
                f"unknown tag '{tag}': did you mean '{near}'?",
                f"RabbitMQ gives {', '.join(KNOWN_USER_TAGS)} a meaning; write a tag in "
                "quotes to keep it as it is",
            )
            continue
        tags.append(tag)
    return tags


@dataclass
class _AccessOptions:
    where: _Where
    values: dict[str, Token] = field(default_factory=dict)
    words: dict[str, Token] = field(default_factory=dict)
    tags: list[str] | None = None
    #: Whether reading the options found a mistake (a misspelt option...):
    #: then a missing option is not reported too, one mistake, one error.
    mistaken: bool = False


def _access_options(
    ctx: _Context, stmt: ParsedStatement, kind: str, options: tuple[str, ...]
) -> _AccessOptions:
    """Read the options of an access statement: ``word value`` pairs, and ``tags``."""
    found = _AccessOptions(_Where(stmt.name))
    errors_before = len(ctx.errors)
    if stmt.vhost is not None:
        found.where.refs["vhost"] = stmt.vhost
    an = _AN[kind]
    items = _Items(stmt.items)
    for item in items:
        if isinstance(item, Assignment):
            ctx.at(
                item.name,
                f"'{item.name.value}=...' is not an option of {an}",
                f"write options as '{item.name.value} {_shown(item.value)}', without '='",
            )
            continue
        if item.quoted:
            ctx.at(
                item,
                f"unexpected {_shown(item)}: expected an option of {an}",
                f"{kind} options: {', '.join(options)}",
            )
            continue
        word = item.value
        if word in options:
            if word in found.words:
                ctx.at(item, f"{word} is given twice", "keep one of them")
                if word == "tags":
                    _read_tags(ctx, items, item, options, kind == "user")
                else:
                    items.value()
                continue
            found.words[word] = item
            if word == "tags":
                found.tags = _read_tags(ctx, items, item, options, kind == "user")
                if found.tags:
                    found.where.refs["tags"] = item
                continue
            value = items.value()
            if value is None:
                ctx.after(item, f"{word} needs a value", _VALUE_HINTS.get(word, _LIMIT_HINT))
                continue
            found.values[word] = value
            found.where.refs[word] = value
        elif word in _MISPLACED.get(kind, {}):
            message, hint = _MISPLACED[kind][word]
            ctx.at(item, message, hint)
            nxt = items.items[items.i] if items.i < len(items.items) else None
            if isinstance(nxt, Token) and (nxt.quoted or nxt.value not in options):
                items.i += 1  # its value: one mistake, one error
        elif word in STATEMENTS:
            ctx.at(
                item,
                f"unexpected '{word}' inside {an} statement",
                "a statement starts at the beginning of a line; an indented line "
                "continues the statement above it",
            )
            break
        else:
            ctx.at(
                item,
                f"unknown {kind} option '{word}'{did_you_mean(word, options)}",
                f"{kind} options: {', '.join(options)}",
            )
            nxt = items.items[items.i] if items.i < len(items.items) else None
            if isinstance(nxt, Token) and nxt.quoted:
                items.i += 1
    found.mistaken = len(ctx.errors) > errors_before
    return found


def _read_limit(ctx: _Context, name: str, tok: Token) -> int | None:
    if not re.fullmatch(r"-?\d+", tok.value):
        ctx.at(tok, f"{name} takes a whole number, not '{tok.value}'", _LIMIT_HINT)
        return None
    digits = tok.value.lstrip("-").lstrip("0")
    value = int(tok.value) if len(digits) <= 19 else LIMIT_MAX + 1
    if not LIMIT_MIN <= value <= LIMIT_MAX:
        ctx.at(tok, f"{name} must be between {LIMIT_MIN} and {LIMIT_MAX}, got '{tok.value}'")
        return None
    return value


def _read_pattern(ctx: _Context, clause: str, tok: Token) -> str:
    """A permission's regular expression: quoted, with no escape that would drop
    a backslash, and one ``re`` compiles."""
    from .options import quote

    if not tok.quoted:
        ctx.at(
            tok,
            f"the {clause} pattern is written in quotes: {quote(tok.value)}",
            'patterns are regular expressions, always quoted ("" allows nothing)',
        )
        return tok.value
    raw = ctx.text[tok.offset : tok.offset + tok.length]
    escape = escape_problem(raw)
    if escape is not None:
        at, message = escape
        ctx.error(tok.offset + at, 2, message)
        return tok.value
    problem = pattern_problem(tok.value)
    if problem is not None:
        ctx.at(tok, problem, "Python's re reads the pattern; RabbitMQ uses PCRE, nearly the same")
    return tok.value


def _missing(ctx: _Context, stmt: ParsedStatement, kind: str, found: _AccessOptions,
             required: tuple[str, ...], form: str) -> None:
    missing = [c for c in required if c not in found.words]
    if missing and not found.mistaken:
        names = " and ".join(missing) if len(missing) < 3 else "configure, write and read"
        ctx.at(stmt.name, f"{_AN[kind]} needs {names}", form)


_PERMISSION_FORM = 'permission <user> on <vhost> configure "<regex>" write "<regex>" read "<regex>"'
_TOPIC_FORM = 'topic-permission <user> on <vhost> exchange <name> write "<regex>" read "<regex>"'


def _access(ctx: _Context, stmt: ParsedStatement, kind: str) -> tuple[Declaration, _Where]:
    name = stmt.name.value
    if kind == "vhost":
        found = _access_options(ctx, stmt, kind, VHOST_OPTIONS)
        if not name:
            ctx.at(stmt.name, "a vhost needs a name")
        _check_short(ctx, stmt.name, "vhost name")
        description = found.values.get("description")
        vhost = VHostDecl(
            name,
            description=description.value if description is not None else None,
            tags=found.tags or None,
        )
        return vhost, found.where
    if kind == "user":
        found = _access_options(ctx, stmt, kind, USER_OPTIONS)
        if not name:
            ctx.at(stmt.name, "a user needs a name")
        algorithm = DEFAULT_HASHING_ALGORITHM
        written = found.values.get("hashing-algorithm")
        if written is not None:
            module = algorithm_name(written.value)
            if module is None:
                ctx.at(
                    written,
                    f"unknown hashing-algorithm '{written.value}'"
                    f"{did_you_mean(written.value, HASHING_ALGORITHMS)}",
                    _VALUE_HINTS["hashing-algorithm"],
                )
            else:
                algorithm = module
        password_hash = ""
        hash_tok = found.values.get("password-hash")
        if hash_tok is not None:
            password_hash = hash_tok.value
            problem = check_password_hash(password_hash, algorithm)
            if problem is not None:
                ctx.at(hash_tok, problem, "warren config hash-password prints a valid one")
        limits: dict[str, int] = {}
        for limit in USER_LIMITS:
            tok = found.values.get(limit)
            if tok is not None:
                value = _read_limit(ctx, limit, tok)
                if value is not None:
                    limits[limit] = value
        user = UserDecl(name, password_hash, algorithm, found.tags or [], limits)
        return user, found.where
    if kind in ("permission", "topic-permission"):
        assert stmt.vhost is not None
        clauses = PERMISSION_CLAUSES if kind == "permission" else TOPIC_PERMISSION_CLAUSES
        found = _access_options(ctx, stmt, kind, clauses)
        form = _PERMISSION_FORM if kind == "permission" else _TOPIC_FORM
        _missing(ctx, stmt, kind, found, clauses, form)
        patterns = {
            clause: _read_pattern(ctx, clause, tok)
            for clause, tok in found.values.items()
            if clause != "exchange"
        }
        write, read = patterns.get("write", ""), patterns.get("read", "")
        if kind == "permission":
            permission = PermissionDecl(
                name, stmt.vhost.value, patterns.get("configure", ""), write, read
            )
            return permission, found.where
        exchange = found.values.get("exchange")
        if exchange is not None:
            _check_short(ctx, exchange, "exchange name")
        topic = TopicPermissionDecl(
            name, stmt.vhost.value, exchange.value if exchange is not None else "", write, read
        )
        return topic, found.where
    assert kind == "limit"
    found = _access_options(ctx, stmt, kind, VHOST_LIMITS)
    given = list(found.words.items())
    if not given and not found.mistaken:
        ctx.after(
            stmt.name,
            "limit needs max-connections <n> or max-queues <n>",
            f"e.g. limit {_shown(stmt.name)} max-connections 100",
        )
    for extra_name, extra in given[1:]:
        ctx.at(
            extra,
            "one limit per statement",
            f"write another statement: limit {_shown(stmt.name)} {extra_name} <n>",
        )
    limit_name = given[0][0] if given else ""  # "": none was read, and the file has errors
    value_tok = found.values.get(limit_name)
    value = _read_limit(ctx, limit_name, value_tok) if value_tok is not None else None
    found.where.refs["vhost"] = stmt.name
    return VHostLimitDecl(name, limit_name, value if value is not None else 0), found.where


def _check_short(ctx: _Context, tok: Token, what: str) -> None:
    """Names and routing keys travel as AMQP short strings: 255 bytes at most."""
    size = len(tok.value.encode("utf-8", "surrogatepass"))
    if size > 255:
        ctx.at(
            tok,
            f"{what} is {size} bytes long; AMQP allows at most 255",
            "names and routing keys are short strings (AMQP 0-9-1 section 4.2.5.3)",
        )


def _check_mode(ctx: _Context, tok: Token) -> bool:
    if tok.value in X_MATCH_MODES:
        return True
    ctx.at(
        tok,
        f"unknown match mode '{tok.value}'{did_you_mean(tok.value, X_MATCH_MODES)}",
        "headers match all, any, all-with-x or any-with-x",
    )
    return False


def _statement_error(ctx: _Context, chunk: Chunk, exc: pp.ParseException) -> None:
    text = ctx.text
    first = _FIRST_WORD.match(text, chunk.start)
    word = first.group(0) if first else text[chunk.start : chunk.start + 1]
    if word not in STATEMENTS:
        hint = (
            "statements start with exchange, queue, bind, vhost, user, permission, "
            "topic-permission, limit, policy or operator-policy"
        )
        if chunk.indented:
            hint = "an indented line continues the statement right above it, with no blank line between"
        ctx.error(
            chunk.start,
            len(word),
            f"unknown statement '{word}'{did_you_mean(word, STATEMENTS)}",
            hint,
        )
        return
    offset = chunk.start + exc.loc
    c = text[offset] if offset < len(text) else ""
    if c == '"':
        ctx.error(offset, 1, "unterminated string", 'add the closing " on the same line')
        return
    if c == "=":
        after = text[offset + 1 : offset + 2]
        before = text[offset - 1 : offset]
        if before.strip() and (not after or after.isspace() or after == "#"):
            ctx.error(offset, 1, "a value is missing after '='", 'as in format=json; "" is empty')
        else:
            ctx.error(offset, 1, "'=' must follow a name", "as in format=json, with no spaces")
        return
    here = _FIRST_WORD.match(text, offset) if offset < chunk.end else None
    found = f"'{here.group(0)}'" if here else "the end of the statement"
    expected = exc.msg[0].lower() + exc.msg[1:] if exc.msg else "something else"
    hints = {
        "exchange": "exchange <name> type <type> [durable] [auto-delete] [internal] ...",
        "queue": "queue <name> [durable] [message-ttl 30s] ...",
        "bind": "bind [exchange] <destination> to <exchange> [key <routing key>] ...",
        "vhost": 'vhost <name> [description "..."] [tags <tag>...]',
        "user": 'user <name> [password-hash "..."] [hashing-algorithm sha256] [tags <tag>...]',
        "permission": _PERMISSION_FORM,
        "topic-permission": _TOPIC_FORM,
        "limit": "limit <vhost> max-connections <n> (or max-queues <n>)",
        "policy": _POLICY_FORM,
        "operator-policy": _POLICY_FORM.replace("policy", "operator-policy", 1),
    }
    ctx.error(offset, len(here.group(0)) if here else 1, f"{expected}, found {found}", hints[word])


def parse_config(
    text: str, filename: str = "<config>", vhost: str = "/"
) -> tuple[TopologyConfig, list[ConfigError]]:
    """Parse and check ``text``; the model holds whatever could be read.

    ``vhost`` is the vhost the file's topology is for (the command's
    ``--vhost``, or the AMQP URL's): permissions and limits may name it, and
    ``/``, without a ``vhost`` statement.
    """
    ctx = _Context(text, filename, vhost)
    chunks, eol_comments, trailing = split_statements(text)
    config = TopologyConfig(trailing_comments=trailing)
    wheres: list[_Where] = []  # parallel to config.declarations
    for chunk in chunks:
        try:
            stmt = parse_statement(text, chunk)
        except pp.ParseException as exc:
            _statement_error(ctx, chunk, exc)
            continue
        keyword = stmt.keyword.value
        decl: Declaration
        if keyword == "bind":
            decl, where = _binding(ctx, stmt)
        elif keyword in ("exchange", "queue"):
            decl, where = _declaration(ctx, stmt, keyword)
        elif keyword in ("policy", "operator-policy"):
            decl, where = _policy(ctx, stmt, keyword)
        else:
            decl, where = _access(ctx, stmt, keyword)
        wheres.append(where)
        line, _ = ctx.lines.position(chunk.start)
        first_line_start = ctx.lines.starts[line - 1]
        comments = list(chunk.comments)
        # End-of-line comments: the first line's stays on it, an option line's
        # stays with that option; others move above the statement.
        trailing_comment = eol_comments.get(first_line_start)
        option_comments: dict[str, str] = {}
        for ln in range(line + 1, ctx.lines.position(chunk.end)[0] + 1):
            extra = eol_comments.get(ctx.lines.starts[ln - 1])
            if extra is None:
                continue
            arg = _argument_on_line(ctx, decl, where, ln)
            if arg is not None and arg not in option_comments:
                option_comments[arg] = extra
            else:
                comments.append(extra)
        decl.origin = SourceInfo(
            line, comments, trailing_comment, chunk.blank_line_before, option_comments
        )
        config.declarations.append(decl)
    _check_whole(ctx, config, wheres)
    _check_access(ctx, config, wheres)
    return config, ctx.errors


def _argument_on_line(ctx: _Context, decl: Declaration, where: _Where, line: int) -> str | None:
    """The first argument of ``decl`` whose value is written on ``line`` (for a
    user or a vhost, the first option)."""
    if isinstance(decl, UserDecl | VHostDecl):
        for option, tok in where.refs.items():
            if ctx.lines.position(tok.offset)[0] == line:
                return option
        return None
    if isinstance(decl, PolicyDecl):
        for key, tok in where.refs.items():
            if key in decl.definition and ctx.lines.position(tok.offset)[0] == line:
                return key
        return None  # the pattern, apply-to and priority are on the first line
    if not isinstance(decl, ExchangeDecl | QueueDecl):
        return None  # a binding, a permission, a limit: printed on one line
    for arg, tok in where.refs.items():
        if arg in ("type", "x-queue-type") or arg not in decl.arguments:
            continue
        if ctx.lines.position(tok.offset)[0] == line:
            return arg
    return None


def _check_whole(ctx: _Context, config: TopologyConfig, wheres: list[_Where]) -> None:
    exchanges: dict[str, ExchangeDecl] = {}
    queues: dict[str, QueueDecl] = {}
    for decl, where in zip(config.declarations, wheres, strict=True):
        if isinstance(decl, ExchangeDecl | QueueDecl):
            kind = "exchange" if isinstance(decl, ExchangeDecl) else "queue"
            table: dict[str, Any] = exchanges if kind == "exchange" else queues
            first = table.get(decl.name)
            if first is not None:
                ctx.at(
                    where.name,
                    f"{kind} '{decl.name}' is declared twice",
                    f"the first declaration is at line {first.origin.line}; keep one",
                )
            else:
                table[decl.name] = decl
    known_exchanges = set(exchanges) | BUILTIN_NAMES
    seen_bindings: dict[tuple[Any, ...], BindingDecl] = {}

    def unknown_exchange(tok: Token, what: str) -> None:
        ctx.at(
            tok,
            f"{what} '{tok.value}' is not declared{did_you_mean(tok.value, known_exchanges)}",
            None
            if did_you_mean(tok.value, known_exchanges)
            else f"declare it with: exchange {tok.value} type <type>",
        )

    for decl, where in zip(config.declarations, wheres, strict=True):
        if isinstance(decl, PolicyDecl):
            for setting, what in (("dead-letter-exchange", "dead-letter exchange"),
                                  ("alternate-exchange", "alternate exchange")):
                named = decl.definition.get(setting)
                if isinstance(named, str) and named and named not in known_exchanges:
                    unknown_exchange(where.refs[setting], what)
        elif isinstance(decl, QueueDecl):
            dlx = decl.arguments.get("x-dead-letter-exchange")
            if isinstance(dlx, str) and dlx and dlx not in known_exchanges:
                unknown_exchange(where.refs["x-dead-letter-exchange"], "dead-letter exchange")
        elif isinstance(decl, ExchangeDecl):
            ae = decl.arguments.get("alternate-exchange")
            if isinstance(ae, str) and ae and ae not in known_exchanges:
                unknown_exchange(where.refs["alternate-exchange"], "alternate exchange")
        elif isinstance(decl, BindingDecl):
            src = where.refs["source"]
            if decl.source == "":
                ctx.at(
                    src,
                    "nothing can be bound to the default exchange",
                    "it already reaches every queue by the queue's name",
                )
            elif decl.source not in known_exchanges:
                unknown_exchange(src, "exchange")
            if decl.destination_type == "queue" and decl.destination not in queues:
                ctx.at(
                    where.name,
                    f"queue '{decl.destination}' is not declared"
                    f"{did_you_mean(decl.destination, queues)}",
                    None
                    if did_you_mean(decl.destination, queues)
                    else f"declare it with: queue {decl.destination}"
                    if decl.destination not in exchanges
                    else f"'{decl.destination}' is an exchange: bind exchange {decl.destination} "
                    f"to {decl.source}",
                )
            elif decl.destination_type == "exchange" and decl.destination not in known_exchanges:
                unknown_exchange(where.name, "exchange")
            _check_weight(ctx, decl, where, exchanges.get(decl.source))
            key = decl.key()
            if key in seen_bindings:
                ctx.at(
                    where.name,
                    "this binding is declared twice",
                    f"the same binding is at line {seen_bindings[key].origin.line}",
                )
            else:
                seen_bindings[key] = decl


def _check_weight(
    ctx: _Context, decl: BindingDecl, where: _Where, source: ExchangeDecl | None
) -> None:
    """A binding to an x-consistent-hash exchange has a weight for its key;
    ``weight`` is for those bindings only."""
    chx = source is not None and source.type == CONSISTENT_HASH
    if source is None and decl.source not in BUILTIN_NAMES:
        return  # reported as not declared
    if "weight" in where.refs and not chx:
        if source is not None:
            what = f"type {source.type}"
        else:
            what = "built in"
        ctx.at(
            where.refs["weight"],
            f"weight is for bindings to {CONSISTENT_HASH} exchanges; '{decl.source}' is {what}",
            f'write key "{decl.routing_key}" for a routing key',
        )
    if not chx or "weight" in where.refs:
        return
    if binding_key_problem(decl.routing_key) is None:
        return
    tok = where.refs.get("key", where.name)
    ctx.at(
        tok,
        f"a binding to {CONSISTENT_HASH} exchange '{decl.source}' needs a weight, a whole "
        f"number of 1 or more, as its key, not {decl.routing_key!r}",
        "write weight 1 (more takes a larger share of the keys); RabbitMQ refuses it with "
        "406 PRECONDITION_FAILED",
    )


def _access_label(decl: Declaration) -> str:
    """How a duplicate access statement is named in its error."""
    if isinstance(decl, VHostDecl):
        return f"vhost '{decl.name}' is declared twice"
    if isinstance(decl, UserDecl):
        return f"user '{decl.name}' is declared twice"
    if isinstance(decl, PermissionDecl):
        return f"the permission of '{decl.user}' on vhost '{decl.vhost}' is declared twice"
    if isinstance(decl, TopicPermissionDecl):
        return (
            f"the topic permission of '{decl.user}' on vhost '{decl.vhost}' for exchange "
            f"'{decl.exchange}' is declared twice"
        )
    if isinstance(decl, PolicyDecl):
        return f"{decl.keyword} '{decl.name}' is declared twice"
    assert isinstance(decl, VHostLimitDecl)
    return f"limit {decl.name} of vhost '{decl.vhost}' is declared twice"


def _check_access(ctx: _Context, config: TopologyConfig, wheres: list[_Where]) -> None:
    """Duplicate access statements, and users and vhosts that are not declared."""
    access = [
        (decl, where)
        for decl, where in zip(config.declarations, wheres, strict=True)
        if not isinstance(decl, ExchangeDecl | QueueDecl | BindingDecl)
    ]
    if not access:
        return
    first: dict[tuple[Any, ...], Declaration] = {}
    for decl, where in access:
        key = decl.key()
        if key in first:
            hint = f"the first is at line {first[key].origin.line}; keep one"
            if isinstance(decl, PermissionDecl):
                hint = (
                    f"a user has one permission per vhost; the first is at line "
                    f"{first[key].origin.line}"
                )
            # A limit's and a permission's name token is its vhost or user: point at the statement.
            ctx.at(where.name, _access_label(decl), hint)
        else:
            first[key] = decl
    users = {d.name for d in config.users}
    vhosts = {d.name for d in config.vhosts} | {"/", ctx.vhost}

    def check_user(tok: Token) -> None:
        if tok.value in users:
            return
        close = did_you_mean(tok.value, users)
        ctx.at(
            tok,
            f"user '{tok.value}' is not declared{close}",
            None if close else f"declare it with: user {_shown(tok)} password-hash \"...\"",
        )

    def check_vhost(tok: Token) -> None:
        if tok.value in vhosts:
            return
        close = did_you_mean(tok.value, vhosts)
        need_none = (
            "'/' needs none" if ctx.vhost == "/"
            else f"'/' and the file's own vhost, '{ctx.vhost}', need none"
        )
        ctx.at(
            tok,
            f"vhost '{tok.value}' is not declared{close}",
            None if close else f"declare it with: vhost {_shown(tok)} ({need_none})",
        )

    for decl, where in access:
        if isinstance(decl, PermissionDecl | TopicPermissionDecl):
            check_user(where.name)
            check_vhost(where.refs["vhost"])
        elif isinstance(decl, VHostLimitDecl):
            check_vhost(where.name)
