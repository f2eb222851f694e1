"""Wait for the broker's answer inside the waiting task, when trio is idle.

A publish that waits for its confirm (or any request that waits for its
reply) normally costs two trips through trio's scheduler: the reader task
wakes on the socket, parses the answer and wakes the waiting task, which runs
in the next batch. Each batch is an ``epoll_wait``, an ``epoll_ctl`` and a few
microseconds of the scheduler's Python: together they were most of the client's
CPU per confirmed message when publishing one at a time.

When nothing else can run, that detour buys nothing: trio would only sleep in
``epoll_wait`` until our socket, some other descriptor, or the next deadline
is ready. `InlineWaiter.wait_readable` does that same sleep itself, with
``poll()`` on our socket *and on trio's own epoll/kqueue descriptor* (readable
whenever any descriptor trio watches is), bounded by trio's next deadline. It
returns True only when our socket is readable and nothing else is pending; the
caller then reads and dispatches the bytes in its own task. In every other case
(a task is runnable, another descriptor or a wake-up from a thread or a signal
is ready, a deadline is due, a task waits for all tasks to block) it returns
False and the caller waits through trio as usual: other tasks run when they
would have, cancellation and timeouts keep working. (One bounded exception:
while our socket keeps being ready first, other pending I/O is seen after at
most MAX_STREAK inline waits.)

This needs four things trio does not export: the runner's task set (to tell
whether another task is scheduled), its list of tasks waiting for all tasks to
block, its deadline heap and its I/O manager's descriptor. They are looked up once, when a
connection starts; if any is missing (another trio version, Windows, guest
mode, a test clock, instruments), the waiter is disabled and the client uses
trio's scheduler only. docs/client.md ("Performance") and
tests/client/test_inline_wait.py describe and check both paths.
"""

from __future__ import annotations

import math
import select
from typing import Any

__all__ = ["InlineWaiter"]

#: Inline waits in a row, at most, before looking for other work pending in trio.
MAX_STREAK = 64
#: With more tasks than this in the run, always go through trio (see _runnable).
MAX_TASKS = 64


def _runner() -> Any:
    """trio's Runner for the current run, or None if this trio hides it."""
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT, SystemClock
    except ImportError:
        return None
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    if runner is None or type(runner.clock) is not SystemClock:
        return None  # a MockClock's deadlines are not seconds of real time
    return runner


class InlineWaiter:
    """Sleeps on one socket and on trio's I/O descriptor, when trio is idle."""

    __slots__ = ("enabled", "hits", "_poll", "_scheduler_poll", "_fd", "_tasks",
                 "_idle_waiters", "_deadlines", "_clock", "_streak")

    def __init__(self, fd: int) -> None:
        self.enabled = False
        #: How many waits ended with our socket readable (read in the caller).
        self.hits = 0
        self._fd = fd
        self._streak = 0
        runner = _runner()
        # Instruments expect to see every I/O wait (before_io_wait/after_io_wait).
        if runner is None or getattr(runner, "is_guest", True) \
                or any(getattr(runner, "instruments", {"?": True}).values()):
            return
        io = runner.io_manager
        scheduler = getattr(io, "_epoll", None) or getattr(io, "_kqueue", None)
        try:
            scheduler_fd = scheduler.fileno()  # type: ignore[union-attr]
            self._tasks = runner.tasks
            for task in self._tasks:
                task._next_send_fn  # noqa: B018 - the attribute _runnable reads
            self._idle_waiters = runner.waiting_for_idle
            self._deadlines = runner.deadlines
            self._clock = runner.clock
            self._deadlines.next_deadline()
            poll = select.poll()
        except (AttributeError, OSError):
            return
        poll.register(fd, select.POLLIN)
        poll.register(scheduler_fd, select.POLLIN)
        self._poll = poll
        self._scheduler_poll = select.poll()
        self._scheduler_poll.register(scheduler_fd, select.POLLIN)
        self.enabled = True

    def _runnable(self) -> bool:
        """Whether a task other than the caller is scheduled to run.

        trio's run queue alone does not say: trio takes a whole batch of tasks
        off it before running them, so the tasks after the caller in the
        current batch are in no queue. A task is scheduled (queued or in the
        current batch) exactly while its ``_next_send_fn`` is set. Looking costs a pass over the tasks, so with
        more than MAX_TASKS of them we do not look and go through trio.
        """
        tasks = self._tasks
        if len(tasks) > MAX_TASKS:
            return True
        for task in tasks:
            if task._next_send_fn is not None:
                return True
        return False

    def wait_readable(self) -> bool:
        """Block until our socket is readable; True if it is and trio has
        nothing else to do, False if the caller must wait through trio."""
        if self._idle_waiters or self._runnable():
            self._streak = 0
            return False
        if self._streak >= MAX_STREAK:
            # Our socket was ready first MAX_STREAK times in a row: look at
            # trio's descriptor alone (ours is drained: we read it last time),
            # and let trio run if anything else is pending there.
            self._streak = 0
            if self._scheduler_poll.poll(0):
                return False
        deadline = self._deadlines.next_deadline()
        timeout_ms = -1
        if deadline != math.inf:
            # poll() takes whole milliseconds: round down, and leave it to
            # trio when the next deadline is less than 1 ms away.
            timeout_ms = int((deadline - self._clock.current_time()) * 1000)
            if timeout_ms <= 0:
                self._streak = 0
                return False
        # trio's descriptor is readable whenever our socket is (the reader
        # task waits on it there), so it says nothing about other work while
        # ours is ready. If our socket is not ready, what woke us is for
        # trio: another descriptor, a thread's or a signal's wake-up, or the
        # deadline. Once we drained our socket, trio's descriptor stays
        # readable only for other work, which the next call sees unless our
        # socket is ready first again; MAX_STREAK bounds how long that lasts.
        for fd, _events in self._poll.poll(timeout_ms):
            if fd == self._fd:
                self._streak += 1
                self.hits += 1
                return True
        self._streak = 0
        return False
