"""Finding the real tools the tool tests run (rabbitmqadmin), unmodified.

rabbitmqadmin is the script RabbitMQ's management plugin serves at
/cli/rabbitmqadmin (Debian ships the same file as /usr/bin/rabbitmqadmin).
It is looked for in WARREN_RABBITMQADMIN, then .tools/rabbitmqadmin (where
.ci/run extracts it from Debian's rabbitmq-server package, without
installing the server), then on PATH. A missing tool skips its tests, saying
why, unless WARREN_REQUIRE_TOOLS is set (.ci/run sets it): then it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]


def missing_tool(reason: str) -> NoReturn:
    """Skip (or, with WARREN_REQUIRE_TOOLS, fail) the test: `reason` says what is missing."""
    if os.environ.get("WARREN_REQUIRE_TOOLS"):
        pytest.fail(f"WARREN_REQUIRE_TOOLS is set but {reason}")
    pytest.skip(reason)


def rabbitmqadmin() -> Path:
    """The rabbitmqadmin script (a Python 3 file, run with this interpreter)."""
    given = os.environ.get("WARREN_RABBITMQADMIN")
    if given:
        if not Path(given).is_file():
            missing_tool(f"WARREN_RABBITMQADMIN={given} is not a file")
        return Path(given)
    local = ROOT / ".tools" / "rabbitmqadmin"
    if local.is_file():
        return local
    found = shutil.which("rabbitmqadmin")
    if found is None:
        missing_tool(
            "rabbitmqadmin is not installed (set WARREN_RABBITMQADMIN, put it in "
            ".tools/rabbitmqadmin, or see .ci/run)"
        )
    return Path(found)
