"""Routing fixtures: a fresh exchange with one queue per binding, and what reached each."""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from conformance.helpers import Names, get_all, publish, sync


def bind_queues(
    channel: BlockingChannel,
    names: Names,
    exchange: str,
    bindings: dict[str, tuple[str, dict | None]],
) -> dict[str, str]:
    """Declare one queue per label and bind it; return label -> queue name."""
    queues = {}
    for label, (routing_key, arguments) in bindings.items():
        queue = names.queue(label)
        channel.queue_declare(queue)
        channel.queue_bind(queue, exchange, routing_key, arguments=arguments)
        queues[label] = queue
    return queues


def routed_to(
    channel: BlockingChannel,
    exchange: str,
    queues: dict[str, str],
    routing_key: str,
    headers: dict | None = None,
) -> dict[str, int]:
    """Publish one message; return label -> copies received, for labels that got any."""
    if headers is None:
        publish(channel, exchange, routing_key, b"probe")
    else:
        publish(channel, exchange, routing_key, b"probe", headers=headers)
    sync(channel)
    received = {}
    for label, queue in queues.items():
        copies = len(get_all(channel, queue))
        if copies:
            received[label] = copies
    return received
