"""Deadlines for the broker's synchronous code (message TTL, queue expiry).

Queues and the vhost never await; when they need to act later they call
`Timers.call_at(deadline, callback)`. One trio task (`Timers.run`, started by
the broker) sleeps until the earliest deadline and runs the callbacks due,
synchronously, with the clock reading. Each queue keeps at most one pending
deadline, so the heap holds one entry per queue with a TTL, not one per
message. Deadlines are `time.monotonic()` seconds.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

import trio

from broker.logging import get_logger

__all__ = ["Timers"]

log = get_logger("warren.timers")


class Timers:
    """A heap of (deadline, callback), run by one task."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = 0
        self._wake: trio.Event | None = None

    def call_at(self, deadline: float, callback: Callable[[float], None]) -> None:
        """Run `callback(now)` at `deadline` (monotonic seconds) or soon after."""
        self._seq += 1
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (deadline, self._seq, callback))
        if self._wake is not None and (earliest is None or deadline < earliest):
            self._wake.set()

    def run_due(self, now: float | None = None) -> None:
        """Run every callback whose deadline has passed."""
        now = time.monotonic() if now is None else now
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, callback = heapq.heappop(heap)
            try:
                callback(now)
            except Exception:  # one queue's bug must not stop every timer
                log.exception("timer.failed")

    async def run(self) -> None:
        """The timer task: sleep until the earliest deadline, run what is due."""
        while True:
            self._wake = trio.Event()
            if self._heap:
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    with trio.move_on_after(delay):
                        await self._wake.wait()
                    continue
                self.run_due()
                await trio.sleep(0)  # let writers send what the callbacks queued
            else:
                await self._wake.wait()
