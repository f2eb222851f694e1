"""What a queued message costs, and what a deleted queue gives back (a real broker process).

A `warren serve` subprocess (so that its RSS is its own) gets 200,000
transient 1 KiB messages in a queue with no consumer, then the queue is
deleted. Measured as in the issue: bytes per message beyond the body =
(RSS filled - RSS idle) / N - 1024; after the delete, RSS must come back
near where it started (the broker trims the malloc heap after large frees,
broker/core/memory.py). Before the fix: ~350 B per message, and the RSS of
a full queue kept after deleting it.

Paging is off (`warren.paging.queue_bytes = infinity`): with the default
64 MiB threshold most of the 195 MiB of bodies would go to disk and the
"overhead" would come out negative, guarding nothing. The test checks that
nothing was paged, so a lower default or memory pressure cannot hide a
regression again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from serve_helpers import start_serve, stop

from broker.client import open_connection

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)"
)

COUNT = 200_000
SIZE = 1024
#: The issue's target for a transient message's overhead beyond its body.
MAX_OVERHEAD = 120


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
    settings = tmp_path / "warren.conf"
    settings.write_text("warren.paging.queue_bytes = infinity\n")
    log = tmp_path / "broker.log"
    broker, port = start_serve(log, "--settings", str(settings))
    try:
        idle, filled, released = trio.run(
            _fill_then_delete, f"amqp://guest:guest@127.0.0.1:{port}/", broker.pid
        )
    finally:
        stop(broker)
    overhead = (filled - idle) / COUNT - SIZE
    print(f"idle {idle >> 20} MiB, filled {filled >> 20} MiB ({overhead:.0f} B/msg beyond the "
          f"body), after delete {released >> 20} MiB")
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    paged = [e for e in events
             if e["event"] in ("paging.queue_started", "memory.paging_started", "paging.stopped")]
    assert not paged, f"messages were paged out, the measure is void: {paged[:3]}"
    # A body cannot cost less than itself: a negative overhead means the
    # bodies are not in memory and the measure is void.
    assert 0 < overhead < MAX_OVERHEAD
    assert released < idle + (filled - idle) // 5, "the deleted queue's memory was not returned"
