"""Bindings: list, create, show, delete.

    GET         /api/bindings[/V]                      every binding, default ones included
    GET POST    /api/bindings/V/e/E/q/Q                between an exchange and a queue
    GET POST    /api/bindings/V/e/E/e/E2               between two exchanges
    GET DELETE  /api/bindings/V/e/E/{q|e}/D/PROPS      one binding by its properties_key

A POST answers 201 with `Location: D/PROPS` (relative, the properties key
percent-encoded once more), which Terraform's provider reads; PROPS is the
binding's `properties_key` (`broker.management.views.properties_key`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from broker.core.vhost import VHost
from broker.management.api.common import (
    api_access,
    exchange_name,
    http_error,
    plain_text,
    vhost_or_404,
    visible_vhosts,
)
from broker.management.authz import require_vhost, user_of
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.query import build_items, reply_item, reply_list, reply_list_async
from broker.management.router import Router
from broker.management.views import (
    binding_item,
    default_binding_item,
    has_properties_key,
    properties_key,
)
from broker.session import authorization
from protocol.constants import ReplyCode
from protocol.errors import AMQPError
from routing.exchanges.base import Binding, Destination

__all__ = ["add_routes"]

_SORT = ("vhost", "source", "destination", "destination_type", "routing_key", "properties_key")


def _entries(vhosts: list[VHost]) -> list[tuple[str, Binding | None, str]]:
    """(vhost, binding, queue) in listing order: per vhost, each queue's default
    binding, then the explicit bindings by source, destination, key."""
    out: list[tuple[str, Binding | None, str]] = []
    for vhost in sorted(vhosts, key=lambda v: v.name):
        out += [(vhost.name, None, name) for name in sorted(vhost.queues)]
        explicit = sorted(
            vhost.topology.bindings(),
            key=lambda b: (b.source, b.destination.name, b.destination.kind, b.routing_key),
        )
        out += [(vhost.name, b, "") for b in explicit]
    return out


def _entry_item(entry: tuple[str, Binding | None, str]) -> dict[str, Any]:
    vhost, binding, queue = entry
    if binding is None:
        return default_binding_item(vhost, queue)
    return binding_item(vhost, binding)


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the binding endpoints on `router`."""
    access = context.access

    async def reply_bindings(request: Request, vhosts: list[VHost]) -> Response:
        items = await build_items(_entries(vhosts), _entry_item)
        return await reply_list_async(request, items, _SORT, presorted=True)

    @router.route("/api/bindings")
    async def list_bindings(request: Request) -> Response:
        return await reply_bindings(request, visible_vhosts(context, user_of(request)))

    @router.route("/api/bindings/{vhost}")
    async def list_vhost_bindings(request: Request) -> Response:
        require_vhost(access, request, request.params["vhost"])
        return await reply_bindings(request, [vhost_or_404(context, request.params["vhost"])])

    def between(request: Request, kind: str) -> tuple[VHost, str, Destination, list[Binding]]:
        require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        source = exchange_name(request.params["source"])
        name = request.params["destination"]
        destination = Destination(kind, exchange_name(name) if kind == "exchange" else name)
        found = [b for b in vhost.topology.bindings_from(source) if b.destination == destination]
        return vhost, source, destination, found

    def list_between(kind: str) -> Any:
        def handler(request: Request) -> Response:
            vhost, _source, _destination, found = between(request, kind)
            return reply_list(
                request, [binding_item(vhost.name, b) for b in found], default_sort=_SORT[2:]
            )
        return handler

    def create(kind: str) -> Any:
        def handler(request: Request) -> Response:
            user = user_of(request)
            vhost, source, destination, _found = between(request, kind)
            body = request.json_object()
            routing_key = body.get("routing_key", "")
            if not isinstance(routing_key, str):
                routing_key = str(routing_key)
            arguments = body.get("arguments") or {}
            if not isinstance(arguments, dict):
                raise HttpError.bad_request("arguments must be an object")
            user_access = api_access(context, user, vhost)
            try:
                if kind == "queue":
                    authorization.bind_queue(
                        user_access, vhost, destination.name, source, routing_key
                    )
                    vhost.bind_queue(None, destination.name, source, routing_key, arguments)
                else:
                    authorization.bind_exchange(
                        user_access, vhost, destination.name, source, routing_key
                    )
                    vhost.bind_exchange(destination.name, source, routing_key, arguments)
            except AMQPError as error:
                if error.reply_code == ReplyCode.NOT_FOUND:
                    raise HttpError(404, "not_found", plain_text(error)) from None
                raise http_error(error) from None
            key = properties_key(routing_key, arguments)
            location = f"{quote(request.params['destination'], safe='')}/{quote(key, safe='')}"
            return Response(201, [("location", location), ("content-length", "0")])
        return handler

    def one(request: Request, kind: str) -> tuple[VHost, Binding]:
        vhost, _source, _destination, found = between(request, kind)
        wanted = request.params["props"]
        for binding in found:
            if has_properties_key(binding, wanted):
                return vhost, binding
        raise HttpError.not_found()

    def show(kind: str) -> Any:
        def handler(request: Request) -> Response:
            vhost, binding = one(request, kind)
            return reply_item(request, binding_item(vhost.name, binding))
        return handler

    def delete(kind: str) -> Any:
        def handler(request: Request) -> Response:
            user = user_of(request)
            vhost, binding = one(request, kind)
            user_access = api_access(context, user, vhost)
            try:
                if kind == "queue":
                    authorization.bind_queue(
                        user_access, vhost, binding.destination.name, binding.source,
                        binding.routing_key,
                    )
                    vhost.unbind_queue(
                        None, binding.destination.name, binding.source, binding.routing_key,
                        dict(binding.arguments),
                    )
                else:
                    authorization.bind_exchange(
                        user_access, vhost, binding.destination.name, binding.source,
                        binding.routing_key,
                    )
                    vhost.unbind_exchange(
                        binding.destination.name, binding.source, binding.routing_key,
                        dict(binding.arguments),
                    )
            except AMQPError as error:
                raise http_error(error) from None
            return Response.empty(204)
        return handler

    for letter, kind in (("q", "queue"), ("e", "exchange")):
        base = f"/api/bindings/{{vhost}}/e/{{source}}/{letter}/{{destination}}"
        router.add(base, list_between(kind))
        router.add(base, create(kind), methods=["POST"])
        router.add(f"{base}/{{props}}", show(kind))
        router.add(f"{base}/{{props}}", delete(kind), methods=["DELETE"])
