"""/api/policies and /api/operator-policies on a real Warren, over real HTTP.

Each answer is the one RabbitMQ 3.10.8's management plugin gives for the same
request (read off the reference node; /work/notes/management-api.md 4.20).
The behaviour of the policies over AMQP is the conformance area
conformance/tests/test_policies.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from test_api_admin import call

from broker.testing import BrokerThread

EXPORT = Path(__file__).parents[1] / "routing" / "data" / "rabbitmq-3.10.8-access-definitions.json"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=tmp_path / "data")
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


POLICY = {"pattern": "^orders\\.", "definition": {"message-ttl": 1000, "max-length": 7},
          "priority": 3, "apply-to": "queues"}


def test_put_get_list_delete(broker) -> None:
    assert call(broker, "PUT", "/api/policies/%2F/ttl", POLICY)[0] == 201
    assert call(broker, "PUT", "/api/policies/%2F/ttl", POLICY)[0] == 204
    item = {"vhost": "/", "name": "ttl", "pattern": "^orders\\.", "apply-to": "queues",
            "definition": {"max-length": 7, "message-ttl": 1000}, "priority": 3}
    assert call(broker, "GET", "/api/policies/%2F/ttl")[:2] == (200, item)
    assert call(broker, "GET", "/api/policies")[1] == [item]
    assert call(broker, "GET", "/api/policies/%2F")[1] == [item]
    assert call(broker, "GET", "/api/operator-policies")[1] == []
    assert call(broker, "DELETE", "/api/policies/%2F/ttl")[0] == 204
    assert call(broker, "DELETE", "/api/policies/%2F/ttl")[:2] == (
        404, {"error": "Object Not Found", "reason": "Not Found"})
    assert call(broker, "GET", "/api/policies/%2F/ttl")[0] == 404


def test_defaults_and_the_list_order(broker) -> None:
    call(broker, "PUT", "/api/policies/%2F/high", {"pattern": "a", "definition": {"expires": 5},
                                                  "priority": 10})
    call(broker, "PUT", "/api/policies/%2F/low", {"pattern": "b", "definition": {"expires": 5},
                                                 "priority": -1.5})
    call(broker, "PUT", "/api/policies/%2F/plain", {"pattern": "c", "definition": {"expires": 5}})
    listed = call(broker, "GET", "/api/policies")[1]
    assert [(p["name"], p["priority"], p["apply-to"]) for p in listed] == [
        ("low", -1.5, "all"), ("plain", 0, "all"), ("high", 10, "all")
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"pattern": "^x", "definition": {"max-length": "x"}},
         "Validation failed\n\n&lt;&lt;\"x\"&gt;&gt; is not a valid maximum length\n"),
        ({"pattern": "^x", "definition": {"max-length": {"a": 1}}},
         "Validation failed\n\n#{&lt;&lt;\"a\"&gt;&gt; =&gt; 1} is not a valid maximum length\n"),
        ({"pattern": "^x", "definition": {"queue-mode": "lazy"}},
         "Validation failed\n\n&lt;&lt;\"queue-mode\"&gt;&gt; is a RabbitMQ policy setting that "
         "Warren does not implement (lazy classic queues: Warren pages messages to disk on its "
         "own)\n"),
        ({"definition": {"max-length": 1}}, "[{key_missing,pattern}]"),
        ({}, "[{key_missing,pattern},{key_missing,definition}]"),
    ],
)
def test_a_refused_policy(broker, body, reason) -> None:
    assert call(broker, "PUT", "/api/policies/%2F/p", body)[:2] == (
        400, {"error": "bad_request", "reason": reason})
    assert call(broker, "GET", "/api/policies")[1] == []


def test_operator_policy_texts_are_not_escaped(broker) -> None:
    status, body, _ = call(broker, "PUT", "/api/operator-policies/%2F/o",
                           {"pattern": ".", "definition": {"overflow": "drop-head"}})
    assert (status, body["reason"]) == (400, 'Validation failed\n\n[{<<"overflow">>,'
                                              '<<"drop-head">>}] are not recognised policy '
                                              "settings\n")


def test_a_missing_vhost(broker) -> None:
    assert call(broker, "PUT", "/api/policies/nope/p", POLICY)[:2] == (
        404, {"error": "not_found", "reason": "vhost_not_found"})
    assert call(broker, "GET", "/api/policies/nope")[0] == 404
    assert call(broker, "GET", "/api/policies/nope/p")[0] == 404


def make_user(broker, name: str, tags: str, vhost: str | None = "/") -> None:
    assert call(broker, "PUT", f"/api/users/{name}", {"password": "pw", "tags": tags})[0] == 201
    if vhost is not None:
        call(broker, "PUT", f"/api/permissions/%2F/{name}",
             {"configure": ".*", "write": ".*", "read": ".*"})


def test_who_may_do_what(broker) -> None:
    make_user(broker, "mgmt", "management")
    make_user(broker, "pol", "policymaker")
    make_user(broker, "mon", "monitoring", vhost=None)
    call(broker, "PUT", "/api/policies/%2F/p", POLICY)
    call(broker, "PUT", "/api/operator-policies/%2F/o",
         {"pattern": ".", "definition": {"max-length": 9}})

    def as_(user: str, method: str, path: str, body: object = None) -> tuple[int, object]:
        status, answer, _ = call(broker, method, path, body, auth=(user, "pw"))
        return status, answer

    denied = (401, {"error": "not_authorised", "reason": "User not authorised to access object"})
    # A management user with permissions sees the list, not the item.
    assert [p["name"] for p in as_("mgmt", "GET", "/api/policies")[1]] == ["p"]
    assert as_("mgmt", "GET", "/api/policies/%2F/p") == denied
    assert as_("mgmt", "PUT", "/api/policies/%2F/q", POLICY) == denied
    # A policymaker with access to the vhost may do everything with policies.
    assert as_("pol", "GET", "/api/policies/%2F/p")[0] == 200
    assert as_("pol", "PUT", "/api/policies/%2F/q", POLICY)[0] == 201
    assert as_("pol", "DELETE", "/api/policies/%2F/q")[0] == 204
    # ... but not with operator policies, which are an administrator's.
    assert as_("pol", "PUT", "/api/operator-policies/%2F/o2", POLICY) == (
        401, {"error": "not_authorised", "reason": "Not administrator user"})
    assert [p["name"] for p in as_("pol", "GET", "/api/operator-policies")[1]] == ["o"]
    # Monitoring without permissions: an empty list, and no vhost's list.
    assert as_("mon", "GET", "/api/policies") == (200, [])
    assert as_("mon", "GET", "/api/policies/%2F") == (
        401, {"error": "not_authorised",
              "reason": "User not authorised to access virtual host"})


def test_a_policy_applies_to_queues_at_once(broker) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare("orders.eu")
    for i in range(5):
        channel.basic_publish("", "orders.eu", f"m{i}".encode())
    assert call(broker, "PUT", "/api/policies/%2F/cap",
                {"pattern": "^orders\\.", "definition": {"max-length": 2}})[0] == 201
    assert channel.queue_declare("orders.eu", passive=True).method.message_count == 2
    connection.close()
    fields = broker.run_sync(lambda: broker.broker.vhosts["/"].policy_fields("queues", "orders.eu"))
    assert fields == {"policy": "cap", "operator_policy": None,
                      "effective_policy_definition": {"max-length": 2}}


def _policy_fields(item: dict) -> dict:
    return {key: item.get(key, "absent")
            for key in ("policy", "operator_policy", "effective_policy_definition")}


def test_the_api_shows_the_policies_of_each_queue_as_rabbitmq_does(broker) -> None:
    """/api/queues and /api/queues/V/Q: `policy` and `operator_policy` (names
    or null) and `effective_policy_definition` (the two merged, the lower of
    a key in both; `{}` without any), as RabbitMQ 3.10.8 showed them for the
    same policies (`^orders\\.` max-length 2; an operator policy max-length 5
    and message-ttl 60000)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare("orders.eu")
    channel.queue_declare("plain")
    assert call(broker, "PUT", "/api/policies/%2F/cap",
                {"pattern": "^orders\\.", "definition": {"max-length": 2},
                 "apply-to": "queues"})[0] == 201
    status, queue, _ = call(broker, "GET", "/api/queues/%2F/orders.eu")
    assert status == 200
    assert _policy_fields(queue) == {"policy": "cap", "operator_policy": None,
                                     "effective_policy_definition": {"max-length": 2}}
    assert call(broker, "PUT", "/api/operator-policies/%2F/op",
                {"pattern": "^orders\\.", "definition": {"max-length": 5, "message-ttl": 60000},
                 "apply-to": "queues"})[0] == 201
    listed = {q["name"]: q for q in call(broker, "GET", "/api/queues/%2F")[1]}
    expected = {"policy": "cap", "operator_policy": "op",
                "effective_policy_definition": {"max-length": 2, "message-ttl": 60000}}
    assert _policy_fields(listed["orders.eu"]) == expected
    assert _policy_fields(call(broker, "GET", "/api/queues/%2F/orders.eu")[1]) == expected
    assert _policy_fields(listed["plain"]) == {
        "policy": None, "operator_policy": None, "effective_policy_definition": {}}
    # Cleared: the list (whose items are cached between samples) follows at once.
    assert call(broker, "DELETE", "/api/policies/%2F/cap")[0] == 204
    listed = {q["name"]: q for q in call(broker, "GET", "/api/queues")[1]}
    assert _policy_fields(listed["orders.eu"]) == {
        "policy": None, "operator_policy": "op",
        "effective_policy_definition": {"max-length": 5, "message-ttl": 60000}}
    # A queue declared under a policy has it from the start.
    channel.queue_declare("orders.us")
    assert call(broker, "GET", "/api/queues/%2F/orders.us")[1]["operator_policy"] == "op"
    connection.close()


def test_the_api_shows_an_exchanges_policy_only_when_one_applies(broker) -> None:
    """RabbitMQ 3.10.8: an exchange has a `policy` key (the name) only while a
    policy applies to it, the default and amq.* exchanges included; never
    `operator_policy` or `effective_policy_definition`."""
    assert call(broker, "PUT", "/api/exchanges/%2F/orders.x", {"type": "direct"})[0] == 201
    assert call(broker, "PUT", "/api/exchanges/%2F/plain.x", {"type": "direct"})[0] == 201
    assert "policy" not in call(broker, "GET", "/api/exchanges/%2F/orders.x")[1]
    assert call(broker, "PUT", "/api/policies/%2F/ae",
                {"pattern": "^orders\\.", "definition": {"alternate-exchange": "amq.fanout"},
                 "apply-to": "exchanges"})[0] == 201
    assert call(broker, "PUT", "/api/operator-policies/%2F/op",
                {"pattern": ".*", "definition": {"max-length": 3}, "apply-to": "all"})[0] == 201
    shown = call(broker, "GET", "/api/exchanges/%2F/orders.x")[1]
    assert _policy_fields(shown) == {"policy": "ae", "operator_policy": "absent",
                                     "effective_policy_definition": "absent"}
    listed = {x["name"]: x for x in call(broker, "GET", "/api/exchanges/%2F")[1]}
    assert listed["orders.x"]["policy"] == "ae"
    assert "policy" not in listed["plain.x"]
    assert list(listed["orders.x"]) == [  # the key's place, as RabbitMQ orders them
        "arguments", "auto_delete", "durable", "internal", "name", "policy", "type",
        "user_who_performed_action", "vhost"]
    assert call(broker, "PUT", "/api/policies/%2F/all",
                {"pattern": ".*", "definition": {"alternate-exchange": "x"},
                 "apply-to": "exchanges", "priority": -1})[0] == 201
    listed = {x["name"]: x for x in call(broker, "GET", "/api/exchanges/%2F")[1]}
    assert (listed[""]["policy"], listed["amq.direct"]["policy"]) == ("all", "all")
    assert (listed["orders.x"]["policy"], listed["plain.x"]["policy"]) == ("ae", "all")


def test_a_real_export_with_policies_imports_and_exports_the_same(broker) -> None:
    # An export of the reference RabbitMQ 3.10.8 with a policy and an operator
    # policy (and a global parameter, which Warren refuses: left out here).
    data = json.loads(EXPORT.read_text())
    document = copy.deepcopy(data)
    document["global_parameters"] = []
    assert call(broker, "POST", "/api/definitions", document)[0] == 204
    exported = call(broker, "GET", "/api/definitions")[1]
    assert exported["policies"] == data["policies"]
    operator = [p for p in data["parameters"] if p["component"] == "operator_policy"]
    assert [p for p in exported["parameters"] if p["component"] == "operator_policy"] == operator
    per_vhost = call(broker, "GET", "/api/definitions/lang-prod")[1]
    assert per_vhost["policies"] == data["policies"]  # with "vhost", as RabbitMQ writes it
    # and the export's queue got what matches it: the operator policy (".*");
    # the policy's "^billing" does not find "lang-billing".
    fields = broker.run_sync(
        lambda: broker.broker.vhosts["lang-prod"].policy_fields("queues", "lang-billing"))
    assert fields == {"policy": None, "operator_policy": "lang-cap",
                      "effective_policy_definition": {"max-length": 100000}}


def test_runtime_parameters_as_rabbitmq_lists_and_sets_them(broker) -> None:
    """/api/parameters (rabbit_mgmt_wm_parameter{,s}): Warren's two components,
    operator_policy and vhost-limits; policies only when asked by name; a
    plugin's component refused as RabbitMQ refuses one it does not know."""
    call(broker, "PUT", "/api/vhosts/vx")
    call(broker, "PUT", "/api/operator-policies/%2F/op", {"pattern": "^x",
                                                          "definition": {"max-length": 50}})
    call(broker, "PUT", "/api/vhost-limits/vx/max-queues", {"value": 10})
    call(broker, "PUT", "/api/policies/%2F/pol", POLICY)
    operator = {"value": {"pattern": "^x", "definition": {"max-length": 50}, "priority": 0,
                          "apply-to": "all"}, "vhost": "/", "component": "operator_policy",
                "name": "op"}
    limits = {"value": {"max-queues": 10}, "vhost": "vx", "component": "vhost-limits",
              "name": "limits"}
    policy = {"value": {"pattern": POLICY["pattern"], "definition": POLICY["definition"],
                        "priority": 3, "apply-to": "queues"},
              "vhost": "/", "component": "policy", "name": "pol"}

    def get(path: str) -> tuple[int, object]:
        return call(broker, "GET", path)[:2]

    assert get("/api/parameters") == (200, [operator, limits])
    assert get("/api/parameters/operator_policy") == (200, [operator])
    assert get("/api/parameters/vhost-limits/vx") == (200, [limits])
    assert get("/api/parameters/vhost-limits/%2F") == (200, [])
    assert get("/api/parameters/policy") == (200, [policy])
    assert get("/api/parameters/federation-upstream") == (200, [])
    assert get("/api/parameters/operator_policy/%2F/op") == (200, operator)
    assert get("/api/parameters/vhost-limits/vx/limits") == (200, limits)
    assert get("/api/parameters/policy/%2F/pol") == (200, policy)
    not_found = (404, {"error": "Object Not Found", "reason": "Not Found"})
    assert get("/api/parameters/foo/nope") == not_found
    assert get("/api/parameters/foo/%2F/x") == not_found

    def put(path: str, body: object) -> tuple[int, object]:
        return call(broker, "PUT", path, body)[:2]

    def bad(reason: str) -> tuple[int, object]:
        return 400, {"error": "bad_request", "reason": reason}

    assert put("/api/parameters/foo/%2F/x", {}) == bad("[{key_missing,value}]")
    assert put("/api/parameters/foo/nope/x", {"value": 1}) == (
        404, {"error": "not_found", "reason": "vhost_not_found"})
    assert put("/api/parameters/federation-upstream/%2F/up", {"value": {"uri": "amqp://"}}) == bad(
        "Validation failed\n\ncomponent federation-upstream not found\n")
    assert put("/api/parameters/policy/%2F/p", {"value": POLICY}) == bad(
        "policies may not be set using this method")
    assert put("/api/parameters/operator_policy/%2F/op2",
               {"value": {"pattern": "^y", "definition": {"max-length": 3}}}) == bad(
        'Validation failed\n\nKey "priority" not found in op2\n')
    assert put("/api/parameters/operator_policy/%2F/op2", {"value": {
        "pattern": "^y", "definition": {"bogus": 3}, "priority": 1}}) == bad(
        "Validation failed\n\n[{&lt;&lt;\"bogus\"&gt;&gt;,3}] are not recognised policy settings\n")
    assert put("/api/parameters/operator_policy/%2F/op2", {"value": {
        "pattern": "^y", "definition": {"max-length": 3}, "priority": 1}})[0] == 201
    assert get("/api/operator-policies/%2F/op2")[1] == {
        "vhost": "/", "name": "op2", "pattern": "^y", "apply-to": "all",
        "definition": {"max-length": 3}, "priority": 1}
    assert put("/api/parameters/vhost-limits/vx/limits", {"value": {"max-connections": 4}}) == (
        204, None)
    assert get("/api/vhost-limits/vx")[1] == [{"vhost": "vx", "value": {"max-connections": 4}}]
    assert put("/api/parameters/vhost-limits/vx/limits", {"value": {"max-c": 4}}) == bad(
        "Validation failed\n\nUnrecognised terms [{&lt;&lt;\"max-c\"&gt;&gt;,4}] in limits\n")
    assert put("/api/parameters/vhost-limits/vx/other", {"value": {}})[0] == 400

    def delete(path: str) -> tuple[int, object]:
        return call(broker, "DELETE", path)[:2]

    assert delete("/api/parameters/policy/%2F/pol") == bad(
        "policies may not be cleared using this method")
    assert delete("/api/parameters/operator_policy/%2F/op2") == (204, None)
    assert delete("/api/parameters/operator_policy/%2F/op2") == not_found
    assert delete("/api/parameters/vhost-limits/vx/limits") == (204, None)
    assert get("/api/vhost-limits/vx") == (200, [])
    assert get("/api/parameters") == (200, [operator])

    # A policymaker may read, and set nothing an administrator keeps.
    make_user(broker, "pol", "policymaker")
    assert call(broker, "GET", "/api/parameters", auth=("pol", "pw"))[:2] == (200, [operator])
    assert call(broker, "PUT", "/api/parameters/operator_policy/%2F/o3", {"value": {
        "pattern": "^y", "definition": {"max-length": 3}, "priority": 1}},
        auth=("pol", "pw"))[:2] == (401, {"error": "not_authorised",
                                          "reason": "Not administrator user"})
    make_user(broker, "mgmt", "management")
    assert call(broker, "GET", "/api/parameters", auth=("mgmt", "pw"))[:2] == (
        401, {"error": "not_authorised", "reason": "User not authorised to access object"})
