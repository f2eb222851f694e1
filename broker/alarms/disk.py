"""The disk alarm: block publishers while free disk is under a limit.

As RabbitMQ's `disk_free_limit` (default 50 MB): the data directory's file
system is checked every second, and early when the journal or the page
files are written fast (`DiskMonitor.attach`, `DiskWriter`); while it has less free space than the limit,
every connection that publishes is blocked (`ResourceAlarms`; the session
sends `connection.blocked` and stops reading from the publisher at a message
boundary, so its publishes wait in TCP buffers instead of filling the disk;
consumers go on, and their acks free space). When space returns, the alarm
clears and reading resumes.

The journal itself never keeps half a batch on a full disk: a failed write
is cut back and retried (broker.storage.segments), and confirms wait for it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import trio

from broker.alarms.state import DISK, ResourceAlarms
from broker.logging import get_logger

__all__ = ["DEFAULT_DISK_FREE_LIMIT", "DiskMonitor", "DiskWriter", "parse_size"]

log = get_logger("warren.disk")

#: RabbitMQ's default disk_free_limit.
DEFAULT_DISK_FREE_LIMIT = 50 * 1000 * 1000
CHECK_INTERVAL = 1.0

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}


def parse_size(text: str) -> int:
    """'50MB' -> 50_000_000, '1GiB' -> 2**30, '1024' -> 1024 (RabbitMQ's units)."""
    raw = text.strip().lower()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :].strip()
    if unit not in _UNITS or not digits.strip():
        raise ValueError(f"not a size: {text!r} (examples: 50MB, 2GB, 512MiB)")
    return int(float(digits) * _UNITS[unit])


#: With a writer attached, free space is looked at again once this many bytes
#: were written since the last look, at least (RabbitMQ checks on a timer
#: only, at most every 10 s under load; a fast writer fills 50 MB in less).
MIN_CHECK_STEP = 1024 * 1024


class DiskWriter(Protocol):
    """What writes to the monitored disk: the journal and the paging store
    (broker.storage). "Bytes written since the last look" is the difference
    of `appended` between two looks, so a writer only keeps a running total
    and compares it with `disk_check_at` on each append."""

    #: Bytes handed to the writer so far, written or not (a running total).
    appended: int
    #: The writer calls `on_disk_check` when `appended` reaches this.
    disk_check_at: int
    on_disk_check: Callable[[], None] | None

    @property
    def unwritten_bytes(self) -> int:
        """Bytes handed to the writer and not on disk yet."""
        ...


class DiskMonitor:
    """Watches free space under `path` and sets the `disk` alarm while it is low.

    Once a second, and also whenever the attached writers together may have
    written half of the margin left above the limit since the last look: the
    limit then holds under any write rate, not only under one second's worth
    of writes. Each writer gets an equal share of that half (the first to use
    its share up makes the monitor look), so however the writes are spread
    between the journal and the page files, no more than the half is written
    unseen. Bytes the writers hold but have not written yet count as used.
    """

    def __init__(
        self, alarms: ResourceAlarms, path: str | Path, limit: int = DEFAULT_DISK_FREE_LIMIT
    ) -> None:
        self.alarms = alarms
        self.path = Path(path)
        self.limit = limit
        self.writers: list[DiskWriter] = []
        #: Looks taken because of the write rate, not the clock.
        self.early_checks = 0

    def attach(self, writer: DiskWriter) -> None:
        """Watch `writer`'s bytes too (see the class docstring)."""
        self.writers.append(writer)
        writer.on_disk_check = self._early_check
        self.check()

    def _early_check(self) -> None:
        self.early_checks += 1
        self.check()

    @property
    def active(self) -> bool:
        """Is the disk alarm on?"""
        return DISK in self.alarms.resources

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def check(self) -> bool:
        """Look at the disk once; True while the alarm is on."""
        free = self.free_bytes()
        writers = self.writers
        if writers:
            free -= sum(writer.unwritten_bytes for writer in writers)
            # Look again after half of what is left above the limit is written,
            # whichever writer writes it.
            share = max((free - self.limit) // 2, MIN_CHECK_STEP) // len(writers)
            for writer in writers:
                writer.disk_check_at = writer.appended + share
        if free < self.limit and not self.active:
            self.alarms.set(DISK)
            log.warning("disk.alarm_set", free_bytes=free, limit_bytes=self.limit)
        elif free >= self.limit and self.active:
            self.alarms.clear(DISK)
            log.info("disk.alarm_cleared", free_bytes=free, limit_bytes=self.limit)
        return self.active

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check now, then once every CHECK_INTERVAL seconds."""
        self.check()
        task_status.started()
        while True:
            await trio.sleep(CHECK_INTERVAL)
            self.check()
