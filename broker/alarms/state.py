"""Which resource alarms are on, and a way to wait until none is.

As RabbitMQ's `rabbit_alarm`: each resource (`disk`, `memory`) has an alarm
that a monitor sets and clears; while any is on, connections that publish
are blocked. One `ResourceAlarms` per broker, shared by every session.
"""

from __future__ import annotations

import trio

from broker.logging import get_logger

__all__ = ["DISK", "MEMORY", "ResourceAlarms"]

log = get_logger("warren.alarms")

DISK = "disk"
MEMORY = "memory"


class ResourceAlarms:
    """The alarms that are on; `wait_clear()` returns once none is."""

    def __init__(self) -> None:
        self._on: set[str] = set()
        self._clear = trio.Event()
        self._clear.set()

    @property
    def active(self) -> bool:
        """Is any alarm on?"""
        return bool(self._on)

    @property
    def resources(self) -> frozenset[str]:
        """The resources whose alarm is on (`disk`, `memory`)."""
        return frozenset(self._on)

    def reason(self) -> str:
        """connection.blocked's reason, in RabbitMQ's words: "low on disk",
        "low on memory", and "low on disk & memory" with both (RabbitMQ
        3.10.8 says exactly that whichever alarm went off first, checked on
        a private node: rabbit_reader's blocked_by_message joins the
        resources after one "low on")."""
        return "low on " + " & ".join(sorted(self._on))

    def set(self, resource: str) -> None:
        """Turn `resource`'s alarm on (no-op if it is on)."""
        if resource in self._on:
            return
        if not self._on:
            self._clear = trio.Event()
        self._on.add(resource)

    def clear(self, resource: str) -> None:
        """Turn `resource`'s alarm off; waiters go on once no alarm is left."""
        if resource not in self._on:
            return
        self._on.discard(resource)
        if not self._on:
            self._clear.set()

    async def wait_clear(self) -> None:
        """Return once no alarm is on (at once if none is)."""
        while self._on:
            await self._clear.wait()
