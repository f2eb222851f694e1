"""Client tests run against an in-process Warren by default, and against a
reference broker (RabbitMQ) when ``WARREN_REFERENCE_URL`` is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

# The plugin's fixtures, imported so these tests work before (and after) the
# pytest11 entry point is installed.
from broker.pytest_plugin import warren_session_url  # noqa: F401

REFERENCE_URL = os.environ.get("WARREN_REFERENCE_URL")


@pytest.fixture(scope="session")
def amqp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker under test: the reference if WARREN_REFERENCE_URL is set, else Warren."""
    if REFERENCE_URL:
        yield REFERENCE_URL
    else:
        yield request.getfixturevalue("warren_session_url")


@pytest.fixture
def name() -> str:
    """A name no other test (or earlier run against the reference) uses."""
    return f"test-client-{uuid.uuid4().hex[:12]}"
