"""What the management plane is handed by the server: never the server itself.

Handlers read the model (vhosts, users), the sessions (connections), the
alarms and the listeners through this value, and act through the same
methods AMQP clients reach, so every rule holds for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from broker.alarms import ResourceAlarms
from broker.auth.access import AccessControl
from broker.core.vhosts import VHostRegistry
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
    #: The name /api/overview shows as cluster_name and node.
    node_name: str = "warren@localhost"
