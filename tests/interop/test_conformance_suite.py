"""The conformance suite (python -m conformance) passes against the broker.

This is how `make test` holds Warren to the behaviour suite: the whole suite
runs in a subprocess against a fresh in-process Warren (or $WARREN_TEST_URL),
with the broker's management API as the admin URL, so that the
access-control area (users, vhosts, permissions set up through the API)
runs too ($WARREN_TEST_ADMIN_URL with $WARREN_TEST_URL), and a second Warren
with a consumer_timeout of SHORT_TIMEOUT ms for the consumer-timeout area
($WARREN_TEST_SHORT_TIMEOUT_URL and $WARREN_TEST_SHORT_TIMEOUT with
$WARREN_TEST_URL; without them that area is skipped). Known, documented
differences are strict xfails listed in conformance/known.py, so they do not
fail this test, but a fixed one does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.settings import Listener, Settings
from broker.testing import BrokerThread

ROOT = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT = 600
#: The short-timeout Warren's consumer_timeout (ms): short, for a quick area.
SHORT_TIMEOUT = 1000


@pytest.fixture
def short_timeout_warren() -> Iterator[BrokerThread]:
    thread = BrokerThread(settings=Settings(
        listeners_tcp=(Listener("127.0.0.1", 0),), consumer_timeout=SHORT_TIMEOUT,
    ))
    thread.start()
    yield thread
    thread.stop()


def test_conformance_suite_passes(fresh_warren, short_timeout_warren, tmp_path):
    junit = tmp_path / "conformance.xml"
    markdown = tmp_path / "conformance.md"
    url = os.environ.get("WARREN_TEST_URL") or fresh_warren.url
    admin_url = os.environ.get("WARREN_TEST_ADMIN_URL")
    if not os.environ.get("WARREN_TEST_URL"):
        admin_url = fresh_warren.broker.management_url.replace("http://", "http://guest:guest@")
    admin = ["--admin-url", admin_url] if admin_url else []
    short_url = os.environ.get("WARREN_TEST_SHORT_TIMEOUT_URL")
    short_timeout = os.environ.get("WARREN_TEST_SHORT_TIMEOUT", "2000")
    if not os.environ.get("WARREN_TEST_URL"):
        short_url, short_timeout = short_timeout_warren.url, str(SHORT_TIMEOUT)
    if short_url:
        admin += ["--short-consumer-timeout-url", short_url,
                  "--short-consumer-timeout", short_timeout]
    result = subprocess.run(
        [
            sys.executable, "-m", "conformance", "--url", url, *admin,
            "--junit", str(junit), "--markdown", str(markdown),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
    )  # fmt: skip
    failures = [line for line in result.stdout.splitlines() if line.rstrip().endswith(" fail")]
    assert result.returncode == 0, (
        f"conformance suite failed (exit {result.returncode}):\n"
        + "\n".join(failures[:80])
        + f"\n{result.stdout[-600:]}\n{result.stderr[-2000:]}"
    )
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests")) > 400
    assert int(suite.get("failures")) == 0
    if admin_url and short_url:  # the access-control and consumer-timeout areas ran
        assert int(suite.get("skipped")) == 0, result.stdout[-2000:]
    assert int(suite.get("errors")) == 0
    assert "| area | pass | fail | xfail | skip |" in markdown.read_text()
