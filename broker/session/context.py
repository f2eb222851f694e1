"""What a session is handed by the server: never the server itself.

A `ClientConnection` is built from a stream, a `ConnectionInfo` and a
`SessionContext`: the vhosts it may open, the resource alarms it obeys, the
journal its confirms wait for, who may log in and what they may touch, and
its limits. That is the
whole of what the session knows of the broker around it (LavinMQ's
connection factory does the same), so a session can be run, and tested,
without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from broker.alarms import ResourceAlarms
from broker.auth.access import AccessControl
from broker.core.vhost import VHost
from broker.session.handshake import SessionLimits
from broker.storage.journal import Journal

__all__ = ["SessionContext"]


@dataclass
class SessionContext:
    """The broker's services a session uses."""

    #: The vhosts a client may open, by name.
    vhosts: Mapping[str, VHost]
    alarms: ResourceAlarms = field(default_factory=ResourceAlarms)
    #: Confirms and tx.commit wait for its fsync; None without a data directory.
    journal: Journal | None = None
    #: Users and permissions (default: guest/guest on `/`, from loopback only).
    access: AccessControl = field(default_factory=AccessControl.with_default_user)
    limits: SessionLimits = field(default_factory=SessionLimits)
    #: Connections past connection.open-ok, all vhosts (for `connection_max`).
    open_connections: int = 0
