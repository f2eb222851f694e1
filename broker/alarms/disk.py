"""The disk alarm: block publishers while free disk is under a limit.

As RabbitMQ's `disk_free_limit` (default 50 MB): the data directory's file
system is checked every second; while it has less free space than the limit,
every connection that publishes is blocked. A blocked connection is sent
`connection.blocked` (if the client announced the `connection.blocked`
capability, as RabbitMQ requires) and the broker stops reading from it at
its next publish (once that message's frames are all in), so its publishes wait in TCP buffers instead of filling
the disk; consumers go on (their acks free space). When space returns,
`connection.unblocked` is sent and reading resumes.

The journal itself never keeps half a batch on a full disk: a failed write
is cut back and retried (broker.storage.segments), and confirms wait for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from broker.logging import get_logger
from protocol import methods as m

if TYPE_CHECKING:
    from broker.session.connection import ClientConnection

__all__ = ["DEFAULT_DISK_FREE_LIMIT", "DiskAlarm", "parse_size"]

log = get_logger("warren.disk")

#: RabbitMQ's default disk_free_limit.
DEFAULT_DISK_FREE_LIMIT = 50 * 1000 * 1000
CHECK_INTERVAL = 1.0
REASON = "low on disk"

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


class DiskAlarm:
    """Watches free space under `path`; publishers wait in `wait_clear` while low."""

    def __init__(self, path: str | Path, limit: int = DEFAULT_DISK_FREE_LIMIT) -> None:
        self.path = Path(path)
        self.limit = limit
        self.active = False
        self._clear = trio.Event()
        self._clear.set()

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def check(self) -> bool:
        """Look at the disk once; True while the alarm is on."""
        free = self.free_bytes()
        if free < self.limit and not self.active:
            self.active = True
            self._clear = trio.Event()
            log.warning("disk.alarm_set", free_bytes=free, limit_bytes=self.limit)
        elif free >= self.limit and self.active:
            self.active = False
            self._clear.set()
            log.info("disk.alarm_cleared", free_bytes=free, limit_bytes=self.limit)
        return self.active

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.check()
        task_status.started()
        while True:
            await trio.sleep(CHECK_INTERVAL)
            self.check()

    async def wait_clear(self, connection: ClientConnection) -> None:
        """Block a publishing connection until the alarm clears (blocked/unblocked)."""
        notify = _wants_blocked(connection.client_properties)
        if notify:
            connection.send_method(0, m.ConnectionBlocked(reason=REASON))
        await self._clear.wait()
        if notify:
            connection.send_method(0, m.ConnectionUnblocked())


def _wants_blocked(client_properties: dict[str, Any]) -> bool:
    capabilities = client_properties.get("capabilities") or {}
    return bool(capabilities.get("connection.blocked"))
