"""The configuration language's syntax: statements, tokens, comments (pyparsing).

A file is a list of statements. A statement starts at the beginning of a line
and continues on the indented lines right below it; ``#`` starts a comment
(outside quotes). Each statement is parsed on its own, so a syntax error in one
does not hide errors in the others::

    statement := exchange | queue | bind
    exchange  := "exchange" NAME item*
    queue     := "queue" NAME item*
    bind      := "bind" ["queue" | "exchange"] NAME "to" NAME item*
    item      := NAME "=" VALUE | VALUE
    NAME      := WORD | STRING
    VALUE     := WORD | STRING
    WORD      := one or more characters other than space, '"', '=' and '#'
    STRING    := '"' characters, with \\" \\\\ \\n \\t escapes '"'

What the items mean (``durable``, ``message-ttl 30s``, ``key "a.*"``...) is
decided by ``routing.config.parser``, which knows each statement's options and
can say "did you mean" about a misspelt one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import pyparsing as pp

__all__ = ["Chunk", "ParsedStatement", "Token", "parse_statement", "split_statements"]

WORD_CHARS_PATTERN = r'[^\s"=#]+'


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


@dataclass
class Chunk:
    """One statement's text span and the comments that came before it."""

    start: int
    end: int
    comments: list[str] = field(default_factory=list)
    blank_line_before: bool = False
    indented: bool = False


def _keyword(word: str) -> pp.ParserElement:
    return pp.Regex(word + r'(?=[\s"=#]|$)').set_name(f"'{word}'")


def _build() -> pp.ParserElement:
    def token(quoted: bool):  # a parse action factory
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
    assignment = (
        name + pp.Suppress("=") + (string | word).set_name("a value after '='")
    ).set_parse_action(lambda t: Assignment(t[0], t[1]))
    item = assignment | string | word
    items = pp.Group(pp.ZeroOrMore(item))("items")
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
    statement = (exchange | queue | bind) + pp.StringEnd().set_name("the end of the statement")
    statement.ignore(pp.python_style_comment)
    # Offsets must be offsets in the file: by default pyparsing expands tabs first.
    statement.parse_with_tabs()
    return statement


_STATEMENT = _build()


def _relocate(tok: Token, base: int) -> Token:
    return Token(tok.value, tok.offset + base, tok.quoted, tok.length)


def parse_statement(text: str, chunk: Chunk) -> ParsedStatement:
    """Parse one statement; raises ``pp.ParseException`` (offsets within the chunk)."""
    results = _STATEMENT.parse_string(text[chunk.start : chunk.end], parse_all=True)
    base = chunk.start

    def reloc(item: Item) -> Item:
        if isinstance(item, Assignment):
            return Assignment(_relocate(item.name, base), _relocate(item.value, base))
        return _relocate(item, base)

    keyword = Token(results["keyword"], base, False, len(results["keyword"]))
    kind = results.get("kind")
    stmt = ParsedStatement(
        keyword=keyword,
        name=_relocate(results["name"], base),
        items=[reloc(i) for i in results["items"]],
    )
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
            continue
        first = start + (len(line) - len(line.lstrip(" \t")))
        current = Chunk(first, content_end, pending, blank and bool(chunks or pending), indented)
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
