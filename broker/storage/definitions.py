"""Durable definitions: the vhosts and what in them survives a restart, and the users.

RabbitMQ keeps durable exchanges, queues and bindings (with their arguments)
across a restart and forgets transient ones; a binding is durable when both
its ends are. It keeps vhosts (with their limits), users and permissions
too. Warren keeps all of it in one file, `definitions.bin` in the data
directory, rewritten whole on every change that touches it:

    magic "WARRENDEFS1\\n" | crc32 (uint32, big-endian) | field table

The field table is the AMQP encoding (`protocol.fields`), so argument values
keep exactly the types a client sent (a long string stays a long string, a
signed 8-bit int stays an int...), which JSON would not. Version 2 of the
table:

    {"version": 2,
     "vhosts": [{"name", "description", "tags", "limits",
                 "exchanges", "queues", "bindings", "policies"}, ...],
     "sections": {"auth": {"users", "permissions", "topic_permissions"}}}

A vhost's `policies` (absent from files written before policies existed) is
one long string, the JSON list of its policies and operator policies as
definitions JSON writes them: a policy's values are JSON (a priority of 1.5,
a max-length beyond 64 bits), which a field table cannot always hold.

A version 1 file (from before vhosts: exchanges, queues and bindings at the
top) is read as the vhost `/`. The storage layer does not know users: other
layers register *sections* (a name and a function returning plain data) and
get their section back from `load()` at start.

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

import json
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from broker.core.policies import OperatorPolicy, Policy, PolicyInvalid, validate_policy
from broker.core.vhost import VHost, new_queue
from broker.core.vhosts import VHostRegistry
from broker.logging import get_logger
from broker.storage.fsync import write_atomically
from broker.storage.replica import ReplicationTap
from protocol.errors import AMQPError
from protocol.fields import decode_table, encode_table

__all__ = ["DefinitionsStore", "durable_definitions", "FILE_NAME"]

log = get_logger("warren.definitions")

FILE_NAME = "definitions.bin"
_MAGIC = b"WARRENDEFS1\n"
_VERSION = 2


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
    stored = {
        "name": vhost.name,
        "description": vhost.description,
        "tags": list(vhost.tags),
        "limits": vhost.limits.as_dict(),
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    }
    if vhost.policies:
        stored["policies"] = _policies_text(vhost)
    return stored


def _policies_text(vhost: VHost) -> str:
    policies = vhost.policies
    items = [
        {**p.as_json(), "operator": isinstance(p, OperatorPolicy)}
        for p in (*policies.listing(), *policies.listing(operator=True))
    ]
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


def _restore_policies(vhost: VHost, text: Any) -> int:
    """Set a vhost's stored policies (before its queues and exchanges exist)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    count = 0
    try:
        items = json.loads(text)
    except (TypeError, ValueError) as error:
        log.error("definitions.skipped", kind="policies", vhost=vhost.name, error=str(error))
        return 0
    for item in items if isinstance(items, list) else []:
        try:
            policy: Policy = validate_policy(
                vhost.name,
                str(item["name"]),
                pattern=item.get("pattern"),
                definition=item.get("definition"),
                priority=item.get("priority", 0),
                apply_to=item.get("apply-to", "all"),
                operator=bool(item.get("operator")),
            )
        except (PolicyInvalid, KeyError, TypeError, AttributeError) as error:
            log.error("definitions.skipped", kind="policy", name=str(item)[:100],
                      error=str(error))
            continue
        vhost.policies.put(policy)
        count += 1
    return count


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
    queue = new_queue(
        name, durable=True, auto_delete=auto_delete, arguments=arguments or {}, vhost=vhost
    )
    queue.journal = vhost.journal
    vhost.queues[name] = queue
    vhost.topology.add_queue(name)


def _as_version_2(definitions: dict[str, Any]) -> dict[str, Any]:
    """A version 1 table (one vhost's topology at the top) as version 2, in `/`."""
    if definitions.get("version", 1) >= 2:
        return definitions
    vhost = {
        "name": "/",
        "exchanges": definitions.get("exchanges", []),
        "queues": definitions.get("queues", []),
        "bindings": definitions.get("bindings", []),
    }
    return {"version": 2, "vhosts": [vhost], "sections": {}}


class DefinitionsStore:
    """Keeps `definitions.bin` in `data_dir` equal to the broker's durable definitions."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._last: bytes | None = None
        self._vhosts: VHostRegistry | None = None
        #: vhost name -> its durable definitions, recomputed when it changes.
        self._parts: dict[str, dict[str, Any]] = {}
        self._sections: dict[str, Callable[[], dict[str, Any]]] = {}
        #: Reports each rewrite to followers (broker.storage.replica).
        self.tap: ReplicationTap | None = None

    def add_section(self, name: str, export: Callable[[], dict[str, Any]]) -> None:
        """Persist `export()` under `name` too (called again at every rewrite)."""
        self._sections[name] = export

    def load(self) -> dict[str, Any]:
        """The stored definitions (version 2); empty ones when there is no file.

        A damaged file is logged and treated as empty, so that the broker
        still starts (the journal then drops messages of unknown queues,
        which it logs too); the damaged file is kept aside for inspection.
        """
        empty: dict[str, Any] = {"version": _VERSION, "vhosts": [], "sections": {}}
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
        return _as_version_2(definitions)

    def restore(self, vhosts: VHostRegistry) -> dict[str, Any]:
        """Make the stored vhosts and their durable topology (at start, before any
        client); from then on keep the file equal to `vhosts`. Returns the stored
        sections by name (the caller restores what they hold)."""
        definitions = self.load()
        counts = {"vhosts": 0, "exchanges": 0, "queues": 0, "bindings": 0, "policies": 0}
        for stored in definitions.get("vhosts", []):
            try:
                vhost, _created = vhosts.create(
                    stored["name"],
                    stored.get("description") or "",
                    tuple(stored.get("tags") or ()),
                )
            except Exception as error:  # noqa: BLE001 - one bad entry must not stop the start
                log.error("definitions.skipped", kind="vhost", name=stored.get("name"),
                          error=str(error))
                continue
            counts["vhosts"] += 1
            limits = stored.get("limits") or {}
            vhost.limits.max_connections = limits.get("max-connections")
            vhost.limits.max_queues = limits.get("max-queues")
            if "policies" in stored:
                counts["policies"] += _restore_policies(vhost, stored["policies"])
            for kind, count in _restore_topology(vhost, stored).items():
                counts[kind] += count
            vhost.apply_policies()
        self._vhosts = vhosts
        for name in vhosts:
            self._parts[name] = durable_definitions(vhosts[name])
        log.info("definitions.restored", path=str(self.path), **counts)
        sections: dict[str, Any] = definitions.get("sections") or {}
        return sections

    def changed(self, vhost: VHost | None = None) -> None:
        """Called after a change (of `vhost`'s topology, or of a section when None):
        rewrite the file if the durable set changed."""
        if self._vhosts is None:
            return  # not restored yet: nothing to compare with
        if vhost is not None:
            if vhost.name in self._vhosts:
                self._parts[vhost.name] = durable_definitions(vhost)
            else:
                self._parts.pop(vhost.name, None)  # deleted
        for name in self._vhosts:
            if name not in self._parts:  # made before storage was attached (seeding)
                self._parts[name] = durable_definitions(self._vhosts[name])
        document = {
            "version": _VERSION,
            "vhosts": list(self._parts.values()),
            "sections": {name: export() for name, export in self._sections.items()},
        }
        data = _encode(document)
        if data == self._last:
            return  # a transient change: nothing durable moved
        write_atomically(self.path, data)
        self._last = data
        if self.tap is not None:
            self.tap.replaced(self.path, data)


def _restore_topology(vhost: VHost, definitions: Mapping[str, Any]) -> dict[str, int]:
    """Declare a vhost's stored exchanges, queues and bindings; how many of each."""
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
            log.error("definitions.skipped", kind="exchange", name=x.get("name"), error=str(error))
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
    return counts
