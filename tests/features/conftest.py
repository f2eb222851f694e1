"""Fixtures for the queue-feature tests (the broker itself comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from feature_helpers import connect


@pytest.fixture
def connection(warren_url: str) -> Iterator[pika.BlockingConnection]:
    connection = connect(warren_url)
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture
def channel(connection: pika.BlockingConnection):
    return connection.channel()
