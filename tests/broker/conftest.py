"""Fixtures shared by the broker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from broker_helpers import connect


@pytest.fixture
def connection(warren_url: str) -> Iterator[pika.BlockingConnection]:
    """A pika connection to the test broker, closed after the test."""
    connection = connect(warren_url)
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()
