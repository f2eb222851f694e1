"""Message deduplication: the arguments that turn it on, checked once.

LavinMQ's design (src/lavinmq/deduplication.cr, docs/deduplication.md), which
the RabbitMQ community plugin rabbitmq-message-deduplication shares for
queues: an exchange (of any type) or a queue declared with the argument
``x-message-deduplication: true`` remembers the value of one header of each
message (``x-deduplication-header`` unless the argument of that name picks
another header) and drops a later message whose value it still remembers.

- ``x-cache-size``: how many values are remembered (the oldest goes first
  when full). LavinMQ's default is 128, so is Warren's; never unbounded.
- ``x-cache-ttl``: how long a value is remembered, in milliseconds (default:
  until pushed out by newer ones). A message's own ``x-cache-ttl`` header (an
  integer) overrides it for its value.
- ``x-deduplication-header``: the name of the header whose value is the key.

This module is pure: the settings of one exchange or queue and the checks of
their values. The broker keeps the cache (``broker.core.features.deduplication``).
The checks are Warren's (LavinMQ only checks the types; the plugin wants
positive integers): RabbitMQ's text shape for a bad queue argument, the part
after the colon, as ``broker.core.features.arguments`` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exchanges.headers import field_type_name

__all__ = [
    "ARGUMENTS",
    "CACHE_SIZE",
    "CACHE_TTL",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_HEADER",
    "DEDUPLICATION",
    "HEADER",
    "MAX_CACHE_SIZE",
    "MAX_CACHE_TTL",
    "DedupArgumentError",
    "DedupSettings",
    "dedup_settings",
    "describe",
    "message_ttl",
]

DEDUPLICATION = "x-message-deduplication"
CACHE_SIZE = "x-cache-size"
CACHE_TTL = "x-cache-ttl"
HEADER = "x-deduplication-header"
#: Every argument of the feature, in the order they are checked.
ARGUMENTS = (DEDUPLICATION, CACHE_SIZE, CACHE_TTL, HEADER)

#: LavinMQ's MemoryCache default (``size || 128_u32``).
DEFAULT_CACHE_SIZE = 128
#: The header holding the key, and the default of ``x-deduplication-header``.
DEFAULT_HEADER = "x-deduplication-header"
#: Warren's upper bound on ``x-cache-size``: ten million keys (about a
#: gigabyte of memory with short keys); more is refused, not silently cut.
MAX_CACHE_SIZE = 10_000_000
#: The largest TTL RabbitMQ takes anywhere (x-message-ttl): ten years in ms.
MAX_CACHE_TTL = 315_360_000_000


class DedupArgumentError(ValueError):
    """A refused value: ``key`` and RabbitMQ-style ``why`` (the text after the colon)."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


@dataclass(frozen=True)
class DedupSettings:
    """What a deduplicating exchange or queue was declared with."""

    size: int = DEFAULT_CACHE_SIZE
    #: Default time a key is remembered, in ms; None: until evicted.
    ttl: int | None = None
    header: str = DEFAULT_HEADER


def _positive_int(key: str, value: Any, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DedupArgumentError(key, f'"expected integer, got {field_type_name(value)}"')
    if value < 0:
        raise DedupArgumentError(key, f"{{value_negative,{value}}}")
    if value == 0:
        raise DedupArgumentError(key, f"{{value_zero,{value}}}")
    if value > maximum:
        raise DedupArgumentError(key, f"{{value_too_large,{value}}}")
    return value


def dedup_settings(arguments: Mapping[str, Any] | None) -> DedupSettings | None:
    """The deduplication an exchange's or queue's arguments ask for, or None.

    None unless ``x-message-deduplication`` is ``true``. Raises
    ``DedupArgumentError`` for a bad value of any of the four arguments, in
    ``ARGUMENTS`` order, whether or not deduplication is on (so that a typo
    is caught when the argument is declared, not when it is turned on).
    The cache arguments without ``x-message-deduplication: true`` change
    nothing, as in LavinMQ.
    """
    if not arguments:
        return None
    on = arguments.get(DEDUPLICATION)
    if on is not None and not isinstance(on, bool):
        raise DedupArgumentError(DEDUPLICATION, f"{{unacceptable_type,{field_type_name(on)}}}")
    size = arguments.get(CACHE_SIZE)
    if size is not None:
        size = _positive_int(CACHE_SIZE, size, MAX_CACHE_SIZE)
    ttl = arguments.get(CACHE_TTL)
    if ttl is not None:
        ttl = _positive_int(CACHE_TTL, ttl, MAX_CACHE_TTL)
    header = arguments.get(HEADER)
    if isinstance(header, bytes):
        header = header.decode("utf-8", "replace")
    if header is not None and not isinstance(header, str):
        raise DedupArgumentError(HEADER, f"{{unacceptable_type,{field_type_name(header)}}}")
    if header == "":
        raise DedupArgumentError(HEADER, '"empty header name"')
    if not on:
        return None
    return DedupSettings(
        size=DEFAULT_CACHE_SIZE if size is None else size,
        ttl=ttl,
        header=DEFAULT_HEADER if header is None else header,
    )


def message_ttl(headers: Mapping[str, Any], default: int | None) -> int | None:
    """How long a message's key is remembered: its own ``x-cache-ttl`` header
    (an integer, ms) if it has one, else ``default``. A header that is not an
    integer is ignored (LavinMQ's ``dedup_ttl``); 0 or less means the key is
    not remembered at all (LavinMQ stores it already expired)."""
    value = headers.get(CACHE_TTL)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return default
    return min(value, MAX_CACHE_TTL)


def describe(
    kind: str, name: str, settings: DedupSettings, headers: Mapping[str, Any] | None
) -> str:
    """What deduplication does to a message with ``headers`` at exchange or queue
    ``name`` (``kind``), in words (``warren route``, the route tracer)."""
    ttl = f"{settings.ttl} ms" if settings.ttl is not None else "until pushed out"
    where = (
        f"{kind} '{name}' deduplicates on header '{settings.header}' "
        f"(the last {settings.size} keys, each remembered {ttl})"
    )
    value = headers.get(settings.header) if headers else None
    if value is None:
        return f"{where}: this message has no such header, so it is never a duplicate"
    action = "not routed" if kind == "exchange" else "not enqueued"
    return (
        f"{where}: key {value!r}; if that key was seen within the window the message is "
        f"dropped as a duplicate ({action}; a publisher confirm is still basic.ack)"
    )
