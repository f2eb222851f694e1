"""Queues over real HTTP against a real Warren with real AMQP traffic (pika).

Field names and types are RabbitMQ 3.10.8's (notes section 4.10-4.13, the
reference node's answers); the differential test compares them with the
reference itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest
from api_helpers import Api, amqp, api_of, metrics, start_broker, wait_for

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


QUEUE_FIELDS = {
    "arguments": dict, "auto_delete": bool, "consumer_capacity": (int, float),
    "consumer_utilisation": (int, float), "consumers": int, "durable": bool,
    "effective_policy_definition": dict, "exclusive": bool,
    "exclusive_consumer_tag": (str, type(None)), "head_message_timestamp": (int, type(None)),
    "memory": int, "message_bytes_ready": int, "messages": int, "messages_details": dict,
    "messages_ready": int, "messages_ready_details": dict, "messages_unacknowledged": int,
    "messages_unacknowledged_details": dict, "name": str, "node": str,
    "operator_policy": type(None), "policy": type(None), "recoverable_slaves": type(None),
    "single_active_consumer_tag": type(None), "state": str, "type": str, "vhost": str,
}


def test_a_queue_lists_with_rabbitmqs_fields_and_counts_its_traffic(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("orders", durable=True, arguments={"x-max-length": 1000})
    for n in range(5):
        channel.basic_publish("", "orders", b"order %d" % n)
    consumer = amqp(broker)
    cchannel = consumer.channel()
    cchannel.basic_qos(prefetch_count=2)
    got: list[int] = []
    cchannel.basic_consume("orders", lambda ch, m, p, b: (got.append(m.delivery_tag),
                                                           ch.basic_ack(m.delivery_tag)),
                           consumer_tag="the-consumer")
    wait_for(lambda: consumer.process_data_events(0.05) or len(got) == 5)

    def listed() -> dict:
        return api.get("/api/queues/%2F")[0]

    item = wait_for(lambda: (i := listed()).get("message_stats", {}).get("ack") == 5 and i)
    for field, kind in QUEUE_FIELDS.items():
        assert isinstance(item[field], kind), (field, item[field])
    assert item["name"] == "orders" and item["vhost"] == "/" and item["durable"] is True
    assert item["arguments"] == {"x-max-length": 1000}
    assert item["type"] == "classic" and item["state"] == "running"
    assert (item["messages"], item["messages_ready"], item["consumers"]) == (0, 0, 1)
    stats = item["message_stats"]
    assert {k: stats[k] for k in ("publish", "deliver", "deliver_get", "ack", "deliver_no_ack",
                                  "get", "get_no_ack", "redeliver")} == {
        "publish": 5, "deliver": 5, "deliver_get": 5, "ack": 5, "deliver_no_ack": 0,
        "get": 0, "get_no_ack": 0, "redeliver": 0}
    assert set(stats["publish_details"]) == {"rate"}
    assert isinstance(stats["publish_details"]["rate"], float)

    one = api.get("/api/queues/%2F/orders")
    assert one["name"] == "orders"
    assert one["deliveries"] == [] and one["incoming"] == []
    (details,) = one["consumer_details"]
    assert details["consumer_tag"] == "the-consumer"
    assert details["prefetch_count"] == 2 and details["ack_required"] is True
    assert details["queue"] == {"name": "orders", "vhost": "/"}
    assert details["channel_details"]["name"].endswith(" (1)")
    assert details["channel_details"]["connection_name"].startswith("127.0.0.1:")
    # columns, as rabbitmqadmin asks
    assert api.get("/api/queues/%2F?columns=name,messages") == [{"name": "orders", "messages": 0}]
    assert api.get("/api/queues/%2F/orders?columns=name,message_stats.publish") == {
        "name": "orders", "message_stats": {"publish": 5}}
    consumer.close()
    connection.close()


def test_a_queue_without_traffic_has_no_message_stats_and_is_idle(broker, api) -> None:
    api.call("PUT", "/api/queues/%2F/quiet", {})
    item = api.get("/api/queues/%2F/quiet")
    assert "message_stats" not in item
    assert item["idle_since"].endswith("+00:00") and "T" in item["idle_since"]
    assert api.call("GET", "/api/queues/%2F/nope").status == 404
    assert api.call("GET", "/api/queues/nope").body == {
        "error": "Object Not Found", "reason": "Not Found"}


def test_put_and_delete_a_queue_as_rabbitmq_answers(broker, api) -> None:
    created = api.call("PUT", "/api/queues/%2F/jobs", {"durable": True, "arguments": {"x-message-ttl": 60000}})
    assert (created.status, created.headers.get("content-length")) == (201, "0")
    assert api.call("PUT", "/api/queues/%2F/jobs", {"durable": True, "arguments": {"x-message-ttl": 60000}}).status == 204
    differ = api.call("PUT", "/api/queues/%2F/jobs", {"durable": False})
    assert (differ.status, differ.body) == (400, {
        "error": "bad_request",
        "reason": "inequivalent arg 'durable' for queue 'jobs' in vhost '/': "
                  "received 'false' but current is 'true'"})
    assert api.call("PUT", "/api/queues/%2F/bad", {"durable": "yes"}).status == 400
    assert api.call("PUT", "/api/queues/nope/jobs", {}).body == {
        "error": "not_found", "reason": "vhost_not_found"}
    assert api.call("PUT", "/api/queues/%2F/amq.mine", {}).body == {
        "error": "not_authorised", "reason": "Access refused."}
    assert api.call("PUT", "/api/queues/%2F/x", raw_body=b"[1]").body == {
        "error": "bad_request", "reason": "not_json"}
    # if-empty / if-unused, with AMQP traffic making the queue busy
    connection = amqp(broker)
    channel = connection.channel()
    channel.basic_publish("", "jobs", b"one")
    refused = api.call("DELETE", "/api/queues/%2F/jobs?if-empty=true")
    assert (refused.status, refused.body) == (400, {
        "error": "bad_request", "reason": "queue 'jobs' in vhost '/' not empty"})
    channel.basic_consume("jobs", lambda *a: None, consumer_tag="busy")
    refused = api.call("DELETE", "/api/queues/%2F/jobs?if-unused=true")
    assert refused.body["reason"] == "queue 'jobs' in vhost '/' in use"
    assert api.call("DELETE", "/api/queues/%2F/jobs").status == 204
    assert api.call("DELETE", "/api/queues/%2F/jobs").status == 404
    connection.close()


def test_purge_and_the_queue_bindings_with_the_default_one(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("logs")
    channel.exchange_declare("events", "topic")
    channel.queue_bind("logs", "events", "a.#")
    for _ in range(3):
        channel.basic_publish("", "logs", b"x")
    assert api.get("/api/queues/%2F/logs")["messages_ready"] == 3
    assert api.call("DELETE", "/api/queues/%2F/logs/contents").status == 204
    assert api.get("/api/queues/%2F/logs")["messages_ready"] == 0
    assert api.call("DELETE", "/api/queues/%2F/nope/contents").status == 404
    assert api.get("/api/queues/%2F/logs/bindings") == [
        {"source": "", "vhost": "/", "destination": "logs", "destination_type": "queue",
         "routing_key": "logs", "arguments": {}, "properties_key": "logs"},
        {"source": "events", "vhost": "/", "destination": "logs", "destination_type": "queue",
         "routing_key": "a.#", "arguments": {}, "properties_key": "a.%23"},
    ]
    # RabbitMQ answers a missing queue with its default binding.
    assert api.get("/api/queues/%2F/nope/bindings")[0]["destination"] == "nope"
    connection.close()


def test_get_messages_with_every_ackmode_and_encoding(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("inbox", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
    channel.queue_declare("dead")
    channel.basic_publish("", "inbox", "héllo".encode(),
                          pika.BasicProperties(content_type="text/plain", headers={"n": 1}))
    channel.basic_publish("", "inbox", b"\xff\x00")
    path = "/api/queues/%2F/inbox/get"
    got = api.call("POST", path, {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto",
                                   "truncate": 3})
    assert got.status == 200
    assert got.body == [
        {"payload_bytes": 6, "redelivered": False, "exchange": "", "routing_key": "inbox",
         "message_count": 1, "properties": {"content_type": "text/plain", "headers": {"n": 1}},
         "payload": "hé", "payload_encoding": "string"},
        {"payload_bytes": 2, "redelivered": False, "exchange": "", "routing_key": "inbox",
         "message_count": 0, "properties": [], "payload": "/wA=", "payload_encoding": "base64"},
    ]
    again = api.call("POST", path, {"count": 1, "ackmode": "reject_requeue_true", "encoding": "base64"}).body
    assert again[0]["redelivered"] is True and again[0]["payload"] == "aMOpbGxv"
    assert api.get("/api/queues/%2F/inbox")["messages_ready"] == 2
    api.call("POST", path, {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
    api.call("POST", path, {"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"})
    assert api.get("/api/queues/%2F/inbox")["messages"] == 0
    assert api.get("/api/queues/%2F/dead")["messages"] == 1  # rejected: dead-lettered
    assert api.call("POST", path, {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).body == []
    stats = wait_for(lambda: api.get("/api/queues/%2F/inbox").get("message_stats"))
    # Two gets found the queue empty: the first (5 asked, 2 there) and the last.
    assert (stats["get"], stats["ack"], stats["redeliver"], stats["get_empty"]) == (5, 1, 3, 2)
    # errors, in RabbitMQ's words
    assert api.call("POST", path, {"ackmode": "ack_requeue_true", "encoding": "auto"}).body == {
        "error": "bad_request", "reason": "[{key_missing,count}]"}
    assert api.call("POST", path, {"count": 1, "ackmode": "ack_requeue_true", "encoding": "x"}).body == {
        "error": "bad_request", "reason": "Unsupported encoding. Please use auto or base64."}
    assert api.call("POST", path, {"count": 1, "ackmode": "nope", "encoding": "auto"}).status == 400
    assert api.call("POST", "/api/queues/%2F/nope/get",
                    {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).body == {
        "error": "not_found", "reason": "NOT_FOUND - no queue 'nope' in vhost '/'"}
    connection.close()


def test_a_restricted_user_meets_rabbitmqs_refusals(broker, api) -> None:
    assert api.call("PUT", "/api/users/ann", {"password": "pw", "tags": "management"}).status == 201
    assert api.call("PUT", "/api/permissions/%2F/ann",
                    {"configure": "^ann-", "write": "^ann-", "read": "^ann-"}).status == 201
    ann = ("ann", "pw")
    assert api.call("PUT", "/api/queues/%2F/ann-q", {}, auth=ann).status == 201
    assert api.call("PUT", "/api/queues/%2F/bob-q", {}, auth=ann).body == {
        "error": "not_authorised", "reason": "Access refused."}
    api.call("PUT", "/api/queues/%2F/bob-q", {})
    assert api.call("DELETE", "/api/queues/%2F/bob-q", auth=ann).body["reason"] == "Access refused."
    assert api.call("DELETE", "/api/queues/%2F/bob-q/contents", auth=ann).body["reason"] == (
        "Access refused.")
    assert api.call("POST", "/api/queues/%2F/bob-q/get",
                    {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, auth=ann).body == {
        "error": "not_authorised",
        "reason": "ACCESS_REFUSED - access to queue 'bob-q' in vhost '/' refused for user 'ann'"}
    # Lists show the vhosts the user has permissions in.
    assert sorted(q["name"] for q in api.get("/api/queues", auth=ann)) == ["ann-q", "bob-q"]
    assert api.call("PUT", "/api/users/mon", {"password": "pw", "tags": "monitoring"}).status == 201
    assert api.get("/api/queues", auth=("mon", "pw")) == []
    assert api.call("GET", "/api/queues/%2F", auth=("mon", "pw")).body == {
        "error": "not_authorised", "reason": "User not authorised to access virtual host"}


def test_reading_a_queue_never_expires_its_messages(broker, api) -> None:
    """GET /api/queues and every other read leave a TTL'd message where it is:
    only the queue's own clock, a publish, a get or a declare-ok expire it."""
    vhost = broker.broker.vhost
    broker.run_sync(setattr, vhost, "timers", None)  # no deadline will fire on its own
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("dlq")
    channel.queue_declare("short", arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "dlq"})
    channel.basic_publish("", "short", b"soon gone")
    wait_for(lambda: api.get("/api/queues/%2F/short")["messages_ready"] == 1)
    rounds = broker.broker.statistics.rounds
    time.sleep(0.3)  # well past its TTL, and a few sampling rounds
    assert broker.broker.statistics.rounds > rounds
    for _ in range(3):
        assert api.get("/api/queues/%2F/short")["messages_ready"] == 1
        assert [q["messages"] for q in api.get("/api/queues") if q["name"] == "short"] == [1]
        assert api.get("/api/overview")["queue_totals"]["messages"] == 1
        api.get("/api/vhosts")
        api.get("/api/bindings")
        scraped = metrics(broker.broker.prometheus_url, "/metrics/per-object")
        assert 'rabbitmq_queue_messages_ready{vhost="/",queue="short"} 1' in scraped
    assert broker.run_sync(lambda: len(vhost.queues["short"].ready)) == 1
    assert broker.run_sync(lambda: len(vhost.queues["dlq"].ready)) == 0
    # A client asking for the count expires it (RabbitMQ's declare-ok does).
    assert channel.queue_declare("short", passive=True).method.message_count == 0
    assert api.get("/api/queues/%2F/dlq")["messages_ready"] == 1
    connection.close()


def test_two_thousand_queues_are_listed_sorted_and_paginated(broker, api) -> None:
    def make() -> None:
        vhost = broker.broker.vhost
        for n in range(2000):
            vhost.declare_queue(None, f"bulk-{n:05d}")

    broker.run_sync(make)
    everything = api.get("/api/queues/%2F?columns=name")
    assert len(everything) == 2000
    assert everything[0] == {"name": "bulk-00000"} and everything[-1] == {"name": "bulk-01999"}
    page = api.get("/api/queues/%2F?page=2&page_size=500&name=bulk-01&columns=name")
    assert (page["filtered_count"], page["total_count"], page["page"], page["page_count"],
            page["item_count"]) == (1000, 2000, 2, 2, 500)
    assert page["items"][0] == {"name": "bulk-01500"}
    reverse = api.get("/api/queues/%2F?sort=name&sort_reverse=true&columns=name")
    assert reverse[0] == {"name": "bulk-01999"}


def test_a_long_list_is_sent_in_parts_gzipped_or_not_and_answers_head(broker, api) -> None:
    import gzip
    import http.client
    import json

    broker.run_sync(lambda: [broker.broker.vhost.declare_queue(None, f"p-{n:04d}") for n in range(300)])
    port = int(api.base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    auth = {"authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}
    connection.request("GET", "/api/queues/%2F", headers=auth)
    plain = connection.getresponse()
    body = plain.read()
    assert plain.status == 200 and int(plain.headers["content-length"]) == len(body)
    assert [q["name"] for q in json.loads(body)][:2] == ["p-0000", "p-0001"]
    # the same keep-alive connection: HEAD, then gzip
    connection.request("HEAD", "/api/queues/%2F", headers=auth)
    head = connection.getresponse()
    assert head.read() == b"" and int(head.headers["content-length"]) == len(body)
    connection.request("GET", "/api/queues/%2F", headers={**auth, "accept-encoding": "gzip"})
    zipped = connection.getresponse()
    assert zipped.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(zipped.read())) == json.loads(body)
    connection.request("GET", "/api/queues/%2F?page=3&page_size=100&columns=name", headers=auth)
    page = json.loads(connection.getresponse().read())
    assert page["items"][0] == {"name": "p-0200"} and page["page_count"] == 3
    connection.close()


def test_a_listed_queue_shows_every_change_at_once(broker, api) -> None:
    """Lists reuse each queue's JSON while the queue has not changed: any
    change shows at the next call, without waiting for a sampling round."""
    connection = amqp(broker)
    channel = connection.channel()
    channel.queue_declare("watched")

    def listed() -> dict:
        (item,) = [q for q in api.get("/api/queues") if q["name"] == "watched"]
        return item

    assert listed()["messages"] == 0
    assert listed()["messages"] == 0  # the same JSON, from the cache
    channel.basic_publish("", "watched", b"x")
    wait_for(lambda: listed()["messages"] == 1)
    channel.basic_consume("watched", lambda *a: None, consumer_tag="only", exclusive=True)
    wait_for(lambda: listed()["exclusive_consumer_tag"] == "only")
    item = listed()
    assert (item["consumers"], item["messages_unacknowledged"], item["messages_ready"]) == (1, 1, 0)
    assert "idle_since" not in item
    channel.basic_cancel("only")
    channel.basic_consume("watched", lambda *a: None, consumer_tag="other", exclusive=True)
    wait_for(lambda: listed()["exclusive_consumer_tag"] == "other")
    connection.close()
    wait_for(lambda: listed()["consumers"] == 0 and listed()["messages_ready"] == 1)


def _activity(consumers: list[dict]) -> list[tuple[str, bool, str]]:
    return sorted((c["consumer_tag"], c["active"], c["activity_status"]) for c in consumers)


def test_single_active_consumer_shows_who_is_active_and_who_waits(broker, api) -> None:
    """RabbitMQ 3.10.8, two pika consumers on a queue with x-single-active-consumer:
    the queue's `single_active_consumer_tag` is the first's; in /api/consumers
    and the queue's consumer_details the first is `active: true,
    activity_status: "single_active"`, the second `active: false,
    activity_status: "waiting"`. On a plain queue every consumer is "up",
    priorities or not, and the tag is null. A quorum queue has no such key."""
    connection = amqp(broker)
    channel = connection.channel()
    for kind in ("classic", "quorum"):
        channel.queue_declare(f"sac-{kind}", durable=kind == "quorum",
                              arguments={"x-single-active-consumer": True, "x-queue-type": kind})
        channel.basic_consume(f"sac-{kind}", lambda *a: None, consumer_tag=f"first-{kind}")
        channel.basic_consume(f"sac-{kind}", lambda *a: None, consumer_tag=f"second-{kind}")
    channel.queue_declare("plain")
    channel.basic_consume("plain", lambda *a: None, consumer_tag="plain1")
    channel.basic_consume("plain", lambda *a: None, consumer_tag="plain2",
                          arguments={"x-priority": 5})

    sac = api.get("/api/queues/%2F/sac-classic")
    assert sac["single_active_consumer_tag"] == "first-classic"
    assert _activity(sac["consumer_details"]) == [
        ("first-classic", True, "single_active"), ("second-classic", False, "waiting")]
    quorum = api.get("/api/queues/%2F/sac-quorum")
    assert "single_active_consumer_tag" not in quorum
    assert _activity(quorum["consumer_details"]) == [
        ("first-quorum", True, "single_active"), ("second-quorum", False, "waiting")]
    plain = api.get("/api/queues/%2F/plain")
    assert plain["single_active_consumer_tag"] is None
    assert _activity(plain["consumer_details"]) == [("plain1", True, "up"), ("plain2", True, "up")]
    assert _activity(api.get("/api/consumers")) == [
        ("first-classic", True, "single_active"), ("first-quorum", True, "single_active"),
        ("plain1", True, "up"), ("plain2", True, "up"),
        ("second-classic", False, "waiting"), ("second-quorum", False, "waiting")]
    listed = {q["name"]: q for q in api.get("/api/queues")}
    assert listed["sac-classic"]["single_active_consumer_tag"] == "first-classic"

    # The active one goes: the next takes over, in the list at once too.
    channel.basic_cancel("first-classic")
    sac = api.get("/api/queues/%2F/sac-classic")
    assert sac["single_active_consumer_tag"] == "second-classic"
    assert _activity(sac["consumer_details"]) == [("second-classic", True, "single_active")]
    listed = {q["name"]: q for q in api.get("/api/queues")}
    assert listed["sac-classic"]["single_active_consumer_tag"] == "second-classic"
    channel.basic_cancel("second-classic")
    assert api.get("/api/queues/%2F/sac-classic")["single_active_consumer_tag"] is None
    connection.close()
