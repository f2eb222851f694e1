"""What the management plane is handed by the server: never the server itself.

Handlers read the model (vhosts, users), the sessions (connections), the
alarms and the listeners through this value, and act through the same
methods AMQP clients reach, so every rule holds for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.alarms import ResourceAlarms
from broker.auth.access import AccessControl
from broker.core.stats import BrokerCounters
from broker.core.vhosts import VHostRegistry
from broker.management.stats import Statistics
from broker.session.connection import ClientConnection

__all__ = ["Listening", "ManagementContext"]


@dataclass(frozen=True)
class Listening:
    """One listener as /api/overview and the health checks show it."""

    protocol: str  # "amqp", "amqp/ssl", "http", "http/prometheus"
    ip_address: str
    port: int


@dataclass
class ManagementContext:
    """The broker's parts the API reads and acts on."""

    vhosts: VHostRegistry
    access: AccessControl
    alarms: ResourceAlarms = field(default_factory=ResourceAlarms)
    #: The open AMQP connections (the server's set), read at each request.
    connections: Callable[[], Iterable[ClientConnection]] = lambda: ()
    #: What listens, filled in by the server once the sockets are open.
    listeners: list[Listening] = field(default_factory=list)
    #: The name /api/overview shows as node, and as cluster_name.
    node_name: str = "warren@localhost"
    cluster_name: str = "warren@localhost"
    #: Samples the counters for rates (started by the server next to the
    #: listeners); made here when the server does not give one.
    stats: Statistics | None = None
    #: When the broker started (time.time()), for uptime.
    started_at: float = field(default_factory=time.time)
    #: Where the journal lives (disk space is measured there), and the disk
    #: and memory limits (alarms).
    data_dir: Path | None = None
    disk_free_limit: int = 50_000_000
    memory_limit: int = 0

    #: A cluster node's state (broker.node), for /api/cluster; None on a single node.
    cluster_status: Callable[[], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.stats is None:
            self.stats = Statistics(self.vhosts, lambda: self.connections())

    @property
    def statistics(self) -> Statistics:
        assert self.stats is not None  # made in __post_init__
        return self.stats

    @property
    def counters(self) -> BrokerCounters:
        """The broker's churn and dead-letter counts."""
        return self.vhosts.counters
