"""Exchanges: list, show, declare, delete, their bindings, publish.

    GET    /api/exchanges[/V]                          vhost-filtered list
    GET    /api/exchanges/V/E                          one exchange (amq.default is "")
    PUT    /api/exchanges/V/E                          declare (201 made, 204 existed)
    DELETE /api/exchanges/V/E[?if-unused=true]         delete (204)
    GET    /api/exchanges/V/E/bindings/source          bindings from E
    GET    /api/exchanges/V/E/bindings/destination     bindings to E
    POST   /api/exchanges/V/E/publish                  publish one message: {"routed": bool}

A publish refused over HTTP is a 400 whose reason carries the AMQP code
("403 ACCESS_REFUSED - ...", "404 NOT_FOUND - ..."), as RabbitMQ answers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from broker.core import errors
from broker.core.message import Message, parse_expiration
from broker.core.vhost import VHost
from broker.management.api.common import (
    api_access,
    body_bool,
    bool_query,
    exchange_name,
    http_error,
    vhost_for_write,
    vhost_or_404,
    visible_vhosts,
)
from broker.management.authz import require_vhost, user_of
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.query import reply_item, reply_list, reply_objects
from broker.management.router import Router
from broker.management.stats import Totals
from broker.management.views import binding_item, dedup_fields, exchange_item
from broker.session import authorization
from protocol.errors import AMQPError
from protocol.properties import BasicProperties
from routing.exchanges import EXCHANGE_TYPES
from routing.exchanges.base import Destination, Exchange

__all__ = ["add_routes", "properties_from_json"]

#: Who declared the built-in exchanges, as RabbitMQ names it.
INTERNAL_USER = "rmq-internal"

_STRING_PROPERTIES = (
    "content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
    "message_id", "type", "user_id", "app_id", "cluster_id",
)
_INT_PROPERTIES = ("delivery_mode", "priority", "timestamp")


def properties_from_json(given: Any) -> BasicProperties:
    """The basic properties of a JSON `properties` object (unknown keys ignored)."""
    if not isinstance(given, dict):
        given = {}
    values: dict[str, Any] = {}
    for name in _STRING_PROPERTIES:
        if name in given and given[name] is not None:
            values[name] = str(given[name])
    for name in _INT_PROPERTIES:
        if name in given and given[name] is not None:
            value = given[name]
            if isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise HttpError(400, "bad_request", ["not_int", name])
            values[name] = value
    headers = given.get("headers")
    if isinstance(headers, dict):
        values["headers"] = headers
    return BasicProperties(**values)


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the exchange endpoints on `router`."""
    access = context.access
    stats = context.statistics

    def item(vhost: VHost, exchange: Exchange, totals: Totals) -> dict[str, Any]:
        builtin = exchange.name == "" or exchange.name.startswith("amq.")
        user = INTERNAL_USER if builtin else vhost.exchange_users.get(exchange.name, "")
        answer = exchange_item(
            vhost.name, exchange, totals.exchange(vhost, exchange.name),
            stats.exchanges.rates(exchange), user,
            vhost.policy_fields("exchanges", exchange.name) if vhost.policies else None,
        )
        known = vhost.dedup_caches.get(exchange.name)
        if known is not None and known[0] is exchange and known[1] is not None:
            dedup_fields(answer, known[1])  # LavinMQ's dedup count (Warren's field names)
        elif vhost.topology.dedup_exchanges and vhost.topology.dedup_settings(exchange.name):
            answer["deduplicated"] = answer["deduplication_keys"] = 0
        if exchange.type == "x-delayed-message":
            # The plugin's exchange info item (rabbit_exchange_type_delayed_message:info/2).
            answer["messages_delayed"] = vhost.delayed.count(exchange.name)
        return answer

    async def reply_exchanges(request: Request, vhosts: list[VHost]) -> Response:
        totals = Totals.now(context.vhosts, context.connections())
        pairs = [
            (vhost, vhost.topology.exchanges[name])
            for vhost in sorted(vhosts, key=lambda v: v.name)
            for name in sorted(vhost.topology.exchanges)
        ]
        return await reply_objects(
            request, pairs, lambda pair: item(*pair, totals), lambda p: p[1].name
        )

    @router.route("/api/exchanges")
    async def list_exchanges(request: Request) -> Response:
        return await reply_exchanges(request, visible_vhosts(context, user_of(request)))

    @router.route("/api/exchanges/{vhost}")
    async def list_vhost_exchanges(request: Request) -> Response:
        require_vhost(access, request, request.params["vhost"])
        return await reply_exchanges(request, [vhost_or_404(context, request.params["vhost"])])

    def exchange_or_404(request: Request) -> tuple[VHost, Exchange]:
        vhost = vhost_or_404(context, request.params["vhost"])
        exchange = vhost.topology.exchanges.get(exchange_name(request.params["exchange"]))
        if exchange is None:
            raise HttpError.not_found()
        return vhost, exchange

    @router.route("/api/exchanges/{vhost}/{exchange}")
    def get_exchange(request: Request) -> Response:
        require_vhost(access, request, request.params["vhost"])
        vhost, exchange = exchange_or_404(request)
        shown = item(vhost, exchange, Totals.now(context.vhosts, context.connections()))
        shown["incoming"] = []
        shown["outgoing"] = []
        return reply_item(request, dict(sorted(shown.items())))

    @router.route("/api/exchanges/{vhost}/{exchange}", "PUT")
    def put_exchange(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_for_write(context, request.params["vhost"])
        name = exchange_name(request.params["exchange"])
        body = request.json_object()
        type_ = body.get("type", "direct")
        if type_ not in EXCHANGE_TYPES:
            raise HttpError.bad_request(f"unknown exchange type '{type_}'")
        durable = body_bool(body, "durable", False)
        auto_delete = body_bool(body, "auto_delete", False)
        internal = body_bool(body, "internal", False)
        arguments = body.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise HttpError.bad_request("arguments must be an object")
        existed = vhost.has_exchange(name)
        try:
            authorization.declare_exchange(
                api_access(context, user, vhost), vhost, name, type_, arguments
            )
            vhost.declare_exchange(
                name, type_, durable=durable, auto_delete=auto_delete, internal=internal,
                arguments=arguments, peer=request.peer, user=user.name,
            )
        except AMQPError as error:
            raise http_error(error) from None
        return Response(201, [("content-length", "0")]) if not existed else Response.empty(204)

    @router.route("/api/exchanges/{vhost}/{exchange}", "DELETE")
    def delete_exchange(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        name = exchange_name(request.params["exchange"])
        try:
            authorization.delete_exchange(api_access(context, user, vhost), vhost, name)
        except AMQPError as error:
            raise http_error(error) from None
        if not vhost.has_exchange(name):
            raise HttpError.not_found()
        try:
            vhost.delete_exchange(name, if_unused=bool_query(request, "if-unused"), peer=request.peer)
        except AMQPError as error:
            raise http_error(error) from None
        return Response.empty(204)

    def _bindings(request: Request, source: bool) -> Response:
        require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        name = exchange_name(request.params["exchange"])
        topology = vhost.topology
        if source:
            found = topology.bindings_from(name)
        else:
            found = topology.bindings_to(Destination("exchange", name))
        return reply_list(request, [binding_item(vhost.name, b) for b in found], default_sort=())

    @router.route("/api/exchanges/{vhost}/{exchange}/bindings/source")
    def source_bindings(request: Request) -> Response:
        return _bindings(request, source=True)

    @router.route("/api/exchanges/{vhost}/{exchange}/bindings/destination")
    def destination_bindings(request: Request) -> Response:
        return _bindings(request, source=False)

    @router.route("/api/exchanges/{vhost}/{exchange}/publish", "POST")
    def publish(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        name = exchange_name(request.params["exchange"])
        body = request.json_object()
        missing = [k for k in ("properties", "routing_key", "payload", "payload_encoding")
                   if k not in body]
        if missing:
            raise HttpError.bad_request(
                "[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]"
            )
        encoding = body["payload_encoding"]
        payload = body["payload"]
        if encoding == "string":
            data = str(payload).encode("utf-8")
        elif encoding == "base64":
            try:
                data = base64.b64decode(str(payload), validate=True)
            except (binascii.Error, ValueError):
                raise HttpError(400, "bad_request", ["not_base64", str(payload)]) from None
        else:
            raise HttpError(400, "bad_request", ["unsupported_encoding", str(encoding)])
        properties = properties_from_json(body["properties"])
        routing_key = str(body["routing_key"])
        try:
            user_access = api_access(context, user, vhost)
            user_access.check("write", "exchange", name)
            vhost.check_publish(name)
            if user_access.topic_restricted and vhost.topology.exchanges[name].type == "topic":
                user_access.check_topic("write", name, routing_key)
            if properties.user_id is not None and properties.user_id != user.name and not (
                user_access.is_impersonator
            ):
                raise errors.precondition_failed(
                    f"user_id property set to '{properties.user_id}' but authenticated user "
                    f"was '{user.name}'"
                )
            if properties.expiration is not None:
                try:
                    parse_expiration(properties.expiration)
                except ValueError as error:
                    raise errors.precondition_failed(
                        f"invalid expiration '{properties.expiration}': {error}"
                    ) from None
            message = Message(name, routing_key, properties.encode(), data)
            message.set_decoded(properties)
            queues = vhost.route(name, message)
        except AMQPError as error:
            # "404 NOT_FOUND - no exchange 'x' in vhost '/'": the code, then the text.
            raise HttpError.bad_request(f"{error.reply_code} {error.reply_text}") from None
        if queues and message.headers is not None:
            message = message.without_bcc()
        for queue in queues:
            queue.enqueue(message)
        # The vhost and the broker count it as RabbitMQ's API channel would
        # (mandatory: an unroutable message is returned).
        vhost.retire_exchange_counts(name, 1, len(queues))
        for totals in (vhost.retired, vhost.counters.retired):
            totals.publish += 1
            totals.routed += len(queues)
            if not queues:
                totals.return_unroutable += 1
        return Response.json({"routed": bool(queues)})
