"""Connections, channels and consumers: list, show, close.

    GET    /api/connections                      all (monitoring, administrator) or one's own
    GET    /api/connections/NAME                 monitoring or the owner
    DELETE /api/connections/NAME                 administrator or the owner: connection.close
                                                 320 "CONNECTION_FORCED - <X-Reason>"
    GET    /api/connections/NAME/channels
    GET    /api/vhosts/V/connections, /api/vhosts/V/channels
    GET    /api/channels, /api/channels/NAME
    GET    /api/consumers[/V]

NAME is RabbitMQ's "127.0.0.1:51234 -> 127.0.0.1:5672" (percent-encoded in
the path); a channel's is that and " (N)".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from broker.management.api.common import vhost_or_404
from broker.management.authz import ApiUser, require_vhost, user_of
from broker.management.context import ManagementContext
from broker.management.messages import NOT_AUTHORISED_OBJECT, HttpError, Request, Response
from broker.management.query import reply_item, reply_list
from broker.management.router import Router
from broker.management.views import channel_item, connection_item, consumer_item
from broker.session.connection import ClientConnection
from broker.session.snapshots import (
    connection_name,
    snapshot_channel,
    snapshot_connection,
    snapshot_consumers,
)
from protocol.constants import ReplyCode

__all__ = ["DEFAULT_CLOSE_REASON", "add_routes"]

#: RabbitMQ's reason when DELETE /api/connections/NAME has no X-Reason header.
DEFAULT_CLOSE_REASON = "Closed via management plugin"


def _shortstr(text: str) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= 255:
        return text
    return encoded[:252].decode("utf-8", "ignore") + "..."


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the connection, channel and consumer endpoints on `router`."""
    access = context.access
    stats = context.statistics
    node = context.node_name

    def open_connections() -> list[ClientConnection]:
        return [c for c in context.connections() if c.live and not c.closing]

    def visible(user: ApiUser) -> Iterable[ClientConnection]:
        for connection in open_connections():
            if user.is_monitor or connection.user == user.name:
                yield connection

    def by_name(name: str) -> ClientConnection:
        for connection in open_connections():
            if connection_name(connection.info) == name:
                return connection
        raise HttpError.not_found()

    def may_see(user: ApiUser, connection: ClientConnection) -> None:
        if not (user.is_monitor or connection.user == user.name):
            raise HttpError.not_authorised(NOT_AUTHORISED_OBJECT)

    def connection_json(connection: ClientConnection, single: bool = False) -> dict[str, Any]:
        return connection_item(
            snapshot_connection(connection), node, stats.connection_table.rates(connection),
            single=single,
        )

    def channels_json(connections: Iterable[ClientConnection]) -> list[dict[str, Any]]:
        items = []
        for connection in connections:
            for number in sorted(connection.channels):
                channel = connection.channels[number]
                snap = snapshot_channel(connection, channel)
                items.append(channel_item(snap, node, stats.channels.rates(channel)))
        return items

    # -- connections -----------------------------------------------------------------------

    @router.route("/api/connections")
    def list_connections(request: Request) -> Response:
        user = user_of(request)
        return reply_list(request, [connection_json(c) for c in visible(user)])

    @router.route("/api/connections/{name}")
    def get_connection(request: Request) -> Response:
        user = user_of(request)
        connection = by_name(request.params["name"])
        may_see(user, connection)
        return reply_item(request, connection_json(connection, single=True))

    @router.route("/api/connections/{name}", "DELETE")
    def close_connection(request: Request) -> Response:
        user = user_of(request)
        connection = by_name(request.params["name"])
        if not (user.is_admin or connection.user == user.name):
            raise HttpError.not_authorised(NOT_AUTHORISED_OBJECT)
        reason = request.header("x-reason") or DEFAULT_CLOSE_REASON
        connection.close(ReplyCode.CONNECTION_FORCED, _shortstr(f"CONNECTION_FORCED - {reason}"))
        return Response.empty(204)

    @router.route("/api/connections/{name}/channels")
    def connection_channels(request: Request) -> Response:
        user = user_of(request)
        connection = by_name(request.params["name"])
        may_see(user, connection)
        return reply_list(request, channels_json([connection]))

    @router.route("/api/vhosts/{vhost}/connections")
    def vhost_connections(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        return reply_list(request, [
            connection_json(c) for c in visible(user) if c.vhost is vhost
        ])

    @router.route("/api/vhosts/{vhost}/channels")
    def vhost_channels(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        return reply_list(request, channels_json(c for c in visible(user) if c.vhost is vhost))

    # -- channels ----------------------------------------------------------------------------

    @router.route("/api/channels")
    def list_channels(request: Request) -> Response:
        return reply_list(request, channels_json(visible(user_of(request))))

    @router.route("/api/channels/{name}")
    def get_channel(request: Request) -> Response:
        user = user_of(request)
        name = request.params["name"]
        for connection in open_connections():
            prefix = connection_name(connection.info) + " ("
            if not name.startswith(prefix) or not name.endswith(")"):
                continue
            try:
                number = int(name[len(prefix):-1])
            except ValueError:
                break
            channel = connection.channels.get(number)
            if channel is None:
                break
            may_see(user, connection)
            snap = snapshot_channel(connection, channel)
            shown = channel_item(snap, node, stats.channels.rates(channel))
            shown["consumer_details"] = [
                consumer_item(c, node) for c in snapshot_consumers(connection)
                if c.channel_number == number
            ]
            shown["deliveries"] = []
            shown["publishes"] = []
            return reply_item(request, dict(sorted(shown.items())))
        raise HttpError.not_found()

    # -- consumers ------------------------------------------------------------------------------

    def consumers_json(user: ApiUser, vhost: str | None = None) -> list[dict[str, Any]]:
        return [
            consumer_item(snap, node)
            for connection in visible(user)
            for snap in snapshot_consumers(connection)
            if vhost is None or snap.vhost == vhost
        ]

    @router.route("/api/consumers")
    def list_consumers(request: Request) -> Response:
        items = consumers_json(user_of(request))
        return reply_list(request, items, default_sort=("queue.vhost", "queue.name", "consumer_tag"))

    @router.route("/api/consumers/{vhost}")
    def list_vhost_consumers(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        items = consumers_json(user, vhost.name)
        return reply_list(request, items, default_sort=("queue.vhost", "queue.name", "consumer_tag"))

