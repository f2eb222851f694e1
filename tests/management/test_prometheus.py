"""The Prometheus endpoint of a real Warren: rabbitmq_prometheus' families, labels and values."""

from __future__ import annotations

import gzip
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from api_helpers import amqp, metrics, parse_metrics, start_broker, wait_for

from broker.management.prometheus import AGGREGATED_ONLY, FAMILIES
from broker.testing import BrokerThread

#: The labels of each family on /metrics/per-object (notes section 6).
PER_OBJECT_LABELS = {
    "rabbitmq_queue_messages_ready": {"vhost", "queue"},
    "rabbitmq_queue_messages_unacked": {"vhost", "queue"},
    "rabbitmq_queue_messages": {"vhost", "queue"},
    "rabbitmq_queue_consumers": {"vhost", "queue"},
    "rabbitmq_queue_messages_ready_bytes": {"vhost", "queue"},
    "rabbitmq_channel_consumers": {"channel"},
    "rabbitmq_channel_messages_unacked": {"channel"},
    "rabbitmq_consumer_prefetch": {"channel"},
    "rabbitmq_channel_messages_published_total": {"channel", "vhost", "exchange"},
    "rabbitmq_channel_messages_confirmed_total": {"channel", "vhost", "exchange"},
    "rabbitmq_channel_messages_delivered_ack_total": {"channel", "vhost", "queue"},
    "rabbitmq_channel_messages_acked_total": {"channel", "vhost", "queue"},
    "rabbitmq_channel_get_empty_total": {"channel", "vhost", "queue"},
    "rabbitmq_connection_incoming_bytes_total": {"channel"},
    "rabbitmq_connection_channels": {"channel"},
    "rabbitmq_global_messages_received_total": {"protocol"},
    "rabbitmq_global_messages_delivered_total": {"protocol", "queue_type"},
    "rabbitmq_global_messages_dead_lettered_expired_total": {"queue_type", "dead_letter_strategy"},
    "rabbitmq_build_info": {"rabbitmq_version", "prometheus_plugin_version",
                            "prometheus_client_version", "erlang_version"},
    "rabbitmq_identity_info": {"rabbitmq_node", "rabbitmq_cluster",
                               "rabbitmq_cluster_permanent_id"},
}


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    thread = start_broker()
    try:
        yield thread
    finally:
        thread.stop()


def traffic(broker: BrokerThread) -> tuple[pika.BlockingConnection, pika.BlockingConnection]:
    publisher = amqp(broker)
    channel = publisher.channel()
    channel.confirm_delivery()
    channel.exchange_declare("prom-x", "direct")
    channel.queue_declare("prom-q")
    channel.queue_bind("prom-q", "prom-x", "k")
    for _ in range(10):
        channel.basic_publish("prom-x", "k", b"0123456789")
    consumer = amqp(broker)
    cchannel = consumer.channel()
    cchannel.basic_qos(prefetch_count=4)
    cchannel.basic_consume("prom-q", lambda *a: None)  # takes 4, never acks
    consumer.process_data_events(0.2)
    return publisher, consumer


def value(families: dict, name: str, **labels: str) -> float:
    samples = [v for got, v in families[name]["samples"]
               if all(got.get(k) == x for k, x in labels.items())]
    assert len(samples) == 1, (name, labels, families[name]["samples"])
    return samples[0]


def test_metrics_aggregated(broker) -> None:
    publisher, consumer = traffic(broker)
    url = broker.broker.prometheus_url
    families = wait_for(lambda: (f := parse_metrics(metrics(url)))
                        and value(f, "rabbitmq_queue_messages_unacked") == 4 and f)
    emitted = set(families)
    assert emitted == set(FAMILIES), emitted ^ set(FAMILIES)
    assert not any(name.startswith("erlang_") for name in emitted)
    for name, family in FAMILIES.items():
        assert (families[name]["type"], families[name]["help"]) == (family.type, family.help)
        assert families[name]["samples"], name
        if name.startswith(("rabbitmq_queue_", "rabbitmq_channel_", "rabbitmq_connection_")):
            assert all(labels == {} for labels, _ in families[name]["samples"]), name
    assert value(families, "rabbitmq_queue_messages_ready") == 6
    assert value(families, "rabbitmq_queue_messages") == 10
    assert value(families, "rabbitmq_queue_messages_ready_bytes") == 60
    assert value(families, "rabbitmq_queues") == 1
    assert value(families, "rabbitmq_connections") == 2
    assert value(families, "rabbitmq_channels") == 2
    assert value(families, "rabbitmq_consumers") == 1
    assert value(families, "rabbitmq_channel_messages_published_total") == 10
    assert value(families, "rabbitmq_channel_messages_confirmed_total") == 10
    assert value(families, "rabbitmq_channel_messages_delivered_ack_total") == 4
    assert value(families, "rabbitmq_queue_messages_published_total") == 10
    assert value(families, "rabbitmq_global_messages_received_total", protocol="amqp091") == 10
    assert value(families, "rabbitmq_global_messages_received_confirm_total") == 10
    assert value(families, "rabbitmq_global_messages_routed_total") == 10
    assert value(families, "rabbitmq_connections_opened_total") == 2
    assert value(families, "rabbitmq_queues_created_total") == 1
    assert value(families, "rabbitmq_process_resident_memory_bytes") > 0
    assert value(families, "rabbitmq_process_open_fds") > 0
    assert value(families, "rabbitmq_process_max_fds") > 0
    assert value(families, "rabbitmq_disk_space_available_bytes") > 0
    assert value(families, "rabbitmq_alarms_free_disk_space_watermark") == 0
    assert value(families, "rabbitmq_build_info", rabbitmq_version="3.10.8") == 1
    assert value(families, "process_start_time_seconds") > 1_600_000_000
    consumer.close()
    publisher.close()
    # Counters of closed channels stay in the global families (monotonic).
    families = wait_for(lambda: (f := parse_metrics(metrics(url)))
                        and value(f, "rabbitmq_channels") == 0 and f)
    assert value(families, "rabbitmq_global_messages_received_total") == 10
    assert value(families, "rabbitmq_global_messages_delivered_consume_manual_ack_total") == 4
    assert value(families, "rabbitmq_channels_closed_total") == 2


def test_metrics_per_object(broker) -> None:
    publisher, consumer = traffic(broker)
    url = broker.broker.prometheus_url
    families = wait_for(lambda: (f := parse_metrics(metrics(url, "/metrics/per-object")))
                        and f["rabbitmq_queue_messages_unacked"]["samples"]
                        and value(f, "rabbitmq_queue_messages_unacked", queue="prom-q") == 4 and f)
    assert set(families) == set(FAMILIES) - AGGREGATED_ONLY
    for name, labels in PER_OBJECT_LABELS.items():
        assert families[name]["samples"], name
        for got, _value in families[name]["samples"]:
            assert set(got) == labels, (name, got)
    assert value(families, "rabbitmq_queue_messages_ready", vhost="/", queue="prom-q") == 6
    assert value(families, "rabbitmq_channel_messages_published_total", exchange="prom-x") == 10
    assert value(families, "rabbitmq_channel_messages_delivered_ack_total", queue="prom-q") == 4
    channels = {labels["channel"] for labels, _ in families["rabbitmq_channel_consumers"]["samples"]}
    assert len(channels) == 2
    consumer.close()
    publisher.close()


def test_the_endpoint_is_open_gzips_and_refuses_the_rest(broker) -> None:
    url = broker.broker.prometheus_url
    request = urllib.request.Request(url + "/metrics", headers={"accept-encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert b"rabbitmq_queues" in gzip.decompress(response.read())
        assert "content-security-policy" not in response.headers
    for path in ("/", "/api/overview", "/metrics/nope"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path, timeout=10)
        assert refused.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url + "/metrics", method="POST", data=b""))
    assert refused.value.code == 405


def test_many_queues_per_object(broker) -> None:
    def make() -> None:
        for n in range(1500):
            broker.broker.vhost.declare_queue(None, f"q{n}")

    broker.run_sync(make)
    families = parse_metrics(metrics(broker.broker.prometheus_url, "/metrics/per-object"))
    assert len(families["rabbitmq_queue_messages"]["samples"]) == 1500
    aggregated = parse_metrics(metrics(broker.broker.prometheus_url))
    assert value(aggregated, "rabbitmq_queues") == 1500


def scrape(url: str, path: str) -> tuple[list[Any], int]:
    """The families prometheus_client's own parser (what a scraper runs) reads
    off `path`, and how many sample lines the text has."""
    from prometheus_client.parser import text_string_to_metric_families

    text = metrics(url, path)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(text_string_to_metric_families(text)), len(lines)


@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_a_prometheus_scrape_reads_every_line(broker, path) -> None:
    publisher, consumer = traffic(broker)
    url = broker.broker.prometheus_url
    families, lines = scrape(url, path)
    # Every sample line parsed, into a family of its own.
    assert sum(len(f.samples) for f in families) == lines > 50
    names = set()
    for family in families:
        # untyped ("unknown" to prometheus_client): rabbitmq_build_info and
        # rabbitmq_identity_info, as rabbitmq_prometheus types them.
        assert family.type in ("counter", "gauge", "histogram", "unknown"), family.name
        # prometheus_client names a counter's family without "_total".
        name = family.name + ("_total" if family.type == "counter" else "")
        # process_start_time_seconds: unprefixed in rabbitmq_prometheus too.
        assert name.startswith("rabbitmq_") or name == "process_start_time_seconds", name
        assert family.documentation, name
        for sample in family.samples:
            assert sample.name.startswith(family.name), (family.name, sample.name)
        names.add(name)
    expected = set(FAMILIES) if path == "/metrics" else set(FAMILIES) - AGGREGATED_ONLY
    assert names == expected
    consumer.close()
    publisher.close()


REFERENCE_PROMETHEUS = os.environ.get("WARREN_REFERENCE_PROMETHEUS_URL")


@pytest.mark.skipif(not REFERENCE_PROMETHEUS, reason="set WARREN_REFERENCE_PROMETHEUS_URL "
                    "(http://127.0.0.1:16673) to compare with rabbitmq_prometheus")
@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_a_scrape_of_rabbitmq_has_every_family_warren_has(broker, path) -> None:
    assert REFERENCE_PROMETHEUS
    ours = {f.name: f.type for f in scrape(broker.broker.prometheus_url, path)[0]}
    theirs = {f.name: f.type for f in scrape(REFERENCE_PROMETHEUS, path)[0]}
    assert {n: t for n, t in ours.items() if theirs.get(n) != t} == {}


@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_login_attempts_by_protocol(broker, path) -> None:
    # rabbitmq_prometheus's auth attempt counters (3.10.8 serves them on both
    # endpoints): AMQP logins (the broker fixture's own included) and HTTP
    # Basic auth, good and bad.
    url = broker.broker.prometheus_url
    before = parse_metrics(metrics(url, path))
    base = {(p, k): value(before, f"rabbitmq_auth_attempts{k}_total", protocol=p)
            for p in ("amqp091", "http") for k in ("", "_succeeded", "_failed")}
    amqp(broker).close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp(broker, credentials=pika.PlainCredentials("guest", "wrong"))
    management = broker.broker.management_url
    request = urllib.request.Request(management + "/api/whoami")
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    urllib.request.urlopen(request, timeout=10).close()
    request = urllib.request.Request(management + "/api/whoami")
    request.add_header("Authorization", "Basic Z3Vlc3Q6bm8=")  # guest:no
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    after = parse_metrics(metrics(url, path))
    for family in ("rabbitmq_auth_attempts_total", "rabbitmq_auth_attempts_succeeded_total",
                   "rabbitmq_auth_attempts_failed_total"):
        assert after[family]["type"] == "counter"
    for protocol in ("amqp091", "http"):
        got = {k: value(after, f"rabbitmq_auth_attempts{k}_total", protocol=protocol)
               - base[(protocol, k)] for k in ("", "_succeeded", "_failed")}
        assert got == {"": 2, "_succeeded": 1, "_failed": 1}, (protocol, got)
