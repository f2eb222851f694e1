"""RabbitMQ's access-control table, method by method (rabbit_channel.erl, 3.10).

Each function runs the checks RabbitMQ runs for one method, in RabbitMQ's
order, before the vhost acts: the order is visible (a user without
permission gets 403 for a queue that does not exist, never 404; a queue
named `amq.x` gets the reserved-prefix text even without permission, an
exchange the permission text). `UserAccess` caches the answers.

| method | permission checked |
| --- | --- |
| exchange.declare | configure on the exchange; with `alternate-exchange`, read on it and write on the alternate |
| exchange.delete | configure on the exchange |
| exchange.bind / unbind | write on the destination, read on the source, topic read on the key |
| queue.declare | configure on the queue (server-named: the `amq.gen-` name); with `x-dead-letter-exchange`, read on the queue and write on the dead-letter exchange |
| queue.bind / unbind | write on the queue, read on the exchange, topic read on the key |
| queue.purge | read on the queue |
| queue.delete | configure on the queue |
| basic.publish | write on the exchange (`""` is `amq.default`), topic write on the routing key |
| basic.consume, basic.get | read on the queue |

Passive declares, qos, ack/nack/reject, recover, tx and confirm check nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.auth.access import UserAccess
from broker.core import errors
from broker.core.errors import amqp_type
from broker.core.vhost import VHost
from routing.exchanges import EXCHANGE_TYPES

__all__ = [
    "bind_exchange",
    "bind_queue",
    "declare_exchange",
    "delete_exchange",
    "queue_declare_checks",
]


def _not_default(name: str) -> None:
    if not name:
        raise errors.default_exchange_refused()


def declare_exchange(
    access: UserAccess, vhost: VHost, name: str, type_: str, arguments: dict[str, Any]
) -> None:
    """exchange.declare (not passive)."""
    if type_ not in EXCHANGE_TYPES:
        # A connection error, before any permission (rabbit_exchange:check_type).
        raise errors.command_invalid(f"unknown exchange type '{type_}'")
    _not_default(name)
    access.check("configure", "exchange", name)
    if vhost.has_exchange(name):
        return  # an existing exchange: equivalence only, no alternate-exchange checks
    if name.startswith("amq."):
        raise errors.reserved_prefix("exchange", name)
    alternate = arguments.get("alternate-exchange")
    if alternate is not None:
        if isinstance(alternate, bytes):
            alternate = alternate.decode("utf-8", "replace")
        if not isinstance(alternate, str):
            raise errors.precondition_failed(
                f"invalid type '{amqp_type(alternate)}' for arg 'alternate-exchange' in "
                f"exchange '{name}' in vhost '{vhost.name}'"
            )
        access.check("read", "exchange", name)
        access.check("write", "exchange", alternate)


def delete_exchange(access: UserAccess, vhost: VHost, name: str) -> None:
    """exchange.delete: the default and the `amq.*` exchanges are never deleted."""
    _not_default(name)
    if name.startswith("amq."):
        raise errors.access_refused(
            f"deletion of system exchange '{name}' in vhost '{vhost.name}' not allowed"
        )
    access.check("configure", "exchange", name)


def _topic_read(access: UserAccess, vhost: VHost, source: str, key: str) -> None:
    exchange = vhost.topology.exchanges.get(source)
    if exchange is not None and exchange.type == "topic":
        access.check_topic("read", source, key)


def bind_exchange(
    access: UserAccess, vhost: VHost, destination: str, source: str, routing_key: str
) -> None:
    """exchange.bind and exchange.unbind."""
    access.check("write", "exchange", destination)
    _not_default(source)
    _not_default(destination)
    access.check("read", "exchange", source)
    _topic_read(access, vhost, source, routing_key)


def bind_queue(
    access: UserAccess, vhost: VHost, queue: str, exchange: str, routing_key: str
) -> None:
    """queue.bind and queue.unbind."""
    access.check("write", "queue", queue)
    _not_default(exchange)
    access.check("read", "exchange", exchange)
    _topic_read(access, vhost, exchange, routing_key)


def queue_declare_checks(
    access: UserAccess, vhost: VHost
) -> tuple[Callable[[str], None], Callable[[str, dict[str, Any]], None]]:
    """The two checks `VHost.declare_queue` runs: configure once the name is
    known, and for a new queue the dead-letter exchange's permissions."""

    def configure(name: str) -> None:
        access.check("configure", "queue", name)

    def new_queue(name: str, arguments: dict[str, Any]) -> None:
        dlx = arguments.get("x-dead-letter-exchange")
        if dlx is None:
            return
        if isinstance(dlx, bytes):
            dlx = dlx.decode("utf-8", "replace")
        if not isinstance(dlx, str):
            raise errors.precondition_failed(
                f"invalid type '{amqp_type(dlx)}' for arg 'x-dead-letter-exchange' in "
                f"queue '{name}' in vhost '{vhost.name}'"
            )
        access.check("read", "queue", name)
        access.check("write", "exchange", dlx)  # "" is checked as amq.default

    return configure, new_queue
