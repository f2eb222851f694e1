"""Warren against the reference RabbitMQ 3.10.8: the same traffic, the same JSON shapes.

The same scenario runs on both brokers (a publisher with confirms into a
topic exchange, a queue bound with arguments, a consumer with a prefetch,
an unroutable mandatory message); then the items of /api/overview,
/api/queues, /api/exchanges, /api/connections, /api/channels,
/api/consumers, /api/bindings (and the single-object GETs) are compared:
the same keys, and the same JSON types for the keys both have, and the
same counts for the scenario's queue, exchange and channels. The keys
Warren leaves out are listed below with the reason (docs/compatibility.md).
The Prometheus endpoints are compared the same way: every family Warren
emits exists in rabbitmq_prometheus with the same TYPE, HELP and labels.

Set WARREN_REFERENCE_URL (amqp://guest:guest@127.0.0.1:5673/) and
WARREN_REFERENCE_MANAGEMENT_URL (http://127.0.0.1:15673) for the API, and
WARREN_REFERENCE_PROMETHEUS_URL (http://127.0.0.1:16673) for Prometheus;
without them the tests skip. Everything made on the reference is named
`stats-<random>` and deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from api_helpers import Api, api_of, metrics, parse_metrics, quote, start_broker, wait_for

from broker.testing import BrokerThread

REFERENCE_AMQP = os.environ.get("WARREN_REFERENCE_URL")
REFERENCE_API = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")
REFERENCE_PROMETHEUS = os.environ.get("WARREN_REFERENCE_PROMETHEUS_URL")

needs_api = pytest.mark.skipif(
    not (REFERENCE_AMQP and REFERENCE_API),
    reason="set WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL to compare with RabbitMQ",
)
needs_prometheus = pytest.mark.skipif(
    not (REFERENCE_AMQP and REFERENCE_PROMETHEUS),
    reason="set WARREN_REFERENCE_URL and WARREN_REFERENCE_PROMETHEUS_URL to compare with RabbitMQ",
)

#: Fields of RabbitMQ's that Warren does not send, and why (docs/compatibility.md).
ERLANG = {"garbage_collection", "reductions", "reductions_details"}
MISSING = {
    "queue": ERLANG | {
        "backing_queue_status",  # the classic queue's internal four-queue layout
        # bytes/counts of unacknowledged, persistent, paged-out and in-RAM
        # messages: not counted on the hot path
        "message_bytes", "message_bytes_paged_out", "message_bytes_persistent",
        "message_bytes_ram", "message_bytes_unacknowledged", "messages_paged_out",
        "messages_persistent", "messages_ram", "messages_ready_ram",
        "messages_unacknowledged_ram",
        "idle_since",  # RabbitMQ: when the queue process hibernated; Warren: only without consumers
    },
    "connection": ERLANG,
    "channel": ERLANG | {"idle_since"},
    "exchange": set(),
    "consumer": set(),
    "binding": set(),
    "overview": set(),
    "vhost": set(),
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def compare(kind: str, reference: dict[str, Any], warren: dict[str, Any],
            nested: tuple[str, ...] = ()) -> list[str]:
    """Differences of keys and types, as readable lines (empty: the same shape)."""
    problems = []
    missing = set(reference) - set(warren) - MISSING[kind]
    extra = set(warren) - set(reference)
    if missing:
        problems.append(f"{kind}: Warren lacks {sorted(missing)}")
    if extra:
        problems.append(f"{kind}: Warren adds {sorted(extra)}")
    for key in sorted(set(reference) & set(warren)):
        r, w = reference[key], warren[key]
        if json_type(r) != json_type(w):
            problems.append(f"{kind}.{key}: RabbitMQ {json_type(r)} {r!r}, Warren {json_type(w)} {w!r}")
        elif key in nested and isinstance(r, dict):
            for sub in sorted(set(r) | set(w)):
                if sub not in w or sub not in r:
                    problems.append(f"{kind}.{key}.{sub}: only in {'RabbitMQ' if sub in r else 'Warren'}")
                elif json_type(r[sub]) != json_type(w[sub]):
                    problems.append(f"{kind}.{key}.{sub}: RabbitMQ {r[sub]!r}, Warren {w[sub]!r}")
    return problems


@dataclass
class Scenario:
    """The traffic both brokers get, and the connections kept open meanwhile."""

    prefix: str
    publisher: pika.BlockingConnection
    consumer: pika.BlockingConnection

    @property
    def queue(self) -> str:
        return f"{self.prefix}-q"

    @property
    def exchange(self) -> str:
        return f"{self.prefix}-x"

    def close(self) -> None:
        for connection in (self.consumer, self.publisher):
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - already closed
                pass


def run_scenario(url: str, prefix: str) -> Scenario:
    def connect(role: str) -> pika.BlockingConnection:
        params = pika.URLParameters(url)
        params.client_properties = {"connection_name": f"{prefix}-{role}"}
        return pika.BlockingConnection(params)

    publisher, consumer = connect("pub"), connect("con")
    scenario = Scenario(prefix, publisher, consumer)
    channel = publisher.channel()
    channel.confirm_delivery()
    channel.exchange_declare(scenario.exchange, "topic")
    channel.queue_declare(scenario.queue, arguments={"x-max-length": 1000})
    channel.queue_bind(scenario.queue, scenario.exchange, "a.#", arguments={"x-note": "n"})
    cchannel = consumer.channel()
    cchannel.basic_qos(prefetch_count=10)
    cchannel.basic_consume(scenario.queue, lambda ch, m, p, b: ch.basic_ack(m.delivery_tag),
                           consumer_tag=f"{prefix}-ctag", arguments={"x-priority": 5})
    for n in range(20):
        channel.basic_publish(scenario.exchange, "a.b", b"message %d" % n,
                              pika.BasicProperties(content_type="text/plain", headers={"n": n}))
    channel.basic_publish("", scenario.queue, b"through the default exchange")
    try:
        channel.basic_publish(scenario.exchange, "nowhere", b"lost", mandatory=True)
    except pika.exceptions.UnroutableError:
        pass
    consumer.process_data_events(0.5)
    return scenario


def cleanup(api: Api, prefix: str) -> None:
    for kind in ("queues", "exchanges"):
        for item in api.call("GET", f"/api/{kind}/%2F").body or []:
            if item["name"].startswith(prefix):
                api.call("DELETE", f"/api/{kind}/%2F/{quote(item['name'])}")


def _split(url: str) -> Api:
    """An Api from http://user:pass@host:port (guest/guest when the URL has none)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    return Api(base, parts.username or "guest", parts.password or "guest")


@dataclass
class Pair:
    reference: Api
    warren: Api
    ref_scenario: Scenario
    warren_scenario: Scenario
    thread: BrokerThread


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    assert REFERENCE_AMQP and REFERENCE_API
    prefix = "stats-" + secrets.token_hex(4)
    reference = _split(REFERENCE_API)
    thread = start_broker()
    warren = api_of(thread)
    ref_scenario = run_scenario(REFERENCE_AMQP, prefix)
    warren_scenario = run_scenario(thread.url, prefix)
    try:
        # The reference's statistics database catches up every 5 s, each
        # kind of statistics (queue gauges, message counts, connection
        # counters) on its own: wait until every part has arrived.
        def ready(api: Api, scenario: Scenario) -> bool:
            scenario.consumer.process_data_events(0)
            queue = api.call("GET", f"/api/queues/%2F/{quote(scenario.queue)}").body
            exchange = api.call("GET", f"/api/exchanges/%2F/{quote(scenario.exchange)}").body
            default = api.get("/api/exchanges/%2F/amq.default")
            names = _connection_names(api, prefix)
            connections = [c for c in api.get("/api/connections") if c["name"] in names
                           and "recv_cnt" in c and "channels" in c]
            channels = [c for c in api.get("/api/channels") if "message_stats" in c
                        and c["connection_details"]["name"] in names]
            listed = [q for q in api.get("/api/queues/%2F") if q["name"] == scenario.queue]
            return bool(
                isinstance(queue, dict) and {"publish", "ack"} <= set(queue.get("message_stats", {}))
                and "consumers" in queue and listed and "consumers" in listed[0]
                and "publish" in listed[0].get("message_stats", {})
                and isinstance(exchange, dict)
                and "publish_out" in exchange.get("message_stats", {})
                and "publish_out" in default.get("message_stats", {})
                and len(connections) == 2 and len(channels) == 2
            )

        wait_for(lambda: ready(reference, ref_scenario), timeout=20, step=0.5)
        wait_for(lambda: ready(warren, warren_scenario), timeout=20)
        yield Pair(reference, warren, ref_scenario, warren_scenario, thread)
    finally:
        ref_scenario.close()
        warren_scenario.close()
        cleanup(reference, prefix)
        thread.stop()


def _connection_names(api: Api, prefix: str) -> set[str]:
    return {c["name"] for c in api.get("/api/connections")
            if str(c.get("user_provided_name", "")).startswith(prefix)}


def _ours(api: Api, path: str, prefix: str, key: str = "name") -> list[dict[str, Any]]:
    return [item for item in api.get(path) if str(item.get(key, "")).startswith(prefix)]


@needs_api
def test_overview_has_rabbitmqs_shape(pair: Pair) -> None:
    reference, warren = pair.reference.get("/api/overview"), pair.warren.get("/api/overview")
    problems = compare("overview", reference, warren,
                       nested=("message_stats", "churn_rates", "queue_totals", "object_totals"))
    problems += compare("overview", reference["listeners"][0], warren["listeners"][0])
    problems += compare("overview", reference["contexts"][0], warren["contexts"][0])
    assert not problems, "\n".join(problems)


@needs_api
def test_queues_have_rabbitmqs_shape(pair: Pair) -> None:
    prefix = pair.ref_scenario.prefix
    (reference,) = _ours(pair.reference, "/api/queues", prefix)
    (warren,) = _ours(pair.warren, "/api/queues", prefix)
    problems = compare("queue", reference, warren, nested=("message_stats",))
    path = f"/api/queues/%2F/{quote(pair.ref_scenario.queue)}"
    single_ref, single_warren = pair.reference.get(path), pair.warren.get(path)
    problems += compare("queue", single_ref, single_warren, nested=("message_stats",))
    problems += compare("consumer", single_ref["consumer_details"][0],
                        single_warren["consumer_details"][0], nested=("channel_details", "queue"))
    assert not problems, "\n".join(problems)


@needs_api
def test_exchanges_have_rabbitmqs_shape(pair: Pair) -> None:
    prefix = pair.ref_scenario.prefix
    (reference,) = _ours(pair.reference, "/api/exchanges", prefix)
    (warren,) = _ours(pair.warren, "/api/exchanges", prefix)
    problems = compare("exchange", reference, warren, nested=("message_stats",))
    path = f"/api/exchanges/%2F/{quote(pair.ref_scenario.exchange)}"
    problems += compare("exchange", pair.reference.get(path), pair.warren.get(path),
                        nested=("message_stats",))
    default_ref = pair.reference.get("/api/exchanges/%2F/amq.default")
    default_warren = pair.warren.get("/api/exchanges/%2F/amq.default")
    problems += compare("exchange", default_ref, default_warren)
    assert not problems, "\n".join(problems)


@needs_api
def test_connections_and_channels_have_rabbitmqs_shape(pair: Pair) -> None:
    prefix = pair.ref_scenario.prefix
    problems = []
    for role in ("pub", "con"):
        name = f"{prefix}-{role}"
        (reference,) = _ours(pair.reference, "/api/connections", name, key="user_provided_name")
        (warren,) = _ours(pair.warren, "/api/connections", name, key="user_provided_name")
        problems += compare("connection", reference, warren, nested=("client_properties",))
        single_ref = pair.reference.get("/api/connections/" + quote(reference["name"]))
        single_warren = pair.warren.get("/api/connections/" + quote(warren["name"]))
        problems += compare("connection", single_ref, single_warren)
        (channel_ref,) = [c for c in pair.reference.get("/api/channels")
                          if c["connection_details"]["name"] == reference["name"]]
        (channel_warren,) = [c for c in pair.warren.get("/api/channels")
                             if c["connection_details"]["name"] == warren["name"]]
        problems += compare("channel", channel_ref, channel_warren,
                            nested=("message_stats", "connection_details"))
        problems += compare(
            "channel",
            pair.reference.get("/api/channels/" + quote(channel_ref["name"])),
            pair.warren.get("/api/channels/" + quote(channel_warren["name"])),
            nested=("message_stats",),
        )
    assert not problems, "\n".join(problems)


@needs_api
def test_consumers_bindings_and_vhosts_have_rabbitmqs_shape(pair: Pair) -> None:
    prefix = pair.ref_scenario.prefix
    (reference,) = _ours(pair.reference, "/api/consumers", prefix, key="consumer_tag")
    (warren,) = _ours(pair.warren, "/api/consumers", prefix, key="consumer_tag")
    problems = compare("consumer", reference, warren, nested=("channel_details", "queue"))
    ref_bindings = [b for b in pair.reference.get("/api/bindings/%2F")
                    if b["destination"].startswith(prefix)]
    warren_bindings = [b for b in pair.warren.get("/api/bindings/%2F")
                       if b["destination"].startswith(prefix)]
    assert [b["source"] == "" for b in ref_bindings] == [b["source"] == "" for b in warren_bindings]
    for r, w in zip(ref_bindings, warren_bindings, strict=True):
        problems += compare("binding", r, w)
        if r["source"] == "":
            assert r == w  # the default binding is the same to the byte
    (vhost_ref,) = [v for v in pair.reference.get("/api/vhosts") if v["name"] == "/"]
    (vhost_warren,) = [v for v in pair.warren.get("/api/vhosts") if v["name"] == "/"]
    problems += compare("vhost", vhost_ref, vhost_warren, nested=("message_stats",))
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def scraped() -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]]:
    assert REFERENCE_AMQP and REFERENCE_PROMETHEUS
    prefix = "stats-" + secrets.token_hex(4)
    thread = start_broker()
    ref_scenario = run_scenario(REFERENCE_AMQP, prefix)
    warren_scenario = run_scenario(thread.url, prefix)
    try:
        time.sleep(1)  # rabbitmq_prometheus reads the core metrics as they are
        yield (
            parse_metrics(metrics(REFERENCE_PROMETHEUS)),
            parse_metrics(metrics(REFERENCE_PROMETHEUS, "/metrics/per-object")),
            parse_metrics(metrics(thread.broker.prometheus_url)),
            parse_metrics(metrics(thread.broker.prometheus_url, "/metrics/per-object")),
        )
    finally:
        ref_scenario.close()
        warren_scenario.close()
        if REFERENCE_API:
            cleanup(_split(REFERENCE_API), prefix)
        else:
            channel = pika.BlockingConnection(pika.URLParameters(REFERENCE_AMQP)).channel()
            channel.queue_delete(ref_scenario.queue)
            channel.exchange_delete(ref_scenario.exchange)
            channel.connection.close()
        thread.stop()


def _prometheus_problems(reference: dict[str, Any], warren: dict[str, Any]) -> list[str]:
    problems = []
    for name, family in sorted(warren.items()):
        if name not in reference:
            problems.append(f"{name}: not a rabbitmq_prometheus family")
            continue
        ref = reference[name]
        if (family["type"], family["help"]) != (ref["type"], ref["help"]):
            problems.append(f"{name}: TYPE/HELP {family['type']} {family['help']!r} vs "
                            f"{ref['type']} {ref['help']!r}")
        ours = {tuple(sorted(labels)) for labels, _ in family["samples"]}
        theirs = {tuple(sorted(labels)) for labels, _ in ref["samples"]}
        if ours and theirs and not ours <= theirs:
            problems.append(f"{name}: labels {sorted(ours)} vs RabbitMQ's {sorted(theirs)}")
    return problems


@needs_prometheus
def test_prometheus_metrics_match_rabbitmq_prometheus(scraped) -> None:
    reference, _ref_per_object, warren, _warren_per_object = scraped
    problems = _prometheus_problems(reference, warren)
    assert not problems, "\n".join(problems)
    # What dashboards and alerts read is there.
    for name in ("rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
                 "rabbitmq_connections", "rabbitmq_channels", "rabbitmq_consumers",
                 "rabbitmq_queues", "rabbitmq_channel_messages_published_total",
                 "rabbitmq_global_messages_received_total", "rabbitmq_identity_info",
                 "rabbitmq_build_info", "rabbitmq_process_resident_memory_bytes",
                 "rabbitmq_disk_space_available_bytes", "rabbitmq_process_open_fds"):
        assert warren[name]["samples"], name


@needs_prometheus
def test_prometheus_per_object_matches_rabbitmq_prometheus(scraped) -> None:
    _reference, ref_per_object, _warren, warren_per_object = scraped
    problems = _prometheus_problems(ref_per_object, warren_per_object)
    assert not problems, "\n".join(problems)
    # Every family the reference labels per object, Warren labels the same way
    # when it emits it.
    checked = [n for n in warren_per_object
               if n in ref_per_object and ref_per_object[n]["samples"]
               and warren_per_object[n]["samples"]]
    assert len(checked) > 30


@needs_api
def test_the_same_traffic_gives_the_same_counts(pair: Pair) -> None:
    """Not only the shapes: the counters of the scenario's queue, exchange and
    channels are RabbitMQ's numbers for the same frames."""
    def counts(api: Api, scenario: Scenario) -> dict[str, Any]:
        queue = api.get(f"/api/queues/%2F/{quote(scenario.queue)}")["message_stats"]
        exchange = api.get(f"/api/exchanges/%2F/{quote(scenario.exchange)}")["message_stats"]
        names = {c["user_provided_name"]: c["name"] for c in api.get("/api/connections")
                 if str(c.get("user_provided_name", "")).startswith(scenario.prefix)}
        channels = {c["connection_details"]["name"]: c.get("message_stats", {})
                    for c in api.get("/api/channels")}
        publisher = channels.get(names.get(f"{scenario.prefix}-pub"), {})
        consumer = channels.get(names.get(f"{scenario.prefix}-con"), {})
        return {
            "queue": {k: queue.get(k) for k in ("publish", "deliver", "deliver_get", "ack",
                                                 "redeliver", "get")},
            "exchange": {k: exchange.get(k) for k in ("publish_in", "publish_out")},
            "publisher": {k: publisher.get(k) for k in ("publish", "confirm",
                                                         "return_unroutable", "drop_unroutable")},
            "consumer": {k: consumer.get(k) for k in ("deliver", "ack", "redeliver")},
        }

    expected = {
        "queue": {"publish": 21, "deliver": 21, "deliver_get": 21, "ack": 21, "redeliver": 0,
                  "get": 0},
        "exchange": {"publish_in": 21, "publish_out": 20},
        "publisher": {"publish": 22, "confirm": 22, "return_unroutable": 1, "drop_unroutable": 0},
        "consumer": {"deliver": 21, "ack": 21, "redeliver": 0},
    }
    # Both consumers are driven until their queue is empty (every delivery
    # acknowledged, as the queue's own gauge says): the scenario leaves the
    # last deliveries to whoever next runs pika's I/O loop, and a count read
    # before then is the client's lag, not the broker's. Warren's counts are
    # then read once: they must already be final (its message counts are
    # read live, not sampled); the reference's settle with its 5 s
    # statistics interval, so they are waited for.
    def drained(api: Api, scenario: Scenario) -> bool:
        scenario.consumer.process_data_events(0.05)
        queue = api.get(f"/api/queues/%2F/{quote(scenario.queue)}")
        return queue.get("messages") == 0 and queue.get("messages_unacknowledged") == 0

    wait_for(lambda: drained(pair.warren, pair.warren_scenario), timeout=20)
    warren = counts(pair.warren, pair.warren_scenario)
    wait_for(lambda: drained(pair.reference, pair.ref_scenario), timeout=20, step=0.5)
    reference = wait_for(lambda: (c := counts(pair.reference, pair.ref_scenario)) == expected and c,
                         timeout=20, step=0.5)
    assert warren == reference


@needs_api
def test_policies_and_single_active_consumer_show_as_in_rabbitmq(pair: Pair) -> None:
    """The values, not only the types: a queue's `policy`, `operator_policy`,
    `effective_policy_definition`, `single_active_consumer_tag` and `state`,
    an exchange's `policy`, and each consumer's `active` / `activity_status`,
    for the same policies and consumers on both brokers."""
    prefix = pair.ref_scenario.prefix
    queue, sac, exchange = f"{prefix}-pol.q", f"{prefix}-sac", f"{prefix}-pol.x"
    pattern = f"^{prefix}-pol\\."
    policies = [
        ("policies", f"{prefix}-cap", {"pattern": pattern, "apply-to": "queues",
                                       "definition": {"max-length": 2, "expires": 600000}}),
        ("operator-policies", f"{prefix}-op",
         {"pattern": pattern, "apply-to": "queues",
          "definition": {"max-length": 5, "message-ttl": 60000}}),
        ("policies", f"{prefix}-ae", {"pattern": pattern, "apply-to": "exchanges",
                                      "definition": {"alternate-exchange": "amq.fanout"}}),
    ]

    def fields(api: Api) -> dict[str, Any]:
        shown = api.get(f"/api/queues/%2F/{quote(queue)}")
        listed = [q for q in api.get("/api/queues/%2F") if q["name"] in (queue, sac)]
        single_sac = api.get(f"/api/queues/%2F/{quote(sac)}")
        keys = ("policy", "operator_policy", "effective_policy_definition",
                "single_active_consumer_tag", "state")
        return {
            "queue": {k: shown.get(k, "absent") for k in keys},
            "listed": sorted((q["name"], *(q.get(k, "absent") for k in keys)) for q in listed),
            "exchange": api.get(f"/api/exchanges/%2F/{quote(exchange)}").get("policy", "absent"),
            "sac": single_sac.get("single_active_consumer_tag", "absent"),
            "details": sorted((c["consumer_tag"], c["active"], c["activity_status"])
                              for c in single_sac.get("consumer_details", [])),
            "consumers": sorted((c["consumer_tag"], c["active"], c["activity_status"])
                                for c in api.get("/api/consumers")
                                if c["queue"]["name"] in (queue, sac)),
        }

    connections = []
    try:
        results = []
        for api, url in ((pair.reference, REFERENCE_AMQP), (pair.warren, pair.thread.url)):
            for kind, name, body in policies:
                assert api.call("PUT", f"/api/{kind}/%2F/{name}", body).status in (201, 204)
            connection = pika.BlockingConnection(pika.URLParameters(url))
            connections.append(connection)
            channel = connection.channel()
            channel.exchange_declare(exchange, "direct")
            channel.queue_declare(queue)
            channel.basic_consume(queue, lambda *a: None, consumer_tag=f"{prefix}-plain")
            channel.queue_declare(sac, arguments={"x-single-active-consumer": True})
            channel.basic_consume(sac, lambda *a: None, consumer_tag=f"{prefix}-first")
            channel.basic_consume(sac, lambda *a: None, consumer_tag=f"{prefix}-second")
            def settled(api: Api = api) -> dict[str, Any] | None:
                shown = fields(api)
                # The reference's statistics arrive with its 5 s interval.
                return shown if (shown["queue"]["policy"] and shown["sac"] == f"{prefix}-first"
                                 and len(shown["consumers"]) == 3) else None

            results.append(wait_for(settled, timeout=20, step=0.5))
        reference, warren = results
        assert warren == reference
        assert reference["queue"] == {
            "policy": f"{prefix}-cap", "operator_policy": f"{prefix}-op",
            "effective_policy_definition": {"expires": 600000, "max-length": 2,
                                            "message-ttl": 60000},
            "single_active_consumer_tag": None, "state": "running"}
        assert reference["exchange"] == f"{prefix}-ae"
        assert reference["details"] == [(f"{prefix}-first", True, "single_active"),
                                        (f"{prefix}-second", False, "waiting")]
    finally:
        for connection in connections:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        for api in (pair.reference, pair.warren):
            for kind, name, _body in policies:
                api.call("DELETE", f"/api/{kind}/%2F/{name}")
