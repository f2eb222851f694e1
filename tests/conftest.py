"""Project-wide fixtures: a real Warren broker, in-process, on an ephemeral port.

- `warren_url` (session scope): one broker shared by every test that asks;
  tests must use names of their own (`unique` helps).
- `fresh_warren_url` (function scope): a broker of its own, for tests that
  need a clean state (counts, shutdown, exclusive ownership...).
- `fresh_warren`: the `broker.testing.BrokerThread` behind a fresh broker, for
  tests that inspect broker state with `.run_sync(fn)`.

A real cluster of Warren processes is `warren_cluster.WarrenCluster` and its
etcd `etcd_cluster.EtcdCluster` (tests/cluster/, importable from every test).

Brokers run in a background thread with their own trio loop
(`broker.testing`), so synchronous clients (pika BlockingConnection, kombu)
and asyncio clients (aio-pika) talk to them over real sockets.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest puts tests/ first on sys.path (rootdir conftest, "prepend" import
# mode), where tests/broker, tests/protocol... would shadow the real packages
# as namespace packages unless the repository root comes first.
_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[0] != _ROOT:
    sys.path.insert(0, _ROOT)
# tests/cluster/'s helpers (etcd_cluster, warren_cluster) for the tests elsewhere
# that start a real cluster: pytest adds that directory only when it collects it.
_CLUSTER_TESTS = str(Path(__file__).resolve().parent / "cluster")
if _CLUSTER_TESTS not in sys.path:
    sys.path.append(_CLUSTER_TESTS)
# And in the processes the tests start (the venv's `warren` script, `python -c`):
# the venv's editable install may point at another checkout (a git worktree
# sharing the venv), whose code they would otherwise run instead of this one's.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _ROOT]
)

from broker.logging import configure_logging  # noqa: E402
from broker.testing import BrokerThread  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _broker_logging() -> None:
    # JSON lines on stderr, warnings and up: test output stays readable.
    configure_logging(json=True, level=logging.WARNING)


def _start(data_dir: object, host: str = "127.0.0.1") -> BrokerThread:
    thread = BrokerThread(host=host, port=0, data_dir=data_dir)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def warren_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The amqp URL of the session's shared Warren broker.

    With `WARREN_REFERENCE_URL` set (e.g. amqp://guest:guest@127.0.0.1:5673/),
    tests on this fixture run against that broker instead: the way to check
    that a test's expectations are RabbitMQ's.
    """
    reference = os.environ.get("WARREN_REFERENCE_URL")
    if reference:
        yield reference
        return
    thread = _start(tmp_path_factory.mktemp("warren-session"))
    try:
        yield thread.url
    finally:
        thread.stop()


@pytest.fixture
def fresh_warren(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    """A Warren broker of this test's own."""
    thread = _start(tmp_path_factory.mktemp("warren-fresh"))
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def fresh_warren_url(fresh_warren: BrokerThread) -> str:
    """The amqp URL of a Warren broker of this test's own."""
    return fresh_warren.url


@pytest.fixture
def unique(request: pytest.FixtureRequest):
    """unique("label") -> a queue/exchange name no other test uses."""

    def make(label: str = "q") -> str:
        return f"t.{request.node.name[:40]}.{label}.{uuid.uuid4().hex[:8]}"

    return make
