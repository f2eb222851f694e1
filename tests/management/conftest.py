"""A management HTTP server on its own trio loop in a thread, for stdlib clients.

`http_server` is a factory: `http_server()` serves the test app (below) with
the default limits on 127.0.0.1, an ephemeral port; `http_server(limits=...)`
with others. Tests talk to it with http.client, urllib and raw sockets.

Every test here is bounded in time: `_time_limit` (autouse) fails a test that
runs for more than TEST_TIME_LIMIT seconds, and every client socket has a
timeout of its own.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
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

TEST_TIME_LIMIT = 30


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test ran for more than {TEST_TIME_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIME_LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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


async def authenticate(username: str, password: str) -> User | None:
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


@pytest.fixture
def static_root(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Warren</title>\n")
    (root / "js" / "main.js").write_text("console.log('warren');\n")
    (root / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (root / ".hidden").write_text("secret\n")
    (tmp_path / "outside.txt").write_text("outside the root\n")
    return root


@pytest.fixture
def http_server(static_root: Path) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(limits: HttpLimits | None = None, cls: type[ServerThread] = ServerThread) -> ServerThread:
        thread = cls(make_app(static_root), limits or HttpLimits())
        thread.start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def server(http_server: Callable[..., ServerThread]) -> ServerThread:
    """The test app with the default limits."""
    return http_server()
