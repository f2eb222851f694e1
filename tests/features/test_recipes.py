"""The two recipes of docs/dead-lettering.md, run as written (delays shortened).

The topology is declared from the configuration language, as the page shows it,
with delays of tens of milliseconds instead of seconds.
"""

from __future__ import annotations

import pika
import pytest
from feature_helpers import connect, count, get, wait_for

from broker.testing import BrokerThread

RETRY_CONFIG = """
queue work durable
queue retry.1s durable
    message-ttl 30ms
    dead-letter-exchange ""
    dead-letter-routing-key "work"
queue retry.10s durable
    message-ttl 60ms
    dead-letter-exchange ""
    dead-letter-routing-key "work"
queue retry.60s durable
    message-ttl 90ms
    dead-letter-exchange ""
    dead-letter-routing-key "work"
queue work.parked durable
"""

PARKING_CONFIG = """
queue orders durable
    delivery-limit 3
    dead-letter-exchange ""
    dead-letter-routing-key "orders.parked"
queue orders.parked durable
"""

DELAYS = ["retry.1s", "retry.10s", "retry.60s"]


def retries(properties) -> int:
    deaths = (properties.headers or {}).get("x-death") or []
    return sum(d["count"] for d in deaths if d["queue"] in DELAYS and d["reason"] == "expired")


@pytest.fixture
def broker_with(tmp_path):
    started = []

    def start(config: str) -> str:
        path = tmp_path / "topology.conf"
        path.write_text(config)
        broker = BrokerThread(port=0, config_path=path)
        broker.start()
        started.append(broker)
        return broker.url

    yield start
    for broker in started:
        broker.stop()


def test_retry_loop_with_growing_delays(broker_with):
    connection = connect(broker_with(RETRY_CONFIG))
    channel = connection.channel()
    attempts = []

    def on_message(channel, method, properties, body):
        attempts.append(retries(properties))
        # The handler always fails: retry with the next delay, then park.
        done = retries(properties)
        target = DELAYS[done] if done < len(DELAYS) else "work.parked"
        channel.basic_publish("", target, body, properties)
        channel.basic_ack(method.delivery_tag)

    channel.basic_consume("work", on_message)
    channel.basic_publish("", "work", b"job", pika.BasicProperties(delivery_mode=2))
    parked = wait_for(connection, lambda: get(channel, "work.parked"))
    assert attempts == [0, 1, 2, 3]
    _, properties, body = parked
    assert body == b"job"
    assert [(d["queue"], d["reason"], d["count"]) for d in properties.headers["x-death"]] == [
        ("retry.60s", "expired", 1),
        ("retry.10s", "expired", 1),
        ("retry.1s", "expired", 1),
    ]
    connection.close()


def test_parking_queue_for_poison_messages(broker_with):
    url = broker_with(PARKING_CONFIG)
    connection = connect(url)
    channel = connection.channel()
    channel.basic_publish("", "orders", b"known-bad")
    channel.basic_publish("", "orders", b"crashes-the-consumer")
    method, _, body = get(channel, "orders", auto_ack=False)
    assert body == b"known-bad"
    channel.basic_nack(method.delivery_tag, requeue=False)  # the consumer knows
    counts = []
    while True:  # a consumer that dies holding the message, again and again
        doomed = connect(url)
        message = get(doomed.channel(), "orders", auto_ack=False)
        if message is None:
            doomed.close()
            break
        counts.append(message[1].headers["x-delivery-count"])
        doomed.close()
    assert counts == [0, 1, 2, 3]  # delivery-limit 3: at most four deliveries
    reasons = {}
    for _ in range(2):
        _, properties, body = wait_for(connection, lambda: get(channel, "orders.parked"))
        reasons[body] = properties.headers["x-first-death-reason"]
    assert reasons == {b"known-bad": "rejected", b"crashes-the-consumer": "delivery_limit"}
    assert count(channel, "orders") == 0
    connection.close()
