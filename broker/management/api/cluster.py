"""A Warren cluster's state: /api/cluster, and /api/cluster/health for load balancers.

`GET /api/cluster/health` needs no credentials (a TCP load balancer's health
check has none): 200 on the leader, the only node that serves AMQP, 503 on a
follower or a node without a leader, with a body that says who leads. A
single node (no cluster) answers 200: it is its own leader.

`GET /api/cluster` (monitoring tag, as /api/nodes) adds the replication:
each follower's acknowledged batch and how far behind it is, the election's
fencing revision, the confirm mode. RabbitMQ has no such endpoint (its
clustering is another design); the names are Warren's (docs/cluster.md).
"""

from __future__ import annotations

from typing import Any

from broker.management.authz import require_monitor
from broker.management.context import ManagementContext
from broker.management.messages import Request, Response
from broker.management.router import Router

__all__ = ["add_routes", "add_health_route", "single_node_status"]


def single_node_status(context: ManagementContext) -> dict[str, Any]:
    return {"cluster": None, "node": context.node_name, "role": "leader", "leader": context.node_name}


def _status(context: ManagementContext) -> dict[str, Any]:
    if context.cluster_status is None:
        return single_node_status(context)
    return context.cluster_status()


def add_health_route(router: Router, status: Any) -> None:
    """/api/cluster/health answered from `status()` (a dict with "role")."""

    @router.route("/api/cluster/health", auth=False)
    def health(request: Request) -> Response:
        state = status()
        public = {key: state.get(key) for key in
                  ("cluster", "node", "role", "leader", "leader_amqp", "leader_management", "term")}
        return Response.json(public, 200 if state.get("role") == "leader" else 503)


def add_routes(router: Router, context: ManagementContext) -> None:
    add_health_route(router, lambda: _status(context))

    @router.route("/api/cluster")
    def cluster(request: Request) -> Response:
        require_monitor(request)
        return Response.json(_status(context))
