"""The management application: every endpoint on one router, behind the broker's users.

    app = management_app(context)
    await serve_http_listeners(app, listeners)

The endpoints live in `broker.management.api.*`, one module per area; this
module only puts them together with the authentication (HTTP Basic against
the broker's users, the loopback rule, the management tags), and serves the
dashboard's files (`broker/management/dashboard/`, docs/management.md) at `/`
and `/static/...`, without credentials: the dashboard logs in to the API itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.management.api import (
    admin,
    bindings,
    cluster,
    connections,
    exchanges,
    overview,
    parameters,
    policies,
    queues,
    trace,
)
from broker.management.authz import authenticator
from broker.management.context import ManagementContext
from broker.management.http import HttpApp
from broker.management.messages import Request, Response
from broker.management.router import Router
from broker.management.static import StaticFiles

__all__ = ["DASHBOARD_ROOT", "follower_app", "management_app"]

#: The dashboard: index.html, and static/ with the styles and the JS modules.
DASHBOARD_ROOT = Path(__file__).parent / "dashboard"


def management_app(context: ManagementContext) -> HttpApp:
    """The HTTP application of the management plane for one broker."""
    router = Router()
    admin.add_routes(router, context)
    policies.add_routes(router, context)
    parameters.add_routes(router, context)
    overview.add_routes(router, context)
    queues.add_routes(router, context)
    exchanges.add_routes(router, context)
    bindings.add_routes(router, context)
    connections.add_routes(router, context)
    cluster.add_routes(router, context)

    @router.route("/api", auth=False, produces=None)
    def api_root(request: Request) -> Response:
        return Response(301, [("location", "/api/index.html"), ("content-length", "0")])

    trace.add_routes(router, context)
    router.add("/", StaticFiles(DASHBOARD_ROOT), auth=False, produces=None)
    router.add("/static/{path*}", StaticFiles(DASHBOARD_ROOT / "static"), auth=False, produces=None)

    return HttpApp(router, authenticate=authenticator(context.access))


def follower_app(status: Callable[[], dict[str, Any]]) -> HttpApp:
    """A cluster follower's HTTP application: only /api/cluster/health (503,
    naming the leader). A follower has no users of its own to check
    credentials against, and no broker state to show (docs/cluster.md)."""
    router = Router()
    cluster.add_health_route(router, status)
    return HttpApp(router, authenticate=lambda *_args: None)
