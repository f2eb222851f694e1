"""What the process and its machine say about themselves: memory, file descriptors, disk.

Read from /proc and the standard library when asked (a scrape, /api/nodes),
never sampled on a timer. Where Linux's /proc is missing the answers are 0.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

__all__ = [
    "disk_free",
    "max_fds",
    "open_fds",
    "open_tcp_sockets",
    "process_start_time",
    "resident_memory",
    "total_memory",
]


def resident_memory() -> int:
    """Resident set size of this process in bytes (RabbitMQ's `rss` strategy)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def total_memory() -> int:
    """The machine's RAM in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def open_fds() -> int:
    """File descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def max_fds() -> int:
    """The soft limit on open file descriptors (RLIMIT_NOFILE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_tcp_sockets() -> int:
    """Sockets among this process' open file descriptors."""
    count = 0
    try:
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    count += 1
            except OSError:
                continue
    except OSError:
        return 0
    return count


def disk_free(path: str | Path | None) -> int:
    """Free bytes on the disk holding `path` (the data directory; the working directory without one)."""
    try:
        return shutil.disk_usage(path if path is not None else ".").free
    except OSError:
        return 0


def process_start_time() -> float:
    """When this process started, seconds since the epoch."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return boot + ticks / os.sysconf("SC_CLK_TCK")
