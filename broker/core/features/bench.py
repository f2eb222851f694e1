"""Benchmark: what TTL and dead-lettering cost per message (prints numbers).

    .venv/bin/python -m broker.core.features.bench [--count 1000000]

Queues are driven directly (no sockets): enqueue N messages into a queue
without TTL, with x-message-ttl, and with per-message expiration, then let
them all expire (dropped, or dead-lettered to another queue). Issue 6's
scale target: a queue of 1,000,000 messages with TTLs costs no more per
message than one without, because expiry looks only at the head of a queue
kept in order (one pending timer per queue, never one per message).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from broker.core.message import Message
from broker.core.vhost import VHost
from protocol.properties import BasicProperties

PLAIN = BasicProperties(delivery_mode=1).encode()


def _messages(count: int, expiration: str | None) -> list[Message]:
    props = BasicProperties(delivery_mode=1, expiration=expiration).encode()
    return [Message("", "q", props, b"x" * 16) for _ in range(count)]


def _enqueue(
    vhost: VHost, name: str, arguments: dict[str, Any], messages: list[Message]
) -> float:
    queue = vhost.declare_queue(None, name, arguments=arguments)
    gc.collect()
    start = time.perf_counter()
    for message in messages:
        queue.enqueue(message)
    return (time.perf_counter() - start) / len(messages) * 1e6


def _expire(vhost: VHost, name: str) -> float:
    queue = vhost.queues[name]
    count = len(queue.ready)
    start = time.perf_counter()
    queue.expire(time.monotonic() + 3600)  # everything is due
    elapsed = time.perf_counter() - start
    assert not queue.ready
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    count = parser.parse_args().count
    vhost = VHost()
    vhost.declare_queue(None, "dead")
    rows: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("no TTL", "plain", {}, None),
        ("x-message-ttl", "ttl", {"x-message-ttl": 3_600_000}, None),
        ("expiration property", "own", {}, "3600000"),
        ("x-message-ttl + dead-lettering", "dlx", {
            "x-message-ttl": 3_600_000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dead",
        }, None),
    ]  # fmt: skip
    print(f"{count:,} messages of 16 bytes per queue")
    print(f"{'queue':<32} {'enqueue us/msg':>15} {'expire us/msg':>14}")
    for label, name, arguments, expiration in rows:
        messages = _messages(count, expiration)
        enqueue = _enqueue(vhost, name, arguments, messages)
        expire = "-" if name == "plain" else f"{_expire(vhost, name):.2f}"
        print(f"{label:<32} {enqueue:>15.2f} {expire:>14}")
        del messages
    print(f"dead-lettered into 'dead': {len(vhost.queues['dead'].ready):,}")


if __name__ == "__main__":
    main()
