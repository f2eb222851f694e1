"""The management API counts what deduplication dropped, per queue and per exchange."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from api_helpers import Api, amqp, api_of, start_broker

from broker.testing import BrokerThread


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    thread = start_broker()
    try:
        yield thread
    finally:
        thread.stop()


def test_dropped_duplicates_and_remembered_keys_are_listed(broker: BrokerThread) -> None:
    api: Api = api_of(broker)
    connection = amqp(broker)
    channel = connection.channel()
    channel.exchange_declare("orders", "fanout", arguments={"x-message-deduplication": True})
    channel.exchange_declare("plain", "fanout")
    channel.queue_declare("intake", arguments={"x-message-deduplication": True})
    channel.queue_bind("intake", "orders")
    item = api.get("/api/exchanges/%2F/orders")
    assert (item["deduplicated"], item["deduplication_keys"]) == (0, 0)
    channel.confirm_delivery()
    for key in ("a", "a", "b", "a"):  # the exchange drops two
        channel.basic_publish("orders", "", b"x", pika.BasicProperties(
            headers={"x-deduplication-header": key}))  # fmt: skip
    channel.basic_publish("", "intake", b"x", pika.BasicProperties(
        headers={"x-deduplication-header": "b"}))  # fmt: skip
    item = api.get("/api/exchanges/%2F/orders")
    assert (item["deduplicated"], item["deduplication_keys"]) == (2, 2)
    queue = api.get("/api/queues/%2F/intake")
    assert (queue["deduplicated"], queue["deduplication_keys"], queue["messages"]) == (1, 2, 2)
    assert "deduplicated" not in api.get("/api/exchanges/%2F/plain")
    connection.close()
