"""The Prometheus endpoint: rabbitmq_prometheus' metric names, HELP, TYPE and labels.

    GET /metrics               every family aggregated: queue, channel and
                               connection metrics summed, no per-object labels
    GET /metrics/per-object    the same families, one sample per queue
                               (vhost, queue), channel (channel; channel,
                               vhost, exchange; channel, vhost, queue) and
                               connection (channel, as RabbitMQ names it)

Text exposition format 0.0.4, no authentication, served on
`prometheus.tcp.port` (15692), as RabbitMQ 3.10.8's plugin serves them
(/work/notes/management-api.md section 6): existing Grafana dashboards and
alerts read Warren unchanged. Only what Warren has is emitted: none of the
Erlang VM's families (`erlang_*`, scheduler, GC, mnesia, raft).

The counters are read when scraped (they are plain integers in the model);
nothing is sampled for Prometheus, which computes its own rates. A scrape
of many queues is built a chunk at a time, with a checkpoint between, so it
does not stall deliveries.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import trio

import broker
from broker.management import process
from broker.management.context import ManagementContext
from broker.management.http import HttpApp
from broker.management.messages import Request, Response
from broker.management.router import Router
from broker.management.stats import Totals
from broker.session.connection import ClientConnection
from broker.session.snapshots import ChannelSnapshot, snapshot_channel

__all__ = ["CONTENT_TYPE", "FAMILIES", "prometheus_app", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4"
API_VERSION: Final = "3.10.8"
#: Queues rendered between two checkpoints.
CHUNK: Final = 200

PROTOCOL: Final = {"protocol": "amqp091"}
CLASSIC: Final = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}


@dataclass(frozen=True)
class Family:
    """A metric family: RabbitMQ's name, TYPE and HELP text, verbatim."""

    name: str
    type: str
    help: str


def _families(*rows: tuple[str, str, str]) -> dict[str, Family]:
    return {name: Family(name, type_, help_) for name, type_, help_ in rows}


#: Every family Warren emits, with rabbitmq_prometheus 3.10.8's TYPE and HELP.
FAMILIES: Final = _families(
    ("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info"),
    ("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info"),
    ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."),
    ("rabbitmq_alarms_file_descriptor_limit", "untyped", "is 1 if file descriptor limit alarm is in effect"),
    ("rabbitmq_alarms_free_disk_space_watermark", "untyped", "is 1 if free disk space watermark alarm is in effect"),
    ("rabbitmq_alarms_memory_used_watermark", "untyped", "is 1 if VM memory watermark alarm is in effect"),
    ("rabbitmq_connections_opened_total", "counter", "Total number of connections opened"),
    ("rabbitmq_auth_attempts_total", "counter", "Total number of authorization attempts"),
    ("rabbitmq_auth_attempts_succeeded_total", "counter", "Total number of successful authentication attempts"),
    ("rabbitmq_auth_attempts_failed_total", "counter", "Total number of failed authentication attempts"),
    ("rabbitmq_connections_closed_total", "counter", "Total number of connections closed or terminated"),
    ("rabbitmq_channels_opened_total", "counter", "Total number of channels opened"),
    ("rabbitmq_channels_closed_total", "counter", "Total number of channels closed"),
    ("rabbitmq_queues_declared_total", "counter", "Total number of queues declared"),
    ("rabbitmq_queues_created_total", "counter", "Total number of queues created"),
    ("rabbitmq_queues_deleted_total", "counter", "Total number of queues deleted"),
    ("rabbitmq_process_open_fds", "gauge", "Open file descriptors"),
    ("rabbitmq_process_open_tcp_sockets", "gauge", "Open TCP sockets"),
    ("rabbitmq_process_resident_memory_bytes", "gauge", "Memory used in bytes"),
    ("rabbitmq_disk_space_available_bytes", "gauge", "Disk space available in bytes"),
    ("rabbitmq_process_max_fds", "gauge", "Open file descriptors limit"),
    ("rabbitmq_process_max_tcp_sockets", "gauge", "Open TCP sockets limit"),
    ("rabbitmq_resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes"),
    ("rabbitmq_disk_space_available_limit_bytes", "gauge", "Free disk space low watermark in bytes"),
    # queues
    ("rabbitmq_queue_messages_ready", "gauge", "Messages ready to be delivered to consumers"),
    ("rabbitmq_queue_messages_unacked", "gauge", "Messages delivered to consumers but not yet acknowledged"),
    ("rabbitmq_queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth"),
    ("rabbitmq_queue_consumers", "gauge", "Consumers on a queue"),
    ("rabbitmq_queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages"),
    # channels
    ("rabbitmq_channel_consumers", "gauge", "Consumers on a channel"),
    ("rabbitmq_channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages"),
    ("rabbitmq_channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages"),
    ("rabbitmq_channel_messages_uncommitted", "gauge", "Messages received in a transaction but not yet committed"),
    ("rabbitmq_channel_acks_uncommitted", "gauge", "Message acknowledgements in a transaction not yet committed"),
    ("rabbitmq_consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer"),
    ("rabbitmq_channel_prefetch", "gauge", "Total limit of unacknowledged messages for all consumers on a channel"),
    ("rabbitmq_channel_messages_published_total", "counter", "Total number of messages published into an exchange on a channel"),
    ("rabbitmq_channel_messages_confirmed_total", "counter", "Total number of messages published into an exchange and confirmed on the channel"),
    ("rabbitmq_channel_messages_unroutable_returned_total", "counter", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable"),
    ("rabbitmq_channel_messages_unroutable_dropped_total", "counter", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable"),
    ("rabbitmq_channel_get_ack_total", "counter", "Total number of messages fetched with basic.get in manual acknowledgement mode"),
    ("rabbitmq_channel_get_total", "counter", "Total number of messages fetched with basic.get in automatic acknowledgement mode"),
    ("rabbitmq_channel_messages_delivered_ack_total", "counter", "Total number of messages delivered to consumers in manual acknowledgement mode"),
    ("rabbitmq_channel_messages_delivered_total", "counter", "Total number of messages delivered to consumers in automatic acknowledgement mode"),
    ("rabbitmq_channel_messages_redelivered_total", "counter", "Total number of messages redelivered to consumers"),
    ("rabbitmq_channel_messages_acked_total", "counter", "Total number of messages acknowledged by consumers"),
    ("rabbitmq_channel_get_empty_total", "counter", "Total number of times basic.get operations fetched no message"),
    # connections
    ("rabbitmq_connection_incoming_bytes_total", "counter", "Total number of bytes received on a connection"),
    ("rabbitmq_connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection"),
    ("rabbitmq_connection_incoming_packets_total", "counter", "Total number of packets received on a connection"),
    ("rabbitmq_connection_outgoing_packets_total", "counter", "Total number of packets sent on a connection"),
    ("rabbitmq_connection_channels", "gauge", "Channels on a connection"),
    # the aggregated published count (per-object RabbitMQ labels it by channel and exchange too)
    ("rabbitmq_queue_messages_published_total", "counter", "Total number of messages published to queues"),
    # totals
    ("rabbitmq_connections", "gauge", "Connections currently open"),
    ("rabbitmq_channels", "gauge", "Channels currently open"),
    ("rabbitmq_consumers", "gauge", "Consumers currently connected"),
    ("rabbitmq_queues", "gauge", "Queues available"),
    # global counters (monotonic, closed channels included)
    ("rabbitmq_global_consumers", "gauge", "Current number of consumers"),
    ("rabbitmq_global_messages_acknowledged_total", "counter", "Total number of messages acknowledged by consumers"),
    ("rabbitmq_global_messages_confirmed_total", "counter", "Total number of messages confirmed to publishers"),
    ("rabbitmq_global_messages_dead_lettered_delivery_limit_total", "counter", "Total number of messages dead-lettered due to delivery-limit exceeded"),
    ("rabbitmq_global_messages_dead_lettered_expired_total", "counter", "Total number of messages dead-lettered due to message TTL exceeded"),
    ("rabbitmq_global_messages_dead_lettered_maxlen_total", "counter", "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx"),
    ("rabbitmq_global_messages_dead_lettered_rejected_total", "counter", "Total number of messages dead-lettered due to basic.reject or basic.nack"),
    ("rabbitmq_global_messages_delivered_consume_auto_ack_total", "counter", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment"),
    ("rabbitmq_global_messages_delivered_consume_manual_ack_total", "counter", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment"),
    ("rabbitmq_global_messages_delivered_get_auto_ack_total", "counter", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment"),
    ("rabbitmq_global_messages_delivered_get_manual_ack_total", "counter", "Total number of messages delivered to consumers using basic.get with manual acknowledgment"),
    ("rabbitmq_global_messages_delivered_total", "counter", "Total number of messages delivered to consumers"),
    ("rabbitmq_global_messages_get_empty_total", "counter", "Total number of times basic.get operations fetched no message"),
    ("rabbitmq_global_messages_received_confirm_total", "counter", "Total number of messages received from publishers expecting confirmations"),
    ("rabbitmq_global_messages_received_total", "counter", "Total number of messages received from publishers"),
    ("rabbitmq_global_messages_redelivered_total", "counter", "Total number of messages redelivered to consumers"),
    ("rabbitmq_global_messages_routed_total", "counter", "Total number of messages routed to queues or streams"),
    ("rabbitmq_global_messages_unroutable_dropped_total", "counter", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable"),
    ("rabbitmq_global_messages_unroutable_returned_total", "counter", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable"),
    ("rabbitmq_global_publishers", "gauge", "Current number of publishers"),
)

#: Families only the aggregated endpoint has (as in rabbitmq_prometheus).
AGGREGATED_ONLY: Final = frozenset({
    "process_start_time_seconds",
    "rabbitmq_alarms_file_descriptor_limit",
    "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_memory_used_watermark",
    # Per object, RabbitMQ labels it by channel and exchange as well, which
    # Warren does not count per message: only the total is exposed.
    "rabbitmq_queue_messages_published_total",
})

Labels = dict[str, str]
Sample = tuple[Labels, float | int]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN
        return "NaN"
    return repr(float(value))


def _lines(family: Family, samples: Iterable[Sample]) -> Iterator[str]:
    yield f"# TYPE {family.name} {family.type}"
    yield f"# HELP {family.name} {family.help}"
    for labels, value in samples:
        if labels:
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            yield f"{family.name}{{{shown}}} {_number(value)}"
        else:
            yield f"{family.name} {_number(value)}"


def cluster_id(cluster_name: str) -> str:
    """A stable `rabbitmq_cluster_permanent_id` derived from the cluster's name."""
    digest = hashlib.sha256(cluster_name.encode("utf-8")).hexdigest()[:22]
    return f"warren-cluster-id-{digest}"


class _Output:
    """The exposition text being built, family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, samples: Iterable[Sample]) -> None:
        self.lines.extend(_lines(FAMILIES[name], samples))

    def one(self, name: str, value: float | int, labels: Labels | None = None) -> None:
        self.family(name, [(labels or {}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _connection_id(connection: ClientConnection) -> str:
    return f"<{id(connection):x}>"


async def render(context: ManagementContext, per_object: bool) -> str:
    """The exposition text of /metrics (aggregated) or /metrics/per-object."""
    out = _Output()
    counters = context.counters
    connections = [c for c in context.connections() if c.live]
    vhosts = [context.vhosts[name] for name in context.vhosts]
    totals = Totals.now(context.vhosts, connections)
    broker_totals = totals.broker
    alarms = context.alarms.resources

    out.one("rabbitmq_build_info", 1, {
        "rabbitmq_version": API_VERSION,
        "prometheus_plugin_version": broker.__version__,
        "prometheus_client_version": broker.__version__,
        "erlang_version": platform.python_version(),
    })
    out.one("rabbitmq_identity_info", 1, {
        "rabbitmq_node": context.node_name,
        "rabbitmq_cluster": context.cluster_name,
        "rabbitmq_cluster_permanent_id": cluster_id(context.cluster_name),
    })
    if not per_object:
        out.one("process_start_time_seconds", process.process_start_time() or context.started_at)
        out.one("rabbitmq_alarms_file_descriptor_limit", 0)
        out.one("rabbitmq_alarms_free_disk_space_watermark", int("disk" in alarms))
        out.one("rabbitmq_alarms_memory_used_watermark", int("memory" in alarms))
    # Logins, by protocol (rabbitmq_prometheus's auth_attempt_metrics, in
    # both endpoints as 3.10.8 serves them; "total" is the two summed).
    attempts = sorted(context.access.auth_attempts.items())
    out.family("rabbitmq_auth_attempts_total",
               [({"protocol": p}, ok + failed) for p, (ok, failed) in attempts])
    out.family("rabbitmq_auth_attempts_succeeded_total",
               [({"protocol": p}, ok) for p, (ok, _failed) in attempts])
    out.family("rabbitmq_auth_attempts_failed_total",
               [({"protocol": p}, failed) for p, (_ok, failed) in attempts])
    churn = counters.churn()
    out.one("rabbitmq_connections_opened_total", churn["connection_created"])
    out.one("rabbitmq_connections_closed_total", churn["connection_closed"])
    out.one("rabbitmq_channels_opened_total", churn["channel_created"])
    out.one("rabbitmq_channels_closed_total", churn["channel_closed"])
    out.one("rabbitmq_queues_declared_total", churn["queue_declared"])
    out.one("rabbitmq_queues_created_total", churn["queue_created"])
    out.one("rabbitmq_queues_deleted_total", churn["queue_deleted"])
    max_fds = process.max_fds()
    out.one("rabbitmq_process_open_fds", process.open_fds())
    out.one("rabbitmq_process_open_tcp_sockets", process.open_tcp_sockets())
    out.one("rabbitmq_process_resident_memory_bytes", process.resident_memory())
    out.one("rabbitmq_disk_space_available_bytes", process.disk_free(context.data_dir))
    out.one("rabbitmq_process_max_fds", max_fds)
    out.one("rabbitmq_process_max_tcp_sockets", max_fds)
    out.one("rabbitmq_resident_memory_limit_bytes", context.memory_limit)
    out.one("rabbitmq_disk_space_available_limit_bytes", context.disk_free_limit)

    # -- queues ------------------------------------------------------------------------
    queue_names = (
        "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_messages", "rabbitmq_queue_consumers",
        "rabbitmq_queue_messages_ready_bytes",
    )
    rows: dict[str, list[Sample]] = {name: [] for name in queue_names}
    sums = [0, 0, 0, 0, 0]
    published = 0
    done = 0
    for vhost in vhosts:
        for queue in list(vhost.queues.values()):
            ready, unacked = len(queue.ready), queue.unacked_count
            values = (ready, unacked, ready + unacked, len(queue.consumers), queue.ready_bytes)
            if per_object:
                labels = {"vhost": vhost.name, "queue": queue.name}
                for name, value in zip(queue_names, values, strict=True):
                    rows[name].append((labels, value))
            else:
                sums = [a + b for a, b in zip(sums, values, strict=True)]
                published += queue.published
            done += 1
            if done % CHUNK == 0:
                await trio.sleep(0)
    for index, name in enumerate(queue_names):
        out.family(name, rows[name] if per_object else [({}, sums[index])])

    # -- channels and connections -----------------------------------------------------------
    channels: list[tuple[ClientConnection, ChannelSnapshot]] = [
        (connection, snapshot_channel(connection, channel))
        for connection in connections
        for channel in list(connection.channels.values())
    ]

    def per_channel(name: str, value_of: Callable[[ChannelSnapshot], int]) -> None:
        samples: list[Sample] = [({"channel": snap.id}, value_of(snap)) for _c, snap in channels]
        if per_object:
            out.family(name, samples)
        else:
            out.family(name, [({}, sum(v for _l, v in samples))])

    per_channel("rabbitmq_channel_consumers", lambda s: s.consumer_count)
    per_channel("rabbitmq_channel_messages_unacked", lambda s: s.messages_unacknowledged)
    per_channel("rabbitmq_channel_messages_unconfirmed", lambda s: s.messages_unconfirmed)
    per_channel("rabbitmq_channel_messages_uncommitted", lambda s: s.messages_uncommitted)
    per_channel("rabbitmq_channel_acks_uncommitted", lambda s: s.acks_uncommitted)
    per_channel("rabbitmq_consumer_prefetch", lambda s: s.prefetch_count)
    per_channel("rabbitmq_channel_prefetch", lambda s: s.global_prefetch_count)

    for name, attribute in (
        ("rabbitmq_channel_messages_published_total", "publish"),
        ("rabbitmq_channel_messages_confirmed_total", "confirm"),
        ("rabbitmq_channel_messages_unroutable_returned_total", "return_unroutable"),
        ("rabbitmq_channel_messages_unroutable_dropped_total", "drop_unroutable"),
    ):
        if per_object:
            out.family(name, [
                ({"channel": snap.id, "vhost": snap.vhost, "exchange": exchange},
                 getattr(use, attribute))
                for _c, snap in channels
                for exchange, use in sorted(snap.counters.by_exchange.items())
            ])
        else:
            out.family(name, [({}, sum(getattr(s.counters.totals, attribute) for _c, s in channels))])

    for name, attribute in (
        ("rabbitmq_channel_get_ack_total", "get"),
        ("rabbitmq_channel_get_total", "get_no_ack"),
        ("rabbitmq_channel_messages_delivered_ack_total", "deliver"),
        ("rabbitmq_channel_messages_delivered_total", "deliver_no_ack"),
        ("rabbitmq_channel_messages_redelivered_total", "redeliver"),
        ("rabbitmq_channel_messages_acked_total", "ack"),
        ("rabbitmq_channel_get_empty_total", "get_empty"),
    ):
        if per_object:
            out.family(name, [
                ({"channel": snap.id, "vhost": queue.vhost_name, "queue": queue.name},
                 getattr(use, attribute))
                for _c, snap in channels
                for queue, use in sorted(snap.counters.by_queue.items(), key=lambda kv: kv[0].name)
            ])
        else:
            out.family(name, [({}, sum(getattr(s.counters.totals, attribute) for _c, s in channels))])

    for name, value_of in (
        ("rabbitmq_connection_incoming_bytes_total", lambda c: c.recv_oct),
        ("rabbitmq_connection_outgoing_bytes_total", lambda c: c.output.send_oct),
        ("rabbitmq_connection_incoming_packets_total", lambda c: c.recv_cnt),
        ("rabbitmq_connection_outgoing_packets_total", lambda c: c.output.send_cnt),
        ("rabbitmq_connection_channels", lambda c: len(c.channels)),
    ):
        samples: list[Sample] = [({"channel": _connection_id(c)}, value_of(c)) for c in connections]
        if per_object:
            out.family(name, samples)
        else:
            out.family(name, [({}, sum(v for _l, v in samples))])

    if not per_object:
        out.one("rabbitmq_queue_messages_published_total", published)

    consumers = sum(s.consumer_count for _c, s in channels)
    out.one("rabbitmq_connections", len(connections))
    out.one("rabbitmq_channels", len(channels))
    out.one("rabbitmq_consumers", consumers)
    out.one("rabbitmq_queues", sum(len(v.queues) for v in vhosts))

    # -- global counters: monotonic, closed channels and deleted vhosts included ------------------
    t = broker_totals
    dead = counters.dead_lettered
    routed = t.routed
    out.one("rabbitmq_global_consumers", consumers, PROTOCOL)
    out.one("rabbitmq_global_messages_acknowledged_total", t.ack, CLASSIC)
    out.one("rabbitmq_global_messages_confirmed_total", t.confirm, PROTOCOL)
    for reason in ("delivery_limit", "expired", "maxlen", "rejected"):
        out.one(f"rabbitmq_global_messages_dead_lettered_{reason}_total", dead.get(reason, 0),
                {"queue_type": "rabbit_classic_queue", "dead_letter_strategy": "at_most_once"})
    out.one("rabbitmq_global_messages_delivered_consume_auto_ack_total", t.deliver_no_ack, CLASSIC)
    out.one("rabbitmq_global_messages_delivered_consume_manual_ack_total", t.deliver, CLASSIC)
    out.one("rabbitmq_global_messages_delivered_get_auto_ack_total", t.get_no_ack, CLASSIC)
    out.one("rabbitmq_global_messages_delivered_get_manual_ack_total", t.get, CLASSIC)
    out.one("rabbitmq_global_messages_delivered_total",
            t.deliver + t.deliver_no_ack + t.get + t.get_no_ack, CLASSIC)
    out.one("rabbitmq_global_messages_get_empty_total", t.get_empty, CLASSIC)
    out.one("rabbitmq_global_messages_received_confirm_total", t.received_confirm, PROTOCOL)
    out.one("rabbitmq_global_messages_received_total", t.publish, PROTOCOL)
    out.one("rabbitmq_global_messages_redelivered_total", t.redeliver, CLASSIC)
    out.one("rabbitmq_global_messages_routed_total", routed, PROTOCOL)
    out.one("rabbitmq_global_messages_unroutable_dropped_total", t.drop_unroutable, PROTOCOL)
    out.one("rabbitmq_global_messages_unroutable_returned_total", t.return_unroutable, PROTOCOL)
    publishers = sum(1 for _c, s in channels if s.counters.totals.publish)
    out.one("rabbitmq_global_publishers", publishers, PROTOCOL)
    return out.text()


def prometheus_app(context: ManagementContext) -> HttpApp:
    """The HTTP application of the Prometheus endpoint (no authentication)."""
    router = Router()

    async def scrape(request: Request, per_object: bool) -> Response:
        text = await render(context, per_object)
        return Response.text(text, content_type=CONTENT_TYPE)

    @router.route("/metrics", auth=False, produces=None)
    async def metrics(request: Request) -> Response:
        return await scrape(request, per_object=False)

    @router.route("/metrics/per-object", auth=False, produces=None)
    async def metrics_per_object(request: Request) -> Response:
        return await scrape(request, per_object=True)

    return HttpApp(router, authenticate=None, default_headers=[])
