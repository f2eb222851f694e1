"""Fixtures for the client-interop tests: which broker the real clients drive.

`interop_url` is, in order of preference:

1. ``$WARREN_TEST_URL``, to run the same tests against another broker (the
   reference RabbitMQ: ``WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5673/``);
2. the ``warren_url`` fixture of the project's test setup (a fresh in-process
   Warren per test);
3. failing both, a Warren started here with ``broker.testing``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

URL_ENV = "WARREN_TEST_URL"


@pytest.fixture
def interop_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    try:
        yield request.getfixturevalue("warren_url")
        return
    except pytest.FixtureLookupError:
        pass
    from broker.testing import run_broker_in_thread

    with run_broker_in_thread() as url:
        yield url


@pytest.fixture
def unique_name(request: pytest.FixtureRequest):
    """unique_name("label") -> a queue/exchange name no other run uses."""

    def make(label: str = "q") -> str:
        return f"interop.{request.node.name[:30]}.{label}.{uuid.uuid4().hex[:10]}"

    return make
