"""The statement grammar against the plain pyparsing grammar it replaced.

``routing.config.grammar`` blanks comments out before parsing and reads a
statement's items with one regular expression, for speed. ``_reference`` below
is the grammar as it was written first (an element per token, comments skipped
by pyparsing): on any statement, both must give the same tokens, or fail at the
same place with the same message.
"""

from __future__ import annotations

import re

import pyparsing as pp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.config.grammar import (
    WORD_CHARS_PATTERN,
    Assignment,
    Token,
    parse_statement,
    split_statements,
)


def _reference() -> pp.ParserElement:
    def token(quoted: bool):
        def action(s: str, loc: int, toks: pp.ParseResults) -> Token:
            end = loc + len(toks[0])
            if quoted:
                end = loc + 1
                while end < len(s) and s[end] != '"':
                    end += 2 if s[end] == "\\" else 1
                end += 1
            return Token(toks[0], loc, quoted, end - loc)

        return action

    def keyword(word: str) -> pp.ParserElement:
        return pp.Regex(word + r'(?=[\s"=#]|$)').set_name(f"'{word}'")

    string = (
        pp.QuotedString('"', esc_char="\\", multiline=False)
        .set_parse_action(token(True))
        .set_name("a quoted string")
    )
    word = pp.Regex(WORD_CHARS_PATTERN).set_parse_action(token(False)).set_name("a name")
    name = (string | word).set_name("a name")
    assignment = (
        name + pp.Suppress("=") + (string | word).set_name("a value after '='")
    ).set_parse_action(lambda t: Assignment(t[0], t[1]))
    items = pp.Group(pp.ZeroOrMore(assignment | string | word))("items")
    exchange = keyword("exchange")("keyword") + name("name") + items
    queue = keyword("queue")("keyword") + name("name") + items
    bind = (
        keyword("bind")("keyword")
        + pp.Optional(keyword("queue") | keyword("exchange"))("kind")
        + name("name")
        + keyword("to")
        + name("source")
        + items
    )
    vhost = keyword("vhost")("keyword") + name("name") + items
    user = keyword("user")("keyword") + name("name") + items
    permission = (
        (keyword("permission") | keyword("topic-permission"))("keyword")
        + name("name") + keyword("on") + name("vhost") + items
    )
    limit = keyword("limit")("keyword") + name("name") + items
    statement = (exchange | queue | bind | vhost | user | permission | limit) + pp.StringEnd(
    ).set_name("the end of the statement")
    statement.ignore(pp.python_style_comment)
    statement.parse_with_tabs()
    return statement


REFERENCE = _reference()

PIECES = [
    "a", "b.c", "x-y", "key", "headers", "all", "to", "queue", "exchange", "bind", "durable",
    "5s", "=", " = ", '"q"', '"a b"', '"\\"x"', '"\\x41\\t\\n\\u00e9\\\\"', '"tab\there"', '"tab\t\\"and escape"',
    '"unterminated', '"#"', '""', "#c", " # c ", "\n  ", "\n\t", "\n  # inside\n  ", " ", "\t",
    "\f", "\r", "\\", "é", "-2", "2.5", "=x", "n=1", 'a="b"', '"k"="v"', "x-match=any", "a =b",
]
HEADS = ["queue q", "exchange x", "bind q to x", "bind exchange e to x", "bind queue q to x",
         "queue", "bind q", 'exchange "x y"', "que", "bind to to to",
         "vhost v", "user u", 'user "a b"', "permission u on v", "topic-permission u on /",
         "permission u", "permission on on on", "limit /", "limit", "topic-permission"]


@st.composite
def statements(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(["", " "]), st.sampled_from(PIECES)),
                          max_size=12))
    return draw(st.sampled_from(HEADS)) + "".join(a + b for a, b in parts)


def _outcome(parse, statement: str) -> tuple:
    try:
        return ("ok", parse())
    except pp.ParseException as exc:
        first = re.match(WORD_CHARS_PATTERN, statement)
        if not first or first[0] not in (
            "exchange", "queue", "bind", "vhost", "user", "permission", "topic-permission", "limit"
        ):
            # No keyword: every alternative fails at its start, and pyparsing's
            # message describes the whole grammar. The parser says "unknown
            # statement" instead, from the text, so only the place matters.
            return ("error", exc.loc)
        return ("error", exc.loc, exc.msg)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements())
def test_the_grammar_reads_what_the_plain_pyparsing_grammar_read(text: str) -> None:
    chunks, _, _ = split_statements(text)
    for chunk in chunks:

        def ours(chunk=chunk) -> tuple:
            stmt = parse_statement(text, chunk)
            return (stmt.keyword.value, stmt.name, stmt.items, stmt.source,
                    stmt.destination_kind and stmt.destination_kind.value, stmt.vhost)

        def reference(chunk=chunk) -> tuple:
            results = REFERENCE.parse_string(text[chunk.start : chunk.end], parse_all=True)

            def moved(tok: Token) -> Token:
                return Token(tok.value, tok.offset + chunk.start, tok.quoted, tok.length)

            items = [
                Assignment(moved(i.name), moved(i.value)) if isinstance(i, Assignment)
                else moved(i)
                for i in results["items"]
            ]
            source = results.get("source")
            vhost = results.get("vhost")
            return (results["keyword"], moved(results["name"]), items,
                    moved(source) if source is not None else None, results.get("kind") or None,
                    moved(vhost) if vhost is not None else None)

        statement = text[chunk.start : chunk.end]
        assert _outcome(ours, statement) == _outcome(reference, statement), repr(statement)


def test_a_few_statements_by_hand() -> None:
    text = 'bind q to x headers all a="b c" "k"=v n = 1 flag # note\n    more\tx-t="\\t"\n'
    (chunk,), _, _ = split_statements(text)
    stmt = parse_statement(text, chunk)
    assert [(i.name.value, i.value.value) if isinstance(i, Assignment) else i.value
            for i in stmt.items] == [
        "headers", "all", ("a", "b c"), ("k", "v"), ("n", "1"), "flag", "more", ("x-t", "\t"),
    ]
    assert stmt.items[2].value == Token("b c", 26, True, 5)
