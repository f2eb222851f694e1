"""The conformance suite (python -m conformance) passes against the broker.

This is how `make test` holds Warren to the behaviour suite: the whole suite
runs in a subprocess against `interop_url` (a fresh in-process Warren, or
$WARREN_TEST_URL). Known, documented differences are strict xfails listed in
conformance/known.py, so they do not fail this test, but a fixed one does.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT = 600


def test_conformance_suite_passes(interop_url, tmp_path):
    junit = tmp_path / "conformance.xml"
    markdown = tmp_path / "conformance.md"
    result = subprocess.run(
        [
            sys.executable, "-m", "conformance", "--url", interop_url,
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
    assert int(suite.get("tests")) > 300
    assert int(suite.get("failures")) == 0
    assert int(suite.get("errors")) == 0
    assert "| area | pass | fail | xfail | skip |" in markdown.read_text()
