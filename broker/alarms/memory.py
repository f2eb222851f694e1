"""The memory alarm: block publishers while the broker uses more memory than its watermark.

As RabbitMQ's `vm_memory_monitor` (3.10, its default `rss` strategy): once a
second the broker's resident set size is read from `/proc/self/statm` (one
small read) and compared with the watermark, `vm_memory_high_watermark`:

- relative (default 0.4): that fraction of the memory the broker may use,
  which is the machine's RAM (`MemTotal`), or the cgroup's memory limit when
  that is lower (RabbitMQ 3.10 reads only the RAM: in a container it would
  take the host's; docs/compatibility.md). Above 1.0 it is taken as 1.0, as
  RabbitMQ does;
- absolute: that many bytes (never more than that memory, as RabbitMQ).

While RSS is above the watermark the `memory` alarm is on (`ResourceAlarms`):
every connection that publishes is blocked at its next message boundary and
sent `connection.blocked` ("low on memory"), consumers go on and their acks
free memory; when RSS is back at or below the watermark the alarm clears.

Paging: above `vm_memory_high_watermark_paging_ratio` (0.5) of the watermark
the monitor reports memory pressure (`on_paging(True)`), and queues move
message bodies to disk (broker.storage.paging), as RabbitMQ 3.10's classic
queues start paging at that ratio. `trim`, when given, is called (at most
every TRIM_INTERVAL seconds) before an alarm or pressure is declared: the C
library may be holding freed memory that RSS still counts
(broker.core.memory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import trio

from broker.alarms.state import MEMORY, ResourceAlarms
from broker.logging import get_logger

__all__ = [
    "DEFAULT_PAGING_RATIO",
    "DEFAULT_WATERMARK",
    "MemoryMonitor",
    "memory_available",
    "read_rss",
    "watermark_bytes",
]

log = get_logger("warren.memory")

#: RabbitMQ's defaults: vm_memory_high_watermark.relative and
#: vm_memory_high_watermark_paging_ratio.
DEFAULT_WATERMARK = 0.4
DEFAULT_PAGING_RATIO = 0.5
#: RabbitMQ's ?MAX_VM_MEMORY_HIGH_WATERMARK: a larger relative watermark is taken as this.
MAX_RELATIVE = 1.0
#: RabbitMQ's ?DEFAULT_MEMORY_CHECK_INTERVAL (1000 ms).
CHECK_INTERVAL = 1.0
#: The C library is asked to give freed memory back at most this often.
TRIM_INTERVAL = 10.0
#: A cgroup "limit" this large means no limit (cgroup v1 writes 2**63 - 4096).
_NO_LIMIT = 1 << 60

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_rss() -> int | None:
    """This process's resident set size in bytes, or None where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            fields = statm.read().split()
    except OSError:
        return None
    return int(fields[1]) * _PAGE_SIZE


def _ram() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return value if 0 < value < _NO_LIMIT else None


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup"),
                        proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The memory limit of this process's cgroup (v2 `memory.max`, v1
    `memory.limit_in_bytes`), or None when there is none."""
    candidates: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if hierarchy == "0" and controllers == "":
            candidates.append(root / relative / "memory.max")
        elif "memory" in controllers.split(","):
            candidates.append(root / "memory" / relative / "memory.limit_in_bytes")
    # Inside a container the paths above are often not visible; the
    # container's own limit is then at the root of the mount.
    candidates += [root / "memory.max", root / "memory" / "memory.limit_in_bytes"]
    for candidate in candidates:
        limit = _read_limit(candidate)
        if limit is not None:
            return limit
    return None


def memory_available() -> tuple[int, str]:
    """(bytes, where from): the RAM, or the cgroup's limit when lower.

    As RabbitMQ, 1 GiB is assumed when neither can be read.
    """
    ram = _ram()
    cgroup = cgroup_memory_limit()
    if cgroup is not None and (ram is None or cgroup < ram):
        return cgroup, "cgroup"
    if ram is not None:
        return ram, "ram"
    return 1 << 30, "unknown"  # RabbitMQ's ?MEMORY_SIZE_FOR_UNKNOWN_OS


def watermark_bytes(*, relative: float | None = None, absolute: int | None = None,
                    available: int) -> int:
    """The watermark in bytes, as RabbitMQ's vm_memory_monitor:interpret_limit:
    a fraction (at most 1.0) of `available`, or an absolute size (at most
    `available`)."""
    if absolute is not None:
        return min(absolute, available)
    fraction = DEFAULT_WATERMARK if relative is None else relative
    if fraction > MAX_RELATIVE:
        log.warning("memory.watermark_capped", relative=fraction, used=MAX_RELATIVE)
        fraction = MAX_RELATIVE
    return int(fraction * available)


class MemoryMonitor:
    """Watches the broker's RSS; sets the `memory` alarm above `limit` bytes.

    `paging` is True while RSS is above `paging_ratio` x `limit`;
    `on_paging` is called with each change. `rss` reads the RSS (a function,
    so that tests can feed numbers); a monitor whose `rss` gives None
    (no /proc) never alarms, and says so once in the log.
    """

    def __init__(
        self,
        alarms: ResourceAlarms,
        limit: int,
        *,
        paging_ratio: float = DEFAULT_PAGING_RATIO,
        rss: Callable[[], int | None] = read_rss,
        on_paging: Callable[[bool], None] | None = None,
        trim: Callable[[], object] | None = None,
    ) -> None:
        self.alarms = alarms
        self.limit = limit
        self.paging_ratio = paging_ratio
        self.rss = rss
        self.on_paging = on_paging
        self.trim = trim
        self.paging = False
        #: The RSS seen at the last check (None: unknown).
        self.last_rss: int | None = None
        self._last_trim = float("-inf")
        self._unsupported_logged = False

    @property
    def active(self) -> bool:
        """Is the memory alarm on?"""
        return MEMORY in self.alarms.resources

    @property
    def paging_threshold(self) -> int:
        """RSS above which queues page message bodies out."""
        return int(self.paging_ratio * self.limit)

    def _read(self) -> int | None:
        rss = self.rss()
        if rss is None:
            return None
        if (rss > self.limit or rss > self.paging_threshold) and self.trim is not None:
            now = time.monotonic()
            if now - self._last_trim >= TRIM_INTERVAL:
                self._last_trim = now
                self.trim()  # freed memory the C library kept counts in RSS
                rss = self.rss() or rss
        return rss

    def check(self) -> bool:
        """Look at the RSS once; True while the alarm is on."""
        rss = self._read()
        self.last_rss = rss
        if rss is None:
            if not self._unsupported_logged:
                self._unsupported_logged = True
                log.warning("memory.rss_unknown", note="no /proc/self/statm: no memory alarm")
            return self.active
        # RabbitMQ: alarmed while ProcMem > MemLimit.
        if rss > self.limit and not self.active:
            self.alarms.set(MEMORY)
            log.warning("memory.alarm_set", rss_bytes=rss, limit_bytes=self.limit)
        elif rss <= self.limit and self.active:
            self.alarms.clear(MEMORY)
            log.info("memory.alarm_cleared", rss_bytes=rss, limit_bytes=self.limit)
        paging = rss > self.paging_threshold
        if paging != self.paging:
            self.paging = paging
            log.info("memory.paging_started" if paging else "memory.paging_stopped",
                     rss_bytes=rss, paging_threshold_bytes=self.paging_threshold,
                     limit_bytes=self.limit)
            if self.on_paging is not None:
                self.on_paging(paging)
        return self.active

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check now, then once every CHECK_INTERVAL seconds."""
        self.check()
        task_status.started()
        while True:
            await trio.sleep(CHECK_INTERVAL)
            self.check()
