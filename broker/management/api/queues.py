"""Queues: list, show, declare, delete, purge, get messages; the aliveness test.

    GET    /api/queues[/V]                        vhost-filtered list
    GET    /api/queues/V/Q                        one queue, with consumer_details
    PUT    /api/queues/V/Q                        declare (201 made, 204 existed)
    DELETE /api/queues/V/Q[?if-empty&if-unused]   delete (204)
    DELETE /api/queues/V/Q/contents               purge (204)
    GET    /api/queues/V/Q/bindings               its bindings, the default one first
    POST   /api/queues/V/Q/get                    basic.get as RabbitMQ's API does it
    GET    /api/aliveness-test/V                  declare, publish, get: {"status":"ok"}

Reading a queue changes nothing (`Queue.snapshot()`: no message expires
because someone looked). Lists are built and encoded a chunk at a time
(`broker.management.query`), so /api/queues with 10,000 queues does not
stall deliveries.
"""

from __future__ import annotations

import base64
from typing import Any

from broker.core.message import Message, QueuedMessage
from broker.core.queue import Queue
from broker.core.vhost import VHost
from broker.management.api.common import (
    api_access,
    body_bool,
    bool_query,
    http_error,
    plain_text,
    vhost_for_write,
    vhost_or_404,
    visible_vhosts,
)
from broker.management.authz import ApiUser, require_vhost, user_of
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response, json_body
from broker.management.query import reply_item, reply_list, reply_objects
from broker.management.router import Router
from broker.management.views import (
    binding_item,
    consumer_item,
    default_binding_item,
    json_value,
    queue_item,
)
from broker.session import authorization
from broker.session.consumers import Consumer
from broker.session.snapshots import ConsumerSnapshot, channel_name, connection_name
from protocol.constants import ReplyCode
from protocol.errors import AMQPError
from protocol.properties import BasicProperties

__all__ = ["add_routes", "message_item"]

ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false")
#: The queue and message of /api/aliveness-test (RabbitMQ's names).
ALIVENESS_QUEUE = "aliveness-test"
ALIVENESS_MESSAGE = b"test_message"

_PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
    "user_id", "app_id", "cluster_id",
)


def _key_missing(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in body]
    if missing:
        raise HttpError.bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


def message_item(
    message: Message, redelivered: bool, message_count: int, encoding: str, truncate: int | None
) -> dict[str, Any]:
    """One message as POST .../get answers it."""
    body = message.body
    payload = body if truncate is None else body[:truncate]
    text: str | None = None
    if encoding == "auto":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    properties = message.decoded_properties
    shown = {
        name: json_value(getattr(properties, name))
        for name in _PROPERTY_NAMES
        if getattr(properties, name) is not None
    }
    return {
        "payload_bytes": len(body),
        "redelivered": redelivered,
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "message_count": message_count,
        # RabbitMQ writes an empty property list as [] (an empty Erlang proplist).
        "properties": shown if shown else [],
        "payload": text if text is not None else base64.b64encode(payload).decode("ascii"),
        "payload_encoding": "string" if text is not None else "base64",
    }


def _consumer_snapshots(queue: Queue) -> list[ConsumerSnapshot]:
    out = []
    for consumer in queue.consumers:
        if not isinstance(consumer, Consumer):
            continue
        channel: Any = consumer.channel
        connection: Any = getattr(channel, "connection", None)
        info = getattr(connection, "info", None)
        if info is None:
            continue
        out.append(ConsumerSnapshot(
            consumer_tag=consumer.tag,
            queue=queue.name,
            vhost=queue.vhost_name,
            channel_name=channel_name(info, channel.number),
            channel_number=channel.number,
            connection_name=connection_name(info),
            peer_host=info.peer_host,
            peer_port=info.peer_port,
            user=getattr(connection, "user", None),
            ack_required=not consumer.no_ack,
            exclusive=consumer.exclusive,
            prefetch_count=consumer.prefetch_count,
            arguments=dict(consumer.arguments),
            has_credit=consumer.has_credit(),
            activity_status=queue.consumer_activity(consumer),
        ))
    return out


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the queue endpoints on `router`."""
    access = context.access
    stats = context.statistics

    def item(queue: Queue) -> dict[str, Any]:
        return queue_item(queue, context.node_name, stats.queues.rates(queue))

    # Each queue's JSON as last listed, with the state it showed: a queue
    # that has not changed since (most of 10,000, between two samples) is
    # not built again. Entries of deleted queues go at the next full list.
    encoded_cache: dict[Queue, tuple[tuple[Any, ...], bytes]] = {}

    def encoded(queue: Queue) -> bytes:
        key = (stats.queues.rate_values(queue), queue.state_key())
        cached = encoded_cache.get(queue)
        if cached is not None and cached[0] == key:
            return cached[1]
        data = json_body(item(queue))
        encoded_cache[queue] = (key, data)
        return data

    def queues_of(vhosts: list[VHost]) -> list[Queue]:
        # Sorted by (vhost, name) here, cheaply, so the list needs no sort of its dicts.
        out: list[Queue] = []
        for vhost in sorted(vhosts, key=lambda v: v.name):
            out += sorted(vhost.queues.values(), key=lambda q: q.name)
        return out

    async def reply_queues(request: Request, vhosts: list[VHost]) -> Response:
        for queue in [q for q in encoded_cache if q.deleted]:
            del encoded_cache[queue]
        return await reply_objects(
            request, queues_of(vhosts), item, lambda q: q.name, encode=encoded
        )

    @router.route("/api/queues")
    async def list_queues(request: Request) -> Response:
        user = user_of(request)
        return await reply_queues(request, visible_vhosts(context, user))

    @router.route("/api/queues/{vhost}")
    async def list_vhost_queues(request: Request) -> Response:
        require_vhost(access, request, request.params["vhost"])
        return await reply_queues(request, [vhost_or_404(context, request.params["vhost"])])

    def queue_or_404(request: Request) -> Queue:
        vhost = vhost_or_404(context, request.params["vhost"])
        queue = vhost.queues.get(request.params["name"])
        if queue is None:
            raise HttpError.not_found()
        return queue

    @router.route("/api/queues/{vhost}/{name}")
    def get_queue(request: Request) -> Response:
        require_vhost(access, request, request.params["vhost"])
        queue = queue_or_404(request)
        shown = item(queue)
        shown["consumer_details"] = [
            consumer_item(snap, context.node_name) for snap in _consumer_snapshots(queue)
        ]
        shown["deliveries"] = []
        shown["incoming"] = []
        return reply_item(request, dict(sorted(shown.items())))

    @router.route("/api/queues/{vhost}/{name}", "PUT")
    def put_queue(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_for_write(context, request.params["vhost"])
        body = request.json_object()
        name = request.params["name"]
        arguments = body.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise HttpError.bad_request("arguments must be an object")
        durable = body_bool(body, "durable", False)
        auto_delete = body_bool(body, "auto_delete", False)
        existed = name in vhost.queues
        check_configure, check_new = authorization.queue_declare_checks(
            api_access(context, user, vhost), vhost
        )
        try:
            vhost.declare_queue(
                None, name, durable=durable, auto_delete=auto_delete, arguments=arguments,
                check_configure=check_configure, check_new=check_new,
            )
        except AMQPError as error:
            raise http_error(error) from None
        return Response(201, [("content-length", "0")]) if not existed else Response.empty(204)

    @router.route("/api/queues/{vhost}/{name}", "DELETE")
    def delete_queue(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        queue = queue_or_404(request)
        vhost = vhost_or_404(context, request.params["vhost"])
        try:
            api_access(context, user, vhost).check("configure", "queue", queue.name)
            vhost.delete_queue(
                None, queue.name,
                if_unused=bool_query(request, "if-unused"),
                if_empty=bool_query(request, "if-empty"),
            )
        except AMQPError as error:
            raise http_error(error) from None
        return Response.empty(204)

    @router.route("/api/queues/{vhost}/{name}/contents", "DELETE")
    def purge_queue(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        queue = queue_or_404(request)
        vhost = vhost_or_404(context, request.params["vhost"])
        try:
            api_access(context, user, vhost).check("read", "queue", queue.name)
            vhost.purge_queue(None, queue.name)
        except AMQPError as error:
            raise http_error(error) from None
        return Response.empty(204)

    @router.route("/api/queues/{vhost}/{name}/bindings")
    def queue_bindings(request: Request) -> Response:
        require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        name = request.params["name"]
        # RabbitMQ answers a missing queue with its default binding, not 404.
        items = [default_binding_item(vhost.name, name)]
        items += [binding_item(vhost.name, b) for b in vhost.topology.bindings_for_queue(name)]
        return reply_list(request, items, default_sort=(), presorted=True)

    @router.route("/api/queues/{vhost}/{name}/get", "POST")
    def get_messages(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        body = request.json_object()
        _key_missing(body, ("count", "ackmode", "encoding"))
        try:
            count = int(body["count"])
        except (TypeError, ValueError):
            raise HttpError(400, "bad_request", ["not_int", "count"]) from None
        ackmode = body["ackmode"]
        if ackmode not in ACKMODES:
            # RabbitMQ crashes into an empty 500 here; a 400 says why.
            raise HttpError.bad_request(f"ackmode must be one of {', '.join(ACKMODES)}")
        encoding = body["encoding"]
        if encoding not in ("auto", "base64"):
            raise HttpError.bad_request("Unsupported encoding. Please use auto or base64.")
        truncate = body.get("truncate")
        if truncate is not None:
            try:
                truncate = max(0, int(truncate))
            except (TypeError, ValueError):
                raise HttpError(400, "bad_request", ["not_int", "truncate"]) from None
        name = request.params["name"]
        try:
            api_access(context, user, vhost).check("read", "queue", name)
        except AMQPError as error:
            raise HttpError.not_authorised(error.reply_text) from None
        try:
            queue = vhost.get_queue(name, None)
        except AMQPError as error:
            if error.reply_code == ReplyCode.NOT_FOUND:
                raise HttpError(404, "not_found", error.reply_text) from None
            raise HttpError.bad_request(plain_text(error)) from None
        try:
            items = _get(vhost, queue, count, ackmode, encoding, truncate)
        except AMQPError as error:
            # A stream: RabbitMQ 3.10.8 answers {"error":"bad_request","reason":
            # "540 basic.get not supported by stream queues queue 'q' in vhost '/'"}.
            raise HttpError.bad_request(f"{error.reply_code} {plain_text(error)}") from None
        return Response.json(items)

    @router.route("/api/aliveness-test/{vhost}")
    def aliveness_test(request: Request) -> Response:
        user = require_vhost(access, request, request.params["vhost"])
        vhost = vhost_or_404(context, request.params["vhost"])
        return _aliveness(context, user, vhost)


def _get(
    vhost: VHost, queue: Queue, count: int, ackmode: str, encoding: str, truncate: int | None
) -> list[dict[str, Any]]:
    """basic.get `count` times (with acks), then settle them all as `ackmode` says,
    as RabbitMQ's API does over its own channel."""
    taken: list[QueuedMessage] = []
    items = []
    for _ in range(max(0, count)):
        entry = queue.get()
        if entry is None:
            break
        queue.handed_out(entry, False)
        taken.append(entry)
        items.append(message_item(entry.message, entry.redelivered, len(queue.ready), encoding, truncate))
    # The vhost and the broker count these gets as a channel would have
    # (one basic.get-empty when the queue ran out before `count`).
    for totals in (vhost.retired, vhost.counters.retired):
        if len(taken) < count:
            totals.get_empty += 1
        totals.get += len(taken)
        totals.redeliver += sum(1 for entry in taken if entry.redelivered)
        if ackmode == "ack_requeue_false":
            totals.ack += len(taken)
    if ackmode == "ack_requeue_false":
        for entry in taken:
            queue.ack(entry)
    elif ackmode == "reject_requeue_false":
        queue.reject(taken)
    elif taken:
        queue.requeue(taken)
    return items


def _aliveness(context: ManagementContext, user: ApiUser, vhost: VHost) -> Response:
    """RabbitMQ's aliveness test: declare `aliveness-test` (left behind, as
    RabbitMQ leaves it), publish a message to it, get it back."""
    access = api_access(context, user, vhost)
    check_configure, check_new = authorization.queue_declare_checks(access, vhost)
    try:
        access.check("configure", "queue", ALIVENESS_QUEUE)
        queue = vhost.declare_queue(
            None, ALIVENESS_QUEUE, check_configure=check_configure, check_new=check_new
        )
        access.check("write", "exchange", "")
        access.check("read", "queue", ALIVENESS_QUEUE)
    except AMQPError as error:
        raise HttpError.not_authorised(error.reply_text) from None
    properties = BasicProperties().encode()
    queue.enqueue(Message("", ALIVENESS_QUEUE, properties, ALIVENESS_MESSAGE))
    while True:
        entry = queue.get()
        if entry is None:
            return Response.json(
                {"status": "failed", "reason": "aliveness-test queue is empty"}, 503
            )
        queue.handed_out(entry, True)
        if entry.message.body == ALIVENESS_MESSAGE:
            return Response.json({"status": "ok"})
