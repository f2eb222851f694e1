"""Helpers for the queue-feature tests: pika connections, polling, raw field types.

TTLs in these tests are 50-100 ms; waits are several times longer and polls
end as soon as the condition holds, so a slow machine costs time, not flakes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.data

TTL_MS = 60
#: Well past TTL_MS on a loaded machine, still short.
PAST_TTL = 0.4
#: Longest we wait for something that should happen "soon".
PATIENCE = 5.0


def connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def pump(connection: pika.BlockingConnection, seconds: float) -> None:
    """Let time pass while pika keeps the connection serviced."""
    connection.process_data_events(time_limit=seconds)


def wait_for(
    connection: pika.BlockingConnection, condition: Callable[[], Any], timeout: float = PATIENCE
) -> Any:
    """Poll `condition` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        pump(connection, 0.02)


def get(channel: Any, queue: str, auto_ack: bool = True) -> Any:
    """basic.get: (method, properties, body) or None."""
    method, properties, body = channel.basic_get(queue, auto_ack=auto_ack)
    return None if method is None else (method, properties, body)


def wait_get(connection: Any, channel: Any, queue: str, auto_ack: bool = True) -> Any:
    """basic.get until a message arrives (or PATIENCE runs out: None)."""
    return wait_for(connection, lambda: get(channel, queue, auto_ack))


def count(channel: Any, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


@contextlib.contextmanager
def field_types() -> Iterator[list[tuple[bytes, Any]]]:
    """Record the type octet of every field-table value pika decodes meanwhile.

    pika turns `l` and `b` alike into int; the type is what Java and .NET
    clients see (Spring reads x-death `count` as a Long).
    """
    seen: list[tuple[bytes, Any]] = []
    original = pika.data.decode_value

    def recording(encoded: bytes, offset: int) -> Any:
        kind = encoded[offset : offset + 1]
        value, offset = original(encoded, offset)
        seen.append((kind, value))
        return value, offset

    pika.data.decode_value = recording
    try:
        yield seen
    finally:
        pika.data.decode_value = original
