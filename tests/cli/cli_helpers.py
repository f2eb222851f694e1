"""Helpers for the CLI tests: the `warren` console script, run as a subprocess.

`run_warren(*args)` runs `.venv/bin/warren` (the script next to the test
interpreter) and checks what every command promises: no traceback, ever.
Broker tests use the in-process Warren of `tests/conftest.py` (`warren_url`,
which is the reference RabbitMQ when `WARREN_REFERENCE_URL` is set).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WARREN = Path(sys.executable).parent / "warren"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "orders.conf"

REFERENCE_URL = os.environ.get("WARREN_REFERENCE_URL")
#: The reference broker's management API (tools/reference-rabbitmq puts it on 15673).
REFERENCE_MANAGEMENT_URL = os.environ.get(
    "WARREN_REFERENCE_MANAGEMENT_URL", "http://127.0.0.1:15673"
)


#: Variables that point `warren` at a broker: never inherited by the tests' runs
#: (a developer's own settings must not change what a test sees).
CONNECTION_VARIABLES = (
    "WARREN_URL", "WARREN_MANAGEMENT_URL", "WARREN_MANAGEMENT_PASSWORD",
    "WARREN_MANAGEMENT_CACERT", "WARREN_PROFILE", "WARREN_PROFILES",
)


def run_warren(
    *args: str,
    input: str | bytes | None = None,
    timeout: float = 60,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `warren ARGS...`; stdout/stderr as text (bytes if `input` is bytes).

    The environment is the test's, without `CONNECTION_VARIABLES`, with
    $XDG_CONFIG_HOME pointing nowhere (no profiles file), plus `env`.
    """
    inherited = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    inherited["XDG_CONFIG_HOME"] = "/nonexistent/warren-tests"
    env = {**inherited, **(env or {})}
    result = subprocess.run(
        [str(WARREN), *args],
        input=input,
        capture_output=True,
        text=not isinstance(input, bytes),
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return result
