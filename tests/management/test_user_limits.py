"""User limits (RabbitMQ 3.10's `max-connections` and `max-channels` per user).

The same scenarios run on Warren and, when WARREN_REFERENCE_URL and
WARREN_REFERENCE_MANAGEMENT_URL are set, on the reference RabbitMQ 3.10.8
(skipped otherwise), so the texts, codes and JSON shapes asserted here are
checked against RabbitMQ itself: what /api/user-limits answers, the 530 a
connection.open past `max-connections` gets, the 530 (a connection error) a
channel.open past `max-channels` gets. Users made on the reference are named
`ulim-<random>-...` and deleted afterwards. Warren-only tests follow:
definitions both ways, persistence across a restart, `warren serve --config`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
from api_helpers import Api, api_of, quote
from pika.exceptions import ConnectionClosedByBroker, ProbableAccessDeniedError

from broker.testing import BrokerThread

REFERENCE_AMQP = os.environ.get("WARREN_REFERENCE_URL")
REFERENCE_API = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")


@dataclass
class Side:
    """One broker: its management API and AMQP address; what to delete afterwards."""

    kind: str
    api: Api
    host: str
    port: int
    prefix: str = field(default_factory=lambda: f"ulim-{secrets.token_hex(3)}")
    users: list[str] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)

    def user(self, label: str, tags: str = "", vhosts: tuple[str, ...] = ("/",)) -> str:
        name = f"{self.prefix}-{label}"
        reply = self.api.call("PUT", f"/api/users/{quote(name)}", {"password": "pw", "tags": tags})
        assert reply.status == 201, reply.body
        self.users.append(name)
        for vhost in vhosts:
            reply = self.api.call("PUT", f"/api/permissions/{quote(vhost)}/{quote(name)}",
                                  {"configure": ".*", "write": ".*", "read": ".*"})
            assert reply.status in (201, 204), reply.body
        return name

    def vhost(self, label: str) -> str:
        name = f"{self.prefix}-{label}"
        assert self.api.call("PUT", f"/api/vhosts/{quote(name)}", {}).status == 201
        self.vhosts.append(name)
        return name

    def connect(self, user: str, vhost: str = "/") -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(
            self.host, self.port, vhost, pika.PlainCredentials(user, "pw"),
            connection_attempts=1,
        ))

    def set_limit(self, user: str, name: str, value: Any) -> Any:
        return self.api.call("PUT", f"/api/user-limits/{quote(user)}/{name}", {"value": value})


@pytest.fixture(scope="module")
def warren_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=tmp_path_factory.mktemp("ulimits"))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(params=["warren", "rabbitmq"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    if request.param == "rabbitmq":
        if not (REFERENCE_AMQP and REFERENCE_API):
            pytest.skip("set WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL "
                        "to compare with RabbitMQ")
        params = pika.URLParameters(REFERENCE_AMQP)
        found = Side("rabbitmq", Api(REFERENCE_API.rstrip("/")), params.host, params.port)
    else:
        thread: BrokerThread = request.getfixturevalue("warren_thread")
        assert thread.broker is not None
        found = Side("warren", api_of(thread), "127.0.0.1", thread.broker.port)
    try:
        yield found
    finally:
        for user in found.users:
            found.api.call("DELETE", f"/api/users/{quote(user)}")
        for vhost in found.vhosts:
            found.api.call("DELETE", f"/api/vhosts/{quote(vhost)}")


def mine(side: Side, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["user"].startswith(side.prefix)]


# -- the management API ---------------------------------------------------------------


def test_user_limits_api_shapes(side: Side) -> None:
    api = side.api
    alice = side.user("alice")
    viewer = side.user("viewer", tags="management")
    assert mine(side, api.get("/api/user-limits")) == []
    assert api.get(f"/api/user-limits/{alice}") == []
    missing = api.call("GET", f"/api/user-limits/{side.prefix}-nobody")
    assert (missing.status, missing.body) == (
        404, {"error": "Object Not Found", "reason": "Not Found"})

    assert side.set_limit(alice, "max-connections", 1).status == 204
    assert side.set_limit(alice, "max-connections", 1).status == 204  # again: 204 too
    assert side.set_limit(alice, "max-channels", 2).status == 204
    expected = [{"user": alice, "value": {"max-channels": 2, "max-connections": 1}}]
    assert mine(side, api.get("/api/user-limits")) == expected
    assert api.get(f"/api/user-limits/{alice}") == expected
    # on the user too, as /api/users and the definitions show it
    assert api.get(f"/api/users/{alice}")["limits"] == {"max-channels": 2, "max-connections": 1}
    # any management user may read them; only an administrator may change them
    assert api.call("GET", "/api/user-limits", auth=(viewer, "pw")).status == 200
    assert api.call("GET", f"/api/user-limits/{alice}", auth=(viewer, "pw")).body == expected
    for method, body in (("PUT", {"value": 3}), ("DELETE", None)):
        refused = api.call(method, f"/api/user-limits/{alice}/max-channels", body,
                           auth=(viewer, "pw"))
        assert (refused.status, refused.body) == (
            401, {"error": "not_authorised", "reason": "Not administrator user"})
    nobody = api.call("GET", "/api/user-limits", auth=(alice, "pw"))
    assert (nobody.status, nobody.body) == (
        401, {"error": "not_authorised", "reason": "Not management user"})

    # RabbitMQ's validation (rabbit_auth_backend_internal:validate_user_limits)
    for name, value, reason in (
        ("max-queues", 1, 'Unrecognised terms [{<<"max-queues">>,1}] in user-limits'),
        ("max-channels", "x", 'max-channels should be a number, actually was <<"x">>'),
        ("max-channels", 1.5, "max-channels should be a number, actually was 1.5"),
        ("max-connections", "12",
         'max-connections should be a number, actually was <<"12">>'),
    ):
        bad = side.set_limit(alice, name, value)
        assert (bad.status, bad.body) == (400, {"error": "bad_request", "reason": reason})
    no_value = api.call("PUT", f"/api/user-limits/{alice}/max-channels", {})
    assert (no_value.status, no_value.body) == (
        400, {"error": "bad_request", "reason": "[{key_missing,value}]"})
    ghost = f"{side.prefix}-ghost"
    no_user = side.set_limit(ghost, "max-channels", 3)
    assert (no_user.status, no_user.body) == (
        400, {"error": "bad_request", "reason": ["no_such_user", ghost]})
    assert api.call("GET", f"/api/user-limits/{alice}/max-channels").status == 405

    # a negative limit is stored as given (and means no limit)
    assert side.set_limit(viewer, "max-channels", -5).status == 204
    assert api.get(f"/api/user-limits/{viewer}") == [
        {"user": viewer, "value": {"max-channels": -5}}]

    assert api.call("DELETE", f"/api/user-limits/{alice}/max-nonsense").status == 204
    assert api.call("DELETE", f"/api/user-limits/{alice}/max-connections").status == 204
    assert api.get(f"/api/user-limits/{alice}") == [
        {"user": alice, "value": {"max-channels": 2}}]
    assert api.call("DELETE", f"/api/user-limits/{alice}/max-channels").status == 204
    assert api.get(f"/api/user-limits/{alice}") == []
    assert api.get(f"/api/users/{alice}")["limits"] == {}


def test_put_user_keeps_and_merges_limits(side: Side) -> None:
    api = side.api
    bob = side.user("bob")
    assert side.set_limit(bob, "max-connections", 3).status == 204
    path = f"/api/users/{quote(bob)}"
    assert api.call("PUT", path, {"password": "pw", "tags": ""}).status == 204
    assert api.get(path)["limits"] == {"max-connections": 3}  # kept
    assert api.call("PUT", path, {"password": "pw", "tags": "",
                                  "limits": {"max-channels": 9}}).status == 204
    assert api.get(path)["limits"] == {"max-channels": 9, "max-connections": 3}  # merged


# -- enforcement ------------------------------------------------------------------------


def test_max_connections_counts_all_vhosts(side: Side) -> None:
    other = side.vhost("other")
    carol = side.user("carol", vhosts=("/", other))
    assert side.set_limit(carol, "max-connections", 2).status == 204
    first = side.connect(carol)
    second = side.connect(carol, other)  # another vhost: the same user's count
    try:
        with pytest.raises(ProbableAccessDeniedError) as refused:
            side.connect(carol)
        assert ('(530) "NOT_ALLOWED - connection refused for user '
                f"'{carol}': user connection limit (2) is reached\"") in str(refused.value)
        second.close()
        third = side.connect(carol)  # a closed connection frees its place
        third.close()
    finally:
        first.close()
        if second.is_open:
            second.close()
    # a negative limit is no limit; 0 refuses every connection
    assert side.set_limit(carol, "max-connections", -1).status == 204
    many = [side.connect(carol) for _ in range(3)]
    for connection in many:
        connection.close()
    assert side.set_limit(carol, "max-connections", 0).status == 204
    with pytest.raises(ProbableAccessDeniedError) as zero:
        side.connect(carol)
    assert "user connection limit (0) is reached" in str(zero.value)


def test_max_channels_counts_all_connections_and_closes_the_connection(side: Side) -> None:
    dave = side.user("dave")
    assert side.set_limit(dave, "max-channels", 2).status == 204
    one, two = side.connect(dave), side.connect(dave)
    try:
        first = one.channel()
        two.channel()
        with pytest.raises(ConnectionClosedByBroker) as refused:
            two.channel()
        assert refused.value.reply_code == 530
        assert refused.value.reply_text == (
            f"NOT_ALLOWED - number of channels opened for user '{dave}' has reached the "
            "maximum allowed user limit of (2)"
        )
        assert not two.is_open  # a connection error, as RabbitMQ's
        # the closed connection's channel no longer counts; a closed channel neither
        one.channel().close()
        first.close()
        one.channel()
        one.channel()
        with pytest.raises(ConnectionClosedByBroker):
            one.channel()
    finally:
        for connection in (one, two):
            if connection.is_open:
                connection.close()


def test_max_channels_refusal_names_no_method(side: Side) -> None:
    # rabbit_reader:create_channel builds the error with method 'none': the
    # connection.close carries class 0, method 0 (not channel.open's 20, 10).
    import amqp

    erin = side.user("erin")
    assert side.set_limit(erin, "max-channels", 1).status == 204
    connection = amqp.Connection(f"{side.host}:{side.port}", userid=erin, password="pw")
    connection.connect()
    try:
        connection.channel()
        with pytest.raises(amqp.exceptions.NotAllowed) as refused:
            connection.channel()
        assert (refused.value.reply_code, refused.value.method_sig) == (530, (0, 0))
    finally:
        connection.collect()


# -- Warren only: definitions, persistence, serve --config ---------------------------------


def test_definitions_carry_user_limits_both_ways(warren_thread: BrokerThread) -> None:
    api = api_of(warren_thread)
    name = f"ulim-{secrets.token_hex(3)}-defs"
    document = {"users": [{"name": name, "password_hash": "", "tags": [],
                           "limits": {"max-connections": 3}}]}
    assert api.call("POST", "/api/definitions", document).status in (200, 201, 204)
    assert api.get(f"/api/user-limits/{name}") == [
        {"user": name, "value": {"max-connections": 3}}]
    # a second import merges (RabbitMQ: maps:merge), as rabbitmqctl import_definitions
    document["users"][0]["limits"] = {"max-channels": 4}
    assert api.call("POST", "/api/definitions", document).status in (200, 201, 204)
    exported = api.get("/api/definitions")
    (user,) = [u for u in exported["users"] if u["name"] == name]
    assert user["limits"] == {"max-channels": 4, "max-connections": 3}
    # what is exported imports back the same
    api.call("DELETE", f"/api/users/{quote(name)}")
    assert api.call("POST", "/api/definitions", {"users": [user]}).status in (200, 201, 204)
    assert api.get(f"/api/users/{name}")["limits"] == {"max-channels": 4, "max-connections": 3}
    bad = api.call("POST", "/api/definitions", {"users": [
        {"name": name, "password_hash": "", "tags": [], "limits": {"max-queues": 1}}]})
    # RabbitMQ fails the import with an empty 500; Warren says which item and why
    assert (bad.status, bad.body) == (400, {
        "error": "bad_request",
        "reason": 'users[0]: Unrecognised terms [{<<"max-queues">>,1}] in user-limits'})
    api.call("DELETE", f"/api/users/{quote(name)}")


def test_user_limits_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        api = api_of(thread)
        assert api.call("PUT", "/api/users/erin", {"password": "pw", "tags": ""}).status == 201
        assert api.call("PUT", "/api/user-limits/erin/max-connections", {"value": 0}).status == 204
        assert api.call("PUT", "/api/user-limits/erin/max-channels", {"value": 7}).status == 204
    finally:
        thread.stop()
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        api = api_of(thread)
        assert api.get("/api/user-limits") == [
            {"user": "erin", "value": {"max-channels": 7, "max-connections": 0}}]
        api.call("PUT", "/api/permissions/%2F/erin",
                 {"configure": ".*", "write": ".*", "read": ".*"})
        assert thread.broker is not None
        with pytest.raises(ProbableAccessDeniedError) as refused:
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", thread.broker.port, "/", pika.PlainCredentials("erin", "pw")))
        assert "user connection limit (0) is reached" in str(refused.value)
    finally:
        thread.stop()


def test_serve_config_sets_and_enforces_user_limits(tmp_path: Path) -> None:
    from broker.auth.passwords import hash_password

    conf = tmp_path / "broker.conf"
    conf.write_text(
        f'user frank\n    password-hash "{hash_password("pw")}"\n'
        "    max-connections 1\n    max-channels 1\n"
        'permission frank on / configure ".*" write ".*" read ".*"\n',
        encoding="utf-8",
    )
    thread = BrokerThread(config_path=conf)
    thread.start()
    try:
        assert api_of(thread).get("/api/user-limits/frank") == [
            {"user": "frank", "value": {"max-channels": 1, "max-connections": 1}}]
        assert thread.broker is not None
        params = pika.ConnectionParameters("127.0.0.1", thread.broker.port, "/",
                                           pika.PlainCredentials("frank", "pw"))
        connection = pika.BlockingConnection(params)
        with pytest.raises(ProbableAccessDeniedError):
            pika.BlockingConnection(params)
        connection.channel()
        with pytest.raises(ConnectionClosedByBroker) as refused:
            connection.channel()
        assert refused.value.reply_code == 530
    finally:
        thread.stop()
