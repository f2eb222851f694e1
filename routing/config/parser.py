"""From configuration text to a ``TopologyConfig``, with every error at once.

Two passes. The first parses each statement (``grammar``) and reads its options
(``options``), reporting misspelt options, bad values and syntax errors. The
second checks the file as a whole: duplicate declarations, bindings and
dead-letter/alternate exchanges that name something not declared.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyparsing as pp

from ..exchanges import BUILTIN_EXCHANGES
from ..exchanges.headers import X_MATCH_MODES
from ..model import BindingDecl, Declaration, ExchangeDecl, QueueDecl, SourceInfo, TopologyConfig
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
    EXCHANGE_OPTIONS,
    OPTION_BY_ARGUMENT,
    QUEUE_OPTIONS,
    Option,
    ValueProblem,
    read_generic,
    read_value,
)

__all__ = ["STATEMENTS", "parse_config"]

STATEMENTS = ("exchange", "queue", "bind")
BIND_CLAUSES = ("key", "headers", "argument")
BUILTIN_NAMES = frozenset(name for name, _, _ in BUILTIN_EXCHANGES)

_FIRST_WORD = re.compile(r'[^\s"=#]+')


@dataclass
class _Where:
    """The tokens of one declaration that later checks point at."""

    name: Token
    refs: dict[str, Token] = field(default_factory=dict)


class _Context:
    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
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
                ctx.after(item, "type needs a value", "direct, fanout, topic or headers")
            elif "type" in seen:
                ctx.at(item, "type is given twice", "keep one of them")
            else:
                seen["type"] = item
                type_value = value.value
                where.refs["type"] = value
        elif option is not None:
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
                else "exchange types: direct, fanout, topic, headers",
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
    return decl, where


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
            elif routing_key is not None:
                ctx.at(item, "key is given twice", "bind twice to bind with two keys")
            else:
                routing_key = value.value
                _check_short(ctx, value, "routing key")
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
        hint = "statements start with exchange, queue or bind"
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
    }
    ctx.error(offset, len(here.group(0)) if here else 1, f"{expected}, found {found}", hints[word])


def parse_config(text: str, filename: str = "<config>") -> tuple[TopologyConfig, list[ConfigError]]:
    """Parse and check ``text``; the model holds whatever could be read."""
    ctx = _Context(text, filename)
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
        else:
            decl, where = _declaration(ctx, stmt, keyword)
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
    return config, ctx.errors


def _argument_on_line(ctx: _Context, decl: Declaration, where: _Where, line: int) -> str | None:
    """The first argument of ``decl`` whose value is written on ``line``."""
    if isinstance(decl, BindingDecl):
        return None  # a binding is printed on one line
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
        if isinstance(decl, QueueDecl):
            dlx = decl.arguments.get("x-dead-letter-exchange")
            if isinstance(dlx, str) and dlx and dlx not in known_exchanges:
                unknown_exchange(where.refs["x-dead-letter-exchange"], "dead-letter exchange")
        elif isinstance(decl, ExchangeDecl):
            ae = decl.arguments.get("alternate-exchange")
            if isinstance(ae, str) and ae and ae not in known_exchanges:
                unknown_exchange(where.refs["alternate-exchange"], "alternate exchange")
        else:
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
            key = decl.key()
            if key in seen_bindings:
                ctx.at(
                    where.name,
                    "this binding is declared twice",
                    f"the same binding is at line {seen_bindings[key].origin.line}",
                )
            else:
                seen_bindings[key] = decl
