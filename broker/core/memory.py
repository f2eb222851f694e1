"""Hand memory back to the operating system after the broker freed a lot of it.

Message bodies over 512 bytes are allocated by the C library's malloc, not by
Python's small-object allocator. When a long queue goes away (deleted,
purged, drained, expired) glibc gets every byte back, but keeps it: its heap
only shrinks from the top, and a few small blocks still in use anywhere
above the freed space (a dict, a buffer, a deque block allocated during the
fill) pin all of it. RSS stays at its high-water mark although the broker
uses a fraction of it (the next fill reuses it). `malloc_trim(0)` gives the
free pages inside the heap back (madvise), whatever is above them.

`MemoryReleaser` calls it when the bytes held in ready messages dropped by
`RELEASE_AFTER` since the last call, checked every `CHECK_INTERVAL` seconds
(a sum over the queues, nothing per message), and soon (rate-limited) when a
queue holding that much is deleted or purged. Elsewhere than glibc it does
nothing. No I/O: a call into the C library, on the broker's timers.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

from broker.core.timers import Scheduler
from broker.logging import get_logger

__all__ = ["MemoryReleaser", "malloc_trim"]

log = get_logger("warren.memory")

#: Freed message bytes that make a trim worth its cost (about 40-50 ms per GB freed).
RELEASE_AFTER = 64 * 1024 * 1024
#: How often the ready bytes of all queues are summed.
CHECK_INTERVAL = 5.0
#: Trims at most this often.
MIN_INTERVAL = 2.0


def _load_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl, macOS): nothing to do
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    function: Callable[[int], int] = trim
    return function


_malloc_trim = _load_trim()


def malloc_trim() -> bool:
    """Give the free pages of the malloc heap back to the OS; False if unsupported."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class MemoryReleaser:
    """Trim the malloc heap after large frees (see the module docstring).

    `ready_bytes()` is the bytes of every ready message of the broker (the
    server sums its vhosts' queues).
    """

    def __init__(self, timers: Scheduler, ready_bytes: Callable[[], int]) -> None:
        self.timers = timers
        self.ready_bytes = ready_bytes
        self.trims = 0
        self._high = 0  # most ready bytes seen since the last trim
        self._last = float("-inf")
        self._pending = False
        if _malloc_trim is not None:
            timers.call_at(time.monotonic() + CHECK_INTERVAL, self._check)

    def freed(self, nbytes: int) -> None:
        """A queue dropped `nbytes` of messages at once (delete, purge)."""
        if nbytes >= RELEASE_AFTER and _malloc_trim is not None and not self._pending:
            self._pending = True
            self.timers.call_at(max(time.monotonic(), self._last + MIN_INTERVAL), self._trim)

    def _check(self, now: float) -> None:
        current = self.ready_bytes()
        if current > self._high:
            self._high = current
        elif self._high - current >= RELEASE_AFTER and not self._pending:
            self._trim(now)
        self.timers.call_at(now + CHECK_INTERVAL, self._check)

    def _trim(self, now: float) -> None:
        self._pending = False
        started = time.perf_counter()
        malloc_trim()
        self._last = time.monotonic()
        self._high = self.ready_bytes()
        self.trims += 1
        log.info("memory.trimmed", ms=round((time.perf_counter() - started) * 1000, 1))
