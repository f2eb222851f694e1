"""A pytest plugin: a real Warren broker for any test suite, no Docker.

Registered through the ``pytest11`` entry point ``warren`` (so installing
warren makes the fixtures available everywhere), or load it by hand with
``-p broker.pytest_plugin`` / ``pytest_plugins = ["broker.pytest_plugin"]``
in a top-level conftest.py.

The broker runs in-process, on its own trio loop in a background thread,
listening on an ephemeral port of 127.0.0.1 with its own temporary data
directory. The fixtures give its ``amqp://`` URL, so the same test works
with any client: pika's ``BlockingConnection`` in a plain test, or
`broker.client.open_connection` / aio-pika in a pytest-trio or asyncio test.

Fixtures:

``warren_url``
    A fresh broker for this test (function scope); its URL.
``warren_session_url``
    One broker shared by the whole session (faster; use unique names).
``warren_broker``
    The `broker.testing.BrokerThread` of a fresh broker, for tests that want
    ``.url``, ``.broker`` (the `broker.server.Broker`) or ``.run_sync(fn)``.

    def test_roundtrip(warren_url):
        connection = pika.BlockingConnection(pika.URLParameters(warren_url))
        channel = connection.channel()
        channel.queue_declare("q")
        channel.basic_publish("", "q", b"hello")
        assert channel.basic_get("q", auto_ack=True)[2] == b"hello"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["warren_broker", "warren_session_url", "warren_url"]


def _start(data_dir: object) -> object:
    # Imported here, not at module import: pytest loads plugins early, and a
    # test suite that never asks for a broker should not import the server.
    from broker.testing import BrokerThread

    thread = BrokerThread(host="127.0.0.1", port=0, data_dir=data_dir)
    thread.start()
    return thread


@pytest.fixture
def warren_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Warren broker of its own for this test (a `broker.testing.BrokerThread`)."""
    thread = _start(tmp_path_factory.mktemp("warren-data"))
    try:
        yield thread
    finally:
        thread.stop()  # type: ignore[attr-defined]


@pytest.fixture
def warren_url(warren_broker: object) -> str:
    """The ``amqp://guest:guest@127.0.0.1:PORT/`` URL of a fresh Warren broker."""
    return warren_broker.url  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="session")
def warren_session_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of one Warren broker shared by every test of the session."""
    thread = _start(tmp_path_factory.mktemp("warren-session-data"))
    try:
        yield thread.url  # type: ignore[attr-defined]
    finally:
        thread.stop()  # type: ignore[attr-defined]
