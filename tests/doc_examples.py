"""Running a docs page's example script against a test broker (the docs tests)."""

from __future__ import annotations

import subprocess
import sys


def run_example(script: str, doc_url: str, url: str) -> str:
    """Run `script` with the page's broker URL `doc_url` replaced by `url`;
    its standard output (the run must succeed)."""
    result = subprocess.run(
        [sys.executable, "-c", script.replace(doc_url, url)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
