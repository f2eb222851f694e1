"""Exchanges and bindings over real HTTP against a real Warren (RabbitMQ 3.10.8's answers)."""

from __future__ import annotations

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


def test_exchanges_list_with_the_built_ins_and_count_publishes(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.exchange_declare("orders", "topic")
    channel.queue_declare("q1")
    channel.queue_declare("q2")
    channel.queue_bind("q1", "orders", "a.*")
    channel.queue_bind("q2", "orders", "#")
    for _ in range(4):
        channel.basic_publish("orders", "a.b", b"x")  # to both queues
    channel.basic_publish("orders", "z", b"x")        # to q2
    names = [x["name"] for x in api.get("/api/exchanges/%2F")]
    assert names == ["", "amq.direct", "amq.fanout", "amq.headers", "amq.match",
                     "amq.rabbitmq.trace", "amq.topic", "orders"]
    item = wait_for(lambda: (x := api.get("/api/exchanges/%2F/orders")).get("message_stats") and x)
    assert item["message_stats"] == {
        "publish_in": 5, "publish_in_details": {"rate": item["message_stats"]["publish_in_details"]["rate"]},
        "publish_out": 9, "publish_out_details": {"rate": item["message_stats"]["publish_out_details"]["rate"]},
    }
    assert {k: item[k] for k in ("name", "type", "durable", "auto_delete", "internal", "arguments",
                                 "vhost", "user_who_performed_action", "incoming", "outgoing")} == {
        "name": "orders", "type": "topic", "durable": False, "auto_delete": False,
        "internal": False, "arguments": {}, "vhost": "/", "user_who_performed_action": "guest",
        "incoming": [], "outgoing": []}
    default = api.get("/api/exchanges/%2F/amq.default")
    assert (default["name"], default["type"], default["user_who_performed_action"]) == (
        "", "direct", "rmq-internal")
    listed = {x["name"]: x for x in api.get("/api/exchanges")}
    assert "incoming" not in listed["orders"]
    connection.close()


def test_put_and_delete_an_exchange_as_rabbitmq_answers(broker, api) -> None:
    assert api.call("PUT", "/api/exchanges/%2F/ex", {}).status == 201
    assert api.get("/api/exchanges/%2F/ex")["type"] == "direct"
    assert api.call("PUT", "/api/exchanges/%2F/ex", {"type": "direct"}).status == 204
    assert api.call("PUT", "/api/exchanges/%2F/ex", {"type": "fanout"}).body == {
        "error": "bad_request",
        "reason": "inequivalent arg 'type' for exchange 'ex' in vhost '/': "
                  "received 'fanout' but current is 'direct'"}
    assert api.call("PUT", "/api/exchanges/%2F/ex2", {"type": "nope"}).body == {
        "error": "bad_request", "reason": "unknown exchange type 'nope'"}
    assert api.call("PUT", "/api/exchanges/%2F/ex2", {"durable": "x"}).body == {
        "error": "bad_request", "reason": ["not_boolean", "x"]}
    assert api.call("PUT", "/api/exchanges/nope/ex", {}).body == {
        "error": "not_found", "reason": "vhost_not_found"}
    assert api.call("PUT", "/api/exchanges/%2F/amq.zzz", {"type": "topic"}).body == {
        "error": "not_authorised", "reason": "Access refused."}
    assert api.call("DELETE", "/api/exchanges/%2F/amq.direct").body == {
        "error": "not_authorised", "reason": "Access refused."}
    api.call("PUT", "/api/queues/%2F/q", {})
    assert api.call("POST", "/api/bindings/%2F/e/ex/q/q", {"routing_key": "k"}).status == 201
    assert api.call("DELETE", "/api/exchanges/%2F/ex?if-unused=true").body == {
        "error": "bad_request", "reason": "exchange 'ex' in vhost '/' in use"}
    assert api.call("DELETE", "/api/exchanges/%2F/ex").status == 204
    assert api.call("DELETE", "/api/exchanges/%2F/ex").status == 404


def test_publish_over_http(broker, api) -> None:
    api.call("PUT", "/api/queues/%2F/box", {})
    path = "/api/exchanges/%2F/amq.default/publish"
    body = {"properties": {"content_type": "text/plain", "headers": {"a": [1, "x", {"b": True}]},
                           "delivery_mode": 2, "priority": 3, "timestamp": 1700000000},
            "routing_key": "box", "payload": "héllo", "payload_encoding": "string"}
    assert api.call("POST", path, body).body == {"routed": True}
    assert api.call("POST", path, {**body, "routing_key": "nowhere"}).body == {"routed": False}
    assert api.call("POST", path, {**body, "payload": "/w==", "payload_encoding": "base64"}).body == {
        "routed": True}
    connection = amqp(broker)
    channel = connection.channel()
    method, properties, payload = channel.basic_get("box", auto_ack=True)
    assert payload == "héllo".encode()
    assert properties.content_type == "text/plain" and properties.delivery_mode == 2
    assert properties.headers["a"][0] == 1 and properties.headers["a"][2] == {"b": True}
    assert properties.timestamp == 1700000000 and properties.priority == 3
    assert channel.basic_get("box", auto_ack=True)[2] == b"\xff"
    # errors: RabbitMQ's 400s, AMQP codes in the reason
    assert api.call("POST", path, {"routing_key": "box", "payload": "x", "payload_encoding": "string"}).body == {
        "error": "bad_request", "reason": "[{key_missing,properties}]"}
    assert api.call("POST", path, {"properties": {}, "routing_key": "box"}).body == {
        "error": "bad_request", "reason": "[{key_missing,payload},{key_missing,payload_encoding}]"}
    assert api.call("POST", path, {**body, "payload_encoding": "nope"}).body == {
        "error": "bad_request", "reason": ["unsupported_encoding", "nope"]}
    assert api.call("POST", path, {**body, "properties": {"delivery_mode": "x"}}).body == {
        "error": "bad_request", "reason": ["not_int", "delivery_mode"]}
    assert api.call("POST", path, {**body, "payload": "!!", "payload_encoding": "base64"}).body == {
        "error": "bad_request", "reason": ["not_base64", "!!"]}
    assert api.call("POST", "/api/exchanges/%2F/nope/publish", body).body == {
        "error": "bad_request", "reason": "404 NOT_FOUND - no exchange 'nope' in vhost '/'"}
    assert api.call("POST", path, {**body, "properties": {"user_id": "bob"}}).body == {
        "error": "bad_request",
        "reason": "406 PRECONDITION_FAILED - user_id property set to 'bob' but authenticated "
                  "user was 'guest'"}
    assert api.call("POST", path, {**body, "properties": {"expiration": "abc"}}).body == {
        "error": "bad_request",
        "reason": "406 PRECONDITION_FAILED - invalid expiration 'abc': no_integer"}
    api.call("PUT", "/api/users/pol", {"password": "pw", "tags": "policymaker"})
    api.call("PUT", "/api/permissions/%2F/pol", {"configure": "^nothing$", "write": "^nothing$",
                                                 "read": "^nothing$"})
    assert api.call("POST", path, body, auth=("pol", "pw")).body == {
        "error": "bad_request",
        "reason": "403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused "
                  "for user 'pol'"}
    stats = wait_for(lambda: api.get("/api/overview")["message_stats"]["publish"] == 3
                     and api.get("/api/overview")["message_stats"])
    assert stats["return_unroutable"] == 1
    connection.close()


def test_bindings_are_listed_created_read_and_deleted(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.exchange_declare("src", "topic")
    channel.exchange_declare("dst", "fanout")
    channel.queue_declare("q")
    created = api.call("POST", "/api/bindings/%2F/e/src/q/q",
                       {"routing_key": "a b~c", "arguments": {"x-a": 1}})
    assert created.status == 201 and created.headers["content-length"] == "0"
    props = created.headers["location"].split("/")[1]
    assert created.headers["location"].startswith("q/a%2Bb%257Ec~")
    import urllib.parse

    key = urllib.parse.unquote(props)
    assert key.startswith("a+b%7Ec~")
    assert api.call("POST", "/api/bindings/%2F/e/src/q/q", {}).headers["location"] == "q/~"
    assert api.call("POST", "/api/bindings/%2F/e/src/e/dst", {"routing_key": "z"}).headers[
        "location"] == "dst/z"
    between = api.get("/api/bindings/%2F/e/src/q/q")
    assert [(b["routing_key"], b["properties_key"]) for b in between] == [("", "~"), ("a b~c", key)]
    assert api.get("/api/bindings/%2F/e/src/q/q/" + urllib.parse.quote(key, safe="")) == {
        "source": "src", "vhost": "/", "destination": "q", "destination_type": "queue",
        "routing_key": "a b~c", "arguments": {"x-a": 1}, "properties_key": key}
    everything = api.get("/api/bindings/%2F")
    assert everything[0] == {"source": "", "vhost": "/", "destination": "q",
                             "destination_type": "queue", "routing_key": "q", "arguments": {},
                             "properties_key": "q"}
    assert len(everything) == 4
    assert sorted(b["destination"] for b in api.get("/api/exchanges/%2F/src/bindings/source")) == [
        "dst", "q", "q"]
    assert [b["source"] for b in api.get("/api/exchanges/%2F/dst/bindings/destination")] == ["src"]
    # AMQP sees what HTTP made: the binding routes.
    channel.basic_publish("src", "a b~c", b"x")
    wait_for(lambda: api.get("/api/queues/%2F/q")["messages_ready"] == 1)
    assert api.call("DELETE", "/api/bindings/%2F/e/src/q/q/~").status == 204
    assert api.call("DELETE", "/api/bindings/%2F/e/src/q/q/~").status == 404
    assert api.call("POST", "/api/bindings/%2F/e/nope/q/q", {}).body == {
        "error": "not_found", "reason": "no exchange 'nope' in vhost '/'"}
    assert api.call("POST", "/api/bindings/%2F/e/src/q/nope", {}).body == {
        "error": "not_found", "reason": "no queue 'nope' in vhost '/'"}
    assert api.call("POST", "/api/bindings/%2F/e/amq.default/q/q", {}).body == {
        "error": "not_authorised", "reason": "Access refused."}
    assert api.get("/api/bindings/%2F/e/nope/q/q") == []
    connection.close()


def test_dead_letters_are_not_publishes_to_the_dead_letter_exchange(broker, api) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.exchange_declare("dlx", "fanout")
    channel.queue_declare("dlq")
    channel.queue_bind("dlq", "dlx")
    channel.queue_declare("work", arguments={"x-dead-letter-exchange": "dlx"})
    channel.basic_publish("", "work", b"x")
    method, _props, _body = channel.basic_get("work")
    channel.basic_reject(method.delivery_tag, requeue=False)
    wait_for(lambda: api.get("/api/queues/%2F/dlq")["messages"] == 1)
    # As in RabbitMQ: the dead-letter exchange counts no publish for it.
    assert "message_stats" not in api.get("/api/exchanges/%2F/dlx")
    default = wait_for(lambda: api.get("/api/exchanges/%2F/amq.default").get("message_stats"))
    assert (default["publish_in"], default["publish_out"]) == (1, 1)
    connection.close()
    # Counts of a closed channel stay with the exchange.
    wait_for(lambda: api.get("/api/connections") == [])
    assert api.get("/api/exchanges/%2F/amq.default")["message_stats"]["publish_in"] == 1


def test_booleans_as_rabbitmqadmin_sends_them(broker, api) -> None:
    """rabbit_mgmt_util:parse_bool: true/false, and the strings "true"/"false"
    (rabbitmqadmin sends `"durable": "true"`); anything else is not_boolean."""
    assert api.call("PUT", "/api/exchanges/%2F/sx", {
        "type": "fanout", "durable": "false", "auto_delete": "true", "internal": "false"}
    ).status == 201
    item = api.get("/api/exchanges/%2F/sx")
    assert (item["durable"], item["auto_delete"], item["internal"]) == (False, True, False)
    assert api.call("PUT", "/api/queues/%2F/sq", {"durable": "true", "auto_delete": "false"}
                    ).status == 201
    item = api.get("/api/queues/%2F/sq")
    assert (item["durable"], item["auto_delete"]) == (True, False)
    for value in ("False", "TRUE", 1, None, "yes"):
        for path in ("/api/queues/%2F/sq2", "/api/exchanges/%2F/sx2"):
            reply = api.call("PUT", path, {"durable": value})
            assert (reply.status, reply.body) == (
                400, {"error": "bad_request", "reason": ["not_boolean", value]}), (path, value)
    assert api.call("GET", "/api/queues/%2F/sq2").status == 404


def test_a_binding_by_properties_key_quoted_once_or_twice(broker, api) -> None:
    """rabbit_mgmt_wm_binding unquotes the key once more after the path: the
    key of "a.#" (a.%23) is found as a.%2523 (encoded again, as the dashboard
    sends it) and as a.%23 (not, as `rabbitmqadmin delete binding
    properties_key=a.#` sends it); a wrong hash or a third token is not."""
    connection = amqp(broker)
    channel = connection.channel()
    channel.exchange_declare("pk", "topic")
    channel.queue_declare("pkq")
    channel.queue_bind("pkq", "pk", "a.#")
    channel.queue_bind("pkq", "pk", "a b+c", arguments={"x": 1})
    keys = {b["routing_key"]: b["properties_key"]
            for b in api.get("/api/bindings/%2F/e/pk/q/pkq")}
    assert keys["a.#"] == "a.%23"
    base = "/api/bindings/%2F/e/pk/q/pkq/"
    assert api.call("GET", base + "a.%2523").body["routing_key"] == "a.#"
    assert api.call("GET", base + "a.%23").body["routing_key"] == "a.#"
    assert api.call("GET", base + "a.%23~").body["routing_key"] == "a.#"
    with_args = keys["a b+c"]
    assert with_args.startswith("a+b%2Bc~")
    quoted = with_args.replace("%", "%25").replace("+", "%2B")
    assert api.call("GET", base + quoted).body["arguments"] == {"x": 1}
    for wrong in (with_args.split("~")[0] + "~nope", "a.%23~x~y", "a.%2523~nope", "b"):
        assert api.call("GET", base + wrong).status == 404, wrong
    assert api.call("DELETE", base + "a.%23").status == 204
    assert [b["routing_key"] for b in api.get("/api/bindings/%2F/e/pk/q/pkq")] == ["a b+c"]
    connection.close()
