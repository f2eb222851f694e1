"""Durability: the write-ahead journal of persistent messages (issue 5).

- `records`: the record format (length, checksum, type, payload) and the scanner
  that finds every whole record and the damage between them;
- `segments`: segment files and the writer that runs in a worker thread;
- `recovery`: replaying segments into per-queue message lists at start;
- `entries`: queue entries that know their record (`PersistedEntry`) and those
  whose body stays on disk (`PagedEntry`);
- `journal`: the running journal (hooks for queues, group commit, confirms
  after fsync, paging, deletion and compaction of dead segments);
- `definitions`: the durable exchanges, queues and bindings (`definitions.bin`);
- `fsync`: the fsync helpers both share;
- `open_durability`: what the server calls at start with a data directory.

See docs/durability.md for what survives what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.core.vhost import VHost
from broker.storage.definitions import DefinitionsStore
from broker.storage.journal import Journal, PersistedEntry, open_journal

__all__ = ["Journal", "PersistedEntry", "open_durability", "open_journal"]


def open_durability(vhost: VHost, data_dir: str | Path, **journal_options: Any) -> Journal:
    """At start: restore durable definitions, then replay the journal into `vhost`.

    After this, definition changes are written to `data_dir/definitions.bin`
    and persistent messages on durable queues to `data_dir/journal/`; the
    returned journal's `run()` must be started (group commit).
    """
    store = DefinitionsStore(data_dir)
    store.restore(vhost)
    vhost.definitions = store
    return open_journal(data_dir, vhost, **journal_options)
