"""kombu (the messaging layer under Celery) drives the broker end to end."""

from __future__ import annotations

import kombu
import pytest


@pytest.fixture
def connection(interop_url):
    with kombu.Connection(interop_url, connect_timeout=10) as connection:
        connection.ensure_connection(max_retries=3)
        yield connection


def test_producer_and_consumer_with_json(connection, unique_name):
    exchange = kombu.Exchange(unique_name("x"), type="direct", auto_delete=True)
    queue = kombu.Queue(unique_name("q"), exchange, routing_key="task", auto_delete=True)
    with connection.Producer() as producer:
        for i in range(20):
            producer.publish(
                {"n": i, "text": "ünïcode"},
                exchange=exchange,
                routing_key="task",
                serializer="json",
                declare=[queue],
                retry=True,
            )
    received = []

    def on_message(body, message):
        received.append(body)
        message.ack()

    with connection.Consumer(queue, callbacks=[on_message], accept=["json"]):
        while len(received) < 20:
            connection.drain_events(timeout=5)
    assert received == [{"n": i, "text": "ünïcode"} for i in range(20)]


def test_simple_queue_roundtrip(connection, unique_name):
    queue = connection.SimpleQueue(unique_name(), queue_opts={"auto_delete": True})
    try:
        queue.put({"hello": "world"}, serializer="json")
        message = queue.get(block=True, timeout=5)
        assert message.payload == {"hello": "world"}
        message.ack()
        assert queue.qsize() == 0
    finally:
        queue.close()


def test_fanout_broadcast(connection, unique_name):
    exchange = kombu.Exchange(unique_name("fan"), type="fanout", auto_delete=True)
    queues = [kombu.Queue(unique_name(f"q{i}"), exchange, auto_delete=True) for i in range(3)]
    channel = connection.default_channel
    for queue in queues:
        queue(channel).declare()
    with connection.Producer() as producer:
        producer.publish({"all": True}, exchange=exchange, serializer="json")
    for queue in queues:
        message = queue(channel).get(no_ack=True)
        assert message is not None and message.payload == {"all": True}
