"""The broker's vhosts, by name: create, delete, look up.

Each vhost has its own exchanges, queues, bindings and messages (RabbitMQ's
virtual hosts). Deleting one deletes all of that, durably: every durable
queue's messages are dropped from the journal (a QUEUE_DELETE record each)
and the definitions store is rewritten without it. Connections to a deleted
vhost are closed by whoever observes `on_deleted` (the server), with
RabbitMQ's 320 CONNECTION_FORCED.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.core.direct_reply_to import DirectReplyTo
from broker.core.memory import MemoryReleaser
from broker.core.queue import MessageStore, QueuePaging
from broker.core.stats import BrokerCounters
from broker.core.stream import StreamLogs
from broker.core.timers import Scheduler
from broker.core.vhost import DefinitionsSink, VHost
from broker.logging import get_logger

__all__ = ["VHostRegistry"]

log = get_logger("warren.vhost")


@dataclass
class VHostRegistry(Mapping[str, VHost]):
    """The vhosts of one broker; a read-only mapping of name to `VHost` plus create/delete."""

    timers: Scheduler | None = None
    #: Told of large frees (broker.core.memory); set by the server.
    memory: MemoryReleaser | None = None
    #: Pages bodies of long queues out (broker.storage.paging); set by the server.
    paging: QueuePaging | None = None
    #: Where streams keep their logs (broker.storage.streams); set with a
    #: data directory, before the definitions are restored.
    streams: StreamLogs | None = None
    #: Set by the server when there is a data directory.
    definitions: DefinitionsSink | None = None
    journal: MessageStore | None = None
    #: The direct reply-to consumers of every vhost (one table: a reply is
    #: routed to its requester's channel whatever the vhost, as in RabbitMQ).
    replies: DirectReplyTo = field(default_factory=DirectReplyTo)
    #: Called with the name of each vhost deleted.
    on_deleted: list[Callable[[str], None]] = field(default_factory=list)
    #: The broker's churn and dead-letter counts, shared by every vhost.
    counters: BrokerCounters = field(default_factory=BrokerCounters)
    _vhosts: dict[str, VHost] = field(default_factory=dict)

    def __getitem__(self, name: str) -> VHost:
        return self._vhosts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vhosts)

    def __len__(self) -> int:
        return len(self._vhosts)

    def create(
        self, name: str, description: str = "", tags: tuple[str, ...] = ()
    ) -> tuple[VHost, bool]:
        """The vhost called `name`, made if it did not exist; (vhost, created)."""
        existing = self._vhosts.get(name)
        if existing is not None:
            changed = (existing.description, existing.tags) != (description, tags)
            existing.description, existing.tags = description, tags
            if changed:
                existing.stored()
            return existing, False
        if not name:
            raise ValueError("a vhost name must not be empty")
        vhost = VHost(name)
        vhost.description, vhost.tags = description, tags
        vhost.timers = self.timers
        vhost.replies = self.replies
        vhost.memory = self.memory
        vhost.counters = self.counters
        vhost.paging = self.paging
        vhost.streams = self.streams
        vhost.definitions = self.definitions
        vhost.journal = self.journal
        self._vhosts[name] = vhost
        log.info("vhost.created", vhost=name)
        vhost.stored()
        return vhost, True

    def delete(self, name: str) -> bool:
        """Delete a vhost and everything in it; False if there was none."""
        vhost = self._vhosts.get(name)
        if vhost is None:
            return False
        messages = vhost.delete_contents()
        del self._vhosts[name]
        log.info("vhost.deleted", vhost=name, messages=messages)
        if self.definitions is not None:
            self.definitions.changed(vhost)
        for observer in self.on_deleted:
            observer(name)
        return True

    def attach_storage(self, definitions: DefinitionsSink | None, journal: MessageStore | None) -> None:
        """Durability came up (after recovery): every vhost persists from now on."""
        self.definitions = definitions
        self.journal = journal
        for vhost in self._vhosts.values():
            vhost.definitions = definitions
            vhost.journal = journal

    def describe(self) -> list[dict[str, Any]]:
        """The vhosts as RabbitMQ 3.10 exports them in definitions JSON."""
        return [
            {"name": v.name, "description": v.description, "tags": list(v.tags),
             "metadata": {"description": v.description, "tags": list(v.tags)}}
            for v in self._vhosts.values()
        ]
