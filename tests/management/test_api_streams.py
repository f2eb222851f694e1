"""A stream in the management API: type "stream", the messages it keeps,
its consumers; purge and get answered with the 540 texts as 400s (as
RabbitMQ 3.10.8's API answers a get: `{"error":"bad_request","reason":"540
basic.get not supported by stream queues queue 'q' in vhost '/'"}`)."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from api_helpers import amqp, api_of, start_broker

from broker.testing import BrokerThread


@pytest.fixture
def broker(tmp_path) -> Iterator[BrokerThread]:
    thread = start_broker(data_dir=str(tmp_path))
    try:
        yield thread
    finally:
        thread.stop()


def test_a_stream_in_the_api(broker: BrokerThread) -> None:
    with amqp(broker) as connection:
        channel = connection.channel()
        channel.queue_declare("events", durable=True, arguments={"x-queue-type": "stream"})
        channel.confirm_delivery()
        for body in (b"a", b"bb", b"ccc"):
            channel.basic_publish("", "events", body, pika.BasicProperties(delivery_mode=2))
    api = api_of(broker)
    queue = api.get("/api/queues/%2F/events")
    assert queue["type"] == "stream"
    assert queue["messages"] == queue["messages_ready"] == 3
    assert queue["message_bytes_ready"] == 6
    assert any(q["name"] == "events" for q in api.get("/api/queues"))
    get = api.call("POST", "/api/queues/%2F/events/get",
                   {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})  # fmt: skip
    assert get.status == 400
    assert get.body == {
        "error": "bad_request",
        "reason": "540 basic.get not supported by stream queues queue 'events' in vhost '/'",
    }
    purge = api.call("DELETE", "/api/queues/%2F/events/contents")
    assert purge.status >= 400
    assert api.get("/api/queues/%2F/events")["messages"] == 3


def test_a_max_length_bytes_policy_is_retention(broker: BrokerThread) -> None:
    api = api_of(broker)
    refused = api.call("PUT", "/api/policies/%2F/age",
                       {"pattern": "^log$", "definition": {"max-age": "1h"}})  # fmt: skip
    assert refused.status == 400
    set_ = api.call("PUT", "/api/policies/%2F/bytes",
                    {"pattern": "^log$", "definition": {"max-length-bytes": 30_000,
                                                         "message-ttl": 1}})  # fmt: skip
    assert set_.status in (201, 204)
    with amqp(broker) as connection:
        channel = connection.channel()
        channel.queue_declare("log", durable=True, arguments={
            "x-queue-type": "stream", "x-stream-max-segment-size-bytes": 10_000})  # fmt: skip
        channel.confirm_delivery()
        for i in range(100):
            channel.basic_publish("", "log", b"%04d" % i + b"x" * 1000,
                                  pika.BasicProperties(delivery_mode=2))  # fmt: skip
        kept = channel.queue_declare("log", passive=True).method.message_count
    assert 20 <= kept < 50  # whole segments of ~9 records over 30 kB went; no TTL applies
    assert api.get("/api/queues/%2F/log")["effective_policy_definition"]["max-length-bytes"] == 30_000
