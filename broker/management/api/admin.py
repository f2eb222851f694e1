"""The management API's administration endpoints: who, users, vhosts, permissions, definitions.

Same paths, methods, status codes and bodies as RabbitMQ 3.10's management
plugin (read off the reference node; /work/notes/management-api.md):

    GET  /api/whoami                     any management user
    GET  /api/vhosts                     any (filtered); /api/vhosts/V GET PUT DELETE admin
    GET  /api/users[/U]  PUT DELETE      admin (+ without-permissions, bulk-delete)
    GET  /api/permissions[/V/U] PUT DELETE                      admin
    GET  /api/topic-permissions[/V/U[/E]] PUT DELETE            admin
    GET  /api/vhost-limits[/V]; PUT DELETE /api/vhost-limits/V/NAME   admin
    GET  /api/user-limits[/U]            any management user
    PUT DELETE /api/user-limits/U/NAME   admin
    GET POST /api/definitions[/V]        admin
    GET  /api/health/checks/...          any management user

A PUT answers 201 when it made something and 204 when it changed what
existed; a DELETE 204, or 404 when there was nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.admin.definitions import DefinitionsRejected, export_definitions, import_definitions
from broker.auth.passwords import DEFAULT_ALGORITHM, hash_password
from broker.auth.permissions import Permission, TopicPermission
from broker.auth.users import User, parse_tags
from broker.core.stats import MESSAGE_FIELDS, MessageTotals
from broker.core.vhost import VHost
from broker.management.authz import (
    require_admin,
    sees_vhost,
    user_of,
)
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.query import reply_item, reply_list
from broker.management.router import Router
from broker.management.stats import Totals, deliver_get
from broker.management.views import message_stats, with_details

__all__ = ["add_routes"]

LIMIT_NAMES = ("max-connections", "max-queues")


def _created(created: bool) -> Response:
    return Response(201, [("content-length", "0")]) if created else Response.empty(204)


def _missing_keys(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in body]
    if missing:
        # RabbitMQ prints the Erlang term: [{key_missing,read}]
        raise HttpError.bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


def vhost_item(
    vhost: VHost,
    node: str = "warren@localhost",
    totals: MessageTotals | None = None,
    rates: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A vhost as /api/vhosts lists it, with its message totals and rates."""
    rates = rates or {}
    messages_ready = sum(q.message_count for q in vhost.queues.values())
    unacked = sum(q.unacked_count for q in vhost.queues.values())
    item: dict[str, Any] = {
        "cluster_state": {node: "running"},
        "default_queue_type": "undefined",
        "description": vhost.description,
    }
    if totals is not None:
        values = {name: getattr(totals, name) for name in MESSAGE_FIELDS}
        values["deliver_get"] = deliver_get(totals)
        stats = message_stats(values, rates)
        if stats is not None:
            item["message_stats"] = stats
    with_details(item, "messages", messages_ready + unacked, rates)
    with_details(item, "messages_ready", messages_ready, rates)
    with_details(item, "messages_unacknowledged", unacked, rates)
    item["metadata"] = {"description": vhost.description, "tags": list(vhost.tags)}
    item["name"] = vhost.name
    if totals is not None:
        with_details(item, "recv_oct", totals.recv_oct, rates)
        with_details(item, "send_oct", totals.send_oct, rates)
    item["tags"] = list(vhost.tags)
    item["tracing"] = False
    return item


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the administration endpoints on `router`."""
    vhosts = context.vhosts
    access = context.access

    def vhost_or_404(name: str) -> VHost:
        vhost = vhosts.get(name)
        if vhost is None:
            raise HttpError.not_found()
        return vhost

    # -- who -----------------------------------------------------------------------

    @router.route("/api/whoami")
    def whoami(request: Request) -> Response:
        user = user_of(request)
        return Response.json({"name": user.name, "tags": list(user.tags)})

    @router.route("/api/auth", auth=False)
    def auth_info(request: Request) -> Response:
        return Response.json({"enable_uaa": False, "uaa_client_id": "", "uaa_location": ""})

    # -- vhosts --------------------------------------------------------------------

    def vhost_json(vhost: VHost, totals: Totals) -> dict[str, Any]:
        return vhost_item(
            vhost, context.node_name, totals.vhosts.get(vhost, MessageTotals()),
            context.statistics.vhost_table.rates(vhost),
        )

    @router.route("/api/vhosts")
    def list_vhosts(request: Request) -> Response:
        user = user_of(request)
        totals = Totals.now(vhosts, context.connections())
        items = [
            vhost_json(vhosts[name], totals) for name in vhosts
            if user.is_monitor or sees_vhost(access, user, name)
        ]
        return reply_list(request, items, default_sort=("name",))

    @router.route("/api/vhosts/{vhost}")
    def get_vhost(request: Request) -> Response:
        require_admin(request)
        vhost = vhost_or_404(request.params["vhost"])
        return reply_item(request, vhost_json(vhost, Totals.now(vhosts, context.connections())))

    @router.route("/api/vhosts/{vhost}", "PUT")
    def put_vhost(request: Request) -> Response:
        user = require_admin(request)
        name = request.params["vhost"]
        body = request.json_object()
        try:
            tags = parse_tags(body.get("tags"))
        except ValueError as error:
            raise HttpError.bad_request(str(error)) from None
        description = body.get("description", "")
        if not isinstance(description, str):
            raise HttpError.bad_request("description must be a string")
        _vhost, created = vhosts.create(name, description, tags)
        if created and user.name in access.users:
            # RabbitMQ 3.10 gives the admin who made a vhost every permission in it.
            access.set_permission(user.name, name, Permission())
        return _created(created)

    @router.route("/api/vhosts/{vhost}", "DELETE")
    def delete_vhost(request: Request) -> Response:
        require_admin(request)
        if not vhosts.delete(request.params["vhost"]):
            raise HttpError.not_found()
        return Response.empty(204)

    @router.route("/api/vhosts/{vhost}/permissions")
    def vhost_permissions(request: Request) -> Response:
        require_admin(request)
        name = vhost_or_404(request.params["vhost"]).name
        items = [_permission_item(u, v, p) for (u, v), p in access.permissions.items() if v == name]
        return reply_list(request, items, default_sort=("vhost", "user"))

    @router.route("/api/vhosts/{vhost}/topic-permissions")
    def vhost_topic_permissions(request: Request) -> Response:
        require_admin(request)
        name = vhost_or_404(request.params["vhost"]).name
        return reply_list(request, _topic_items(vhost=name), default_sort=("vhost", "user"))

    # -- users ---------------------------------------------------------------------

    def user_item(user: User) -> dict[str, Any]:
        return user.to_definition()

    @router.route("/api/users")
    def list_users(request: Request) -> Response:
        require_admin(request)
        return reply_list(request, [user_item(u) for u in access.users.values()],
                          default_sort=("name",))

    @router.route("/api/users/without-permissions")
    def users_without_permissions(request: Request) -> Response:
        require_admin(request)
        having = {user for user, _vhost in access.permissions}
        items = [user_item(u) for u in access.users.values() if u.name not in having]
        return reply_list(request, items, default_sort=("name",))

    @router.route("/api/users/bulk-delete", "POST")
    def bulk_delete_users(request: Request) -> Response:
        require_admin(request)
        names = request.json_object().get("users")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise HttpError.bad_request("users must be a list of names")
        for name in names:
            access.delete_user(name)
        return Response.empty(204)

    @router.route("/api/users/{user}")
    def get_user(request: Request) -> Response:
        require_admin(request)
        user = access.users.get(request.params["user"])
        if user is None:
            raise HttpError.not_found()
        return reply_item(request, user_item(user))

    @router.route("/api/users/{user}", "PUT")
    def put_user(request: Request) -> Response:
        require_admin(request)
        name = request.params["user"]
        body = request.json_object()
        if "tags" not in body:
            raise HttpError.bad_request("tags_not_present")
        try:
            tags = parse_tags(body["tags"])
        except ValueError as error:
            raise HttpError.bad_request(str(error)) from None
        if "password" in body and "password_hash" in body:
            raise HttpError.bad_request("both_password_and_password_hash_are_provided")
        algorithm = body.get("hashing_algorithm") or DEFAULT_ALGORITHM
        if "password" in body:
            password = body["password"]
            if not isinstance(password, str):
                raise HttpError.bad_request("password must be a string")
            password_hash, algorithm = hash_password(password), DEFAULT_ALGORITHM
        elif "password_hash" in body:
            password_hash = body["password_hash"]
            if not isinstance(password_hash, str):
                raise HttpError.bad_request("password_hash must be a string")
        else:
            # Neither: a user without password (EXTERNAL logins only), as
            # RabbitMQ makes one; an existing user loses its password.
            password_hash = ""
        try:
            # Limits given here are merged into the user's (AccessControl.put_user).
            user = User(name, password_hash, algorithm, tags, body.get("limits") or {})
        except ValueError as error:
            if "base64" in str(error):
                raise HttpError(400, "bad_request", ["not_base64", password_hash]) from None
            raise HttpError.bad_request(str(error)) from None
        return _created(access.put_user(user))

    @router.route("/api/users/{user}", "DELETE")
    def delete_user(request: Request) -> Response:
        require_admin(request)
        if not access.delete_user(request.params["user"]):
            raise HttpError.not_found()
        return Response.empty(204)

    @router.route("/api/users/{user}/permissions")
    def user_permissions(request: Request) -> Response:
        require_admin(request)
        name = request.params["user"]
        if name not in access.users:
            raise HttpError.not_found()
        items = [_permission_item(u, v, p) for (u, v), p in access.permissions.items() if u == name]
        return reply_list(request, items, default_sort=("vhost", "user"))

    @router.route("/api/users/{user}/topic-permissions")
    def user_topic_permissions(request: Request) -> Response:
        require_admin(request)
        name = request.params["user"]
        if name not in access.users:
            raise HttpError.not_found()
        return reply_list(request, _topic_items(user=name), default_sort=("vhost", "user"))

    # -- permissions ------------------------------------------------------------------

    def _topic_items(user: str | None = None, vhost: str | None = None) -> list[dict[str, Any]]:
        return [
            {"user": u, "vhost": v, "exchange": p.exchange, "write": p.write, "read": p.read}
            for (u, v), table in access.topic_permissions.items()
            if (user is None or u == user) and (vhost is None or v == vhost)
            for p in table.values()
        ]

    @router.route("/api/permissions")
    def list_permissions(request: Request) -> Response:
        require_admin(request)
        items = [_permission_item(u, v, p) for (u, v), p in access.permissions.items()]
        return reply_list(request, items, default_sort=("vhost", "user"))

    @router.route("/api/permissions/{vhost}/{user}")
    def get_permission(request: Request) -> Response:
        require_admin(request)
        key = (request.params["user"], request.params["vhost"])
        permission = access.permissions.get(key)
        if permission is None:
            raise HttpError.not_found()
        return reply_item(request, _permission_item(key[0], key[1], permission))

    @router.route("/api/permissions/{vhost}/{user}", "PUT")
    def put_permission(request: Request) -> Response:
        require_admin(request)
        user, vhost = request.params["user"], request.params["vhost"]
        body = request.json_object()
        _missing_keys(body, ("configure", "write", "read"))
        if user not in access.users or vhost not in vhosts:
            raise HttpError.bad_request("vhost_or_user_not_found")
        try:
            permission = Permission(str(body["configure"]), str(body["write"]), str(body["read"]))
        except ValueError as error:
            raise HttpError.bad_request(f"invalid_regexp: {error}") from None
        return _created(access.set_permission(user, vhost, permission))

    @router.route("/api/permissions/{vhost}/{user}", "DELETE")
    def delete_permission(request: Request) -> Response:
        require_admin(request)
        if not access.clear_permission(request.params["user"], request.params["vhost"]):
            raise HttpError.not_found()
        return Response.empty(204)

    @router.route("/api/topic-permissions")
    def list_topic_permissions(request: Request) -> Response:
        require_admin(request)
        return reply_list(request, _topic_items(), default_sort=("vhost", "user"))

    @router.route("/api/topic-permissions/{vhost}/{user}")
    def get_topic_permissions(request: Request) -> Response:
        require_admin(request)
        items = _topic_items(user=request.params["user"], vhost=request.params["vhost"])
        if not items:
            raise HttpError.not_found()
        return reply_list(request, items, default_sort=("vhost", "user"))

    @router.route("/api/topic-permissions/{vhost}/{user}", "PUT")
    def put_topic_permission(request: Request) -> Response:
        require_admin(request)
        user, vhost = request.params["user"], request.params["vhost"]
        body = request.json_object()
        _missing_keys(body, ("exchange", "write", "read"))
        if user not in access.users or vhost not in vhosts:
            raise HttpError.bad_request("vhost_or_user_not_found")
        try:
            topic = TopicPermission(str(body["exchange"]), str(body["write"]), str(body["read"]))
        except ValueError as error:
            raise HttpError.bad_request(f"invalid_regexp: {error}") from None
        return _created(access.set_topic_permission(user, vhost, topic))

    @router.route("/api/topic-permissions/{vhost}/{user}", "DELETE")
    def delete_topic_permissions(request: Request) -> Response:
        require_admin(request)
        if not access.clear_topic_permissions(request.params["user"], request.params["vhost"]):
            raise HttpError.not_found()
        return Response.empty(204)

    @router.route("/api/topic-permissions/{vhost}/{user}/{exchange}", "DELETE")
    def delete_topic_permission(request: Request) -> Response:
        require_admin(request)
        params = request.params
        if not access.clear_topic_permissions(params["user"], params["vhost"], params["exchange"]):
            raise HttpError.not_found()
        return Response.empty(204)

    # -- vhost limits -------------------------------------------------------------------

    def limits_item(vhost: VHost) -> dict[str, Any]:
        return {"vhost": vhost.name, "value": vhost.limits.as_dict()}

    @router.route("/api/vhost-limits")
    def list_limits(request: Request) -> Response:
        require_admin(request)
        items = [limits_item(vhosts[n]) for n in vhosts if vhosts[n].limits.as_dict()]
        return reply_list(request, items, default_sort=("vhost",))

    @router.route("/api/vhost-limits/{vhost}")
    def get_limits(request: Request) -> Response:
        require_admin(request)
        vhost = vhost_or_404(request.params["vhost"])
        return Response.json([limits_item(vhost)] if vhost.limits.as_dict() else [])

    @router.route("/api/vhost-limits/{vhost}/{name}", "PUT")
    def put_limit(request: Request) -> Response:
        require_admin(request)
        vhost = vhost_or_404(request.params["vhost"])
        name = request.params["name"]
        body = request.json_object()
        _missing_keys(body, ("value",))
        value = body["value"]
        if name not in LIMIT_NAMES:
            raise HttpError.bad_request(
                f"Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{value}}}] in limits\n"
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise HttpError.bad_request(
                f"Validation failed\n\n{name} should be a number, actually was <<\"{value}\">>\n"
            )
        setattr(vhost.limits, name.replace("-", "_"), value)
        vhost.stored()
        return Response.empty(204)  # RabbitMQ answers 204 even when the limit is new

    @router.route("/api/vhost-limits/{vhost}/{name}", "DELETE")
    def delete_limit(request: Request) -> Response:
        require_admin(request)
        vhost = vhost_or_404(request.params["vhost"])
        name = request.params["name"]
        if name in LIMIT_NAMES:
            setattr(vhost.limits, name.replace("-", "_"), None)
            vhost.stored()
        return Response.empty(204)

    # -- user limits (rabbit_mgmt_wm_user_limits, rabbit_mgmt_wm_user_limit) -----------

    def user_limits_item(user: User) -> dict[str, Any]:
        return {"user": user.name, "value": dict(sorted(user.limits.items()))}

    @router.route("/api/user-limits")
    def list_user_limits(request: Request) -> Response:
        user_of(request)  # any management user, as RabbitMQ (is_authorized_vhost_visible)
        items = [user_limits_item(u) for u in access.users.values() if u.limits]
        return reply_list(request, items, default_sort=("user",))

    @router.route("/api/user-limits/{user}")
    def get_user_limits(request: Request) -> Response:
        user_of(request)
        user = access.users.get(request.params["user"])
        if user is None:
            raise HttpError.not_found()
        return Response.json([user_limits_item(user)] if user.limits else [])

    @router.route("/api/user-limits/{user}/{name}", "PUT")
    def put_user_limit(request: Request) -> Response:
        require_admin(request)
        user, name = request.params["user"], request.params["name"]
        body = request.json_object()
        _missing_keys(body, ("value",))
        if user not in access.users:
            raise HttpError(400, "bad_request", ["no_such_user", user])
        try:
            access.set_user_limits(user, {name: body["value"]})
        except ValueError as error:
            raise HttpError.bad_request(str(error)) from None
        return Response.empty(204)  # RabbitMQ answers 204 even when the limit is new

    @router.route("/api/user-limits/{user}/{name}", "DELETE")
    def delete_user_limit(request: Request) -> Response:
        require_admin(request)
        user = request.params["user"]
        if user not in access.users:
            # RabbitMQ crashes into an empty 500 here; Warren says what is missing.
            raise HttpError.not_found()
        access.clear_user_limit(user, request.params["name"])  # "all": every limit
        return Response.empty(204)

    # -- definitions -------------------------------------------------------------------

    @router.route("/api/definitions")
    def get_definitions(request: Request) -> Response:
        require_admin(request)
        return _download(request, export_definitions(vhosts, access))

    @router.route("/api/definitions", "POST")
    def post_definitions(request: Request) -> Response:
        require_admin(request)
        return _import(request, None)

    @router.route("/api/definitions/{vhost}")
    def get_vhost_definitions(request: Request) -> Response:
        require_admin(request)
        name = vhost_or_404(request.params["vhost"]).name
        return _download(request, export_definitions(vhosts, access, vhost=name))

    @router.route("/api/definitions/{vhost}", "POST")
    def post_vhost_definitions(request: Request) -> Response:
        require_admin(request)
        name = request.params["vhost"]
        if name not in vhosts:
            raise HttpError(404, "not_found", "vhost_not_found")
        return _import(request, name)

    def _import(request: Request, vhost: str | None) -> Response:
        try:
            document = request.json()
        except HttpError:
            raise HttpError.bad_request("failed_to_parse_json") from None
        if not isinstance(document, dict):
            raise HttpError.bad_request("failed_to_parse_json")
        for item in document.get("permissions") or []:
            if isinstance(item, dict) and vhost is None and item.get("vhost") not in vhosts and not any(
                isinstance(v, dict) and v.get("name") == item.get("vhost")
                for v in document.get("vhosts") or []
            ):
                raise HttpError(400, "bad_request", ["no_such_vhost", str(item.get("vhost"))])
        try:
            result = import_definitions(vhosts, access, document, vhost=vhost)
        except DefinitionsRejected as rejected:
            raise HttpError.bad_request("; ".join(rejected.problems)) from None
        if result.problems:
            # Some items were refused (an inequivalent redeclaration, an amq.
            # name...): say which, rather than RabbitMQ's silent 204.
            raise HttpError.bad_request("; ".join(result.problems))
        return Response.empty(204)

    def _download(request: Request, document: dict[str, Any]) -> Response:
        response = Response.json(document)
        filename = request.query.get("download")
        if filename:
            response.headers.append(
                ("content-disposition", f"attachment; filename={filename}")
            )
        return response

    # -- health checks ----------------------------------------------------------------------

    def _health(ok: bool, body: dict[str, Any]) -> Response:
        return Response.json(body, 200 if ok else 503)

    def _alarms(reason: str) -> Response:
        alarms = context.alarms
        if not alarms.active:
            return _health(True, {"status": "ok"})
        names = {"disk": "disk space", "memory": "memory"}
        return _health(False, {
            "status": "failed",
            "reason": reason,
            "alarms": [{"resource": names.get(r, r), "node": context.node_name}
                       for r in sorted(alarms.resources)],
        })

    @router.route("/api/health/checks/alarms")
    def health_alarms(request: Request) -> Response:
        return _alarms("There are alarms in effect in the cluster")

    @router.route("/api/health/checks/local-alarms")
    def health_local_alarms(request: Request) -> Response:
        return _alarms("There are alarms in effect on the node")

    @router.route("/api/health/checks/virtual-hosts")
    def health_vhosts(request: Request) -> Response:
        return _health(True, {"status": "ok"})

    @router.route("/api/health/checks/node-is-quorum-critical")
    def health_quorum(request: Request) -> Response:
        return _health(True, {"status": "ok", "reason": "single node cluster"})

    @router.route("/api/health/checks/node-is-mirror-sync-critical")
    def health_mirror(request: Request) -> Response:
        return _health(True, {"status": "ok", "reason": "single node cluster"})

    @router.route("/api/health/checks/port-listener/{port}")
    def health_port(request: Request) -> Response:
        try:
            port = int(request.params["port"])
        except ValueError:
            raise HttpError.bad_request("Invalid port") from None
        ports = sorted({listener.port for listener in context.listeners})
        if port in ports:
            return _health(True, {"status": "ok", "port": port})
        return _health(False, {"status": "failed", "reason": "No active listener",
                               "missing": port, "ports": ports})

    @router.route("/api/health/checks/protocol-listener/{protocol}")
    def health_protocol(request: Request) -> Response:
        protocol = request.params["protocol"]
        wanted = "amqp" if protocol == "amqp091" else protocol
        protocols = sorted({listener.protocol for listener in context.listeners})
        if wanted in protocols:
            return _health(True, {"status": "ok", "protocol": protocol})
        return _health(False, {"status": "failed", "reason": "No active listener",
                               "missing": protocol, "protocols": protocols})


def _permission_item(user: str, vhost: str, permission: Permission) -> dict[str, Any]:
    return {"user": user, "vhost": vhost, "configure": permission.configure,
            "write": permission.write, "read": permission.read}
