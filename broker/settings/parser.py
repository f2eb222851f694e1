"""The ``rabbitmq.conf`` syntax ("sysctl" format, read by cuttlefish in RabbitMQ).

One setting a line::

    # a comment
    listeners.tcp.default = 5672          # a comment may follow a value
    default_pass = 'pa#ss word'           # single quotes keep a '#'
    loopback_users.my\\.user = true        # '\\.' is a dot inside one key part
    include conf.d/*.conf                 # more files, relative to this one
    default_user = $(RABBITMQ_USER)       # another key's value, or an environment variable
    ssl_options.password = $(</run/secrets/tls-pass)   # a file's content

As cuttlefish (the parser of RabbitMQ 3.10, ``conf_parse.peg``):

- a key is words of ``A-Z a-z 0-9 _ -`` joined by dots; ``\\.`` puts a dot
  inside a word; spaces and tabs may surround the key and the ``=``;
- a value runs to the end of the line or to the first ``#``, whichever comes
  first, trailing spaces and tabs removed: an unquoted value cannot contain
  ``#``, and may contain spaces (``default_vhost = my vhost``) and ``=``;
- a value in single quotes (cuttlefish 3.4+, RabbitMQ 3.13+) is taken as
  written, ``#`` included; it cannot contain a single quote;
- ``include PATTERN`` reads more files (a ``*`` glob in the last part),
  relative to the including file's directory, in name order;
- lines end with LF or CRLF; blank lines are spaces and tabs only; the file
  is UTF-8.

Then, for each unquoted value, as cuttlefish does before validation:

- ``$(<PATH)`` as the whole value is replaced by the content of PATH
  (relative to the file's directory), less one trailing line break;
- ``$(NAME)`` anywhere in a value is replaced by the value of the key NAME
  in the same files, or else of the environment variable NAME.

Where cuttlefish would go on quietly with something the operator probably did
not mean, this parser reports it (the module `broker.settings.schema` does
the same for values): an unterminated quote, an include that names a file that
does not exist, a key set twice. Every problem in every file is reported, each
as ``file:line: key: message``; `SettingsError` carries them all.

Standard library only.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Entry", "Problem", "SettingsError", "parse_text", "read_files", "substitute"]

_WS = " \t"
_WORD = r"(?:\\\.|[A-Za-z0-9_-])+"
_KEY = re.compile(rf"{_WORD}(?:\.{_WORD})*")
_SETTING = re.compile(rf"[ \t]*({_KEY.pattern})[ \t]*=[ \t]*(.*)")
_INCLUDE = re.compile(r"[ \t]*include[ \t]+([A-Za-z0-9_.*/-]+)[ \t]*(?:#.*)?")
_QUOTED = re.compile(r"'([^']*)'[ \t]*(?:#.*)?")
_FROM_FILE = re.compile(r"\$\(<(.+)\)")
_MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a settings file, at a line (and key) when there is one."""

    path: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SettingsError(ValueError):
    """Every problem found in a settings file (and the files it includes), in order.

    ``str()`` is one ``file:line: key: message`` line per problem;
    ``.problems`` has them as `Problem` objects.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class Entry:
    """One ``key = value`` line: ``key`` split at its unescaped dots, ``\\.`` resolved.

    ``literal``: the value is taken as it is, with no ``$(...)`` expansion (it
    was in single quotes, or is the content of a ``$(<PATH)`` file).
    """

    path: str
    line: int
    key: tuple[str, ...]
    value: str
    literal: bool = False

    @property
    def name(self) -> str:
        """The key as written (dots inside a part escaped again)."""
        return ".".join(part.replace(".", "\\.") for part in self.key)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def split_key(text: str) -> tuple[str, ...]:
    """``a.b\\.c`` -> ``("a", "b.c")``."""
    return tuple(part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", text))


def _unquoted_value(rest: str) -> str:
    # cuttlefish: the value stops before "ws* #" and before trailing ws.
    return rest.split("#", 1)[0].rstrip(_WS)


@dataclass(frozen=True)
class _Include:
    path: str
    line: int
    pattern: str


def parse_text(text: str, path: str = "<string>") -> tuple[list[Entry | _Include], list[Problem]]:
    """The settings and include lines of one file's text, and its syntax problems."""
    items: list[Entry | _Include] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        stripped = line.strip(_WS)
        if not stripped or stripped.startswith("#"):
            continue
        setting = _SETTING.fullmatch(line)
        if setting:
            key_text, rest = setting.groups()
            key = split_key(key_text)
            if rest.startswith("'"):
                quoted = _QUOTED.fullmatch(rest)
                if quoted:
                    items.append(Entry(path, number, key, quoted.group(1), literal=True))
                elif "'" not in rest[1:]:
                    problems.append(Problem(path, number, key_text, "unterminated single quote"))
                else:
                    problems.append(
                        Problem(
                            path,
                            number,
                            key_text,
                            "unexpected text after the closing quote (a quoted value "
                            "cannot contain a single quote)",
                        )
                    )
                continue
            value = _unquoted_value(rest)
            if not value:
                problems.append(
                    Problem(path, number, key_text, "no value after '=' (quote an empty value: '')")
                )
                continue
            items.append(Entry(path, number, key, value))
            continue
        include = _INCLUDE.fullmatch(line)
        if include:
            items.append(_Include(path, number, include.group(1)))
            continue
        problems.append(Problem(path, number, None, _syntax_message(stripped)))
    return items, problems


def _syntax_message(line: str) -> str:
    shown = line if len(line) <= 60 else line[:57] + "..."
    if "=" in line:
        key = line.split("=", 1)[0].strip(_WS)
        if not key:
            return f"no key before '=': {shown!r}"
        return (
            f"{key!r} is not a key: keys are words of letters, digits, '_' and '-' joined "
            "by dots (write '\\.' for a dot inside a word)"
        )
    if line.split()[:1] == ["include"]:
        return f"include takes one path of letters, digits and _ - . * /: {shown!r}"
    return f"expected 'key = value', got {shown!r}"


def _decode(data: bytes, path: str) -> tuple[str | None, Problem | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return None, Problem(path, line, None, "not UTF-8 text")


def read_files(
    path: str | os.PathLike[str], text: str | None = None
) -> tuple[list[Entry], list[Problem]]:
    """All settings of a file and of the files it includes, in reading order.

    ``text``: the file's content, if already at hand (``path`` then serves for
    messages and to resolve includes).
    """
    entries: list[Entry] = []
    problems: list[Problem] = []
    _read(os.fspath(path), entries, problems, stack=(), text=text)
    return entries, problems


def _read(
    path: str,
    entries: list[Entry],
    problems: list[Problem],
    stack: tuple[str, ...],
    included_from: tuple[str, int] | None = None,
    text: str | None = None,
) -> None:
    real = os.path.realpath(path)
    if included_from is not None and (real in stack or len(stack) >= _MAX_INCLUDE_DEPTH):
        problems.append(Problem(*included_from, None, f"{path} includes itself (through {len(stack)} files)"))
        return
    if text is None:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            reason = error.strerror or str(error)
            if included_from is None:
                problems.append(Problem(path, None, None, f"cannot read: {reason}"))
            else:
                problems.append(Problem(*included_from, None, f"cannot read {path}: {reason}"))
            return
        text, problem = _decode(data, path)
        if problem is not None or text is None:
            problems.append(problem or Problem(path, None, None, "not UTF-8 text"))
            return
    items, found = parse_text(text, path)
    problems.extend(found)
    for item in items:
        if isinstance(item, Entry):
            entries.append(item)
            continue
        for included in _expand_include(item, problems):
            _read(included, entries, problems, stack + (real,), (item.path, item.line))


def _expand_include(include: _Include, problems: list[Problem]) -> list[str]:
    base = os.path.dirname(include.path)
    directory = os.path.join(base, os.path.dirname(include.pattern))
    pattern = os.path.basename(include.pattern)
    if not pattern:
        problems.append(Problem(include.path, include.line, None, f"include {include.pattern}: names no file"))
        return []
    if "*" not in pattern:
        return [os.path.join(directory, pattern)]  # a missing file is reported when read
    try:
        names = sorted(n for n in os.listdir(directory or ".") if fnmatch.fnmatchcase(n, pattern))
    except OSError as error:
        problems.append(
            Problem(include.path, include.line, None, f"include {include.pattern}: {error.strerror or error}")
        )
        return []
    return [os.path.join(directory, name) for name in names if os.path.isfile(os.path.join(directory, name))]


def substitute(
    entries: Sequence[Entry], environ: Mapping[str, str]
) -> tuple[list[Entry], list[Problem]]:
    """Apply cuttlefish's ``$(<PATH)`` and ``$(NAME)`` to every unquoted value."""
    problems: list[Problem] = []
    loaded: list[Entry] = []
    for entry in entries:
        match = None if entry.literal else _FROM_FILE.fullmatch(entry.value)
        if match is None:
            loaded.append(entry)
            continue
        target = os.path.join(os.path.dirname(entry.path), match.group(1).strip())
        try:
            content = Path(target).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            problems.append(Problem(entry.path, entry.line, entry.name, f"cannot read {target}: {reason}"))
            continue
        if content.endswith("\n"):
            content = content[:-1]
        if content.endswith("\r"):
            content = content[:-1]
        loaded.append(Entry(entry.path, entry.line, entry.key, content, literal=True))

    # name -> (value, taken literally): quoted values and file contents are not expanded.
    values = {entry.name: (entry.value, entry.literal) for entry in loaded}
    result: list[Entry] = []
    for entry in loaded:
        if entry.literal or "$(" not in entry.value:
            result.append(entry)
            continue
        try:
            value = _expand(entry.value, values, environ, (entry.name,))
        except ValueError as error:
            problems.append(Problem(entry.path, entry.line, entry.name, str(error)))
            continue
        result.append(Entry(entry.path, entry.line, entry.key, value))
    return result, problems


def _expand(
    value: str,
    values: Mapping[str, tuple[str, bool]],
    environ: Mapping[str, str],
    chain: tuple[str, ...],
) -> str:
    out: list[str] = []
    rest = value
    while True:
        start = rest.find("$(")
        end = rest.find(")", start + 2) if start >= 0 else -1
        if start < 0 or end < 0:
            out.append(rest)
            return "".join(out)
        name = rest[start + 2 : end].strip()
        if name in chain:
            cycle = " -> ".join((*chain, name))
            raise ValueError(f"$({name}) refers back to itself: {cycle}")
        if name in values:
            text, literal = values[name]
            replacement = text if literal else _expand(text, values, environ, (*chain, name))
        elif name in environ:
            replacement = environ[name]
        else:
            raise ValueError(
                f"$({name}): no key {name!r} in the file and no environment variable {name!r} "
                "(RabbitMQ reads $(...) as a substitution, so a literal '$(' must be quoted: '...')"
            )
        out.append(rest[:start] + replacement)
        rest = rest[end + 1 :]
