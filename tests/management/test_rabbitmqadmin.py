"""rabbitmqadmin, RabbitMQ's own command-line tool, unmodified, against a real Warren.

The script (tool_helpers.rabbitmqadmin: Debian's /usr/bin/rabbitmqadmin, the
same file RabbitMQ 3.10.8 serves at /cli/rabbitmqadmin) runs as a subprocess
with this interpreter, pointed at Warren's management port. Every test checks
what happened over AMQP (pika) or through the API, not only the exit code.

With WARREN_REFERENCE_MANAGEMENT_URL (http://127.0.0.1:15673) set, the same
scripted session also runs against the reference RabbitMQ and the two outputs
must be the same, line for line.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
from api_helpers import Api, amqp, api_of, start_broker, wait_for
from tool_helpers import rabbitmqadmin

from broker.testing import BrokerThread

REFERENCE_API = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")

Admin = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    thread = start_broker()
    try:
        yield thread
    finally:
        thread.stop()


def make_admin(host: str, port: int, user: str = "guest", password: str = "guest") -> Admin:
    script = rabbitmqadmin()

    def run(
        *args: str, stdin: str | None = None, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                sys.executable,
                str(script),
                "-H",
                host,
                "-P",
                str(port),
                "-u",
                user,
                "-p",
                password,
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=20,
            cwd=cwd,
        )
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    return run


@pytest.fixture(scope="module")
def admin(broker: BrokerThread) -> Admin:
    assert broker.broker is not None
    url = urllib.parse.urlsplit(broker.broker.management_url)
    assert url.hostname is not None and url.port is not None
    return make_admin(url.hostname, url.port)


@pytest.fixture
def api(broker: BrokerThread) -> Api:
    return api_of(broker)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A prefix of this test's own for what it makes on the module's broker."""
    return f"ra-{request.node.name[5:25]}-{secrets.token_hex(3)}"


def listed(admin: Admin, kind: str, *args: str) -> list[dict[str, Any]]:
    """`rabbitmqadmin -f raw_json list KIND`: the API's JSON, as the tool got it."""
    return json.loads(admin("-f", "raw_json", "list", kind, *args).stdout)


def exists(broker: BrokerThread, kind: str, name: str) -> bool:
    """Does the queue or exchange `name` exist (a passive declare over AMQP)?"""
    connection = amqp(broker)
    try:
        channel = connection.channel()
        if kind == "queue":
            channel.queue_declare(name, passive=True)
        else:
            channel.exchange_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 404
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_list_every_kind_the_tool_knows(broker, admin, name) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    channel.exchange_declare(f"{name}.x", "topic")
    channel.queue_declare(f"{name}.q")
    channel.queue_bind(f"{name}.q", f"{name}.x", "a.#")
    channel.confirm_delivery()
    for _ in range(3):
        channel.basic_publish(f"{name}.x", "a.b", b"hello")
    consumer = connection.channel()
    consumer.basic_consume(f"{name}.q", lambda *a: None, consumer_tag=f"{name}.c")
    admin("declare", "policy", f"name={name}.p", f"pattern=^{name}", 'definition={"max-length":9}')
    try:
        queues = {q["name"]: q for q in listed(admin, "queues")}
        assert queues[f"{name}.q"]["messages"] == 3
        exchanges = {x["name"]: x["type"] for x in listed(admin, "exchanges")}
        assert exchanges[f"{name}.x"] == "topic" and exchanges["amq.topic"] == "topic"
        bindings = [
            (b["source"], b["destination"], b["routing_key"]) for b in listed(admin, "bindings")
        ]
        assert (f"{name}.x", f"{name}.q", "a.#") in bindings
        assert ("", f"{name}.q", f"{name}.q") in bindings
        wait_for(
            lambda: any(
                c["user"] == "guest" and c["channels"] == 2 for c in listed(admin, "connections")
            )
        )
        assert len([c for c in listed(admin, "channels") if c["user"] == "guest"]) >= 2
        assert any(c["consumer_tag"] == f"{name}.c" for c in listed(admin, "consumers"))
        assert "guest" in [u["name"] for u in listed(admin, "users")]
        assert "/" in [v["name"] for v in listed(admin, "vhosts")]
        assert {
            "user": "guest",
            "vhost": "/",
            "configure": ".*",
            "write": ".*",
            "read": ".*",
        } in listed(admin, "permissions")
        assert len(listed(admin, "nodes")) == 1
        (policy,) = [p for p in listed(admin, "policies") if p["name"] == f"{name}.p"]
        assert policy["definition"] == {"max-length": 9}
        for kind in ("parameters", "operator_policies", "vhost_limits"):
            assert isinstance(listed(admin, kind), list)
        # The default table, with the tool's own columns.
        table = admin("list", "queues").stdout
        assert any(
            line.split("|")[1:3] == [f" {name}.q ", " 3        "]
            or (f" {name}.q " in line and " 3 " in line)
            for line in table.splitlines()
        )
        assert "3.10.8" in admin("show", "overview").stdout
        # Columns, sorting, and the other formats.
        tsv = admin("-f", "tsv", "-q", "list", "queues", "name", "messages").stdout
        assert f"{name}.q\t3" in tsv.splitlines()
        assert admin("-f", "bash", "list", "vhosts").stdout.split() == ["/"]
    finally:
        admin("delete", "policy", f"name={name}.p")
        connection.close()


def test_declare_and_delete_queue_exchange_and_binding(broker, admin, name) -> None:
    admin("declare", "queue", f"name={name}.q", "durable=false", 'arguments={"x-max-length":2}')
    admin("declare", "exchange", f"name={name}.x", "type=topic", "auto_delete=false")
    admin("declare", "exchange", f"name={name}.f", "type=fanout", "durable=true", "internal=false")
    admin("declare", "binding", f"source={name}.x", f"destination={name}.q", "routing_key=a.#")
    admin(
        "declare",
        "binding",
        f"source={name}.x",
        f"destination={name}.f",
        "destination_type=exchange",
        "routing_key=k",
        'arguments={"x-m":1}',
    )
    assert exists(broker, "queue", f"{name}.q") and exists(broker, "exchange", f"{name}.x")

    connection = amqp(broker)
    channel = connection.channel()
    # The queue is as declared: not durable, and its x-max-length holds.
    declared = channel.queue_declare(f"{name}.q", durable=False, arguments={"x-max-length": 2})
    assert declared.method.message_count == 0
    for key in ("a.b", "a.c", "a.d", "z"):
        channel.basic_publish(f"{name}.x", key, key.encode())
    assert channel.queue_declare(f"{name}.q", passive=True).method.message_count == 2
    (item,) = [x for x in listed(admin, "exchanges") if x["name"] == f"{name}.f"]
    assert (item["durable"], item["internal"]) == (True, False)

    # delete binding: the properties key as the tool takes it, and as the list shows it.
    admin(
        "delete",
        "binding",
        f"source={name}.x",
        "destination_type=queue",
        f"destination={name}.q",
        "properties_key=a.#",
    )
    (listed_key,) = [
        b["properties_key"] for b in listed(admin, "bindings") if b["destination"] == f"{name}.f"
    ]
    admin(
        "delete",
        "binding",
        f"source={name}.x",
        "destination_type=exchange",
        f"destination={name}.f",
        f"properties_key={listed_key}",
    )
    assert not [b for b in listed(admin, "bindings") if b["source"] == f"{name}.x"]
    channel.queue_purge(f"{name}.q")
    channel.basic_publish(f"{name}.x", "a.b", b"x")
    assert channel.queue_declare(f"{name}.q", passive=True).method.message_count == 0

    # purge, close connection
    channel.basic_publish("", f"{name}.q", b"x")
    admin("purge", "queue", f"name={name}.q")
    assert channel.queue_declare(f"{name}.q", passive=True).method.message_count == 0
    (ours,) = wait_for(
        lambda: [
            c
            for c in listed(admin, "connections")
            if c["client_properties"].get("product") == "Pika Python Client Library"
        ]
    )
    admin("close", "connection", f"name={ours['name']}")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        connection.process_data_events(5)
    assert closed.value.args == (320, "CONNECTION_FORCED - Closed via management plugin")

    for kind, object_name in (
        ("queue", f"{name}.q"),
        ("exchange", f"{name}.x"),
        ("exchange", f"{name}.f"),
    ):
        admin("delete", kind, f"name={object_name}")
        assert not exists(broker, kind, object_name)
    gone = admin("delete", "queue", f"name={name}.q", check=False)
    assert gone.returncode == 1 and f"Not found: /api/queues/%2F/{name}.q" in gone.stderr


def test_publish_and_get_with_every_ackmode(broker, admin, name) -> None:
    queue = f"{name}.q"
    admin("declare", "queue", f"name={queue}", "durable=false")
    assert (
        admin(
            "publish",
            f"routing_key={queue}",
            "payload=one",
            'properties={"headers":{"h":"v"},"delivery_mode":2,"priority":3}',
        ).stdout.strip()
        == "Message published"
    )
    assert admin("publish", f"routing_key={queue}", stdin="two\x00bytes").returncode == 0
    assert (
        admin("publish", "exchange=amq.direct", "routing_key=nowhere", "payload=x").stdout.strip()
        == "Message published but NOT routed"
    )

    def get(*args: str) -> list[dict[str, Any]]:
        return json.loads(admin("-f", "raw_json", "get", f"queue={queue}", *args).stdout)

    # ack_requeue_true (the default): both seen, both still there, redelivered.
    first = get("count=2")
    assert [m["payload"] for m in first] == ["one", "two\x00bytes"]
    assert first[0]["properties"] == {"headers": {"h": "v"}, "delivery_mode": 2, "priority": 3}
    assert [m["message_count"] for m in first] == [1, 0]
    assert [m["redelivered"] for m in get("count=2")] == [True, True]
    # reject_requeue_true: still there.
    assert [m["payload"] for m in get("ackmode=reject_requeue_true")] == ["one"]
    # ack_requeue_false takes the first; reject_requeue_false drops the second.
    assert [m["payload"] for m in get("ackmode=ack_requeue_false")] == ["one"]
    assert [m["payload"] for m in get("ackmode=reject_requeue_false")] == ["two\x00bytes"]
    assert get() == []

    # payload_file, and encoding=base64 for a binary payload.
    admin("publish", f"routing_key={queue}", "payload=to-a-file")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}.payload"
    try:
        shown = admin("get", f"queue={queue}", f"payload_file={out}").stdout
        assert out.read_bytes() == b"to-a-file" and "9" in shown
    finally:
        out.unlink(missing_ok=True)
    got = get("ackmode=ack_requeue_false", "encoding=base64")
    assert (got[0]["payload"], got[0]["payload_encoding"]) == ("dG8tYS1maWxl", "base64")

    # Over AMQP the queue is empty now.
    connection = amqp(broker)
    assert connection.channel().basic_get(queue)[0] is None
    connection.close()
    admin("delete", "queue", f"name={queue}")


def test_export_delete_import_round_trip(broker, admin, api, name, tmp_path) -> None:
    vhost = f"{name}-v"
    admin("declare", "vhost", f"name={vhost}")
    admin("declare", "user", f"name={name}-u", "password=pw", "tags=monitoring")
    admin(
        "declare",
        "permission",
        f"vhost={vhost}",
        f"user={name}-u",
        "configure=^x",
        "write=.*",
        "read=.*",
    )
    admin(
        "declare",
        "permission",
        f"vhost={vhost}",
        "user=guest",
        "configure=.*",
        "write=.*",
        "read=.*",
    )
    scoped = ("-V", vhost)
    admin(*scoped, "declare", "queue", "name=q1")
    admin(*scoped, "declare", "queue", "name=q2", 'arguments={"x-message-ttl":1000}')
    admin(*scoped, "declare", "exchange", "name=x", "type=direct")
    admin(*scoped, "declare", "binding", "source=x", "destination=q1", "routing_key=k")
    admin(
        *scoped,
        "declare",
        "policy",
        "name=p",
        "pattern=^q2$",
        'definition={"max-length":5}',
        "apply-to=queues",
    )
    admin(
        *scoped,
        "declare",
        "operator_policy",
        "name=op",
        "pattern=^q",
        'definition={"max-length":50}',
    )
    admin("declare", "vhost_limit", f"vhost={vhost}", "name=max-queues", "value=10")

    whole, scoped_file = tmp_path / "all.json", tmp_path / "vhost.json"
    assert "Exported definitions" in admin("export", str(whole)).stdout
    admin(*scoped, "export", str(scoped_file))
    exported = json.loads(whole.read_text())
    assert {q["name"] for q in exported["queues"] if q["vhost"] == vhost} == {"q1", "q2"}
    one_vhost = json.loads(scoped_file.read_text())
    assert {q["name"] for q in one_vhost["queues"]} == {"q1", "q2"}
    assert "users" not in one_vhost

    # Everything goes; the whole-broker file brings the vhost, user and limits back...
    admin("delete", "vhost", f"name={vhost}")
    admin("delete", "user", f"name={name}-u")
    assert api.call("GET", f"/api/vhosts/{vhost}").status == 404
    admin("import", str(whole))
    assert api.get(f"/api/vhosts/{vhost}")["name"] == vhost
    assert api.get(f"/api/users/{name}-u")["tags"] == ["monitoring"]
    assert api.get(f"/api/permissions/{vhost}/{name}-u")["configure"] == "^x"
    assert api.get(f"/api/vhost-limits/{vhost}") == [{"vhost": vhost, "value": {"max-queues": 10}}]
    assert api.get(f"/api/policies/{vhost}/p")["definition"] == {"max-length": 5}
    assert api.get(f"/api/operator-policies/{vhost}/op")["definition"] == {"max-length": 50}
    # ... and the objects work over AMQP: x routes k to q1, q2 has its TTL.
    connection = amqp(broker, virtual_host=vhost)
    channel = connection.channel()
    channel.basic_publish("x", "k", b"routed")
    assert channel.queue_declare("q1", passive=True).method.message_count == 1
    channel.queue_declare("q2", durable=True, arguments={"x-message-ttl": 1000})
    connection.close()
    # A second export is the first one.
    again = tmp_path / "again.json"
    admin("export", str(again))
    assert json.loads(again.read_text()) == exported

    # The vhost's own file, into an emptied vhost.
    admin(*scoped, "delete", "queue", "name=q1")
    admin(*scoped, "delete", "exchange", "name=x")
    admin(*scoped, "import", str(scoped_file))
    assert exists_in(api, vhost, "queues", "q1") and exists_in(api, vhost, "exchanges", "x")
    assert [b["destination"] for b in api.get(f"/api/bindings/{vhost}") if b["source"] == "x"] == [
        "q1"
    ]
    admin("delete", "vhost", f"name={vhost}")
    admin("delete", "user", f"name={name}-u")


def exists_in(api: Api, vhost: str, kind: str, name: str) -> bool:
    return api.call("GET", f"/api/{kind}/{urllib.parse.quote(vhost, safe='')}/{name}").status == 200


def test_parameters_as_the_tool_lists_and_declares_them(broker, admin, name) -> None:
    admin(
        "declare", "operator_policy", f"name={name}", "pattern=^zz", 'definition={"max-length":3}'
    )
    admin(
        "declare",
        "parameter",
        "component=operator_policy",
        f"name={name}-2",
        'value={"pattern":"^yy","definition":{"max-length":4},"priority":1}',
    )
    try:
        mine = {
            p["name"]: p
            for p in listed(admin, "parameters")
            if p["component"] == "operator_policy" and p["name"].startswith(name)
        }
        assert mine[name]["value"] == {
            "pattern": "^zz",
            "definition": {"max-length": 3},
            "priority": 0,
            "apply-to": "all",
        }
        assert mine[f"{name}-2"]["value"]["definition"] == {"max-length": 4}
        assert f"{name}-2" in [p["name"] for p in listed(admin, "operator_policies")]
        admin("delete", "parameter", "component=operator_policy", f"name={name}-2")
        assert f"{name}-2" not in [p["name"] for p in listed(admin, "operator_policies")]
        # A plugin's component Warren does not have: refused as RabbitMQ refuses it.
        refused = admin(
            "declare",
            "parameter",
            "component=federation-upstream",
            "name=up",
            'value={"uri":"amqp://elsewhere"}',
            check=False,
        )
        assert refused.returncode == 1
        assert "component federation-upstream not found" in refused.stderr
        assert not [
            p
            for p in listed(admin, "parameters")
            if p["component"] != "operator_policy" and p["component"] != "vhost-limits"
        ]
    finally:
        admin("delete", "operator_policy", f"name={name}")


def test_what_warren_refuses_the_tool_shows(admin, name) -> None:
    for args, text in (
        (("declare", "exchange", f"name={name}", "type=nope"), "unknown exchange type 'nope'"),
        (("declare", "queue", f"name={name}", "durable=maybe"), "['not_boolean', 'maybe']"),
        (("declare", "queue", f"name={name}", "durable=False"), "['not_boolean', 'False']"),
        (("get", f"queue={name}"), f"Not found: /api/queues/%2F/{name}/get"),
        (("-u", "guest", "-p", "wrong", "list", "queues"), "Access refused: /api/queues"),
    ):
        done = admin(*args, check=False)
        assert done.returncode == 1 and f"*** {text}" in done.stderr, (args, done.stderr)


SESSION = (
    ("declare", "queue", "name={p}.q", "durable=false"),
    ("declare", "exchange", "name={p}.x", "type=topic", "durable=false"),
    ("declare", "binding", "source={p}.x", "destination={p}.q", "routing_key=a.#"),
    (
        "publish",
        "exchange={p}.x",
        "routing_key=a.b",
        "payload=hello",
        'properties={"content_type":"text/plain","headers":{"k":1}}',
    ),
    ("publish", "exchange={p}.x", "routing_key=zzz", "payload=lost"),
    ("-f", "tsv", "list", "bindings", "source", "destination", "routing_key", "properties_key"),
    # (not "messages": RabbitMQ's count lags by its statistics interval)
    ("-f", "tsv", "list", "queues", "name", "durable", "auto_delete", "arguments"),
    ("-f", "tsv", "list", "exchanges", "name", "type", "durable", "internal"),
    ("get", "queue={p}.q", "ackmode=ack_requeue_false"),
    ("get", "queue={p}.q"),
    (
        "delete",
        "binding",
        "source={p}.x",
        "destination_type=queue",
        "destination={p}.q",
        "properties_key=a.#",
    ),
    ("delete", "queue", "name={p}.q"),
    ("delete", "exchange", "name={p}.x"),
    ("declare", "exchange", "name={p}.bad", "type=nope"),
    ("declare", "queue", "name={p}.bad", "durable=maybe"),
    ("delete", "queue", "name={p}.q"),
)


@pytest.mark.skipif(
    not REFERENCE_API,
    reason="set WARREN_REFERENCE_MANAGEMENT_URL (http://127.0.0.1:15673) to compare with RabbitMQ",
)
def test_the_same_session_prints_the_same_on_rabbitmq(admin) -> None:
    assert REFERENCE_API
    url = urllib.parse.urlsplit(REFERENCE_API)
    assert url.hostname is not None and url.port is not None
    reference = make_admin(url.hostname, url.port)
    prefix = "ra-diff-" + secrets.token_hex(3)

    def session(run: Admin) -> list[tuple[int, list[str], str]]:
        out = []
        for step in SESSION:
            done = run(*(arg.replace("{p}", prefix) for arg in step), check=False)
            lines = [
                line
                for line in done.stdout.splitlines()
                if prefix in line or not line.startswith(("\t", "amq.", " ")) or "|" in line
            ]
            out.append((done.returncode, lines, done.stderr))
        return out

    theirs, ours = session(reference), session(admin)
    for step, a, b in zip(SESSION, theirs, ours, strict=True):
        if "list" in step:  # only the session's own rows: the brokers hold other things
            a = (a[0], [x for x in a[1] if prefix in x], a[2])
            b = (b[0], [x for x in b[1] if prefix in x], b[2])
        assert a == b, step
