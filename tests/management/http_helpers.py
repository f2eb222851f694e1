"""The management HTTP tests' app and server thread (fixtures in conftest.py).

`make_app(static_root)` is a small API in RabbitMQ's shapes: users with
tags, plain and async handlers, errors, a slow handler, static files.
`ServerThread` serves it with an `HttpServer` on its own trio loop in a
thread, so that stdlib clients (http.client, urllib, sockets) can talk to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from broker.management.http import HttpApp, HttpLimits, HttpServer
from broker.management.messages import (
    NOT_ADMINISTRATOR,
    NOT_MANAGEMENT_USER,
    HttpError,
    Request,
    Response,
)
from broker.management.router import Router
from broker.management.static import StaticFiles


@dataclass
class User:
    name: str
    tags: list[str]


#: name -> (password, tags), as RabbitMQ users with their tags.
USERS = {
    "guest": ("guest", ["administrator"]),
    "mgmt": ("pw", ["management"]),
    "notag": ("pw", []),
    "üser": ("pä:ss", ["management"]),
}


async def authenticate(username: str, password: str, request: Any = None) -> User | None:
    known = USERS.get(username)
    if known is None or known[0] != password:
        return None
    if not known[1]:
        # RabbitMQ: the password is right, but the user may not use the API.
        raise HttpError.not_authorised(NOT_MANAGEMENT_USER)
    return User(username, known[1])


def make_app(static_root: Path) -> HttpApp:
    router = Router()

    @router.route("/api/whoami")
    def whoami(request: Request) -> Response:  # a plain function
        return Response.json({"name": request.user.name, "tags": request.user.tags})

    @router.route("/api/overview")
    async def overview(request: Request) -> Response:  # an async one
        await trio.sleep(0)
        return Response.json(
            {
                "management_version": "3.10.8",
                "exchange_types": [
                    {"name": name, "description": f"AMQP {name} exchange", "enabled": True}
                    for name in ("direct", "fanout", "headers", "topic")
                ],
            }
        )

    @router.route("/api/auth", auth=False)
    def auth_info(request: Request) -> Response:
        return Response.json({"enable_uaa": False, "uaa_client_id": "", "uaa_location": ""})

    def echo(request: Request) -> Response:
        return Response.json(
            {
                "method": request.method,
                "path": request.path,
                "segments": list(request.segments),
                "params": request.params,
                "query": request.query,
                "query_items": [list(item) for item in request.query_items],
                "user": request.user.name if request.user else None,
                "body_bytes": len(request.body),
            }
        )

    router.add("/api/queues", echo)
    router.add("/api/queues/{vhost}", echo)

    @router.route("/api/queues/{vhost}/{name}")
    def get_queue(request: Request) -> Response:
        if request.params["name"] == "nope":
            raise HttpError.not_found()
        return echo(request)

    @router.route("/api/queues/{vhost}/{name}", "PUT")
    def put_queue(request: Request) -> Response:
        body = request.json_object()
        if body.get("durable") == "maybe":
            raise HttpError.bad_request("inequivalent arg 'durable'")
        return Response.empty(201)

    @router.route("/api/queues/{vhost}/{name}", "DELETE")
    async def delete_queue(request: Request) -> Response:
        return Response.empty(204)

    @router.route("/api/queues/{vhost}/{name}/get", "POST")
    def get_messages(request: Request) -> Response:
        return Response.json({"received": len(request.body), "json": request.json()})

    @router.route("/api/users/without-permissions")
    def without_permissions(request: Request) -> Response:
        return Response.json({"route": "without-permissions"})

    @router.route("/api/users/{name}")
    def get_user(request: Request) -> Response:
        if "administrator" not in request.user.tags:
            raise HttpError.not_authorised(NOT_ADMINISTRATOR)
        return Response.json({"route": "user", "name": request.params["name"]})

    @router.route("/api/crash")
    def crash(request: Request) -> Response:
        raise RuntimeError("a bug in a handler")

    @router.route("/api/not-a-response")
    def not_a_response(request: Request) -> Any:
        return {"oops": True}

    @router.route("/api/slow")
    async def slow(request: Request) -> Response:
        await trio.sleep(float(request.query.get("seconds", "1")))
        return Response.json({"slept": True})

    @router.route("/api/big")
    def big(request: Request) -> Response:
        size = int(request.query.get("size", "1000000"))
        return Response.json({"data": "x" * size})

    @router.route("/metrics", auth=False, produces="text/plain")
    def metrics(request: Request) -> Response:
        return Response.text(
            "# TYPE rabbitmq_queues gauge\nrabbitmq_queues 0\n" * 20,
            content_type="text/plain; version=0.0.4",
        )

    router.add("/{path*}", StaticFiles(static_root), auth=False, produces=None)
    return HttpApp(router, authenticate=authenticate)


@dataclass
class ServerThread:
    """An HttpServer on its own trio loop in a thread."""

    app: HttpApp
    limits: HttpLimits
    host: str = "127.0.0.1"
    port: int = 0
    server: HttpServer | None = None
    listeners: list[Any] | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _token: trio.lowlevel.TrioToken | None = None
    _stop: trio.Event | None = None
    _error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError("server failed to start") from self._error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:  # noqa: BLE001 - reported to the starter
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        listeners = await trio.open_tcp_listeners(0, host=self.host)
        self.listeners = self.wrap(listeners)
        self.port = listeners[0].socket.getsockname()[1]
        self.server = HttpServer(self.app, self.limits)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.server.serve, self.listeners)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def wrap(self, listeners: list[Any]) -> list[Any]:
        return listeners

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)


