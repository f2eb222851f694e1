"""Fixtures of the CLI tests: `warren(*args)` runs the console script (cli_helpers);
`target` is a broker with a management API, Warren then the reference RabbitMQ
(cli_api_helpers); `etcd_single` is one etcd member, for a real cluster of Warren
nodes (tests/cluster/warren_cluster.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_api_helpers import (
    NO_REFERENCE,
    REFERENCE_MANAGEMENT_URL,
    REFERENCE_URL,
    Target,
    with_userinfo,
)
from cli_helpers import WARREN, run_warren
from etcd_cluster import EtcdCluster

from broker.testing import BrokerThread


@pytest.fixture
def warren() -> Callable[..., subprocess.CompletedProcess]:
    """`warren("config", "check", path)` -> CompletedProcess (no traceback, checked)."""
    assert WARREN.exists(), f"{WARREN} is missing: pip install -e . into the venv"
    return run_warren


@pytest.fixture(scope="session")
def api_warren(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    """An in-process Warren with its management API, for the admin commands' tests."""
    thread = BrokerThread(data_dir=tmp_path_factory.mktemp("warren-api"))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(params=["warren", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The broker a test runs against: Warren, then the reference RabbitMQ (skipped,
    saying why, unless WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL are set)."""
    if request.param == "rabbitmq":
        if not (REFERENCE_URL and REFERENCE_MANAGEMENT_URL):
            pytest.skip(NO_REFERENCE)
        management = REFERENCE_MANAGEMENT_URL.rstrip("/")
        if "@" not in management.split("://", 1)[1]:
            management = with_userinfo(management, "guest:guest")
        found = Target("rabbitmq", REFERENCE_URL, management)
    else:
        thread: BrokerThread = request.getfixturevalue("api_warren")
        assert thread.broker is not None
        found = Target("warren", thread.url,
                       with_userinfo(thread.broker.management_url, "guest:guest"))
    try:
        yield found
    finally:
        found.run_cleanups()


@pytest.fixture
def etcd_single(tmp_path: Path) -> Iterator[EtcdCluster]:
    """One etcd member of this test's own (as tests/cluster/conftest.py's)."""
    with EtcdCluster(1, tmp_path) as cluster:
        yield cluster
