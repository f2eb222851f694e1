"""Permissions: RabbitMQ's three regular expressions per user per vhost, and topic permissions.

A user may use a vhost when it has a permission record there, even one of
three empty patterns. Each method that touches an exchange or a queue then
checks one of the record's patterns against the resource's name (the
`docs/security.md` table says which method checks which):

- `configure`: declare and delete;
- `write`: publish to an exchange, bind *to* a queue or exchange (the destination);
- `read`: consume from or get or purge a queue, bind *from* an exchange (the source).

Patterns are matched as RabbitMQ matches them (`re:run(Name, Pattern)` in
rabbit_access_control.erl, checked on RabbitMQ 3.10.8):

- an unanchored search: `q` allows `xqx`, `^q$` allows only `q`;
- the empty pattern means `^$`: it matches only the empty name, so it denies
  every real resource;
- on the name's UTF-8 bytes, not its characters (Erlang's `re` without the
  `unicode` option): `.` matches one byte.

Topic permissions (a `write` and a `read` pattern per user, vhost and
*exchange*) apply to topic exchanges only, matched against routing keys
(publish) and binding keys (bind), after `{username}` and `{vhost}` are
replaced by plain text in the pattern, as RabbitMQ does; an exchange with no
topic permission record is unrestricted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "CONFIGURE",
    "KINDS",
    "Permission",
    "READ",
    "TopicPermission",
    "WRITE",
    "compile_pattern",
    "matches",
]

CONFIGURE: Final = "configure"
WRITE: Final = "write"
READ: Final = "read"
KINDS: Final = (CONFIGURE, WRITE, READ)
Kind = Literal["configure", "write", "read"]


def compile_pattern(pattern: str) -> re.Pattern[bytes]:
    """A permission pattern compiled for `matches`; ValueError if it is not a regular expression.

    Python's `re` stands in for PCRE: the common syntax (anchors, classes,
    alternation, `(?i)`) is the same; PCRE-only constructs (possessive
    quantifiers, `\\Q...\\E`) are refused here rather than misread.
    """
    source = pattern if pattern else "^$"
    try:
        return re.compile(source.encode("utf-8"))
    except re.error as error:
        raise ValueError(f"not a regular expression ({error}): {pattern!r}") from None


def matches(compiled: re.Pattern[bytes], name: str) -> bool:
    """Does the (unanchored) pattern find a match in the UTF-8 bytes of `name`?"""
    return compiled.search(name.encode("utf-8")) is not None


@dataclass(frozen=True)
class Permission:
    """One user's permission record in one vhost."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"
    _compiled: dict[str, re.Pattern[bytes]] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        for kind in KINDS:
            self._compiled[kind] = compile_pattern(getattr(self, kind))

    def allows(self, kind: Kind, name: str) -> bool:
        """May a method needing `kind` use the resource called `name`?"""
        return matches(self._compiled[kind], name)


@dataclass(frozen=True)
class TopicPermission:
    """One user's topic permission on one topic exchange of one vhost."""

    exchange: str
    write: str = ".*"
    read: str = ".*"

    def __post_init__(self) -> None:
        for kind in ("write", "read"):
            # Only checked here: variables are replaced before each use.
            compile_pattern(getattr(self, kind).replace("{", "\\{"))

    def allows(self, kind: Literal["write", "read"], key: str, user: str, vhost: str) -> bool:
        """May `user` publish with (write) or bind with (read) routing key `key`?

        `{username}` and `{vhost}` are replaced by plain text first, without
        escaping, as RabbitMQ does; `{client_id}` is left as it is (RabbitMQ
        expands it for MQTT and STOMP only).
        """
        pattern = getattr(self, kind).replace("{username}", user).replace("{vhost}", vhost)
        try:
            compiled = compile_pattern(pattern)
        except ValueError:
            return False  # a user name made the pattern invalid: refuse
        return matches(compiled, key)
