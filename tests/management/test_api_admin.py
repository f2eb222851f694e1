"""The management API's administration endpoints on a real Warren, over real HTTP.

Each answer is compared with what RabbitMQ 3.10.8's management plugin sends
for the same request (/work/notes/management-api.md; the access-control
conformance area runs the user/vhost/permission set-up against both).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from broker.testing import BrokerThread


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=tmp_path / "data")
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def call(
    thread: BrokerThread,
    method: str,
    path: str,
    body: Any = None,
    auth: tuple[str, str] | None = ("guest", "guest"),
) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded JSON or None, headers) of one request."""
    assert thread.broker is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(thread.broker.management_url + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    return status, json.loads(raw) if raw else None, {k.lower(): v for k, v in headers.items()}


def test_credentials_are_checked_as_rabbitmq_does(broker) -> None:
    status, body, headers = call(broker, "GET", "/api/whoami", auth=None)
    assert (status, body) == (401, None)
    assert headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'
    status, body, headers = call(broker, "GET", "/api/whoami", auth=("guest", "nope"))
    assert (status, body) == (401, {"error": "not_authorized", "reason": "Login failed"})
    assert call(broker, "GET", "/api/whoami")[1] == {"name": "guest", "tags": ["administrator"]}


def test_a_user_without_management_tags_and_a_non_admin_are_refused(broker) -> None:
    assert call(broker, "PUT", "/api/users/plain", {"password": "pw", "tags": ""})[0] == 201
    assert call(broker, "GET", "/api/whoami", auth=("plain", "pw"))[1] == {
        "error": "not_authorised", "reason": "Not management user"}
    assert call(broker, "PUT", "/api/users/viewer", {"password": "pw", "tags": "management"})[0] == 201
    assert call(broker, "GET", "/api/users", auth=("viewer", "pw"))[:2] == (
        401, {"error": "not_authorised", "reason": "Not administrator user"})
    # A management user sees only the vhosts it has permissions in.
    assert call(broker, "GET", "/api/vhosts", auth=("viewer", "pw"))[1] == []


def test_users_are_created_updated_read_and_deleted(broker) -> None:
    assert call(broker, "PUT", "/api/users/alice", {"password": "s3cret", "tags": "monitoring"})[0] == 201
    assert call(broker, "PUT", "/api/users/alice", {"password": "s3cret", "tags": ["management"]})[0] == 204
    status, user, _ = call(broker, "GET", "/api/users/alice")
    assert status == 200
    assert user["tags"] == ["management"]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert sorted(user) == ["hashing_algorithm", "limits", "name", "password_hash", "tags"]
    assert call(broker, "PUT", "/api/users/bob", {"password": "x"})[1] == {
        "error": "bad_request", "reason": "tags_not_present"}
    assert call(broker, "PUT", "/api/users/bob", {"password": "x", "password_hash": "y",
                                                 "tags": ""})[1]["reason"] == (
        "both_password_and_password_hash_are_provided")
    assert call(broker, "DELETE", "/api/users/alice")[0] == 204
    assert call(broker, "DELETE", "/api/users/alice")[:2] == (
        404, {"error": "Object Not Found", "reason": "Not Found"})


def test_vhosts_permissions_and_a_login_through_them(broker) -> None:
    assert call(broker, "PUT", "/api/vhosts/shop", {"description": "d", "tags": "a,b"})[0] == 201
    assert call(broker, "PUT", "/api/vhosts/shop", {})[0] == 204
    vhost = call(broker, "GET", "/api/vhosts/shop")[1]
    assert (vhost["name"], vhost["tags"]) == ("shop", [])
    assert call(broker, "PUT", "/api/users/carl", {"password": "pw", "tags": ""})[0] == 201
    assert call(broker, "PUT", "/api/permissions/shop/carl", {"configure": ".*", "write": ".*"})[1] == {
        "error": "bad_request", "reason": "[{key_missing,read}]"}
    assert call(broker, "PUT", "/api/permissions/shop/carl",
                {"configure": "^c", "write": ".*", "read": ".*"})[0] == 201
    assert call(broker, "GET", "/api/permissions/shop/carl")[1] == {
        "user": "carl", "vhost": "shop", "configure": "^c", "write": ".*", "read": ".*"}
    port = broker.broker.port
    connection = pika.BlockingConnection(pika.URLParameters(f"amqp://carl:pw@127.0.0.1:{port}/shop"))
    connection.channel().queue_declare("c1")
    # Deleting the vhost closes the connection and takes the permission with it.
    assert call(broker, "DELETE", "/api/vhosts/shop")[0] == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
        connection.process_data_events(time_limit=2)
        connection.channel()
    assert call(broker, "GET", "/api/permissions/shop/carl")[0] == 404


def test_vhost_limits_as_rabbitmq_takes_them(broker) -> None:
    assert call(broker, "PUT", "/api/vhost-limits/%2F/max-queues", {"value": 5})[0] == 204
    assert call(broker, "GET", "/api/vhost-limits/%2F")[1] == [
        {"vhost": "/", "value": {"max-queues": 5}}]
    assert call(broker, "PUT", "/api/vhost-limits/%2F/max-queues", {"value": "x"})[1]["reason"] == (
        'Validation failed\n\nmax-queues should be a number, actually was <<"x">>\n')
    assert call(broker, "PUT", "/api/vhost-limits/%2F/max-foo", {"value": 3})[1]["reason"] == (
        'Validation failed\n\nUnrecognised terms [{<<"max-foo">>,3}] in limits\n')
    assert call(broker, "DELETE", "/api/vhost-limits/%2F/max-queues")[0] == 204
    assert call(broker, "GET", "/api/vhost-limits/%2F")[1] == []


def test_definitions_export_import_round_trip(broker, tmp_path) -> None:
    port = broker.broker.port
    connection = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))
    channel = connection.channel()
    channel.exchange_declare("orders", "topic", durable=True)
    channel.queue_declare("billing", durable=True, arguments={"x-max-length": 10})
    channel.queue_bind("billing", "orders", "order.#")
    connection.close()
    status, exported, headers = call(broker, "GET", "/api/definitions?download=defs.json")
    assert status == 200 and headers["content-disposition"] == "attachment; filename=defs.json"
    assert {"name": "billing", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 10}} in exported["queues"]
    other = BrokerThread(data_dir=tmp_path / "other")
    other.start()
    try:
        assert call(other, "POST", "/api/definitions", exported)[0] == 204
        again = call(other, "GET", "/api/definitions")[1]
        for key in ("queues", "exchanges", "bindings", "permissions", "vhosts"):
            assert again[key] == exported[key], key
        assert [u["name"] for u in again["users"]] == ["guest"]
        # What Warren cannot honour is refused, not dropped.
        status, body, _ = call(other, "POST", "/api/definitions", {
            "policies": [{"vhost": "/", "name": "p", "pattern": ".*",
                          "definition": {"ha-mode": "all"}}]})
        assert status == 400
        assert body["reason"] == (
            "policies[0] (policy 'p'): <<\"ha-mode\">> is a RabbitMQ policy setting that Warren "
            "does not implement (classic queue mirroring: Warren is a single node)")
        assert call(other, "GET", "/api/policies")[1] == []
        assert call(other, "POST", "/api/definitions", b"nope".decode())[1] == {
            "error": "bad_request", "reason": "failed_to_parse_json"}
    finally:
        other.stop()


def test_health_checks_follow_the_listeners_and_alarms(broker) -> None:
    port = broker.broker.port
    assert call(broker, "GET", f"/api/health/checks/port-listener/{port}")[1] == {
        "status": "ok", "port": port}
    status, body, _ = call(broker, "GET", "/api/health/checks/port-listener/1")
    assert status == 503 and body["missing"] == 1 and port in body["ports"]
    assert call(broker, "GET", "/api/health/checks/protocol-listener/amqp091")[1] == {
        "status": "ok", "protocol": "amqp091"}
    assert call(broker, "GET", "/api/health/checks/alarms")[1] == {"status": "ok"}
    broker.run_sync(lambda: broker.broker.alarms.set("disk"))
    status, body, _ = call(broker, "GET", "/api/health/checks/local-alarms")
    assert status == 503 and body["alarms"][0]["resource"] == "disk space"
    broker.run_sync(lambda: broker.broker.alarms.clear("disk"))


def test_lists_take_rabbitmqs_query_options(broker) -> None:
    for name in ("b-one", "a-two", "c-three"):
        assert call(broker, "PUT", f"/api/vhosts/{name}", {})[0] == 201
    names = [v["name"] for v in call(broker, "GET", "/api/vhosts?columns=name")[1]]
    assert names == ["/", "a-two", "b-one", "c-three"]
    page = call(broker, "GET", "/api/vhosts?page=2&page_size=2&columns=name&sort_reverse=true")[1]
    assert page == {"filtered_count": 4, "item_count": 2, "items": [{"name": "a-two"}, {"name": "/"}],
                    "page": 2, "page_count": 2, "page_size": 2, "total_count": 4}
    filtered = call(broker, "GET", "/api/vhosts?page=1&name=TwO&columns=name")[1]
    assert [i["name"] for i in filtered["items"]] == ["a-two"]
    assert call(broker, "GET", "/api/vhosts?page=0")[1] == {
        "error": "invalid_pagination_parameters",
        "reason": "Invalid pagination parameters: page number 0, page size undefined"}
    assert call(broker, "GET", "/api/vhosts?page=9")[1]["error"] == "page_out_of_range"
