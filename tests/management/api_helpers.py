"""A real Warren (AMQP, management API, Prometheus) for the statistics and API tests.

`start_broker(interval_ms)` runs one in a thread with statistics sampled
every `interval_ms` (RabbitMQ's collect_statistics_interval; 5000 by
default, 100 here so rates appear in a fraction of a second). `Api` calls
its management API (or any other, e.g. the reference's) over real HTTP
with Basic credentials; `amqp(thread)` opens a pika connection.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika

from broker.settings import HTTPListener, Listener, Settings
from broker.testing import BrokerThread

#: Sampling interval for the tests, milliseconds.
FAST_INTERVAL_MS = 100


def start_broker(interval_ms: int = FAST_INTERVAL_MS, **overrides: Any) -> BrokerThread:
    settings = Settings(
        listeners_tcp=(Listener("127.0.0.1", 0),),
        management_tcp=HTTPListener(0, "127.0.0.1"),
        prometheus_tcp=HTTPListener(0, "127.0.0.1"),
        collect_statistics_interval=interval_ms,
        **overrides,
    )
    thread = BrokerThread(settings=settings)
    thread.start()
    return thread


def quote(name: str) -> str:
    """A path segment: "/" is %2F, a space %20 (RabbitMQ's paths)."""
    return urllib.parse.quote(name, safe="")


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes


@dataclass
class Api:
    """Calls one management API: `api.get("/api/queues")`, `api.call("PUT", path, body)`."""

    base: str
    user: str = "guest"
    password: str = "guest"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> Reply:
        data = raw_body if raw_body is not None else (
            None if body is None else json.dumps(body).encode()
        )
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        user, password = auth or (self.user, self.password)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("authorization", f"Basic {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, raw, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), error.headers
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        return Reply(status, decoded, {k.lower(): v for k, v in got.items()}, raw)

    def get(self, path: str, **kwargs: Any) -> Any:
        reply = self.call("GET", path, **kwargs)
        assert reply.status == 200, (path, reply.status, reply.body)
        return reply.body


def api_of(thread: BrokerThread) -> Api:
    assert thread.broker is not None
    return Api(thread.broker.management_url)


def amqp(thread: BrokerThread, **params: Any) -> pika.BlockingConnection:
    parameters = pika.URLParameters(thread.url)
    for name, value in params.items():
        setattr(parameters, name, value)
    return pika.BlockingConnection(parameters)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; its value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(step)


def metrics(url: str, path: str = "/metrics") -> str:
    with urllib.request.urlopen(url + path, timeout=20) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/plain; version=0.0.4"
        return response.read().decode("utf-8")


def parse_metrics(text: str) -> dict[str, dict[str, Any]]:
    """Families of a text exposition: {name: {"type", "help", "samples": [(labels, value)]}}."""
    import re

    families: dict[str, dict[str, Any]] = {}

    def family(name: str) -> dict[str, Any]:
        return families.setdefault(name, {"type": None, "help": None, "samples": []})

    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, text_ = line[7:].partition(" ")
            family(name)["help"] = text_
        elif line.startswith("# TYPE "):
            name, _, type_ = line[7:].partition(" ")
            family(name)["type"] = type_
        elif line and not line.startswith("#"):
            match = sample.match(line)
            assert match is not None, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            base = name
            for suffix in ("_sum", "_count", "_bucket"):
                if name.endswith(suffix) and name[: -len(suffix)] in families:
                    base = name[: -len(suffix)]
            family(base)["samples"].append((dict(label.findall(labels or "")), float(value)))
    return families
