"""The configuration language's syntax: statements, tokens, comments (pyparsing).

A file is a list of statements. A statement starts at the beginning of a line
and continues on the indented lines right below it; ``#`` starts a comment
(outside quotes). Each statement is parsed on its own, so a syntax error in one
does not hide errors in the others::

    statement := exchange | queue | bind
               | vhost | user | permission | topic-permission | limit | policy
    exchange  := "exchange" NAME item*
    queue     := "queue" NAME item*
    bind      := "bind" ["queue" | "exchange"] NAME "to" NAME item*
    vhost     := "vhost" NAME item*
    user      := "user" NAME item*
    permission       := "permission" NAME "on" NAME item*
    topic-permission := "topic-permission" NAME "on" NAME item*
    limit     := "limit" NAME item*
    policy    := ("policy" | "operator-policy") NAME item*
    item      := NAME "=" VALUE | VALUE
    NAME      := WORD | STRING
    VALUE     := WORD | STRING
    WORD      := one or more characters other than space, '"', '=' and '#'
    STRING    := '"' characters, with \\" \\\\ \\n \\t escapes '"'

What the items mean (``durable``, ``message-ttl 30s``, ``key "a.*"``...) is
decided by ``routing.config.parser``, which knows each statement's options and
can say "did you mean" about a misspelt one.

Speed (``python -m routing.config.bench``): comments are blanked out before
pyparsing sees a statement, and the items, most of a file, are read by one
regular expression; the statement shapes stay pyparsing's. That made ``check``
of a 4,000-line file about 3.7 times faster, with the same results and errors
(``tests/routing/test_routing_grammar.py`` holds the grammar as it was and
compares the two on generated statements).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyparsing as pp

__all__ = ["Chunk", "ParsedStatement", "Token", "parse_statement", "split_statements"]

WORD_CHARS_PATTERN = r'[^\s"=#]+'

# The items of a statement are read by one regular expression (see _build).
# pyparsing's grammar is PEG: every repetition is greedy and never gives back,
# which possessive quantifiers (``*+``, ``++``, ``?+``) say in ``re``. Between
# tokens pyparsing skips its default whitespace, " \t\r\n" (not \s: a form
# feed is neither a space nor part of a word).
_WORD = WORD_CHARS_PATTERN + "+"
#: pyparsing's pattern for ``QuotedString('"', esc_char="\\")``, made possessive.
_STRING = r'"(?:\\.|[^"\n\r\\])*+"'
_WS = r"[ \t\r\n]*+"
_NAME = rf"(?:{_STRING}|{_WORD})"
#: NAME, or NAME "=" VALUE.
_ITEM = rf"{_NAME}(?:{_WS}={_WS}{_NAME})?+"
_ITEMS = rf"{_ITEM}(?:{_WS}{_ITEM})*+"
#: One item of what _ITEMS matched, with groups: quoted name, word name, quoted
#: value, word value. No possessive quantifiers here: CPython 3.11 gets the spans
#: of groups inside them wrong (SystemError), and on text _ITEMS accepted a
#: plain match finds the same tokens.
_G_NAME = r'(?:("(?:\\.|[^"\n\r\\])*")|([^\s"=#]+))'
_NEXT_ITEM = re.compile(rf"[ \t\r\n]*{_G_NAME}(?:[ \t\r\n]*=[ \t\r\n]*{_G_NAME})?")


@dataclass(frozen=True)
class Token:
    """A word or a quoted string, with its offset in the whole file."""

    value: str
    offset: int
    quoted: bool
    #: Characters the token spans in the source (quotes and escapes included).
    length: int


@dataclass(frozen=True)
class Assignment:
    """``name=value`` (a header or argument)."""

    name: Token
    value: Token

    @property
    def offset(self) -> int:
        return self.name.offset


Item = Token | Assignment


@dataclass
class ParsedStatement:
    keyword: Token
    name: Token
    items: list[Item]
    #: For ``bind``: the optional ``queue``/``exchange`` word and the source.
    destination_kind: Token | None = None
    source: Token | None = None
    #: For ``permission`` and ``topic-permission``: the vhost after ``on``.
    vhost: Token | None = None


@dataclass
class Chunk:
    """One statement's text span and the comments that came before it."""

    start: int
    end: int
    comments: list[str] = field(default_factory=list)
    blank_line_before: bool = False
    indented: bool = False
    #: ``(start, end)`` file offsets of the comments in the statement (end of
    #: line ones, and indented full-line ones), blanked before parsing.
    comment_spans: list[tuple[int, int]] = field(default_factory=list)


#: Unquotes a string as the grammar's QuotedString does (tabs kept, as in the file).
_UNQUOTE = pp.QuotedString('"', esc_char="\\", multiline=False).parse_with_tabs()


def _item_token(m: re.Match[str], group: int, base: int) -> Token:
    """The token of a name (``group`` 1) or value (3) that ``_NEXT_ITEM`` matched."""
    if m.start(group) >= 0:
        raw = m[group]
        # Unquoting is pyparsing's (it has more escapes than \" and \\); a
        # string without a backslash is what is between its quotes.
        value = _UNQUOTE.parse_string(raw)[0] if "\\" in raw else raw[1:-1]
        return Token(value, base + m.start(group), True, len(raw))
    word = m[group + 1]
    return Token(word, base + m.start(group + 1), False, len(word))


def _keyword(word: str) -> pp.ParserElement:
    return pp.Regex(word + r'(?=[\s"=#]|$)').set_name(f"'{word}'")


def _build() -> pp.ParserElement:
    def token(quoted: bool) -> Callable[[str, int, pp.ParseResults], Token]:  # an action factory
        def action(s: str, loc: int, toks: pp.ParseResults) -> Token:
            end = loc
            if quoted:
                # Find the closing quote to know how long the token is in the source.
                end = loc + 1
                while end < len(s) and s[end] != '"':
                    end += 2 if s[end] == "\\" else 1
                end += 1
            else:
                end = loc + len(toks[0])
            return Token(toks[0], loc, quoted, end - loc)

        return action

    string = (
        pp.QuotedString('"', esc_char="\\", multiline=False)
        .set_parse_action(token(True))
        .set_name("a quoted string")
    )
    word = pp.Regex(WORD_CHARS_PATTERN).set_parse_action(token(False)).set_name("a name")
    name = (string | word).set_name("a name")

    def read_items(s: str, loc: int, toks: pp.ParseResults) -> list[Item]:
        found: list[Item] = []
        text = toks[0]
        at = 0
        while at < len(text):
            m = _NEXT_ITEM.match(text, at)
            assert m is not None  # text is what _ITEMS matched
            name_tok = _item_token(m, 1, loc)
            if m.start(3) < 0 and m.start(4) < 0:
                found.append(name_tok)
            else:
                found.append(Assignment(name_tok, _item_token(m, 3, loc)))
            at = m.end()
        return found

    # Items are most of a file, and a pyparsing element per token
    # (``ZeroOrMore(name + Optional("=" + value))``) cost ~20 us per token: one
    # regular expression reads them all instead. It reads the same language (the
    # patterns are pyparsing's), stops where that grammar stopped (so an error is
    # reported at the same place, with the same message) and makes the same
    # tokens; a differential run over 80,000 generated files found no difference.
    items = pp.Group(pp.Optional(pp.Regex(_ITEMS).set_parse_action(read_items).set_name("items")))("items")
    exchange = _keyword("exchange")("keyword") + name("name") + items
    queue = _keyword("queue")("keyword") + name("name") + items
    bind = (
        _keyword("bind")("keyword")
        + pp.Optional(_keyword("queue") | _keyword("exchange"))("kind")
        + name("name")
        + _keyword("to")
        + name("source")
        + items
    )
    # The access statements: each names one thing (a permission, a user and
    # a vhost), and their options are items, read by routing.config.parser.
    vhost = _keyword("vhost")("keyword") + name("name") + items
    user = _keyword("user")("keyword") + name("name") + items
    permission = (
        (_keyword("permission") | _keyword("topic-permission"))("keyword")
        + name("name")
        + _keyword("on")
        + name("vhost")
        + items
    )
    limit = _keyword("limit")("keyword") + name("name") + items
    policy = (_keyword("policy") | _keyword("operator-policy"))("keyword") + name("name") + items
    end = pp.StringEnd().set_name("the end of the statement")
    statement = (exchange | queue | bind | vhost | user | permission | limit | policy) + end
    # Comments are not in the grammar: split_statements finds them (it must, to
    # keep them for the formatter) and parse_statement blanks them to spaces,
    # which keeps every offset. Letting pyparsing skip them instead (``ignore``)
    # tries the comment pattern before every token: half the parsing time.
    # Offsets must be offsets in the file: by default pyparsing expands tabs first.
    statement.parse_with_tabs()
    return statement


_STATEMENT = _build()


def _relocate(tok: Token, base: int) -> Token:
    return Token(tok.value, tok.offset + base, tok.quoted, tok.length)


def parse_statement(text: str, chunk: Chunk) -> ParsedStatement:
    """Parse one statement; raises ``pp.ParseException`` (offsets within the chunk)."""
    source = text[chunk.start : chunk.end]
    if chunk.comment_spans:
        pieces: list[str] = []
        at = 0
        for start, end in chunk.comment_spans:
            start, end = start - chunk.start, min(end, chunk.end) - chunk.start
            if start >= len(source):
                break
            pieces += (source[at:start], " " * (end - start))
            at = end
        pieces.append(source[at:])
        source = "".join(pieces)
    # The grammar ends with StringEnd: parse_all would only add another check
    # (and build it anew on every call).
    results = _STATEMENT.parse_string(source)
    base = chunk.start

    def reloc(item: Item) -> Item:
        if isinstance(item, Assignment):
            return Assignment(_relocate(item.name, base), _relocate(item.value, base))
        return _relocate(item, base)

    keyword = Token(results["keyword"], base, False, len(results["keyword"]))
    kind = results["kind"] if "kind" in results else None
    stmt = ParsedStatement(
        keyword=keyword,
        name=_relocate(results["name"], base),
        items=[reloc(i) for i in results["items"]],
    )
    if "vhost" in results:
        stmt.vhost = _relocate(results["vhost"], base)
    if keyword.value == "bind":
        stmt.source = _relocate(results["source"], base)
        if kind:
            # The optional word is the token right after "bind".
            offset = text.index(kind, chunk.start + 4)
            stmt.destination_kind = Token(kind, offset, False, len(kind))
    return stmt


def _comment_start(line: str) -> int:
    """Where a ``#`` comment starts in ``line`` (outside quotes), or -1."""
    in_string = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "#":
            return i
        i += 1
    return -1


@dataclass
class _Line:
    start: int
    text: str


def split_statements(text: str) -> tuple[list[Chunk], dict[int, str], list[str]]:
    """Cut ``text`` into statements.

    Returns the chunks, the end-of-line comments by the offset of their line's
    start, and the comments after the last statement.
    """
    chunks: list[Chunk] = []
    eol_comments: dict[int, str] = {}
    pending: list[str] = []
    blank = False
    current: Chunk | None = None
    offset = 0
    # Lines end at "\n" only (and a "\r" before it): str.splitlines would also cut
    # at form feeds and U+2028, which may sit inside a quoted name.
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        start = offset
        offset += len(raw) + 1
        stripped = line.strip(" \t")
        if not stripped:
            current = None
            blank = True
            continue
        indented = line[0] in " \t"
        if stripped.startswith("#"):
            comment = stripped[1:].removeprefix(" ")
            if current is not None and indented:
                current.comments.append(comment)  # inside a statement: keep it with it
                hash_at = start + line.index("#")
                current.comment_spans.append((hash_at, start + len(line)))
                continue
            current = None
            pending.append(comment)
            continue
        cut = _comment_start(line)
        if cut >= 0:
            eol_comments[start] = line[cut + 1 :].removeprefix(" ").rstrip()
            content_end = start + len(line[:cut].rstrip(" \t"))
        else:
            content_end = start + len(line.rstrip(" \t"))
        if current is not None and indented:
            current.end = content_end
            if cut >= 0:
                current.comment_spans.append((start + cut, start + len(line)))
            continue
        first = start + (len(line) - len(line.lstrip(" \t")))
        current = Chunk(first, content_end, pending, blank and bool(chunks or pending), indented)
        if cut >= 0:
            current.comment_spans.append((start + cut, start + len(line)))
        pending = []
        blank = False
        chunks.append(current)
    return chunks, eol_comments, pending


class LineIndex:
    """Offsets to (line, column), both 1-based, and the text of a line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for i, c in enumerate(text):
            if c == "\n":
                self.starts.append(i + 1)

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line] + 1

    def line_text(self, line: int) -> str:
        start = self.starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].rstrip("\r")
