"""The management application: every endpoint on one router, behind the broker's users.

    app = management_app(context)
    await serve_http_listeners(app, listeners)

The endpoints live in `broker.management.api.*`, one module per area; this
module only puts them together with the authentication (HTTP Basic against
the broker's users, the loopback rule, the management tags).
"""

from __future__ import annotations

from broker.management.api import admin, bindings, connections, exchanges, overview, queues
from broker.management.authz import authenticator
from broker.management.context import ManagementContext
from broker.management.http import HttpApp
from broker.management.messages import Request, Response
from broker.management.router import Router

__all__ = ["management_app"]


def management_app(context: ManagementContext) -> HttpApp:
    """The HTTP application of the management plane for one broker."""
    router = Router()
    admin.add_routes(router, context)
    overview.add_routes(router, context)
    queues.add_routes(router, context)
    exchanges.add_routes(router, context)
    bindings.add_routes(router, context)
    connections.add_routes(router, context)

    @router.route("/api", auth=False, produces=None)
    def api_root(request: Request) -> Response:
        return Response(301, [("location", "/api/index.html"), ("content-length", "0")])

    return HttpApp(router, authenticate=authenticator(context.access))
