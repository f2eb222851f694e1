"""Brokers with a management API, for the tests of the admin commands.

`Target` is one broker seen by a test: the in-process Warren
(`broker.testing.BrokerThread`, its `management_url`, guest/guest) or the
reference RabbitMQ (when WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL
are set). The `target` fixture (conftest.py) runs a test on each.

Everything a test makes is named `acli-<random>-...` and deleted afterwards
(`Target.cleanup`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import pika

REFERENCE_URL = os.environ.get("WARREN_REFERENCE_URL")
REFERENCE_MANAGEMENT_URL = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")
NO_REFERENCE = (
    "needs WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL (the reference RabbitMQ "
    "and its management API, e.g. amqp://guest:guest@127.0.0.1:5673/ and "
    "http://127.0.0.1:15673)"
)

T = TypeVar("T")


def q(name: str) -> str:
    return quote(name, safe="")


def with_userinfo(url: str, userinfo: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{userinfo}@{rest.split('@', 1)[-1]}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(
    fetch: Callable[[], T], until: Callable[[T], bool] = bool, timeout: float = 20,
    what: str = "",
) -> T:
    """`fetch()`'s first answer that satisfies `until`, polling (RabbitMQ's
    statistics lag a few seconds behind)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or fetch}: last {value!r}")
        time.sleep(0.25)


@dataclass
class Target:
    """One broker: its AMQP URL (vhost /), its management API, what to clean up."""

    kind: str  # "warren" or "rabbitmq"
    amqp_url: str  # amqp://guest:guest@host:port/
    management_url: str  # http://guest:guest@host:port (no trailing slash)
    prefix: str = field(default_factory=lambda: f"acli-{secrets.token_hex(3)}")
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def api(self) -> list[str]:
        """The options that point a command at this broker's API."""
        return ["--management-url", self.management_url]

    @property
    def base(self) -> str:
        """The API's URL without credentials, as messages show it."""
        scheme, rest = self.management_url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[-1]}"

    def name(self, label: str) -> str:
        return f"{self.prefix}-{label}"

    def url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        """The AMQP URL for `vhost` (and `user`)."""
        host = self.amqp_url.split("://", 1)[1].split("@", 1)[-1].split("/", 1)[0]
        return f"amqp://{q(user)}:{q(password)}@{host}/{q(vhost)}"

    # -- HTTP, for set-up and checks (not through the code under test) ----------------------

    def http(self, method: str, path: str, body: Any = None,
             user: str = "guest", password: str = "guest") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def exists(self, path: str) -> bool:
        try:
            self.http("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return True

    # -- things to clean up -----------------------------------------------------------------

    def cleanup(self, action: Callable[[], None]) -> None:
        self._cleanups.append(action)

    def run_cleanups(self) -> None:
        for action in reversed(self._cleanups):
            try:
                action()
            except Exception:  # noqa: BLE001 - clean up the rest whatever happens
                pass

    def new_vhost(self, label: str = "v") -> str:
        """A vhost of this test's own (deleted, with everything in it, afterwards)."""
        name = self.name(label)
        self.http("PUT", f"/api/vhosts/{q(name)}", {})
        self.cleanup(lambda: self.delete_quietly(f"/api/vhosts/{q(name)}"))
        return name

    def forget_user(self, name: str) -> None:
        self.cleanup(lambda: self.delete_quietly(f"/api/users/{q(name)}"))

    def forget_vhost(self, name: str) -> None:
        self.cleanup(lambda: self.delete_quietly(f"/api/vhosts/{q(name)}"))

    def delete_quietly(self, path: str) -> None:
        try:
            self.http("DELETE", path)
        except urllib.error.HTTPError:
            pass

    # -- AMQP ---------------------------------------------------------------------------------

    def connect(self, vhost: str = "/", user: str = "guest", password: str = "guest",
                name: str | None = None) -> pika.BlockingConnection:
        params = pika.URLParameters(self.url(vhost, user, password))
        if name is not None:
            params.client_properties = {"connection_name": name}
        return pika.BlockingConnection(params)

    def declare(self, vhost: str = "/", queues: tuple[str, ...] = (),
                exchanges: tuple[tuple[str, str], ...] = (),
                bindings: tuple[tuple[str, str, str], ...] = (),
                messages: dict[str, int] | None = None) -> None:
        """Declare (durable) queues, exchanges (name, type), bindings (queue, exchange,
        key) and publish `messages[queue]` messages to each queue; in `/`, each queue
        and exchange is deleted afterwards."""
        connection = self.connect(vhost)
        try:
            channel = connection.channel()
            for name, kind in exchanges:
                channel.exchange_declare(name, kind, durable=True)
                if vhost == "/":
                    self.cleanup(lambda n=name: self.amqp_delete("exchange", n))
            for name in queues:
                channel.queue_declare(name, durable=True)
                if vhost == "/":
                    self.cleanup(lambda n=name: self.amqp_delete("queue", n))
            for queue, exchange, key in bindings:
                channel.queue_bind(queue, exchange, key)
            for queue, count in (messages or {}).items():
                for i in range(count):
                    channel.basic_publish("", queue, f"m{i}".encode())
        finally:
            connection.close()

    def amqp_delete(self, kind: str, name: str, vhost: str = "/") -> None:
        connection = self.connect(vhost)
        try:
            channel = connection.channel()
            if kind == "queue":
                channel.queue_delete(name)
            else:
                channel.exchange_delete(name)
        finally:
            connection.close()

    def queue_exists(self, name: str, vhost: str = "/") -> bool:
        return self.message_count(name, vhost) is not None

    def message_count(self, name: str, vhost: str = "/") -> int | None:
        """The queue's ready messages (passive declare), None if there is no such queue."""
        connection = self.connect(vhost)
        try:
            try:
                ok = connection.channel().queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker as error:
                assert error.reply_code == 404
                return None
            return int(ok.method.message_count)
        finally:
            if connection.is_open:
                connection.close()

    def exchange_exists(self, name: str, vhost: str = "/") -> bool:
        connection = self.connect(vhost)
        try:
            try:
                connection.channel().exchange_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker as error:
                assert error.reply_code == 404
                return False
            return True
        finally:
            if connection.is_open:
                connection.close()

    def can_log_in(self, user: str, password: str, vhost: str = "/") -> bool:
        try:
            self.connect(vhost, user, password).close()
        except (pika.exceptions.ProbableAuthenticationError,
                pika.exceptions.ProbableAccessDeniedError,
                pika.exceptions.ConnectionClosedByBroker, pika.exceptions.AMQPConnectionError):
            return False
        return True


def run_on_a_terminal(args: list[str], typed: list[bytes], prompt: bytes = b": ",
                      timeout: float = 60) -> tuple[int, str]:
    """Run `warren ARGS` with a terminal as stdin, stdout and stderr; type each of
    `typed` when the output ends with `prompt`. (exit status, what the terminal
    showed, without carriage returns)."""
    import pty
    import select

    from cli_helpers import CONNECTION_VARIABLES, WARREN

    pid, fd = pty.fork()
    if pid == 0:  # the child
        for name in CONNECTION_VARIABLES:
            os.environ.pop(name, None)
        os.environ["XDG_CONFIG_HOME"] = "/nonexistent/warren-tests"
        os.execv(str(WARREN), [str(WARREN), *args])
    shown = b""
    pending = list(typed)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            data = os.read(fd, 1024)
        except OSError:  # EIO: the child is gone
            break
        if not data:
            break
        shown += data
        if pending and shown.endswith(prompt):
            os.write(fd, pending.pop(0) + b"\n")
    else:
        os.kill(pid, 9)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode().replace("\r", "")
