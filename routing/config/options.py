"""What each statement's options mean, and how values are written.

Queue and exchange options map to RabbitMQ arguments (``message-ttl`` is
``x-message-ttl`` in milliseconds...). Each option has a kind that says how its
value is read and checked; ``OPTION_BY_ARGUMENT`` lets a raw ``x-message-ttl``
be checked like ``message-ttl``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..deduplication import MAX_CACHE_SIZE, MAX_CACHE_TTL
from ..exchanges import EXCHANGE_TYPES
from ..exchanges.consistent_hash import HASH_HEADER, HASH_PROPERTY, PROPERTIES
from ..exchanges.delayed import DELAYED_TYPE_ARGUMENT

__all__ = [
    "CONSISTENT_HASH",
    "DELAYED",
    "DELAYED_OPTIONS",
    "DURATION_UNITS",
    "EXCHANGE_OPTIONS",
    "HASH_OPTIONS",
    "FIELD_INT_MAX",
    "FIELD_INT_MIN",
    "MAX_EXPIRY_MS",
    "OPERATOR_POLICY_OPTIONS",
    "OPTION_BY_ARGUMENT",
    "POLICY_APPLY_TO",
    "POLICY_CLAUSES",
    "POLICY_OPTIONS",
    "POLICY_REFUSED",
    "QUEUE_OPTIONS",
    "SIZE_UNITS",
    "Option",
    "ValueProblem",
    "check_generic",
    "format_duration",
    "format_generic",
    "format_size",
    "parse_generic",
    "read_generic",
    "read_value",
]

#: Milliseconds per unit, largest first (the formatter picks the largest exact one).
DURATION_UNITS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
#: Bytes per unit; the formatter prefers binary units, then decimal ones.
SIZE_UNITS = {
    "TiB": 2**40,
    "GiB": 2**30,
    "MiB": 2**20,
    "KiB": 2**10,
    "TB": 10**12,
    "GB": 10**9,
    "MB": 10**6,
    "kB": 10**3,
    "B": 1,
}
_DURATION = re.compile(r"(-?)(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_SIZE = re.compile(r"(-?)(\d+)(" + "|".join(SIZE_UNITS) + r")?")
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")
_BARE_SAFE = re.compile(r'[^\s"=#\\]+')

#: The largest ``x-message-ttl`` and ``x-expires`` RabbitMQ 3.10 accepts: ten
#: years of milliseconds (found by bisection against 3.10.8; one more is refused
#: with ``value_too_large``). The broker's validators use the same number
#: (``broker.core.features.arguments.MAX_EXPIRY_MS``); it is repeated here because
#: ``routing`` does not import ``broker``, and a test keeps the two equal.
MAX_EXPIRY_MS = 315_360_000_000

#: The integers an AMQP field value can hold, as ``protocol.fields`` encodes
#: them: signed 64-bit (``l``) down to -2^63, unsigned 64-bit (``L``) up to
#: 2^64 - 1. (RabbitMQ 3.10.8 accepts an ``L`` but reads it as signed: 2^64 - 1
#: arrives as -1. Values up to 2^63 - 1 mean the same everywhere.)
FIELD_INT_MIN = -(2**63)
FIELD_INT_MAX = 2**64 - 1


class ValueProblem(Exception):
    """A value that does not fit its option; ``hint`` says what would."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Option:
    """One option of a statement.

    ``kind``: ``flag`` (no value), ``type`` (the exchange/queue type),
    ``duration``, ``count``, ``size``, ``name``, ``text``, ``choice``.
    ``argument`` is the RabbitMQ argument the value goes to; flags and the
    exchange type set attributes instead.
    """

    name: str
    kind: str
    argument: str | None = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    doc: str = ""


#: RabbitMQ's consistent-hash plugin's exchange type (``routing.exchanges.consistent_hash``).
CONSISTENT_HASH = "x-consistent-hash"
#: RabbitMQ's delayed-message plugin's exchange type (``routing.exchanges.delayed``).
DELAYED = "x-delayed-message"

EXCHANGE_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("type", "type", choices=tuple(EXCHANGE_TYPES)),
        Option("durable", "flag", doc="survives a broker restart"),
        Option("auto-delete", "flag", doc="deleted when its last binding goes"),
        Option("internal", "flag", doc="clients cannot publish to it"),
        Option("alternate-exchange", "name", "alternate-exchange"),
        Option(
            HASH_HEADER, "text", HASH_HEADER, doc="x-consistent-hash: hash this header"
        ),
        Option(
            HASH_PROPERTY,
            "choice",
            HASH_PROPERTY,
            choices=PROPERTIES,
            doc="x-consistent-hash: hash this property",
        ),
        Option(
            "delayed-type",
            "choice",
            DELAYED_TYPE_ARGUMENT,
            choices=("direct", "fanout", "topic", "headers"),
            doc="x-delayed-message: route like this type once the delay is over",
        ),
    )
}

#: The options only an ``x-delayed-message`` exchange takes.
DELAYED_OPTIONS = ("delayed-type",)

#: The options only an ``x-consistent-hash`` exchange takes.
HASH_OPTIONS = (HASH_HEADER, HASH_PROPERTY)

QUEUE_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("type", "choice", "x-queue-type", choices=("classic",)),
        Option("durable", "flag"),
        Option("auto-delete", "flag"),
        Option("message-ttl", "duration", "x-message-ttl", minimum=0, maximum=MAX_EXPIRY_MS),
        Option("expires", "duration", "x-expires", minimum=1, maximum=MAX_EXPIRY_MS),
        Option("max-length", "count", "x-max-length", minimum=0),
        Option("max-length-bytes", "size", "x-max-length-bytes", minimum=0),
        Option(
            "overflow",
            "choice",
            "x-overflow",
            choices=("drop-head", "reject-publish", "reject-publish-dlx"),
        ),
        Option("dead-letter-exchange", "name", "x-dead-letter-exchange"),
        Option("dead-letter-routing-key", "text", "x-dead-letter-routing-key"),
        Option("max-priority", "count", "x-max-priority", minimum=1, maximum=255),
        Option("delivery-limit", "count", "x-delivery-limit", minimum=0),
    )
}

#: Message deduplication (``routing.deduplication``, LavinMQ's arguments), on
#: exchanges and queues alike; ``x-message-deduplication true`` turns it on.
DEDUP_OPTIONS = (
    Option("cache-size", "count", "x-cache-size", minimum=1, maximum=MAX_CACHE_SIZE,
           doc="deduplication: how many keys are remembered"),
    Option("cache-ttl", "duration", "x-cache-ttl", minimum=1, maximum=MAX_CACHE_TTL,
           doc="deduplication: how long a key is remembered"),
    Option("deduplication-header", "text", "x-deduplication-header",
           doc="deduplication: the header whose value is the key"),
)  # fmt: skip
for _option in DEDUP_OPTIONS:
    EXCHANGE_OPTIONS[_option.name] = QUEUE_OPTIONS[_option.name] = _option

#: The settings of a policy, under RabbitMQ's key names (which the language
#: uses as they are): what Warren's broker implements (broker.core.policies;
#: a test keeps the two lists equal). Unlike the x-arguments, a policy's
#: durations have no ten-year ceiling: RabbitMQ 3.10 accepts any integer.
POLICY_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("message-ttl", "duration", "message-ttl", minimum=0,
               doc="messages arriving from now on expire after that long"),
        Option("expires", "duration", "expires", minimum=1,
               doc="the queue is deleted after that long unused"),
        Option("max-length", "count", "max-length", minimum=0),
        Option("max-length-bytes", "size", "max-length-bytes", minimum=0),
        Option("overflow", "choice", "overflow",
               choices=("drop-head", "reject-publish", "reject-publish-dlx")),
        Option("dead-letter-exchange", "name", "dead-letter-exchange"),
        Option("dead-letter-routing-key", "text", "dead-letter-routing-key"),
        Option("delivery-limit", "count", "delivery-limit", minimum=0),
        Option("consumer-timeout", "duration", "consumer-timeout", minimum=0,
               doc="a delivery unacknowledged that long closes its channel "
                   "(RabbitMQ 3.12's key)"),
        Option("alternate-exchange", "name", "alternate-exchange"),
    )
}
#: What an operator policy may set: the numeric limits.
OPERATOR_POLICY_OPTIONS = ("message-ttl", "expires", "max-length", "max-length-bytes",
                           "delivery-limit")
#: The options of the policy statements themselves (before the settings).
POLICY_CLAUSES = ("pattern", "apply-to", "priority")
POLICY_APPLY_TO = ("queues", "exchanges", "all")
_MIRRORING = "classic queue mirroring: Warren is a single node"
#: RabbitMQ 3.10 policy settings Warren does not implement: refused with the
#: reason (the same list as broker.core.policies.REFUSED_KEYS).
POLICY_REFUSED: dict[str, str] = {
    "ha-mode": _MIRRORING,
    "ha-params": _MIRRORING,
    "ha-sync-mode": _MIRRORING,
    "ha-sync-batch-size": _MIRRORING,
    "ha-promote-on-shutdown": _MIRRORING,
    "ha-promote-on-failure": _MIRRORING,
    "queue-master-locator": "queue placement in a cluster: Warren is a single node",
    "queue-leader-locator": "queue placement in a cluster: Warren is a single node",
    "initial-cluster-size": "quorum queues: Warren has classic queues only",
    "dead-letter-strategy": "at-least-once dead-lettering of quorum queues: Warren has "
    "classic queues only",
    "max-in-memory-length": "quorum queues' in-memory limits: Warren has classic queues only",
    "max-in-memory-bytes": "quorum queues' in-memory limits: Warren has classic queues only",
    "max-age": "a stream's retention by policy: use the x-max-age argument",
    "stream-max-segment-size-bytes": "a stream's segment size by policy: use the argument",
    "queue-mode": "lazy classic queues: Warren pages messages to disk on its own",
    "queue-version": "classic queue storage versions: Warren has its own journal",
    "federation-upstream": "federation, a plugin Warren does not have",
    "federation-upstream-pattern": "federation, a plugin Warren does not have",
    "federation-upstream-set": "federation, a plugin Warren does not have",
    "shards-per-node": "sharding, a plugin Warren does not have",
    "routing-key": "sharding, a plugin Warren does not have",
}

#: Options by their RabbitMQ argument, so "argument x-message-ttl 30000" is checked
#: like "message-ttl 30s". Not the consistent-hash ones: other exchange types take
#: any value there, so "argument hash-header ..." is a plain argument everywhere.
OPTION_BY_ARGUMENT: dict[str, Option] = {
    o.argument: o
    for o in (*EXCHANGE_OPTIONS.values(), *QUEUE_OPTIONS.values())
    if o.argument and o.name not in HASH_OPTIONS and o.name not in DELAYED_OPTIONS
}


def _check_range(option: Option, value: int, shown: str) -> int:
    def limit(n: int) -> str:
        return format_duration(n) if option.kind == "duration" else str(n)

    if option.minimum is not None and value < option.minimum:
        if value < 0:
            raise ValueProblem(f"{option.name} must not be negative, got '{shown}'")
        raise ValueProblem(f"{option.name} must be at least {limit(option.minimum)}, got '{shown}'")
    if option.maximum is not None and value > option.maximum:
        raise ValueProblem(f"{option.name} must be at most {limit(option.maximum)}, got '{shown}'")
    if value > FIELD_INT_MAX:
        # Counts and sizes have no limit of their own, but travel as AMQP integers.
        raise ValueProblem(
            f"{option.name} must be at most {FIELD_INT_MAX}, got '{shown}'", _FIELD_INT_HINT
        )
    return value


_FIELD_INT_HINT = f"AMQP integers are 64 bits wide: {FIELD_INT_MIN} to {FIELD_INT_MAX}"
#: More digits than the widest 64-bit integer has (20): too large whatever they
#: are, and ``int()`` refuses strings of over 4,300 digits anyway.
_MAX_DIGITS = 20


def _too_many_digits(digits: str) -> bool:
    return len(digits.lstrip("-").lstrip("0")) > _MAX_DIGITS


def _int_problem(shown: str) -> ValueProblem:
    return ValueProblem(
        f"integer {shown} does not fit an AMQP field value",
        f"{_FIELD_INT_HINT}; quote it to send a string",
    )


def check_generic(value: Any, shown: str | None = None) -> Any:
    """``value`` if an AMQP field can carry it (as ``protocol.fields`` encodes
    it), else raise ``ValueProblem``: integers must fit 64 bits (signed, or
    unsigned above 2^63 - 1), floats must be finite (``inf`` and ``nan`` cannot
    be written back). ``shown`` is the value as the user wrote it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not FIELD_INT_MIN <= value <= FIELD_INT_MAX:
        raise _int_problem(shown if shown is not None else str(value))
    if isinstance(value, float) and not math.isfinite(value):
        text = shown if shown is not None else repr(value)
        raise ValueProblem(
            f"number {text} does not fit a 64-bit float", "quote it to send a string"
        )
    return value


def read_generic(raw: str, quoted: bool) -> Any:
    """``parse_generic`` and ``check_generic`` in one: the value of a written
    ``x-`` argument or header; raise ``ValueProblem`` if no AMQP field holds it."""
    if not quoted and _INT.fullmatch(raw) and _too_many_digits(raw):
        raise _int_problem(raw)  # before int(): it refuses over 4,300 digits
    return check_generic(parse_generic(raw, quoted), raw)


def read_value(option: Option, raw: Any) -> Any:
    """Turn a written value (``str`` from the file, or a JSON value) into the
    argument's value; raise ``ValueProblem`` if it does not fit."""
    kind = option.name
    if option.kind == "duration":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return _check_range(option, raw, str(raw))
        m = _DURATION.fullmatch(str(raw))
        if not m:
            raise ValueProblem(
                f"{kind} takes a duration, not '{raw}'",
                "write a whole number with a unit: ms, s, m, h or d (e.g. 30s, 5m)",
            )
        sign, number, unit = m.groups()
        if _too_many_digits(number.partition(".")[0]):
            value = FIELD_INT_MAX + 1  # far above any maximum; not converted
            return _check_range(option, -value if sign else value, str(raw))
        millis = float(number) * DURATION_UNITS[unit or "ms"]
        if millis != int(millis):
            raise ValueProblem(f"{kind} '{raw}' is not a whole number of milliseconds")
        value = -int(millis) if sign else int(millis)
        return _check_range(option, value, str(raw))
    if option.kind == "count":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return _check_range(option, raw, str(raw))
        if not isinstance(raw, str) or not _INT.fullmatch(raw):
            raise ValueProblem(f"{kind} takes a whole number, not '{raw}'")
        if _too_many_digits(raw):
            value = FIELD_INT_MAX + 1  # far above any maximum; not converted
            return _check_range(option, -value if raw.startswith("-") else value, raw)
        return _check_range(option, int(raw), raw)
    if option.kind == "size":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return _check_range(option, raw, str(raw))
        m = _SIZE.fullmatch(str(raw))
        if not m:
            raise ValueProblem(
                f"{kind} takes a size in bytes, not '{raw}'",
                "write a whole number, optionally with a unit: B, kB, MB, GB, KiB, MiB, GiB",
            )
        sign, number, unit = m.groups()
        if _too_many_digits(number):
            value = FIELD_INT_MAX + 1  # far above any maximum; not converted
            return _check_range(option, -value if sign else value, str(raw))
        value = int(number) * SIZE_UNITS[unit or "B"]
        return _check_range(option, -value if sign else value, str(raw))
    if option.kind in ("name", "text", "choice", "type"):
        if not isinstance(raw, str):
            raise ValueProblem(f"{kind} takes a string, not {raw!r}")
        if option.kind == "name" and not raw and option.argument == "alternate-exchange":
            raise ValueProblem(f"{kind} needs an exchange name")
        return raw
    raise AssertionError(option.kind)


def parse_generic(raw: str, quoted: bool) -> Any:
    """The value of an ``x-`` argument or a header: ``5`` is an int, ``2.5`` a
    float, ``true``/``false`` a bool; anything else, and anything quoted, a str."""
    if quoted:
        return raw
    if raw == "true":
        return True
    if raw == "false":
        return False
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw):
        return float(raw)
    return raw


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    for char, escape in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\f", "\\f")):
        escaped = escaped.replace(char, escape)
    return f'"{escaped}"'


def format_text(text: str, reserved: frozenset[str] = frozenset()) -> str:
    """A name or string value: bare when it reads back the same, else quoted."""
    if text and _BARE_SAFE.fullmatch(text) and text not in reserved:
        return text
    return quote(text)


def format_generic(value: Any) -> str:
    """Write a generic value so ``parse_generic`` reads back the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if not _FLOAT.fullmatch(text):  # inf, nan: not representable as a field value
            raise ValueError(f"cannot write the float {value!r}")
        return text
    if isinstance(value, str):
        if parse_generic(value, False) != value or type(parse_generic(value, False)) is not str:
            return quote(value)
        return format_text(value)
    raise ValueError(f"the configuration language cannot write {type(value).__name__} values")


def format_duration(millis: int) -> str:
    if millis == 0:
        return "0s"
    for unit, size in DURATION_UNITS.items():
        if millis % size == 0:
            return f"{millis // size}{unit}"
    raise AssertionError


def format_size(size: int) -> str:
    if size == 0:
        return "0"
    for unit, factor in SIZE_UNITS.items():
        if factor > 1 and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
