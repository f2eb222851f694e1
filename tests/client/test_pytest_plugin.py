"""The pytest plugin's fixtures: a fresh in-process Warren, from sync and trio tests."""

from __future__ import annotations

import pika
import pytest

from broker.client import open_connection
from broker.pytest_plugin import warren_broker, warren_url  # noqa: F401


def test_sync_test_with_pika(warren_url: str) -> None:  # noqa: F811
    assert warren_url.startswith("amqp://guest:guest@127.0.0.1:")
    connection = pika.BlockingConnection(pika.URLParameters(warren_url))
    try:
        channel = connection.channel()
        channel.queue_declare("plugin-q")
        channel.basic_publish("", "plugin-q", b"hello")
        method, _props, body = channel.basic_get("plugin-q", auto_ack=True)
        assert body == b"hello"
    finally:
        connection.close()


@pytest.mark.trio
async def test_trio_test_with_our_client(warren_url: str) -> None:  # noqa: F811
    async with open_connection(warren_url) as conn, conn.open_channel() as ch:
        # A fresh broker: the queue of the previous test is not there.
        declared = await ch.queue_declare("plugin-q")
        assert declared.message_count == 0


def test_each_test_gets_its_own_broker(warren_broker) -> None:  # noqa: F811
    assert warren_broker.broker.data_dir is not None
    assert warren_broker.broker.data_dir.name.startswith("warren-data")
