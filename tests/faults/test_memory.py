"""What a queued message costs, and what a deleted queue gives back (a real broker process).

A `warren serve` subprocess (so that its RSS is its own) gets 200,000
transient 1 KiB messages in a queue with no consumer, then the queue is
deleted. Measured as in the issue: bytes per message beyond the body =
(RSS filled - RSS idle) / N - 1024; after the delete, RSS must come back
near where it started (the broker trims the malloc heap after large frees,
broker/core/memory.py). Before the fix: ~350 B per message, and the RSS of
a full queue kept after deleting it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from broker.client import open_connection

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)"
)

COUNT = 200_000
SIZE = 1024
#: The issue's target for a transient message's overhead beyond its body.
MAX_OVERHEAD = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _fill_then_delete(url: str, pid: int) -> tuple[int, int, int]:
    async with open_connection(url) as connection:
        channel = await connection.channel()
        await channel.queue_declare("flood")
        await trio.sleep(0.5)
        idle = _rss(pid)
        body = b"x" * SIZE
        for _ in range(COUNT):
            await channel.publish("", "flood", body)
        with trio.fail_after(60):
            while (await channel.queue_declare("flood", passive=True)).message_count < COUNT:
                await trio.sleep(0.2)
        filled = _rss(pid)
        await channel.queue_delete("flood")
        deadline = trio.current_time() + 15
        released = _rss(pid)
        while released > idle + (filled - idle) // 5 and trio.current_time() < deadline:
            await trio.sleep(0.5)
            released = _rss(pid)
    return idle, filled, released


def test_a_transient_message_costs_under_120_bytes_and_a_deleted_queue_gives_them_back(
    tmp_path: Path,
) -> None:
    port = _free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--port", str(port), "--management-port", "0",
         "--prometheus-port", "0", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "broker.log", "w"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "broker did not start"
                time.sleep(0.1)
        idle, filled, released = trio.run(
            _fill_then_delete, f"amqp://guest:guest@127.0.0.1:{port}/", broker.pid
        )
    finally:
        broker.terminate()
        broker.wait(10)
    overhead = (filled - idle) / COUNT - SIZE
    print(f"idle {idle >> 20} MiB, filled {filled >> 20} MiB ({overhead:.0f} B/msg beyond the "
          f"body), after delete {released >> 20} MiB")
    assert overhead < MAX_OVERHEAD
    assert released < idle + (filled - idle) // 5, "the deleted queue's memory was not returned"
