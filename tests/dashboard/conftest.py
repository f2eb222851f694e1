"""Fixtures for the dashboard: a real Warren (AMQP + management API) and a headless Chromium.

`warren` is one broker per test module, in a thread (broker.testing); tests
name their queues and exchanges after themselves so they do not meet.
`browser` is one Chromium for the session (Debian's, through Selenium and
Debian's chromedriver); the browser tests skip, saying why, when it is absent
(and fail instead when WARREN_REQUIRE_BROWSER is set, as .ci/run sets it).
`dash` is the dashboard of `warren` in a clean tab of it. `etcd_single` is one
etcd member, for a real cluster of Warren nodes (tests/cluster/warren_cluster.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import Browser, Dashboard, call, chromium_missing
from etcd_cluster import EtcdCluster

from broker.testing import BrokerThread


@pytest.fixture(scope="module")
def warren(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=tmp_path_factory.mktemp("warren-data"))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def management_url(warren: BrokerThread) -> str:
    assert warren.broker is not None
    return warren.broker.management_url


@pytest.fixture(scope="module")
def api(management_url: str) -> Callable[..., tuple[int, Any]]:
    """api(method, path, body=None, auth=("guest", "guest")) -> (status, JSON)."""
    return functools.partial(call, management_url)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    reason = chromium_missing()
    if reason is not None:
        # .ci/run installs Chromium and sets WARREN_REQUIRE_BROWSER: there a
        # missing browser is a failure, never a quiet skip.
        if os.environ.get("WARREN_REQUIRE_BROWSER"):
            pytest.fail(f"WARREN_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    instance = Browser(tmp_path_factory.mktemp("downloads"))
    try:
        yield instance
    finally:
        instance.quit()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def dash(browser: Browser, management_url: str, screenshot_dir: Path) -> Iterator[Dashboard]:
    """The dashboard in a clean tab, polling every second; no console errors allowed."""
    page = Dashboard(browser, management_url, screenshot_dir)
    page.reset(refresh_ms=1000)
    browser.forget_log()
    yield page
    errors = browser.console_errors(lambda e: any(allow(e) for allow in page.allowed))
    # Log out, so the next test's reset starts from the login form.
    page.driver.execute_script("sessionStorage.clear()")
    assert errors == [], "console errors in the dashboard"


@pytest.fixture
def etcd_single(tmp_path: Path) -> Iterator[EtcdCluster]:
    """One etcd member of this test's own (as tests/cluster/conftest.py's)."""
    with EtcdCluster(1, tmp_path) as cluster:
        yield cluster
