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
- `lock`: the data directory's lock (one broker per data directory);
- `replica`: the data directory as file operations, for a cluster's followers;
- `open_durability`: what the server calls at start with a data directory.

See docs/durability.md for what survives what.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.core.vhosts import VHostRegistry
from broker.storage.definitions import DefinitionsStore
from broker.storage.journal import Journal, PersistedEntry, open_journal
from broker.storage.replica import ReplicationTap
from broker.storage.streams import StreamFiles

__all__ = ["Durability", "Journal", "PersistedEntry", "open_durability", "open_journal"]


@dataclass
class Durability:
    """What `open_durability` brings up: the store, the journal, the stored sections."""

    definitions: DefinitionsStore
    journal: Journal
    #: The sections other layers stored (e.g. "auth": users and permissions).
    sections: dict[str, Any]


def open_durability(vhosts: VHostRegistry, data_dir: str | Path, **journal_options: Any) -> Durability:
    """At start: restore the stored vhosts and their durable definitions into
    `vhosts`, then replay the journal into their queues.

    After this, definition changes are written to `data_dir/definitions.bin`
    (attach `definitions` to the registry) and persistent messages on durable
    queues to `data_dir/journal/`; the journal's `run()` must be started
    (group commit).
    """
    store = DefinitionsStore(data_dir)
    # Streams open their logs as their definitions are restored.
    streams = vhosts.streams = StreamFiles(Path(data_dir) / "streams")
    sections = store.restore(vhosts)
    streams.forget_unused()
    journal = open_journal(data_dir, vhosts, **journal_options)
    streams.journal = journal
    journal.side_writers.append(streams)
    # Inactive until this node leads a cluster (broker.storage.replica).
    tap = ReplicationTap(data_dir)
    store.tap = streams.tap = journal.tap = tap
    return Durability(store, journal, sections)
