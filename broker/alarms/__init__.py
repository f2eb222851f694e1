"""Resource alarms: publishers wait while the broker is low on a resource.

- `state`: `ResourceAlarms`, which alarms are on and a wait for "none is";
- `disk`: `DiskMonitor`, RabbitMQ's `disk_free_limit` on the data directory;
- `memory`: `MemoryMonitor`, RabbitMQ's `vm_memory_high_watermark` on the
  broker's RSS, and the paging pressure below it.

Nothing here speaks AMQP: the session turns "an alarm is on" into
`connection.blocked` / `connection.unblocked` (one pair, whatever the
reasons), as RabbitMQ's reader does.
"""

from broker.alarms.disk import DEFAULT_DISK_FREE_LIMIT, DiskMonitor, parse_size
from broker.alarms.memory import MemoryMonitor, memory_available, watermark_bytes
from broker.alarms.state import ResourceAlarms

__all__ = [
    "DEFAULT_DISK_FREE_LIMIT",
    "DiskMonitor",
    "MemoryMonitor",
    "ResourceAlarms",
    "memory_available",
    "parse_size",
    "watermark_bytes",
]
