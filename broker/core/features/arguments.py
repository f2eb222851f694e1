"""One validator per queue `x-` argument RabbitMQ 3.10 knows, and Warren's decision on each.

In the spirit of LavinMQ's `argument_validator/`: each argument names a small
validator object, and `validate_queue_arguments` runs the ones present. A bad
value is a 406 PRECONDITION_FAILED with the text RabbitMQ 3.10.8 sends for the
same declare (checked against the reference broker):

    invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}
    invalid arg 'x-message-ttl' for queue 'q' in vhost '/': "expected integer, got longstr"
    invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}
    invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost '/':
        routing_key_but_no_dlx_defined
    invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'

Validators also normalise what they accept (a long string that arrived as
`bytes` becomes `str`), so the features read clean values.

Which queue type takes which argument (`SUPPORTED_BY_TYPE`), the order of
the checks, and what Warren does with an argument it does not implement:
refused with a 406 saying so (`_NOT_SUPPORTED`), or accepted and logged
once where it changes nothing on a single node or RabbitMQ ignores it too
(docs/compatibility.md, "Queue arguments, one by one").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from broker.core import errors
from broker.core.errors import amqp_type
from broker.logging import get_logger
from protocol.errors import AMQPError
from routing import deduplication

__all__ = [
    "KNOWN_QUEUE_ARGUMENTS",
    "MAX_EXPIRY_MS",
    "QUEUE_ARGUMENT_VALIDATORS",
    "QUEUE_TYPES",
    "OVERFLOW_MODES",
    "SUPPORTED_BY_TYPE",
    "WARREN_QUEUE_ARGUMENTS",
    "log_ignored_once",
    "queue_type_of",
    "validate_queue_arguments",
]

log = get_logger("warren.arguments")

#: Largest x-message-ttl / x-expires / expiration RabbitMQ 3.10.8 accepts:
#: ten years of milliseconds (found by bisection against the reference; one
#: more is {value_too_large,...}).
MAX_EXPIRY_MS = 315_360_000_000

OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")

#: x-queue-type values RabbitMQ 3.10 knows (anything else is "unsupported
#: queue type"); "stream" is broker.core.stream's `StreamQueue`.
QUEUE_TYPES = ("classic", "quorum", "stream")


class ArgumentError(Exception):
    """Why a value is refused, in RabbitMQ's words (the part after the colon)."""


def _invalid(queue: str, vhost: str, key: str, why: str) -> AMQPError:
    return errors.precondition_failed(
        f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
    )


@dataclass(frozen=True)
class IntArgument:
    """An integer argument with RabbitMQ's range checks (rabbit_amqqueue check_*_arg)."""

    minimum: int = 0
    maximum: int | None = None
    #: RabbitMQ's word for a value above `maximum`.
    too_large: str = "value_too_large"
    #: Allowed values (after the range checks), with RabbitMQ's text for others.
    choices: tuple[int, ...] = ()
    bad_choice: str = ""

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentError(f'"expected integer, got {amqp_type(value)}"')
        if value < 0 and self.minimum >= 0:
            raise ArgumentError(f"{{value_negative,{value}}}")
        if value == 0 and self.minimum > 0:
            raise ArgumentError(f"{{value_zero,{value}}}")
        if self.maximum is not None and value > self.maximum:
            raise ArgumentError(f"{{{self.too_large},{value}}}")
        if self.choices and value not in self.choices:
            raise ArgumentError(self.bad_choice.format(value=value))
        return value


@dataclass(frozen=True)
class StringArgument:
    """A long-string argument, optionally one of a fixed set of values."""

    choices: tuple[str, ...] = ()
    #: RabbitMQ's text for a value not in `choices` ("{value}" is replaced).
    bad_choice: str = ""

    def check(self, value: Any) -> str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            raise ArgumentError(f"{{unacceptable_type,{amqp_type(value)}}}")
        if self.choices and value not in self.choices:
            raise ArgumentError(self.bad_choice.format(value=value))
        return value


@dataclass(frozen=True)
class BoolArgument:
    """A boolean argument (x-single-active-consumer)."""

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ArgumentError(f"{{unacceptable_type,{amqp_type(value)}}}")
        return value


@dataclass(frozen=True)
class MaxAgeArgument:
    """x-max-age: a duration such as "7D" (units Y, M, D, h, m, s)."""

    def check(self, value: Any) -> str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            raise ArgumentError(f"{{unacceptable_type,{amqp_type(value)}}}")
        if _DURATION.match(value) is None:
            # RabbitMQ 3.10.8 closes the connection with 541 INTERNAL_ERROR
            # here (a crash); Warren says what is wrong, as a 406.
            raise ArgumentError(f"\"invalid max age '{value}' (units Y, M, D, h, m, s)\"")
        return value


_DURATION = re.compile(r"^[0-9]+[YMDhms]$")


class DeadLetterExchangeArgument(StringArgument):
    """x-dead-letter-exchange: RabbitMQ words a type error differently here."""


#: One validator per argument, in the order RabbitMQ 3.10 checks them
#: (rabbit_amqqueue's declare_args: with two bad values, the first in this
#: order is the one reported, whatever the client's order).
QUEUE_ARGUMENT_VALIDATORS: dict[str, Any] = {
    "x-expires": IntArgument(minimum=1, maximum=MAX_EXPIRY_MS),
    "x-message-ttl": IntArgument(minimum=0, maximum=MAX_EXPIRY_MS),
    "x-dead-letter-exchange": DeadLetterExchangeArgument(),
    "x-dead-letter-routing-key": StringArgument(),
    "x-max-length": IntArgument(minimum=0),
    "x-max-length-bytes": IntArgument(minimum=0),
    "x-max-in-memory-length": IntArgument(minimum=0),
    "x-max-in-memory-bytes": IntArgument(minimum=0),
    "x-max-priority": IntArgument(minimum=0, maximum=255, too_large="max_value_exceeded"),
    "x-overflow": StringArgument(choices=OVERFLOW_MODES, bad_choice="invalid_overflow"),
    "x-queue-mode": StringArgument(
        choices=("default", "lazy"), bad_choice="\"unsupported queue mode '{value}'\""
    ),
    "x-queue-version": IntArgument(
        minimum=0, choices=(1, 2), bad_choice="\"unsupported queue version '{value}'\""
    ),
    "x-single-active-consumer": BoolArgument(),
    "x-queue-type": StringArgument(
        choices=QUEUE_TYPES, bad_choice="\"unsupported queue type '{value}'\""
    ),
    "x-quorum-initial-group-size": IntArgument(minimum=1),
    # RabbitMQ 3.10 accepts x-delivery-limit only on quorum queues (and does
    # not check it there); Warren honours it on every queue and wants a count.
    "x-delivery-limit": IntArgument(minimum=0),
    "x-dead-letter-strategy": StringArgument(
        choices=("at-most-once", "at-least-once"), bad_choice="invalid_dlx_strategy"
    ),
    "x-queue-leader-locator": StringArgument(
        choices=("client-local", "balanced"), bad_choice="invalid_queue_locator_arg"
    ),
    # RabbitMQ 3.10 answers a bad value here with 541 INTERNAL_ERROR (a
    # crash in its queue location code); Warren gives the quorum text's 406.
    "x-queue-master-locator": StringArgument(
        choices=("min-masters", "client-local", "random"), bad_choice="invalid_queue_locator_arg"
    ),
    # RabbitMQ 3.10 ignores x-consumer-timeout (3.12 added it, unchecked);
    # Warren honours it and checks it as RabbitMQ 4 does (check_non_neg_int_arg).
    "x-consumer-timeout": IntArgument(minimum=0),
    # Streams (broker.core.stream): retention by age ("7D", "1h": Y M D h m s)
    # and the segment size retention works in.
    "x-max-age": MaxAgeArgument(),
    "x-stream-max-segment-size-bytes": IntArgument(minimum=0),
    "x-initial-cluster-size": IntArgument(minimum=1),
}

#: Every queue argument RabbitMQ 3.10 knows (and x-consumer-timeout, 3.12's).
#: One a queue type does not take is refused as "invalid arg 'x' for queue 'q' in vhost '/' of queue type
#: rabbit_classic_queue"; one it does not know at all (x-foo) is accepted
#: and ignored, by RabbitMQ and (logged once) by Warren.
KNOWN_QUEUE_ARGUMENTS = frozenset(QUEUE_ARGUMENT_VALIDATORS)

_COMMON = frozenset(
    (
        "x-expires",
        "x-message-ttl",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-length",
        "x-max-length-bytes",
        "x-overflow",
        "x-single-active-consumer",
        "x-queue-type",
        # Quorum queues only in RabbitMQ 3.10; Warren takes it on classic
        # queues too (docs/dead-lettering.md).
        "x-delivery-limit",
        # RabbitMQ 3.12's, on both types; 3.10 ignores it (see the validator).
        "x-consumer-timeout",
    )
)

#: The arguments each queue type takes (read off RabbitMQ 3.10.8).
SUPPORTED_BY_TYPE: dict[str, frozenset[str]] = {
    "classic": _COMMON
    | {"x-max-priority", "x-queue-mode", "x-queue-version", "x-queue-master-locator"},
    "quorum": _COMMON
    | {
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-quorum-initial-group-size",
        "x-dead-letter-strategy",
        "x-queue-leader-locator",
    },
    "stream": frozenset(
        (
            "x-max-length-bytes",
            "x-max-age",
            "x-stream-max-segment-size-bytes",
            "x-initial-cluster-size",
            "x-queue-leader-locator",
            "x-queue-type",
        )
    ),
}

#: Arguments RabbitMQ acts on and Warren does not: after RabbitMQ's own
#: checks, refused with a 406 that says so (never accepted and ignored).
#: Maps the argument to the values refused (None: every value).
_NOT_SUPPORTED: dict[str, tuple[Any, ...] | None] = {
    "x-queue-mode": ("lazy",),  # "default" is what Warren does
    "x-queue-version": None,  # a classic queue's on-disk format
    "x-max-in-memory-length": None,
    "x-max-in-memory-bytes": None,
    "x-dead-letter-strategy": ("at-least-once",),  # at-most-once is Warren's
}

#: Arguments that choose where a queue's replicas or leader live: a single
#: node (RabbitMQ's or Warren) has one place, so they change nothing there.
#: Accepted (checked as RabbitMQ checks them) and logged once.
#: Warren's own (LavinMQ's) queue arguments, beyond RabbitMQ 3.10's: message
#: deduplication (routing.deduplication, docs/deduplication.md). Checked after
#: RabbitMQ's, on every queue type.
WARREN_QUEUE_ARGUMENTS = frozenset(deduplication.ARGUMENTS)

_NO_EFFECT_ON_ONE_NODE = ("x-queue-master-locator", "x-queue-leader-locator",
                          "x-quorum-initial-group-size", "x-initial-cluster-size")  # fmt: skip


def queue_type_of(arguments: dict[str, Any]) -> str:
    """A queue's type from its (validated) arguments: "classic" unless x-queue-type says."""
    value = arguments.get("x-queue-type")
    return value if isinstance(value, str) else "classic"


_logged: set[tuple[str, str, str, str]] = set()
_LOGGED_MAX = 10_000


def log_ignored_once(vhost: str, name: str, key: str, why: str, what: str = "queue") -> None:
    """Log, once per (vhost, queue or exchange, argument), that Warren accepted
    an argument it does nothing with (as RabbitMQ does nothing with it either).

    `what` is "queue", "consumer" (`name` is the consumer's queue) or
    "exchange" (`name` is the exchange, logged as `exchange=`)."""
    seen = (what, vhost, name, key)
    if seen in _logged:
        return
    if len(_logged) >= _LOGGED_MAX:
        _logged.clear()  # bounded: a flood of names may repeat a line, not grow memory
    _logged.add(seen)
    where = {"exchange": name} if what == "exchange" else {"queue": name}
    log.warning("argument.ignored", kind=what, vhost=vhost, argument=key, why=why, **where)


def _not_supported(key: str, value: Any) -> str:
    if key == "x-queue-type":
        return f"\"queue type '{value}' is not supported by Warren\""
    if isinstance(value, str):
        return f"\"{key} '{value}' is not supported by Warren\""
    return f'"{key} is not supported by Warren"'


def validate_queue_arguments(
    queue: str,
    arguments: dict[str, Any],
    vhost: str,
    *,
    durable: bool = False,
    exclusive: bool = False,
    auto_delete: bool = False,
) -> None:
    """Check (and normalise in place) the arguments of a queue about to be made.

    Raises the 406 RabbitMQ 3.10.8 would send, its checks in its order:
    arguments the queue type does not take (in the client's order), then
    each value (in `QUEUE_ARGUMENT_VALIDATORS`' order), then a quorum
    queue's properties (auto-delete, exclusive, durable). Then Warren's own
    refusals (`_NOT_SUPPORTED`, streams). Arguments RabbitMQ does not know
    are accepted and logged once, as are those that change nothing on a
    single node.
    """
    kind = "classic"
    if "x-queue-type" in arguments:
        try:
            kind = arguments["x-queue-type"] = QUEUE_ARGUMENT_VALIDATORS["x-queue-type"].check(
                arguments["x-queue-type"]
            )
        except ArgumentError as problem:
            raise _invalid(queue, vhost, "x-queue-type", str(problem)) from None
    supported = SUPPORTED_BY_TYPE[kind]
    for key in arguments:
        if key in KNOWN_QUEUE_ARGUMENTS and key not in supported:
            raise errors.precondition_failed(
                f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' "
                f"of queue type rabbit_{kind}_queue"
            )
    for key, validator in QUEUE_ARGUMENT_VALIDATORS.items():
        if key not in arguments:
            continue
        value = arguments[key]
        if isinstance(validator, DeadLetterExchangeArgument) and not isinstance(value, str | bytes):
            raise errors.precondition_failed(
                f"invalid type '{amqp_type(value)}' for arg '{key}' in queue '{queue}' "
                f"in vhost '{vhost}'"
            )
        try:
            arguments[key] = validator.check(value)
        except ArgumentError as problem:
            raise _invalid(queue, vhost, key, str(problem)) from None
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        raise _invalid(queue, vhost, "x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
    if kind in ("quorum", "stream"):
        # rabbit_quorum_queue:declare and rabbit_stream_queue:declare: these
        # properties make no sense for a replicated queue (the same words).
        for refused, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                              (not durable, "non-durable")):  # fmt: skip
            if refused:
                raise errors.precondition_failed(
                    f"invalid property '{prop}' for queue '{queue}' in vhost '{vhost}'"
                )
    for key, values in _NOT_SUPPORTED.items():
        if key in arguments and (values is None or arguments[key] in values):
            raise _invalid(queue, vhost, key, _not_supported(key, arguments[key]))
    if kind == "stream":
        for key in arguments:
            if key in WARREN_QUEUE_ARGUMENTS:
                # A stream keeps every message it is given (no deduplication).
                raise _invalid(queue, vhost, key, f'"{key} is not supported on streams by Warren"')
    try:
        deduplication.dedup_settings(arguments)
    except deduplication.DedupArgumentError as problem:
        raise _invalid(queue, vhost, problem.key, problem.why) from None
    if isinstance(arguments.get(deduplication.HEADER), bytes):
        arguments[deduplication.HEADER] = arguments[deduplication.HEADER].decode("utf-8", "replace")
    for key in arguments:
        if key in _NO_EFFECT_ON_ONE_NODE:
            log_ignored_once(vhost, queue, key, "no effect on a single node")
        elif key not in KNOWN_QUEUE_ARGUMENTS and key not in WARREN_QUEUE_ARGUMENTS:
            log_ignored_once(vhost, queue, key, "unknown argument, ignored as RabbitMQ ignores it")
