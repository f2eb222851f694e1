"""POST /api/warren/trace/{vhost}: the route tracer over real HTTP, on a real Warren.

The topology is declared with pika, as a client would; the answers are
checked against what the broker really does with the same message (it is
published afterwards and the queues are drained), so the tracer cannot drift
from the routing it explains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from broker.testing import BrokerThread

Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def channel(warren: BrokerThread) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(warren.url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def trace(api: Api, body: dict[str, Any], vhost: str = "%2F", **kwargs: Any) -> dict[str, Any]:
    status, answer = api("POST", f"/api/warren/trace/{vhost}", body, **kwargs)
    assert status == 200, answer
    return answer


def declare_orders(channel: Any, p: str) -> None:
    """The example of docs/routing.md, names prefixed with `p`."""
    channel.exchange_declare(f"{p}orders", "topic")
    channel.exchange_declare(f"{p}orders.audit", "headers")
    channel.exchange_declare(f"{p}unrouted", "fanout")
    channel.exchange_declare(f"{p}ship", "direct", arguments={"alternate-exchange": f"{p}unrouted"})
    for queue in ("billing", "audit", "lost", "shipping"):
        channel.queue_declare(f"{p}{queue}")
    channel.queue_bind(f"{p}billing", f"{p}orders", "order.*.created")
    channel.exchange_bind(f"{p}orders.audit", f"{p}orders", "order.#")
    channel.queue_bind(f"{p}audit", f"{p}orders.audit", "",
                       arguments={"x-match": "any", "priority": "high", "urgent": True})
    channel.queue_bind(f"{p}lost", f"{p}unrouted", "")
    channel.queue_bind(f"{p}shipping", f"{p}ship", "eu")


def test_the_binding_chain_to_each_queue(api: Api, channel: Any) -> None:
    p = "chain-"
    declare_orders(channel, p)
    answer = trace(api, {"exchange": f"{p}orders", "routing_key": "order.eu.created",
                         "headers": {"urgent": True}})
    assert answer["routed"] is True
    assert answer["exchange_type"] == "topic"
    assert answer["routing_keys"] == ["order.eu.created"]
    assert {q["name"] for q in answer["queues"]} == {f"{p}billing", f"{p}audit"}
    hops = {q["name"]: q["hops"] for q in answer["queues"]}
    assert hops[f"{p}billing"] == [{
        "source": f"{p}orders", "source_type": "topic",
        "destination": f"{p}billing", "destination_type": "queue",
        "via": "binding", "routing_key": "order.*.created", "arguments": {},
        "matched_key": "order.eu.created",
        "description": f"exchange '{p}orders' -> queue '{p}billing' by key 'order.*.created' "
                       "matched 'order.eu.created'",
    }]
    first, second = hops[f"{p}audit"]
    assert (first["destination"], first["destination_type"], first["routing_key"]) == (
        f"{p}orders.audit", "exchange", "order.#")
    assert (second["source"], second["source_type"], second["destination"]) == (
        f"{p}orders.audit", "headers", f"{p}audit")
    assert second["arguments"] == {"x-match": "any", "priority": "high", "urgent": True}
    assert second["matched_key"] is None  # a headers exchange: the key plays no part
    assert [x["name"] for x in answer["exchanges"]] == [f"{p}orders", f"{p}orders.audit"]
    assert all(x["outcome"] == "matched" for x in answer["exchanges"])
    assert answer["unroutable"] is None
    # The text is what `warren route` prints for the same topology.
    assert answer["text"].splitlines()[0] == (
        f"exchange '{p}orders' routing keys ['order.eu.created']: 2 queue(s)")


def test_alternate_exchange_and_unroutable_explained(api: Api, channel: Any) -> None:
    p = "ae-"
    declare_orders(channel, p)
    answer = trace(api, {"exchange": f"{p}ship", "routing_key": "us"})
    assert [q["name"] for q in answer["queues"]] == [f"{p}lost"]
    hops = answer["queues"][0]["hops"]
    assert [h["via"] for h in hops] == ["alternate-exchange", "binding"]
    assert hops[0]["destination"] == f"{p}unrouted"
    assert hops[1]["source_type"] == "fanout"
    ship = answer["exchanges"][0]
    assert (ship["outcome"], ship["alternate_exchange"], ship["alternate_exchange_used"]) == (
        "no_match", f"{p}unrouted", True)

    # A key that matches: the alternate exchange is not used.
    answer = trace(api, {"exchange": f"{p}ship", "routing_key": "eu"})
    assert [q["name"] for q in answer["queues"]] == [f"{p}shipping"]
    assert answer["exchanges"][0]["alternate_exchange_used"] is False
    assert len(answer["exchanges"]) == 1

    # Nothing matches in a headers exchange: why, and what the broker does.
    answer = trace(api, {"exchange": f"{p}orders.audit", "headers": {"priority": "low"}})
    assert answer["routed"] is False and answer["queues"] == []
    step = answer["exchanges"][0]
    assert step["outcome"] == "no_match"
    assert "no binding matched the headers (priority='low')" in step["explanation"]
    assert "basic.return 312 NO_ROUTE" in answer["unroutable"]["outcome"]
    assert "unroutable: no queue reached" in answer["text"]

    channel.exchange_declare(f"{p}empty", "topic")
    answer = trace(api, {"exchange": f"{p}empty", "routing_key": "a.b"})
    assert answer["exchanges"][0]["outcome"] == "no_bindings"
    assert answer["unroutable"]["reasons"] == [
        f"exchange '{p}empty' (topic): nothing is bound to it"]


def test_cc_bcc_and_the_default_exchange(api: Api, channel: Any) -> None:
    p = "cc-"
    declare_orders(channel, p)
    answer = trace(api, {"exchange": f"{p}ship", "routing_key": "nowhere",
                         "headers": {"CC": ["eu"], "BCC": ["nope"]}})
    assert answer["routing_keys"] == ["nowhere", "eu", "nope"]
    assert [q["name"] for q in answer["queues"]] == [f"{p}shipping"]
    assert answer["queues"][0]["hops"][0]["matched_key"] == "eu"
    assert any("BCC" in note for note in answer["notes"])

    for name in ("", "amq.default"):
        answer = trace(api, {"exchange": name, "routing_key": f"{p}billing"})
        assert answer["exchange"] == ""
        assert answer["queues"] == [{"name": f"{p}billing", "hops": [{
            "source": "", "source_type": "direct", "destination": f"{p}billing",
            "destination_type": "queue", "via": "default-exchange",
            "routing_key": f"{p}billing", "arguments": {}, "matched_key": f"{p}billing",
            "description": f"the default exchange -> queue '{p}billing' (routing key names the queue)",
        }]}]
    answer = trace(api, {"exchange": "", "routing_key": f"{p}no-such-queue"})
    assert answer["exchanges"][0]["explanation"] == (
        f"the default exchange: no queue named '{p}no-such-queue' in vhost '/'")


def test_the_trace_agrees_with_what_the_broker_does(api: Api, channel: Any) -> None:
    p = "real-"
    declare_orders(channel, p)
    queues = [f"{p}{q}" for q in ("billing", "audit", "lost", "shipping")]
    messages = [
        (f"{p}orders", "order.eu.created", {"urgent": True}),
        (f"{p}orders", "order.eu.created", {}),
        (f"{p}orders", "order.cancelled", {"priority": "high"}),
        (f"{p}orders", "invoice", {"priority": "high"}),
        (f"{p}ship", "eu", {}),
        (f"{p}ship", "us", {}),
        (f"{p}ship", "us", {"CC": ["eu"]}),
        (f"{p}orders.audit", "", {"urgent": True}),
        ("", f"{p}billing", {}),
    ]
    for exchange, key, headers in messages:
        expected = {q["name"] for q in trace(api, {
            "exchange": exchange, "routing_key": key, "headers": headers})["queues"]}
        channel.basic_publish(exchange, key, b"x", pika.BasicProperties(headers=headers or None))
        reached = set()
        for queue in queues:
            method, _props, _body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                reached.add(queue)
        assert reached == expected, (exchange, key, headers)


def test_a_trace_changes_nothing(api: Api, channel: Any) -> None:
    p = "ro-"
    declare_orders(channel, p)
    channel.basic_publish("", f"{p}billing", b"already there")
    before = api("GET", "/api/definitions")[1]
    for _ in range(3):
        trace(api, {"exchange": f"{p}orders", "routing_key": "order.eu.created"})
    assert api("GET", "/api/definitions")[1] == before
    # One message in billing, the one published before: the trace published nothing.
    assert channel.queue_declare(f"{p}billing", passive=True).method.message_count == 1
    assert channel.queue_declare(f"{p}audit", passive=True).method.message_count == 0


def test_an_internal_exchange_is_traced_with_a_note(api: Api, channel: Any) -> None:
    p = "int-"
    channel.exchange_declare(f"{p}inner", "fanout", internal=True)
    channel.queue_declare(f"{p}q")
    channel.queue_bind(f"{p}q", f"{p}inner", "")
    answer = trace(api, {"exchange": f"{p}inner"})
    assert answer["internal"] is True
    assert [q["name"] for q in answer["queues"]] == [f"{p}q"]
    assert "403 ACCESS_REFUSED" in answer["notes"][0]


def test_errors(api: Api, channel: Any) -> None:
    assert api("POST", "/api/warren/trace/%2F", {"exchange": "nope"}) == (
        404, {"error": "not_found", "reason": "no exchange 'nope' in vhost '/'"})
    assert api("POST", "/api/warren/trace/no-such-vhost", {"exchange": ""}) == (
        404, {"error": "not_found", "reason": "vhost_not_found"})
    assert api("POST", "/api/warren/trace/%2F", {"routing_key": "a"}) == (
        400, {"error": "bad_request", "reason": "[{key_missing,exchange}]"})
    assert api("POST", "/api/warren/trace/%2F", raw=b"[1]") == (
        400, {"error": "bad_request", "reason": "not_json"})
    assert api("POST", "/api/warren/trace/%2F", {"exchange": "", "headers": [1]}) == (
        400, {"error": "bad_request", "reason": "headers must be an object"})
    assert api("POST", "/api/warren/trace/%2F", {"exchange": "", "routing_key": 5}) == (
        400, {"error": "bad_request", "reason": "routing_key must be a string"})
    # A CC header that is not an array: the 406 a publish would get.
    status, answer = api("POST", "/api/warren/trace/%2F",
                         {"exchange": "amq.direct", "headers": {"CC": "a"}})
    assert status == 400
    assert answer["reason"] == (
        '406 invalid message: {unacceptable_type_in_header,"CC",longstr}')
    # GET is not served: 405, as for any path with other methods.
    assert api("GET", "/api/warren/trace/%2F")[0] == 405


def test_credentials_and_vhost_access(api: Api) -> None:
    body = {"exchange": "amq.direct"}
    assert api("POST", "/api/warren/trace/%2F", body, auth=None) == (401, None)
    assert api("POST", "/api/warren/trace/%2F", body, auth=("guest", "wrong"))[0] == 401
    assert api("PUT", "/api/users/trace-viewer", {"password": "pw", "tags": "management"})[0] == 201
    assert api("PUT", "/api/vhosts/trace-elsewhere", {})[0] == 201
    # No permissions in "/": refused, as every per-vhost endpoint refuses.
    assert api("POST", "/api/warren/trace/%2F", body, auth=("trace-viewer", "pw")) == (
        401, {"error": "not_authorised", "reason": "User not authorised to access virtual host"})
    # With permissions (any: tracing needs no configure, write or read), it traces.
    assert api("PUT", "/api/permissions/trace-elsewhere/trace-viewer",
               {"configure": "", "write": "", "read": ""})[0] == 201
    status, answer = api("POST", "/api/warren/trace/trace-elsewhere", body,
                         auth=("trace-viewer", "pw"))
    assert status == 200 and answer["vhost"] == "trace-elsewhere" and answer["routed"] is False


def test_deduplication_says_whether_the_live_cache_would_drop_it(api: Api, channel: Any) -> None:
    p = "dedup-"
    channel.exchange_declare(f"{p}orders", "fanout", arguments={"x-message-deduplication": True})
    channel.queue_declare(f"{p}intake", arguments={"x-message-deduplication": True,
                                                   "x-deduplication-header": "id"})
    channel.queue_bind(f"{p}intake", f"{p}orders")
    body = {"exchange": f"{p}orders", "headers": {"x-deduplication-header": "A-1", "id": 7}}
    before = trace(api, body)
    assert before["duplicate"] is False
    assert [(s["kind"], s["key"], s["duplicate"]) for s in before["deduplication"]] == [
        ("exchange", "A-1", False), ("queue", 7, False)]  # fmt: skip
    assert "not seen, this message would pass" in before["text"]
    channel.basic_publish(f"{p}orders", "", b"1", pika.BasicProperties(
        headers={"x-deduplication-header": "A-1", "id": 7}))  # fmt: skip
    channel.queue_declare(f"{p}intake", passive=True)  # a round trip: the publish is done
    after = trace(api, body)
    assert after["duplicate"] is True
    assert [s["duplicate"] for s in after["deduplication"]] == [True, True]
    assert "this message would be DROPPED as a duplicate" in after["text"]
    # Tracing remembered nothing: another key still passes.
    other = trace(api, {**body, "headers": {"x-deduplication-header": "B-2"}})
    assert other["duplicate"] is False
    assert trace(api, {"exchange": f"{p}orders", "headers": {"x-deduplication-header": "B-2"}})[
        "duplicate"] is False  # fmt: skip
