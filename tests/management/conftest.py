"""Fixtures: the test app served on 127.0.0.1 (an ephemeral port), in a thread.

`http_server` is a factory: `http_server()` serves the test app
(http_helpers.make_app) with the default limits; `http_server(limits=...)`
with others; `http_server(cls=...)` with a ServerThread subclass (TLS).
Tests talk to it with http.client, urllib and raw sockets.

Every test here is bounded in time: `_time_limit` (autouse) fails a test that
runs for more than TEST_TIME_LIMIT seconds, and every client socket has a
timeout of its own.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from http_helpers import ServerThread, make_app

from broker.management.http import HttpLimits

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
