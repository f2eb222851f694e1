"""The overview and the node: /api/overview, /api/nodes[/NAME], /api/cluster-name.

/api/overview is what rabbitmqadmin `show overview`, the dashboard and
monitoring scripts read: versions, `message_stats` (the broker's totals and
rates), `churn_rates`, `queue_totals`, `object_totals`, listeners. Warren
answers with RabbitMQ's field names; `rabbitmq_version` and
`management_version` are the API level Warren implements (3.10.8),
`product_name`/`product_version` say what it is, and `erlang_version` is
the Python version that runs it.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any, Final

import broker
from broker.core.stats import MESSAGE_FIELDS, MessageTotals
from broker.core.vhost import VHost
from broker.management import process
from broker.management.api.common import visible_vhosts
from broker.management.authz import ApiUser, require_monitor, user_of
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.query import reply_item, reply_list
from broker.management.router import Router
from broker.management.stats import CHURN_FIELDS, Totals, deliver_get
from broker.management.views import with_details

__all__ = ["API_VERSION", "EXCHANGE_TYPES", "add_routes", "listener_items"]

#: The RabbitMQ version whose management API Warren speaks.
API_VERSION: Final = "3.10.8"

EXCHANGE_TYPES: Final = [
    {"name": name, "description": f"AMQP {name} exchange, as per the AMQP specification",
     "enabled": True}
    for name in ("direct", "fanout", "headers", "topic")
]

AUTH_MECHANISMS: Final = {
    "PLAIN": "SASL PLAIN authentication mechanism",
    "AMQPLAIN": "QPid AMQPLAIN mechanism",
    "EXTERNAL": "SASL EXTERNAL authentication mechanism (the client's certificate)",
}

#: The overview's message_stats: RabbitMQ's fine stats plus deliver_get and
#: the disk counters (Warren reports its journal's work elsewhere: 0 here).
OVERVIEW_MESSAGE_FIELDS: Final = tuple(sorted(
    (*MESSAGE_FIELDS, "deliver_get", "disk_reads", "disk_writes")
))


def listener_items(context: ManagementContext) -> list[dict[str, Any]]:
    return [
        {
            "node": context.node_name,
            "protocol": listener.protocol,
            "ip_address": listener.ip_address,
            "port": listener.port,
            "socket_opts": {},
        }
        for listener in context.listeners
    ]


def _contexts(context: ManagementContext) -> list[dict[str, Any]]:
    out = []
    for listener in context.listeners:
        if not listener.protocol.startswith("http"):
            continue
        item = {
            "ssl_opts": [],
            "node": context.node_name,
            "description": (
                "RabbitMQ Prometheus" if listener.protocol == "http/prometheus"
                else "RabbitMQ Management"
            ),
            "path": "/",
            "cowboy_opts": "[]",
            "ip": listener.ip_address,
            "port": str(listener.port),
        }
        if listener.protocol == "http/prometheus":
            item["protocol"] = "'http/prometheus'"
        out.append(item)
    return out


def _totals_for(
    context: ManagementContext, user: ApiUser
) -> tuple[MessageTotals, list[VHost], bool]:
    """(message totals, the vhosts counted, everything?) as `user` may see them."""
    totals = Totals.now(context.vhosts, context.connections())
    if user.is_monitor:
        return totals.broker, [context.vhosts[n] for n in context.vhosts], True
    vhosts = visible_vhosts(context, user)
    sums = MessageTotals()
    for vhost in vhosts:
        sums.add(totals.vhosts.get(vhost, MessageTotals()))
    return sums, vhosts, False


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register /api/overview, /api/nodes, /api/cluster-name on `router`."""
    stats = context.statistics

    def rates_of(vhosts: list[VHost], everything: bool) -> dict[str, float]:
        if everything:
            return stats.overview.rates("overview")
        summed: dict[str, float] = {}
        for vhost in vhosts:
            for name, rate in stats.vhost_table.rates(vhost).items():
                summed[name] = round(summed.get(name, 0.0) + rate, 1)
        return summed

    @router.route("/api/overview")
    def overview(request: Request) -> Response:
        user = user_of(request)
        totals, vhosts, everything = _totals_for(context, user)
        rates = rates_of(vhosts, everything)
        values: dict[str, int] = {name: getattr(totals, name) for name in MESSAGE_FIELDS}
        values["deliver_get"] = deliver_get(totals)
        values["disk_reads"] = values["disk_writes"] = 0
        message_stats: dict[str, Any] = {}
        for name in OVERVIEW_MESSAGE_FIELDS:
            with_details(message_stats, name, values[name], rates)
        churn = context.counters.churn()
        churn_rates: dict[str, Any] = {}
        for name in CHURN_FIELDS:
            with_details(churn_rates, name, churn[name], rates)
        ready = unacked = queues = exchanges = 0
        for vhost in vhosts:
            for queue in vhost.queues.values():
                ready += len(queue.ready)
                unacked += queue.unacked_count
            queues += len(vhost.queues)
            exchanges += len(vhost.topology.exchanges)
        queue_totals: dict[str, Any] = {}
        with_details(queue_totals, "messages", ready + unacked, rates)
        with_details(queue_totals, "messages_ready", ready, rates)
        with_details(queue_totals, "messages_unacknowledged", unacked, rates)
        names = {vhost.name for vhost in vhosts}
        connections = [
            c for c in context.connections()
            if c.live and c.vhost is not None and c.vhost.name in names
            and (everything or c.user == user.name)
        ]
        channels = sum(len(c.channels) for c in connections)
        consumers = sum(
            len(channel.consumers) for c in connections for channel in c.channels.values()
        )
        body = {
            "management_version": API_VERSION,
            "rates_mode": "basic",
            "sample_retention_policies": {
                "global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600],
            },
            "exchange_types": EXCHANGE_TYPES,
            "product_version": broker.__version__,
            "product_name": "Warren",
            "rabbitmq_version": API_VERSION,
            "cluster_name": context.cluster_name,
            "erlang_version": platform.python_version(),
            "erlang_full_version": f"Python {sys.version}",
            "release_series_support_status": "supported",
            "disable_stats": False,
            "enable_queue_totals": False,
            "message_stats": message_stats,
            "churn_rates": churn_rates,
            "queue_totals": queue_totals,
            "object_totals": {
                "channels": channels,
                "connections": len(connections),
                "consumers": consumers,
                "exchanges": exchanges,
                "queues": queues,
            },
            "statistics_db_event_queue": 0,
            "node": context.node_name,
            "listeners": listener_items(context),
            "contexts": _contexts(context),
        }
        return reply_item(request, body)

    @router.route("/api/cluster-name")
    def cluster_name(request: Request) -> Response:
        return Response.json({"name": context.cluster_name})

    def node_item() -> dict[str, Any]:
        churn = context.counters.churn()
        rates = stats.overview.rates("overview")
        alarms = context.alarms.resources
        item: dict[str, Any] = {
            "partitions": [],
            "os_pid": str(os.getpid()),
            "fd_total": process.max_fds(),
            "sockets_total": process.max_fds(),
            "mem_limit": context.memory_limit,
            "mem_alarm": "memory" in alarms,
            "disk_free_limit": context.disk_free_limit,
            "disk_free_alarm": "disk" in alarms,
            "proc_total": 1_048_576,
            "rates_mode": "basic",
            "uptime": int((time.time() - context.started_at) * 1000),
            "run_queue": 0,
            "processors": os.cpu_count() or 1,
            "exchange_types": EXCHANGE_TYPES,
            "auth_mechanisms": [
                {"name": name, "description": text, "enabled": True}
                for name, text in AUTH_MECHANISMS.items()
            ],
            "applications": [
                {"name": "warren", "description": "Warren AMQP 0-9-1 broker",
                 "version": broker.__version__},
            ],
            "contexts": _contexts(context),
            "log_files": [],
            "db_dir": str(context.data_dir) if context.data_dir is not None else "",
            "config_files": [],
            "net_ticktime": 60,
            "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
            "mem_calculation_strategy": "rss",
            "name": context.node_name,
            "type": "disc",
            "running": True,
        }
        with_details(item, "mem_used", process.resident_memory(), {})
        with_details(item, "fd_used", process.open_fds(), {})
        with_details(item, "sockets_used", process.open_tcp_sockets(), {})
        with_details(item, "proc_used", 1, {})
        with_details(item, "disk_free", process.disk_free(context.data_dir), {})
        for name in CHURN_FIELDS:
            with_details(item, name, churn[name], rates)
        return item

    @router.route("/api/nodes")
    def nodes(request: Request) -> Response:
        require_monitor(request)
        return reply_list(request, [node_item()], default_sort=("name",))

    @router.route("/api/nodes/{node}")
    def node(request: Request) -> Response:
        require_monitor(request)
        if request.params["node"] != context.node_name:
            raise HttpError.not_found()
        return reply_item(request, node_item())
