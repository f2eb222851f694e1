"""RabbitMQ's JSON shapes for queues, exchanges, bindings, connections, channels, consumers.

Pure functions from snapshots (and the rates `broker.management.stats`
sampled) to the dicts RabbitMQ 3.10.8's management API answers, keys in
its order (alphabetical for list items). Fields RabbitMQ has and Warren
cannot fill honestly (Erlang process memory, garbage collection,
reductions, the backing queue's internals) are left out; docs/compatibility.md
lists them. Reading never changes anything.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote_plus, unquote_plus

from broker.core.features.deduplication import DedupCache
from broker.core.policies import policy_fields
from broker.core.queue import Queue
from broker.core.snapshots import QueueSnapshot
from broker.session.snapshots import ChannelSnapshot, ConnectionSnapshot, ConsumerSnapshot
from routing.exchanges.base import Binding, Exchange

__all__ = [
    "binding_item",
    "dedup_fields",
    "channel_item",
    "connection_item",
    "consumer_item",
    "default_binding_item",
    "exchange_item",
    "json_value",
    "has_properties_key",
    "properties_key",
    "queue_item",
    "with_details",
]

#: A message's overhead in memory besides its body (an estimate for `memory`).
MESSAGE_OVERHEAD: Final = 200
#: A queue's own overhead, as `memory` estimates it.
QUEUE_OVERHEAD: Final = 2048

_PUBLISH_SIDE: Final = ("confirm", "drop_unroutable", "publish", "return_unroutable")
_DELIVER_SIDE: Final = (
    "ack", "deliver", "deliver_get", "deliver_no_ack", "get", "get_empty", "get_no_ack",
    "redeliver",
)


def json_value(value: Any) -> Any:
    """An AMQP field value (table, array, bytes, decimal, timestamp) as JSON.

    A void value is the string "undefined", as rabbit_mgmt_format writes it.
    """
    if value is None:
        return "undefined"
    if isinstance(value, bool) or isinstance(value, int | float | str):
        return value
    if isinstance(value, Mapping):
        if not value:
            return {}
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    return str(value)


#: The details of a count that did not move: one shared object, read only
#: (10,000 queues list without 100,000 little dicts for the garbage collector).
_NO_RATE: Final[dict[str, float]] = {"rate": 0.0}


def with_details(out: dict[str, Any], name: str, value: int, rates: Mapping[str, float]) -> None:
    """`name` and `name_details: {"rate": r}`, as RabbitMQ writes a sampled count."""
    out[name] = value
    rate = rates.get(name, 0.0)
    out[f"{name}_details"] = {"rate": rate} if rate else _NO_RATE


def _stats(values: Mapping[str, int], names: Iterable[str], rates: Mapping[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        with_details(out, name, values[name], rates)
    return out


def message_stats(
    values: Mapping[str, int], rates: Mapping[str, float], *, publish_side: Iterable[str] = _PUBLISH_SIDE
) -> dict[str, Any] | None:
    """RabbitMQ's `message_stats`: the publishing fields if anything was published,
    the delivering fields if anything was delivered; None if nothing happened."""
    names: list[str] = []
    publish = [n for n in publish_side if n in values]
    if any(values[n] for n in publish):
        names += publish
    deliver = [n for n in _DELIVER_SIDE if n in values]
    if any(values[n] for n in deliver):
        names += deliver
    if not names:
        return None
    return _stats(values, sorted(names), rates)


def iso_time(wall: float) -> str:
    """RabbitMQ's timestamps in JSON: "2026-12-04T17:43:27.456+00:00"."""
    seconds = int(wall)
    millis = int((wall - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}+00:00"


def wall_of(monotonic: float) -> float:
    return time.time() - (time.monotonic() - monotonic)


# -- queues ------------------------------------------------------------------------------


def consumer_capacity(queue: Queue, snap: QueueSnapshot) -> float:
    """0 without consumers; else the share of consumers that could take a
    message now, 1.0 when nothing waits (RabbitMQ's consumer_capacity is
    the time-averaged version of this)."""
    if not snap.consumers:
        return 0
    if not snap.messages_ready:
        return 1.0
    able = sum(1 for consumer in queue.consumers if consumer.has_credit())
    return round(able / len(queue.consumers), 2)


def queue_item(
    queue: Queue,
    node: str,
    rates: Mapping[str, float],
    snap: QueueSnapshot | None = None,
) -> dict[str, Any]:
    """One queue as /api/queues lists it."""
    snap = snap if snap is not None else queue.snapshot()
    counters = snap.counters
    policies = policy_fields(snap.policy, snap.operator_policy)
    queue_type = str(snap.arguments.get("x-queue-type") or "classic")
    capacity = consumer_capacity(queue, snap)
    item: dict[str, Any] = {
        "arguments": json_value(snap.arguments),
        "auto_delete": snap.auto_delete,
        "consumer_capacity": capacity,
        "consumer_utilisation": capacity,
        "consumers": snap.consumers,
        "durable": snap.durable,
        "effective_policy_definition": policies["effective_policy_definition"],
        "exclusive": snap.exclusive,
        "exclusive_consumer_tag": snap.exclusive_consumer_tag,
        "head_message_timestamp": None,
    }
    if not snap.consumers:
        item["idle_since"] = iso_time(wall_of(snap.last_used))
    item["memory"] = (
        QUEUE_OVERHEAD + snap.message_bytes_ready + MESSAGE_OVERHEAD * snap.messages
    )
    item["message_bytes_ready"] = snap.message_bytes_ready
    if counters.publish or counters.deliver_get or counters.get_empty:
        values = counters.as_dict()
        values["deliver_get"] = counters.deliver_get
        stats = message_stats(values, rates, publish_side=("publish",))
        if stats is not None:
            item["message_stats"] = stats
    if queue.dedup is not None:
        dedup_fields(item, queue.dedup)
    with_details(item, "messages", snap.messages, rates)
    with_details(item, "messages_ready", snap.messages_ready, rates)
    with_details(item, "messages_unacknowledged", snap.messages_unacknowledged, rates)
    item.update({
        "name": snap.name,
        "node": node,
        "operator_policy": policies["operator_policy"],
        "policy": policies["policy"],
        "recoverable_slaves": None,
    })
    if queue_type != "quorum":
        # RabbitMQ 3.10 lists it for classic queues only (observed: a quorum
        # queue with x-single-active-consumer has no such key).
        item["single_active_consumer_tag"] = snap.single_active_consumer_tag
    item.update({
        # Always "running": see docs/compatibility.md (RabbitMQ's other
        # states describe an Erlang queue process, which Warren has not).
        "state": "running",
        "type": queue_type,
        "vhost": snap.vhost,
    })
    return item


def dedup_fields(item: dict[str, Any], cache: DedupCache) -> None:
    """A deduplicating queue's or exchange's Warren-only fields: messages dropped
    as duplicates (LavinMQ counts them as `dedup`) and the keys remembered now."""
    item["deduplicated"] = cache.dropped
    item["deduplication_keys"] = len(cache)


# -- exchanges -----------------------------------------------------------------------------


def exchange_item(
    vhost: str,
    exchange: Exchange,
    counts: tuple[int, int],
    rates: Mapping[str, float],
    user: str,
    policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One exchange as /api/exchanges lists it; `counts` are (publish_in, publish_out);
    `policy` is `VHost.policy_fields("exchanges", name)`: `{"policy": NAME}` when
    a policy applies, else empty (RabbitMQ then has no `policy` key)."""
    item: dict[str, Any] = {
        "arguments": json_value(exchange.arguments),
        "auto_delete": exchange.auto_delete,
        "durable": exchange.durable,
        "internal": exchange.internal,
    }
    publish_in, publish_out = counts
    if publish_in or publish_out:
        item["message_stats"] = _stats(
            {"publish_in": publish_in, "publish_out": publish_out},
            ("publish_in", "publish_out"), rates,
        )
    item["name"] = exchange.name
    if policy:
        item.update(policy)
    item.update({
        "type": exchange.type,
        "user_who_performed_action": user,
        "vhost": vhost,
    })
    return item


# -- bindings ------------------------------------------------------------------------------


def _quote_binding(text: str) -> str:
    # rabbit_mgmt_format:quote_binding: quote_plus, then "~" as %7E.
    return quote_plus(text, safe="").replace("~", "%7E")


def _arguments_hash(arguments: Mapping[str, Any]) -> str:
    # RabbitMQ hashes the Erlang term (erlang:phash2); any stable, URL-safe
    # digest will do: clients read the key from listings or Location.
    canonical = json.dumps(json_value(arguments), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()[:4]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def properties_key(routing_key: str, arguments: Mapping[str, Any]) -> str:
    """A binding's `properties_key` (rabbit_mgmt_format:pack_binding_props)."""
    if not arguments:
        return "~" if not routing_key else _quote_binding(routing_key)
    return f"{_quote_binding(routing_key)}~{_quote_binding(_arguments_hash(arguments))}"


def has_properties_key(binding: Binding, props: str) -> bool:
    """Whether `props`, the last segment of /api/bindings/V/e/E/q/Q/PROPS (as
    the router decoded it), names `binding`.

    As rabbit_mgmt_wm_binding:unpack_binding_props: the segment is split at
    "~" (a trailing empty token dropped) and each token is unquoted once
    more. So the properties key of a routing key "a.#", "a.%23", is found
    both in a path that encodes it again ("a.%2523", what the dashboard and
    Terraform send) and in one that does not ("a.%23", what rabbitmqadmin
    sends for `delete binding ... properties_key=a.#`).
    """
    tokens = props.split("~")
    if tokens[-1] == "":
        tokens.pop()
    if not tokens or len(tokens) > 2 or binding.routing_key != unquote_plus(tokens[0]):
        return False
    if len(tokens) == 1:
        return not binding.arguments
    return _arguments_hash(binding.arguments) == unquote_plus(tokens[1])


def binding_item(vhost: str, binding: Binding) -> dict[str, Any]:
    """One binding, as every binding list shows it."""
    return {
        "source": binding.source,
        "vhost": vhost,
        "destination": binding.destination.name,
        "destination_type": binding.destination.kind,
        "routing_key": binding.routing_key,
        "arguments": json_value(binding.arguments),
        "properties_key": properties_key(binding.routing_key, binding.arguments),
    }


def default_binding_item(vhost: str, queue: str) -> dict[str, Any]:
    """The default exchange's implicit binding of a queue, as RabbitMQ lists it."""
    return {
        "source": "",
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": queue,
        "arguments": {},
        "properties_key": properties_key(queue, {}),
    }


# -- connections, channels, consumers ---------------------------------------------------------


def connection_item(
    snap: ConnectionSnapshot, node: str, rates: Mapping[str, float], *, single: bool = False
) -> dict[str, Any]:
    """One connection as /api/connections lists it (`single`: as /api/connections/NAME)."""
    tls = snap.tls
    # The list says null where the single object says "" (observed on 3.10.8).
    unset: str | None = "" if single else None
    item: dict[str, Any] = {
        "auth_mechanism": snap.auth_mechanism or "PLAIN",
        "channel_max": snap.channel_max,
        "channels": snap.channels,
        "client_properties": json_value(snap.client_properties),
        "connected_at": snap.connected_at,
        "frame_max": snap.frame_max,
        "host": snap.host,
        "name": snap.name,
        "node": node,
        "peer_cert_issuer": unset,
        "peer_cert_subject": (tls.peer_subject if tls is not None and tls.peer_subject else unset),
        "peer_cert_validity": unset,
        "peer_host": snap.peer_host,
        "peer_port": snap.peer_port,
        "port": snap.port,
        "protocol": "AMQP 0-9-1",
        "recv_cnt": snap.recv_cnt,
    }
    with_details(item, "recv_oct", snap.recv_oct, rates)
    item["send_cnt"] = snap.send_cnt
    with_details(item, "send_oct", snap.send_oct, rates)
    item.update({
        "send_pend": snap.send_pend,
        "ssl": tls is not None,
        "ssl_cipher": tls.cipher if tls is not None else unset,
        "ssl_hash": unset,
        "ssl_key_exchange": unset,
        "ssl_protocol": tls.protocol.lower() if tls is not None else unset,
        "state": snap.state,
        "timeout": snap.heartbeat,
        "type": "network",
        "user": snap.user or "",
    })
    provided = snap.user_provided_name
    if provided is not None:
        item["user_provided_name"] = provided
    item["user_who_performed_action"] = snap.user or ""
    item["vhost"] = snap.vhost or ""
    return item


def channel_item(
    snap: ChannelSnapshot, node: str, rates: Mapping[str, float]
) -> dict[str, Any]:
    """One channel as /api/channels lists it."""
    totals = snap.counters.totals
    values = {name: getattr(totals, name) for name in (*_PUBLISH_SIDE, *_DELIVER_SIDE)
              if name != "deliver_get"}
    values["deliver_get"] = totals.deliver + totals.deliver_no_ack + totals.get + totals.get_no_ack
    item: dict[str, Any] = {
        "acks_uncommitted": snap.acks_uncommitted,
        "confirm": snap.confirm,
        "connection_details": {
            "name": snap.connection_name,
            "peer_host": snap.peer_host,
            "peer_port": snap.peer_port,
        },
        "consumer_count": snap.consumer_count,
        "global_prefetch_count": snap.global_prefetch_count,
    }
    stats = message_stats(values, rates)
    if stats is not None:
        item["message_stats"] = stats
    item.update({
        "messages_unacknowledged": snap.messages_unacknowledged,
        "messages_uncommitted": snap.messages_uncommitted,
        "messages_unconfirmed": snap.messages_unconfirmed,
        "name": snap.name,
        "node": node,
        "number": snap.number,
        "pending_raft_commands": 0,
        "prefetch_count": snap.prefetch_count,
        "state": snap.state,
        "transactional": snap.transactional,
        "user": snap.user or "",
        "user_who_performed_action": snap.user or "",
        "vhost": snap.vhost,
    })
    return item


def consumer_item(snap: ConsumerSnapshot, node: str) -> dict[str, Any]:
    """One consumer as /api/consumers (and a queue's consumer_details) lists it."""
    return {
        "arguments": json_value(snap.arguments),
        "ack_required": snap.ack_required,
        # "up" (always active) but with x-single-active-consumer, where the
        # active one is "single_active" and the others are "waiting".
        "active": snap.activity_status != "waiting",
        "activity_status": snap.activity_status,
        "channel_details": {
            "connection_name": snap.connection_name,
            "name": snap.channel_name,
            "node": node,
            "number": snap.channel_number,
            "peer_host": snap.peer_host,
            "peer_port": snap.peer_port,
            "user": snap.user or "",
        },
        "consumer_tag": snap.consumer_tag,
        "exclusive": snap.exclusive,
        "prefetch_count": snap.prefetch_count,
        "queue": {"name": snap.queue, "vhost": snap.vhost},
    }
