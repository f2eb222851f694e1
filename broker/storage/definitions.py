"""Durable definitions: the exchanges, queues and bindings that survive a restart.

RabbitMQ keeps durable exchanges, queues and bindings (with their arguments)
across a restart and forgets transient ones; a binding is durable when both
its ends are. Warren keeps the durable set in one file, `definitions.bin` in
the data directory, rewritten whole on every change that touches it:

    magic "WARRENDEFS1\\n" | crc32 (uint32, big-endian) | field table

The field table is the AMQP encoding (`protocol.fields`), so argument values
keep exactly the types a client sent (a long string stays a long string, a
signed 8-bit int stays an int...), which JSON would not.

A rewrite is atomic: write a temporary file, fsync it, rename it over the old
one, fsync the directory (POSIX rename is atomic; the directory fsync makes the
rename itself durable). A crash at any point leaves either the old file or
the new one, never a mix. The write is synchronous, on the event loop, before
declare-ok is sent: declares are rare and a client that got declare-ok for a
durable queue may rely on it surviving a crash, as with RabbitMQ.

Exclusive queues are never stored: they die with their connection, so a
restart, which closes every connection, deletes them.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

from broker.core.queue import Queue
from broker.core.vhost import VHost
from broker.logging import get_logger
from broker.storage.fsync import write_atomically
from protocol.errors import AMQPError
from protocol.fields import decode_table, encode_table

__all__ = ["DefinitionsStore", "durable_definitions", "FILE_NAME"]

log = get_logger("warren.definitions")

FILE_NAME = "definitions.bin"
_MAGIC = b"WARRENDEFS1\n"
_VERSION = 1


def durable_definitions(vhost: VHost) -> dict[str, Any]:
    """The durable part of a vhost's topology, as a field table.

    Order is kept (exchanges, queues, bindings in creation order) so that
    bindings are restored after both their ends.
    """
    topology = vhost.topology
    exchanges = []
    durable_exchanges = set()
    for name, x in topology.exchanges.items():
        if not name or name.startswith("amq.") or not x.durable:
            continue  # the default and built-in exchanges always exist
        durable_exchanges.add(name)
        exchanges.append(
            {
                "name": name,
                "type": x.type,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": dict(x.arguments),
            }
        )
    queues = []
    durable_queues = set()
    for name, queue in vhost.queues.items():
        if not queue.durable or queue.exclusive_owner is not None:
            continue
        durable_queues.add(name)
        queues.append(
            {"name": name, "auto_delete": queue.auto_delete, "arguments": dict(queue.arguments)}
        )
    bindings = []
    for binding in topology.bindings():
        source = binding.source
        if source not in durable_exchanges and not (
            source.startswith("amq.") and source in topology.exchanges
        ):
            continue
        kind, name = binding.destination
        durable_destination = (
            name in durable_queues
            if kind == "queue"
            else name in durable_exchanges or name.startswith("amq.")
        )
        if not durable_destination:
            continue
        bindings.append(
            {
                "source": source,
                "destination": name,
                "destination_type": kind,
                "routing_key": binding.routing_key,
                "arguments": dict(binding.arguments),
            }
        )
    return {"version": _VERSION, "exchanges": exchanges, "queues": queues, "bindings": bindings}


def _encode(definitions: dict[str, Any]) -> bytes:
    table = encode_table(definitions)
    return _MAGIC + zlib.crc32(table).to_bytes(4, "big") + table


def _decode(data: bytes) -> dict[str, Any]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a Warren definitions file")
    body = data[len(_MAGIC) + 4 :]
    crc = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 4], "big")
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch")
    try:
        table, end = decode_table(body, 0)
    except AMQPError as error:
        raise ValueError(f"undecodable: {error.reply_text}") from None
    if end != len(body):
        raise ValueError("trailing bytes")
    return table


def _restore_queue(vhost: VHost, name: str, auto_delete: bool, arguments: Any) -> None:
    queue = Queue(
        name, durable=True, auto_delete=auto_delete, arguments=arguments or {}, vhost=vhost
    )
    queue.journal = vhost.journal
    vhost.queues[name] = queue
    vhost.topology.add_queue(name)


class DefinitionsStore:
    """Keeps `definitions.bin` in `data_dir` equal to the vhost's durable topology."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._last: bytes | None = None

    def load(self) -> dict[str, Any]:
        """The stored definitions; empty ones when there is no file.

        A damaged file is logged and treated as empty, so that the broker
        still starts (the journal then drops messages of unknown queues,
        which it logs too); the damaged file is kept aside for inspection.
        """
        empty: dict[str, Any] = {"version": _VERSION, "exchanges": [], "queues": [], "bindings": []}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return empty
        try:
            definitions = _decode(data)
        except ValueError as error:
            aside = self.path.with_name(self.path.name + ".damaged")
            os.replace(self.path, aside)
            log.error("definitions.damaged", path=str(self.path), error=str(error), kept=str(aside))
            return empty
        self._last = data
        return definitions

    def restore(self, vhost: VHost) -> dict[str, int]:
        """Declare the stored definitions in `vhost` (at start, before any client)."""
        definitions = self.load()
        counts = {"exchanges": 0, "queues": 0, "bindings": 0}
        topology = vhost.topology
        for x in definitions.get("exchanges", []):
            try:
                topology.declare_exchange(
                    x["name"],
                    x["type"],
                    durable=True,
                    auto_delete=bool(x.get("auto_delete")),
                    internal=bool(x.get("internal")),
                    arguments=x.get("arguments") or {},
                )
                counts["exchanges"] += 1
            except Exception as error:  # noqa: BLE001 - one bad entry must not stop the start
                log.error(
                    "definitions.skipped", kind="exchange", name=x.get("name"), error=str(error)
                )
        for q in definitions.get("queues", []):
            try:
                _restore_queue(vhost, q["name"], bool(q.get("auto_delete")), q.get("arguments"))
                counts["queues"] += 1
            except Exception as error:  # noqa: BLE001
                log.error("definitions.skipped", kind="queue", name=q.get("name"), error=str(error))
        for b in definitions.get("bindings", []):
            try:
                topology.bind(
                    b["source"],
                    (b["destination_type"], b["destination"]),
                    b.get("routing_key", ""),
                    b.get("arguments") or {},
                )
                counts["bindings"] += 1
            except Exception as error:  # noqa: BLE001
                log.error(
                    "definitions.skipped", kind="binding", source=b.get("source"), error=str(error)
                )
        log.info("definitions.restored", path=str(self.path), **counts)
        return counts

    def changed(self, vhost: VHost) -> None:
        """Called after any topology change: rewrite the file if the durable set changed."""
        data = _encode(durable_definitions(vhost))
        if data == self._last:
            return  # a transient change: nothing durable moved
        write_atomically(self.path, data)
        self._last = data
