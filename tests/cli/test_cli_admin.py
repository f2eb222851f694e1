"""The admin commands over the management API: list, purge, delete, close-connection,
users, vhosts, permissions, definitions.

Each test runs against the in-process Warren and against the reference RabbitMQ
(`target`, conftest.py; the RabbitMQ half is skipped unless WARREN_REFERENCE_URL
and WARREN_REFERENCE_MANAGEMENT_URL are set). Those that need an endpoint
Warren does not have yet (queues, exchanges, bindings, connections...) skip on
Warren while GET answers 404, saying so, and run by themselves once it does.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pika
import pytest
from cli_api_helpers import Target, eventually, q

from broker.auth.passwords import verify_password


def rows(stdout: str) -> list[list[str]]:
    """A table's lines split on blanks (for names without blanks)."""
    return [line.split() for line in stdout.splitlines()]


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def one_line(result, status: int = 2) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# -- users, vhosts, permissions (Warren has these endpoints) ------------------------------------


def test_users_add_list_set_tags_set_password_delete(warren, target: Target) -> None:
    user = target.name("user")
    vhost = target.new_vhost()
    target.forget_user(user)

    added = warren("users", "add", user, "--tags", "management,monitoring", *target.api,
                   input="s3cret\n")
    assert ok(added) == f"added user '{user}' (tags: management, monitoring)\n"
    made = target.http("GET", f"/api/users/{q(user)}")
    assert sorted(made["tags"]) == ["management", "monitoring"]
    # The API received a hash made here, RabbitMQ's way, never the password.
    assert made["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert verify_password("s3cret", made["password_hash"], made["hashing_algorithm"])

    again = warren("users", "add", user, *target.api, input="other\n")
    assert one_line(again) == (
        f"warren users add: user '{user}' already exists (warren users set-password and "
        "set-tags change it)\n"
    )

    listed = rows(ok(warren("users", "list", *target.api)))
    assert listed[0] == ["name", "tags"]
    assert [user, "[management,", "monitoring]"] in listed
    as_json = json.loads(ok(warren("users", "list", "--json", *target.api)))
    assert user in [u["name"] for u in as_json]

    ok(warren("permissions", "set", user, ".*", ".*", ".*", "--vhost", vhost, *target.api))
    assert target.can_log_in(user, "s3cret", vhost)

    tagged = warren("users", "set-tags", user, "administrator", *target.api)
    assert ok(tagged) == (
        f"set the tags of user '{user}': administrator (were: management, monitoring)\n"
    )
    after = target.http("GET", f"/api/users/{q(user)}")
    assert after["tags"] == ["administrator"]
    assert after["password_hash"] == made["password_hash"]  # the password is kept
    assert target.can_log_in(user, "s3cret", vhost)

    changed = warren("users", "set-password", user, "--algorithm", "sha512", *target.api,
                     input="n3w-secret\n")
    assert ok(changed) == f"changed the password of user '{user}'\n"
    hashed = target.http("GET", f"/api/users/{q(user)}")
    assert hashed["hashing_algorithm"] == "rabbit_password_hashing_sha512"
    assert hashed["tags"] == ["administrator"]
    assert target.can_log_in(user, "n3w-secret", vhost)
    assert not target.can_log_in(user, "s3cret", vhost)

    assert ok(warren("users", "delete", user, *target.api)) == f"deleted user '{user}'\n"
    assert one_line(warren("users", "delete", user, *target.api)) == (
        f"warren users delete: no user '{user}'\n"
    )
    assert one_line(warren("users", "set-tags", user, "x", *target.api)) == (
        f"warren users set-tags: no user '{user}'\n"
    )


def test_users_add_refuses_an_empty_password_and_can_make_one_without(
    warren, target: Target
) -> None:
    user = target.name("external")
    target.forget_user(user)
    empty = warren("users", "add", user, *target.api, input="\n")
    assert one_line(empty) == (
        "warren users add: the password is empty, and RabbitMQ refuses empty passwords "
        "(--no-password makes a user without one)\n"
    )
    assert not target.exists(f"/api/users/{q(user)}")
    made = warren("users", "add", user, "--no-password", *target.api)
    assert ok(made) == f"added user '{user}' (tags: none), without a password\n"
    assert target.http("GET", f"/api/users/{q(user)}")["password_hash"] == ""


def test_vhosts_add_list_delete(warren, target: Target) -> None:
    vhost = target.name("vh")
    target.forget_vhost(vhost)
    added = warren("vhosts", "add", vhost, "--description", "acli test vhost",
                   "--tags", "eu,test", *target.api)
    assert ok(added) == f"added vhost '{vhost}'\n"
    made = target.http("GET", f"/api/vhosts/{q(vhost)}")
    assert (made["description"], sorted(made["tags"])) == ("acli test vhost", ["eu", "test"])

    listed = ok(warren("vhosts", "list", *target.api)).splitlines()
    assert listed[0].split() == ["name", "description", "tags"]
    mine = [line for line in listed if line.startswith(vhost + " ")]
    assert len(mine) == 1 and "acli test vhost" in mine[0] and "[eu, test]" in mine[0]
    names = [v["name"] for v in json.loads(ok(warren("vhosts", "list", "--json", *target.api)))]
    assert vhost in names and "/" in names

    assert one_line(warren("vhosts", "add", vhost, *target.api)) == (
        f"warren vhosts add: vhost '{vhost}' already exists\n"
    )
    assert ok(warren("vhosts", "delete", vhost, *target.api)) == f"deleted vhost '{vhost}'\n"
    assert one_line(warren("vhosts", "delete", vhost, *target.api)) == (
        f"warren vhosts delete: no vhost '{vhost}'\n"
    )


def test_permissions_set_list_clear(warren, target: Target) -> None:
    vhost = target.new_vhost()
    user = target.name("perm")
    target.forget_user(user)
    target.http("PUT", f"/api/users/{q(user)}", {"password": "pw", "tags": ""})

    done = warren("permissions", "set", user, "^acli", "^acli-out$", ".*", "--vhost", vhost,
                  *target.api)
    assert ok(done) == (
        f"set the permissions of user '{user}' on vhost '{vhost}': configure '^acli' write "
        "'^acli-out$' read '.*'\n"
    )
    assert target.http("GET", f"/api/permissions/{q(vhost)}/{q(user)}") == {
        "user": user, "vhost": vhost, "configure": "^acli", "write": "^acli-out$", "read": ".*",
    }
    listed = rows(ok(warren("permissions", "list", "--vhost", vhost, *target.api)))
    assert listed[0] == ["user", "vhost", "configure", "write", "read"]
    assert [user, vhost, "^acli", "^acli-out$", ".*"] in listed
    assert ["guest", vhost, ".*", ".*", ".*"] in listed  # the vhost's creator, as RabbitMQ does
    assert all(row[1] == vhost for row in listed[1:])
    mine = json.loads(ok(warren("permissions", "list", "--user", user, "--json", *target.api)))
    assert mine == [{"user": user, "vhost": vhost, "configure": "^acli", "write": "^acli-out$",
                     "read": ".*"}]

    cleared = warren("permissions", "clear", user, "--vhost", vhost, *target.api)
    assert ok(cleared) == f"cleared the permissions of user '{user}' on vhost '{vhost}'\n"
    assert one_line(warren("permissions", "clear", user, "--vhost", vhost, *target.api)) == (
        f"warren permissions clear: user '{user}' has no permissions on vhost '{vhost}'\n"
    )
    nowhere = target.name("nowhere")
    refused = warren("permissions", "set", user, "", "", "", "--vhost", nowhere, *target.api)
    assert one_line(refused) == f"warren permissions set: no vhost '{nowhere}'\n"


# -- definitions ------------------------------------------------------------------------------


def test_definitions_export_and_import(warren, target: Target, tmp_path) -> None:
    vhost = target.new_vhost("src")
    exchange, queue = target.name("orders"), target.name("billing")
    target.declare(vhost, queues=(queue,), exchanges=((exchange, "topic"),),
                   bindings=((queue, exchange, "order.*"),))

    path = tmp_path / "defs.json"
    exported = warren("definitions", "export", str(path), "--vhost", vhost, *target.api)
    assert ok(exported) == f"exported 1 exchange, 1 queue, 1 binding to {path}\n"
    document = json.loads(path.read_text())
    assert [x["name"] for x in document["exchanges"]] == [exchange]
    assert [(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]] \
        == [(exchange, queue, "order.*")]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # an export holds password hashes

    whole = json.loads(ok(warren("definitions", "export", *target.api)))
    assert vhost in [v["name"] for v in whole["vhosts"]]
    assert "guest" in [u["name"] for u in whole["users"]]

    copy = target.new_vhost("dst")
    imported = warren("definitions", "import", str(path), "--vhost", copy, *target.api)
    assert ok(imported) == (
        f"imported {path} into vhost '{copy}': 1 exchange, 1 queue, 1 binding\n"
    )
    assert target.queue_exists(queue, copy) and target.exchange_exists(exchange, copy)

    nowhere = target.name("nowhere")
    assert one_line(warren("definitions", "export", "--vhost", nowhere, *target.api)) == (
        f"warren definitions export: no vhost '{nowhere}'\n"
    )
    assert one_line(warren("definitions", "import", str(path), "--vhost", nowhere,
                           *target.api)) == f"warren definitions import: no vhost '{nowhere}'\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"queues": [}')
    assert one_line(warren("definitions", "import", str(bad), *target.api)) == (
        f"warren definitions import: {bad}:1:13: not valid JSON: Expecting value\n"
    )


# -- list (needs the statistics endpoints) -------------------------------------------------------


def test_list_queues(warren, target: Target) -> None:
    vhost = target.new_vhost()
    full, empty = target.name("full"), target.name("empty")
    target.declare(vhost, queues=(full, empty), messages={full: 3})
    root = target.name("root")
    target.declare("/", queues=(root,))

    def listed(*extra: str) -> list[list[str]]:
        return rows(ok(warren("list", "queues", *extra, *target.api)))

    # RabbitMQ's statistics take a few seconds to count the messages.
    table = eventually(lambda: listed("--vhost", vhost), lambda t: [full, "3"] in t)
    assert table == [["name", "messages"], [empty, "0"], [full, "3"]]
    # / by default, as rabbitmqctl
    default = listed()
    assert default[0] == ["name", "messages"]
    assert root in [r[0] for r in default] and full not in [r[0] for r in default]
    every = listed("--all-vhosts")
    assert every[0] == ["vhost", "name", "messages"]
    assert [vhost, full, "3"] in every and "/" in [r[0] for r in every if r[1:2] == [root]]
    picked = listed("--vhost", vhost, "--columns", "name,durable,messages_ready")
    assert picked == [["name", "durable", "messages_ready"], [empty, "true", "0"],
                      [full, "true", "3"]]
    api_json = json.loads(ok(warren("list", "queues", "--vhost", vhost, "--json", *target.api)))
    assert {item["name"]: item["messages"] for item in api_json} == {full: 3, empty: 0}
    assert all(item["vhost"] == vhost and "durable" in item for item in api_json)

    nowhere = target.name("nowhere")
    assert one_line(warren("list", "queues", "--vhost", nowhere, *target.api)) == (
        f"warren list queues: no vhost '{nowhere}'\n"
    )


def test_list_exchanges_and_bindings(warren, target: Target) -> None:
    vhost = target.new_vhost()
    exchange, queue = target.name("orders"), target.name("billing")
    target.declare(vhost, queues=(queue,), exchanges=((exchange, "topic"),),
                   bindings=((queue, exchange, "order.*"),))
    exchanges = rows(ok(warren("list", "exchanges", "--vhost", vhost, *target.api)))
    assert exchanges[0] == ["name", "type"]
    assert [exchange, "topic"] in exchanges and ["amq.direct", "direct"] in exchanges
    assert ["direct"] in exchanges  # the default exchange, whose name is ""
    bindings = rows(ok(warren("list", "bindings", "--vhost", vhost, *target.api)))
    assert bindings[0] == ["source", "destination", "destination_type", "routing_key",
                           "arguments"]
    assert [exchange, queue, "queue", "order.*", "{}"] in bindings
    assert [queue, "queue", queue, "{}"] in bindings  # from the default exchange ("")


def test_connections_channels_consumers_and_close_connection(warren, target: Target) -> None:
    vhost = target.new_vhost()
    queue = target.name("work")
    target.declare(vhost, queues=(queue,))
    client_name = target.name("client")
    connection = target.connect(vhost, name=client_name)
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=7)
        tag = target.name("ctag")
        channel.basic_consume(queue, lambda *a: None, consumer_tag=tag)

        def mine() -> list[dict]:
            items = json.loads(ok(warren("list", "connections", "--json", *target.api)))
            return [c for c in items
                    if (c.get("client_properties") or {}).get("connection_name") == client_name]

        name = eventually(mine, what="the connection in GET /api/connections")[0]["name"]
        table = eventually(lambda: ok(warren("list", "connections", "--vhost", vhost,
                                             *target.api)), lambda t: name in t)
        lines = table.splitlines()
        assert lines[0].split() == ["name", "user", "peer_host", "peer_port", "state"]
        assert len(lines) == 2 and lines[1].startswith(name) and " guest " in lines[1]
        assert "running" in lines[1]
        every = ok(warren("list", "connections", *target.api)).splitlines()
        assert every[0].split()[0] == "vhost" and any(name in line for line in every)

        channels = eventually(lambda: ok(warren("list", "channels", "--vhost", vhost,
                                                *target.api)), lambda t: name in t)
        assert channels.splitlines()[0].split() == ["name", "user", "consumer_count",
                                                    "messages_unacknowledged"]
        assert f"{name} (1)" in channels
        consumers = eventually(lambda: ok(warren("list", "consumers", "--vhost", vhost,
                                                 *target.api)), lambda t: tag in t)
        header, row = consumers.splitlines()
        assert header.split() == ["queue.name", "channel_details.name", "consumer_tag",
                                  "ack_required", "prefetch_count", "active", "arguments"]
        assert row.startswith(queue) and f"{name} (1)" in row
        assert row.split()[-5:] == [tag, "true", "7", "true", "{}"]

        closed = warren("close-connection", name, "--reason", "acli maintenance", *target.api)
        assert ok(closed) == f"closed connection '{name}'\n"
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as forced:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.5)
        assert forced.value.reply_code == 320
        assert forced.value.reply_text == "CONNECTION_FORCED - acli maintenance"
    finally:
        if connection.is_open:
            connection.close()
    assert one_line(warren("close-connection", name, *target.api)) == (
        f"warren close-connection: no connection named '{name}'\n"
    )


# -- purge and delete (need the statistics endpoints) -------------------------------------------


def test_purge(warren, target: Target) -> None:
    vhost = target.new_vhost()
    queue = target.name("full")
    target.declare(vhost, queues=(queue,), messages={queue: 5})
    assert target.message_count(queue, vhost) == 5
    purged = warren("purge", queue, "--vhost", vhost, *target.api)
    assert ok(purged) == f"purged queue '{queue}' in vhost '{vhost}'\n"
    assert target.message_count(queue, vhost) == 0
    missing = target.name("missing")
    assert one_line(warren("purge", missing, "--vhost", vhost, *target.api)) == (
        f"warren purge: no queue '{missing}' in vhost '{vhost}'\n"
    )
    nowhere = target.name("nowhere")
    assert one_line(warren("purge", queue, "--vhost", nowhere, *target.api)) == (
        f"warren purge: no vhost '{nowhere}'\n"
    )


def test_delete_queue_and_exchange(warren, target: Target) -> None:
    vhost = target.new_vhost()
    queue, exchange = target.name("full"), target.name("orders")
    target.declare(vhost, queues=(queue,), exchanges=((exchange, "topic"),),
                   bindings=((queue, exchange, "#"),), messages={queue: 2})

    kept = warren("delete", "queue", queue, "--vhost", vhost, "--if-empty", *target.api)
    assert one_line(kept, 1) == (
        f"warren delete queue: not deleted: queue '{queue}' in vhost '{vhost}' not empty\n"
    )
    assert target.queue_exists(queue, vhost)
    kept = warren("delete", "exchange", exchange, "--vhost", vhost, "--if-unused", *target.api)
    assert one_line(kept, 1) == (
        f"warren delete exchange: not deleted: exchange '{exchange}' in vhost '{vhost}' in use\n"
    )
    assert ok(warren("delete", "queue", queue, "--vhost", vhost, *target.api)) == (
        f"deleted queue '{queue}' in vhost '{vhost}'\n"
    )
    assert not target.queue_exists(queue, vhost)
    assert ok(warren("delete", "exchange", exchange, "--vhost", vhost, *target.api)) == (
        f"deleted exchange '{exchange}' in vhost '{vhost}'\n"
    )
    assert not target.exchange_exists(exchange, vhost)
    assert one_line(warren("delete", "queue", queue, "--vhost", vhost, *target.api)) == (
        f"warren delete queue: no queue '{queue}' in vhost '{vhost}'\n"
    )
    assert one_line(warren("delete", "exchange", "", *target.api)) == (
        "warren delete exchange: the default exchange cannot be deleted\n"
    )
    refused = one_line(warren("delete", "exchange", "amq.direct", "--vhost", vhost, *target.api))
    assert refused.startswith("warren delete exchange: ")
