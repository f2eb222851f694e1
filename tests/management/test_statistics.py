"""Statistics end to end: counts and rates after real traffic, the overview, the sampler.

The sampling interval is 100 ms here (RabbitMQ's collect_statistics_interval
is 5 s): rates appear within a few rounds of traffic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from api_helpers import Api, amqp, api_of, start_broker, wait_for

from broker.testing import BrokerThread


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    thread = start_broker()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def api(broker: BrokerThread) -> Api:
    return api_of(broker)


class Traffic:
    """A publisher (with confirms) and a consumer (manual acks) running in a thread."""

    def __init__(self, broker: BrokerThread, queue: str = "flow", exchange: str = "flow-x") -> None:
        self.broker = broker
        self.queue = queue
        self.exchange = exchange
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.published = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        publisher = amqp(self.broker)
        consumer = amqp(self.broker)
        pch = publisher.channel()
        pch.confirm_delivery()
        pch.exchange_declare(self.exchange, "direct")
        pch.queue_declare(self.queue)
        pch.queue_bind(self.queue, self.exchange, "k")
        cch = consumer.channel()
        cch.basic_qos(prefetch_count=50)
        cch.basic_consume(self.queue, lambda ch, m, p, b: ch.basic_ack(m.delivery_tag))
        self.ready.set()
        while not self.stop.is_set():
            for _ in range(20):
                pch.basic_publish(self.exchange, "k", b"payload")
                self.published += 1
            consumer.process_data_events(0)
            time.sleep(0.005)
        consumer.process_data_events(0.2)
        consumer.close()
        publisher.close()

    def __enter__(self) -> Traffic:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_rates_appear_after_traffic_everywhere(broker, api) -> None:
    with Traffic(broker):
        def rates() -> dict:
            overview = api.get("/api/overview")["message_stats"]
            queue = api.get("/api/queues/%2F/flow").get("message_stats", {})
            exchange = api.get("/api/exchanges/%2F/flow-x").get("message_stats", {})
            channels = [c.get("message_stats", {}) for c in api.get("/api/channels")]
            connections = api.get("/api/connections")
            vhost = api.get("/api/vhosts/%2F")
            found = {
                "overview publish": overview["publish_details"]["rate"],
                "overview ack": overview["ack_details"]["rate"],
                "overview confirm": overview["confirm_details"]["rate"],
                "queue publish": queue.get("publish_details", {}).get("rate", 0),
                "queue deliver_get": queue.get("deliver_get_details", {}).get("rate", 0),
                "exchange in": exchange.get("publish_in_details", {}).get("rate", 0),
                "exchange out": exchange.get("publish_out_details", {}).get("rate", 0),
                "channel publish": max(c.get("publish_details", {}).get("rate", 0) for c in channels),
                "channel deliver": max(c.get("deliver_details", {}).get("rate", 0) for c in channels),
                "connection recv": max(c["recv_oct_details"]["rate"] for c in connections),
                "connection send": max(c["send_oct_details"]["rate"] for c in connections),
                "vhost publish": vhost["message_stats"]["publish_details"]["rate"],
                "vhost recv": vhost["recv_oct_details"]["rate"],
            }
            return found if all(rate > 0 for rate in found.values()) else {}

        found = wait_for(rates, timeout=15)
        assert all(isinstance(rate, float) for rate in found.values())
    # Once traffic stops, the rates fall back to 0 within a round or two.
    wait_for(lambda: api.get("/api/overview")["message_stats"]["publish_details"]["rate"] == 0.0)


def test_the_overview_counts_everything_and_keeps_closed_channels_counts(broker, api) -> None:
    with Traffic(broker) as traffic:
        wait_for(lambda: traffic.published >= 200)
    total = traffic.published
    overview = wait_for(lambda: (o := api.get("/api/overview"))["message_stats"]["ack"] == total
                        and o["churn_rates"]["connection_closed"] == 2 and o)
    stats = overview["message_stats"]
    assert (stats["publish"], stats["confirm"], stats["deliver"], stats["deliver_get"]) == (
        total, total, total, total)
    assert stats["disk_reads"] == 0 and "disk_writes" in stats
    churn = overview["churn_rates"]
    assert (churn["connection_created"], churn["connection_closed"]) == (2, 2)
    assert (churn["channel_created"], churn["channel_closed"]) == (2, 2)
    assert (churn["queue_declared"], churn["queue_created"], churn["queue_deleted"]) == (1, 1, 0)
    assert all(set(churn[f"{k}_details"]) == {"rate"} for k in ("queue_created", "channel_closed"))
    assert overview["object_totals"] == {
        "channels": 0, "connections": 0, "consumers": 0, "exchanges": 8, "queues": 1}
    assert overview["queue_totals"]["messages"] == 0
    listeners = overview["listeners"]
    assert ("amqp", broker.broker.port) in {(x["protocol"], x["port"]) for x in listeners}
    assert {x["protocol"] for x in listeners} == {"amqp", "http", "http/prometheus"}
    for key in ("management_version", "rabbitmq_version", "product_name", "product_version",
                "erlang_version", "cluster_name", "node", "rates_mode"):
        assert isinstance(overview[key], str), key
    assert overview["management_version"] == "3.10.8" and overview["rates_mode"] == "basic"
    vhost = api.get("/api/vhosts/%2F")
    assert vhost["message_stats"]["publish"] == total
    assert vhost["recv_oct"] > 0 and vhost["send_oct"] > 0
    queue = api.get("/api/queues/%2F/flow")["message_stats"]
    assert (queue["publish"], queue["deliver"], queue["ack"]) == (total, total, total)


def test_requeues_rejects_and_gets_are_counted_as_rabbitmq_counts_them(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("c")
    for _ in range(4):
        channel.basic_publish("", "c", b"x")
    delivered: list[tuple[int, bool]] = []
    channel.basic_qos(prefetch_count=4)
    tag = channel.basic_consume(
        "c", lambda ch, m, p, b: delivered.append((m.delivery_tag, m.redelivered))
    )
    wait_for(lambda: connection.process_data_events(0.05) or len(delivered) == 4)
    channel.basic_nack(1, requeue=True)       # back to the queue: delivered again as tag 5
    wait_for(lambda: connection.process_data_events(0.05) or len(delivered) == 5)
    assert delivered[-1] == (5, True)
    channel.basic_reject(2, requeue=False)    # dropped
    channel.basic_ack(3)
    channel.basic_ack(5, multiple=True)       # 4 and 5
    channel.basic_cancel(tag)
    channel.basic_publish("", "c", b"y")
    method, _props, _body = channel.basic_get("c", auto_ack=False)
    channel.basic_ack(method.delivery_tag)
    assert channel.basic_get("c", auto_ack=True) == (None, None, None)
    expected = {"publish": 5, "deliver": 5, "ack": 4, "redeliver": 1, "get": 1, "get_empty": 1,
                "get_no_ack": 0, "deliver_no_ack": 0, "deliver_get": 6}

    def queue_stats() -> dict:
        stats = api.get("/api/queues/%2F/c").get("message_stats", {})
        return {k: stats.get(k) for k in expected}

    wait_for(lambda: queue_stats() == expected)
    channel_stats = api.get("/api/channels")[0]["message_stats"]
    assert {k: channel_stats[k] for k in expected} == expected
    connection.close()
    overview = wait_for(lambda: (o := api.get("/api/overview")["message_stats"])["get"] == 1 and o)
    assert {k: overview[k] for k in expected} == expected
    # Still counted once the channel and its consumer are gone.
    assert queue_stats() == expected


def test_the_sampler_forgets_objects_that_are_gone(broker, api) -> None:
    statistics = broker.broker.statistics
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("short-lived")

    def sampled() -> set[str]:
        return broker.run_sync(lambda: {q.name for q in statistics.queues.samples})

    wait_for(lambda: "short-lived" in sampled())
    channels = broker.run_sync(lambda: len(statistics.channels.samples))
    assert channels == 1
    channel.queue_delete("short-lived")
    connection.close()
    wait_for(lambda: "short-lived" not in sampled())
    wait_for(lambda: broker.run_sync(lambda: len(statistics.channels.samples)) == 0)
    wait_for(lambda: broker.run_sync(lambda: len(statistics.connection_table.samples)) == 0)


def test_the_node_and_the_aliveness_test(broker, api) -> None:
    (node,) = api.get("/api/nodes")
    assert node["name"] == api.get("/api/overview")["node"]
    assert node["running"] is True and node["type"] == "disc"
    assert node["mem_used"] > 0 and node["fd_used"] > 0 and node["disk_free"] > 0
    assert isinstance(node["uptime"], int) and isinstance(node["os_pid"], str)
    assert api.get(f"/api/nodes/{node['name']}")["name"] == node["name"]
    assert api.call("GET", "/api/nodes/nope@nowhere").status == 404
    api.call("PUT", "/api/users/viewer", {"password": "pw", "tags": "management"})
    assert api.call("GET", "/api/nodes", auth=("viewer", "pw")).body == {
        "error": "not_authorised", "reason": "Not monitor user"}
    assert api.get("/api/aliveness-test/%2F") == {"status": "ok"}
    assert api.get("/api/aliveness-test/%2F") == {"status": "ok"}
    assert api.get("/api/queues/%2F/aliveness-test")["messages"] == 0  # left behind, as RabbitMQ
    assert api.call("GET", "/api/aliveness-test/nope").status == 404
    assert api.get("/api/cluster-name") == {"name": api.get("/api/overview")["cluster_name"]}


def test_a_management_user_sees_its_own_vhosts_in_the_overview(broker, api) -> None:
    api.call("PUT", "/api/vhosts/other", {})
    api.call("PUT", "/api/users/ann", {"password": "pw", "tags": "management"})
    api.call("PUT", "/api/permissions/other/ann", {"configure": ".*", "write": ".*", "read": ".*"})
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("mine")
    channel.basic_publish("", "mine", b"x")
    wait_for(lambda: api.get("/api/overview")["queue_totals"]["messages"] == 1)
    theirs = api.get("/api/overview", auth=("ann", "pw"))
    assert theirs["queue_totals"]["messages"] == 0
    assert theirs["object_totals"]["queues"] == 0 and theirs["object_totals"]["connections"] == 0
    assert theirs["message_stats"]["publish"] == 0
    connection.close()


def test_statistics_interval_comes_from_the_settings(tmp_path) -> None:
    thread = start_broker(interval_ms=5000)
    try:
        assert thread.broker.statistics.interval == 5.0
    finally:
        thread.stop()
