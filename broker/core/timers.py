"""Deadlines for the broker's synchronous code (message TTL, queue expiry).

Queues and vhosts never await; when they need to act later they call
`Scheduler.call_at(deadline, callback)`. `Timers` is the heap behind it: one
entry per pending deadline, run by `run_due(now)`. Each queue keeps at most
one pending deadline, so the heap holds one entry per queue with a TTL, not
one per message. Deadlines are `time.monotonic()` seconds.

No trio here (the core has no I/O): the server drives the heap with one task
(`broker.server.run_timers`) that sleeps until `next_deadline()` and is woken
through `on_earlier` when a new deadline comes before the one it sleeps for.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol

from broker.logging import get_logger

__all__ = ["Scheduler", "Timers"]

log = get_logger("warren.timers")


class Scheduler(Protocol):
    """Calls back synchronous code at a deadline (`time.monotonic()` seconds)."""

    def call_at(self, deadline: float, callback: Callable[[float], None]) -> None:
        """Run `callback(now)` at `deadline` or soon after."""
        ...


class Timers:
    """A heap of (deadline, callback); a `Scheduler`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = 0
        #: Called when a deadline earlier than every pending one is added,
        #: so that whoever sleeps until `next_deadline()` wakes up sooner.
        self.on_earlier: Callable[[], None] | None = None

    def call_at(self, deadline: float, callback: Callable[[float], None]) -> None:
        """Run `callback(now)` at `deadline` (monotonic seconds) or soon after."""
        self._seq += 1
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (deadline, self._seq, callback))
        if self.on_earlier is not None and (earliest is None or deadline < earliest):
            self.on_earlier()

    def next_deadline(self) -> float | None:
        """The earliest pending deadline, or None when nothing is pending."""
        return self._heap[0][0] if self._heap else None

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
