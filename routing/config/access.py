"""What the access statements (vhost, user, permission, topic-permission,
limit) accept, as RabbitMQ 3.10 does.

- Password hashes are RabbitMQ's: ``base64(salt + H(salt + utf8(password)))``
  with a 4-byte salt and H the user's hashing algorithm (SHA-256 by default).
  Only the form is checked here (base64, 4 + digest-size bytes); ``""`` is
  "no password". ``broker.auth.passwords`` makes and checks real ones
  (``warren config hash-password`` prints one).
- Permission patterns are regular expressions. RabbitMQ compiles them with
  Erlang's ``re`` (PCRE) and matches resource names as bytes; here they are
  compiled with Python's ``re``, which reads nearly the same syntax (see
  docs/config-language.md for the differences). ``""`` is RabbitMQ's "nothing"
  (it matches as ``^$``).
- User tags are free-form words; RabbitMQ gives five of them a meaning.
- Limits: RabbitMQ 3.10's vhost limits and user limits; a negative value lifts
  a limit, 0 allows none.

Standard library only (``routing`` does not import ``broker``); the broker's
own hashing is ``broker.auth.passwords``, and a test checks that this module
accepts what it makes.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import re
import warnings

from .options import format_text

__all__ = [
    "HASHING_ALGORITHMS",
    "KNOWN_USER_TAGS",
    "LIMIT_MAX",
    "LIMIT_MIN",
    "USER_LIMITS",
    "USER_OPTIONS",
    "VHOST_LIMITS",
    "VHOST_OPTIONS",
    "algorithm_name",
    "check_password_hash",
    "escape_problem",
    "near_known_tag",
    "pattern_problem",
    "short_algorithm",
    "tag_needs_quotes",
]

#: The language's names for RabbitMQ's password hashing modules, and hashlib's.
HASHING_ALGORITHMS: dict[str, tuple[str, str]] = {
    "sha256": ("rabbit_password_hashing_sha256", "sha256"),
    "sha512": ("rabbit_password_hashing_sha512", "sha512"),
    "md5": ("rabbit_password_hashing_md5", "md5"),
}
_BY_MODULE = {module: short for short, (module, _) in HASHING_ALGORITHMS.items()}

#: The tags RabbitMQ 3.10 gives a meaning (others are allowed, and kept).
KNOWN_USER_TAGS = ("administrator", "monitoring", "policymaker", "management", "impersonator")

#: RabbitMQ 3.10's vhost limits (``rabbitmqctl set_vhost_limits``) and user limits.
VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")
#: Limits are integers; RabbitMQ takes any, we keep to 64 bits.
LIMIT_MIN = -(2**63)
LIMIT_MAX = 2**63 - 1

#: The options of the vhost and user statements (routing.config.parser reads them).
VHOST_OPTIONS = ("description", "tags")
USER_OPTIONS = ("password-hash", "hashing-algorithm", "tags", *USER_LIMITS)

_SALT = 4


def algorithm_name(written: str) -> str | None:
    """RabbitMQ's module name for ``sha256`` (or the module name itself), or None."""
    if written in HASHING_ALGORITHMS:
        return HASHING_ALGORITHMS[written][0]
    if written in _BY_MODULE:
        return written
    return None


def short_algorithm(module: str) -> str:
    """``sha512`` for ``rabbit_password_hashing_sha512`` (the name the language writes)."""
    return _BY_MODULE[module]


def check_password_hash(password_hash: str, module: str) -> str | None:
    """What is wrong with ``password_hash`` for the algorithm ``module``, or None."""
    if password_hash == "":
        return None
    short = _BY_MODULE.get(module)
    if short is None:
        return None  # the algorithm is reported on its own
    try:
        raw = base64.b64decode(password_hash.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return "a password hash is base64 (as RabbitMQ exports it)"
    digest = hashlib.new(HASHING_ALGORITHMS[short][1]).digest_size
    if len(raw) != _SALT + digest:
        return (
            f"a {short} password hash is {_SALT + digest} bytes ({_SALT} of salt, then the "
            f"digest), this one is {len(raw)}"
        )
    return None


#: The escapes a quoted string may hold in a pattern: the ones the formatter
#: writes. Any other (``\.``, ``\d``) would lose its backslash when the string
#: is read, which is never what a regular expression meant.
_PATTERN_ESCAPES = frozenset('\\"ntrf')


def escape_problem(raw: str) -> tuple[int, str] | None:
    """``(offset in raw, message)`` for an escape in the quoted source text
    ``raw`` that would drop a regular expression's backslash, or None."""
    i = 1
    while i < len(raw) - 1:
        if raw[i] == "\\":
            nxt = raw[i + 1]
            if nxt not in _PATTERN_ESCAPES:
                return i, (
                    f"'\\{nxt}' in a quoted string is just '{nxt}': a backslash of a "
                    f"regular expression is written '\\\\' (as in JSON: \"\\\\{nxt}\")"
                )
            i += 2
        else:
            i += 1
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression (Python's ``re``), or None.

    Only whether it compiles matters (RabbitMQ matches with PCRE), so the
    warnings ``re`` gives about what a pattern means (``[[:alpha:]]``: "possible
    nested set") are not shown.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as error:
        where = f" at position {error.pos}" if error.pos is not None else ""
        return f"invalid regular expression {pattern!r}: {error.msg}{where}"
    except (OverflowError, RecursionError):
        return f"invalid regular expression {pattern!r}: too large or deeply nested"
    return None


def near_known_tag(tag: str) -> str | None:
    """The known user tag ``tag`` is a near miss of (a likely typo), or None."""
    if tag in KNOWN_USER_TAGS:
        return None
    close = difflib.get_close_matches(tag, KNOWN_USER_TAGS, n=1, cutoff=0.8)
    return close[0] if close else None


def tag_needs_quotes(tag: str, options: tuple[str, ...], user: bool) -> bool:
    """Whether the formatter must quote ``tag``: it is not a bare word, it is
    an option's name (which would end the list), or, for a user, it is a near
    miss of a known tag (the parser takes a bare one for a typo)."""
    if format_text(tag) != tag or tag in options:
        return True
    return user and near_known_tag(tag) is not None
