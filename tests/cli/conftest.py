"""Fixtures of the CLI tests: `warren(*args)` runs the console script (cli_helpers)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from cli_helpers import WARREN, run_warren


@pytest.fixture
def warren() -> Callable[..., subprocess.CompletedProcess]:
    """`warren("config", "check", path)` -> CompletedProcess (no traceback, checked)."""
    assert WARREN.exists(), f"{WARREN} is missing: pip install -e . into the venv"
    return run_warren
