"""Resource alarms: publishers wait while the broker is low on a resource.

- `state`: `ResourceAlarms`, which alarms are on and a wait for "none is";
- `disk`: `DiskMonitor`, RabbitMQ's `disk_free_limit` on the data directory.

Nothing here speaks AMQP: the session turns "an alarm is on" into
`connection.blocked` / `connection.unblocked` (one pair, whatever the
reasons), as RabbitMQ's reader does.
"""

from broker.alarms.disk import DEFAULT_DISK_FREE_LIMIT, DiskMonitor, parse_size
from broker.alarms.state import ResourceAlarms

__all__ = ["DEFAULT_DISK_FREE_LIMIT", "DiskMonitor", "ResourceAlarms", "parse_size"]
