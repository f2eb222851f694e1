"""The errors the broker raises, with RabbitMQ's reply codes and texts.

Texts follow RabbitMQ 3.10 word for word where a client or an operator might
match on them (they were read off the reference broker with pika). Each
function returns the exception; the caller raises it, and the connection turns
it into channel.close (soft, 403-406) or connection.close (hard) carrying the
class and method id of the offending method.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from protocol.constants import ReplyCode
from protocol.errors import AMQPError, error_for

__all__ = [
    "from_code",
    "access_refused",
    "not_found",
    "precondition_failed",
    "resource_locked",
    "not_allowed",
    "not_implemented",
    "command_invalid",
    "channel_error",
    "queue_not_found",
    "exchange_not_found",
    "exclusive_locked",
    "default_exchange_refused",
    "reserved_prefix",
    "inequivalent_arg",
    "amqp_type",
]

def from_code(code: int, text: str) -> AMQPError:
    """The error for reply code `code`, its text prefixed with the code's name
    as RabbitMQ writes it ("NOT_FOUND - no queue 'q' in vhost '/'")."""
    return error_for(code, f"{ReplyCode(code).name} - {text}")


def access_refused(text: str) -> AMQPError:
    return from_code(ReplyCode.ACCESS_REFUSED, text)


def not_found(text: str) -> AMQPError:
    return from_code(ReplyCode.NOT_FOUND, text)


def precondition_failed(text: str) -> AMQPError:
    return from_code(ReplyCode.PRECONDITION_FAILED, text)


def resource_locked(text: str) -> AMQPError:
    return from_code(ReplyCode.RESOURCE_LOCKED, text)


def not_allowed(text: str) -> AMQPError:
    return from_code(ReplyCode.NOT_ALLOWED, text)


def not_implemented(text: str) -> AMQPError:
    return from_code(ReplyCode.NOT_IMPLEMENTED, text)


def command_invalid(text: str) -> AMQPError:
    return from_code(ReplyCode.COMMAND_INVALID, text)


def channel_error(text: str) -> AMQPError:
    return from_code(ReplyCode.CHANNEL_ERROR, text)


def queue_not_found(name: str, vhost: str) -> AMQPError:
    return not_found(f"no queue '{name}' in vhost '{vhost}'")


def exchange_not_found(name: str, vhost: str) -> AMQPError:
    return not_found(f"no exchange '{name}' in vhost '{vhost}'")


def exclusive_locked(name: str, vhost: str) -> AMQPError:
    return resource_locked(
        f"cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be "
        "originally declared on another connection or the exclusive property value does not "
        "match that of the original declaration."
    )


def default_exchange_refused() -> AMQPError:
    return access_refused("operation not permitted on the default exchange")


def reserved_prefix(kind: str, name: str) -> AMQPError:
    return access_refused(f"{kind} name '{name}' contains reserved prefix 'amq.*'")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def inequivalent_arg(
    kind: str,
    name: str,
    vhost: str,
    arg: str,
    received: Any,
    current: Any,
    *,
    x_arg: bool = False,
) -> AMQPError:
    """406 for a redeclaration whose properties differ from the existing entity.

    `x_arg` marks an entry of the `arguments` table, which RabbitMQ shows
    with its field type ("the value '5' of type 'signedint'") when one side
    lacks it, and as the bare values when both have it ("received '6' but
    current is '5'": rabbit_misc:assert_args_equivalence).
    """
    if x_arg and received is not None and current is not None:
        x_arg = False
        received, current = _bare(received), _bare(current)
    return precondition_failed(
        f"inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': "
        f"received {_show_arg(received, x_arg)} but current is {_show_arg(current, x_arg)}"
    )


class _Bare(str):
    """A value shown as '...' (no type), whatever its type."""


def _bare(value: Any) -> _Bare:
    return _Bare(_show(value))


def _show_arg(value: Any, x_arg: bool) -> str:
    if value is None:
        return "none"
    if isinstance(value, _Bare):
        return f"'{value}'"
    if not x_arg and isinstance(value, bool | str):
        return f"'{_show(value)}'"
    return f"the value '{_show(value)}' of type '{amqp_type(value)}'"


def amqp_type(value: Any) -> str:
    """The field type RabbitMQ names in its texts for a decoded value ('longstr'...)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "void"
    if isinstance(value, Decimal):
        return "decimal"
    return type(value).__name__
