"""`warren config apply FILE --url URL`: declare a file's topology on a running broker.

Runs against the in-process Warren (`warren_url`, `fresh_warren`), and against
the reference RabbitMQ when WARREN_REFERENCE_URL is set (`warren_url` is then
the reference; the round trip compares with its management API's export).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from cli_helpers import EXAMPLE, REFERENCE_MANAGEMENT_URL, REFERENCE_URL

from broker.client import ChannelClosed, open_connection
from routing import config


def apply_json(warren, path: Path, url: str, *extra: str) -> tuple[int, list[dict]]:
    result = warren("config", "apply", str(path), "--url", url, "--json", *extra)
    assert result.stderr == "", result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def statuses(outcomes: list[dict]) -> dict[str, str]:
    return {o["declaration"]: o["status"] for o in outcomes}


async def _exists(url: str, kind: str, name: str) -> bool:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        try:
            if kind == "queue":
                await ch.queue_declare(name, passive=True)
            else:
                await ch.exchange_declare(name, passive=True)
        except ChannelClosed as error:
            assert error.reply_code == 404
            return False
        return True


def exists(url: str, kind: str, name: str) -> bool:
    return trio.run(_exists, url, kind, name)


async def _delete(url: str, exchanges: list[str], queues: list[str]) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        for name in queues:
            await ch.queue_delete(name)
        for name in exchanges:
            await ch.exchange_delete(name)


@pytest.fixture
def cleanup(warren_url: str):
    """cleanup(model): delete the model's exchanges and queues after the test."""
    models: list[config.TopologyConfig] = []
    yield models.append
    for model in models:
        trio.run(_delete, warren_url, [x.name for x in model.exchanges],
                 [q.name for q in model.queues])


def small_topology(prefix: str) -> str:
    return f"""\
exchange {prefix}.orders type topic durable
    alternate-exchange {prefix}.unrouted
exchange {prefix}.unrouted type fanout durable
queue {prefix}.billing durable
    message-ttl 30s
queue {prefix}.unrouted
bind {prefix}.billing to {prefix}.orders key "order.*.created"
bind {prefix}.unrouted to {prefix}.unrouted
"""


@pytest.fixture
def small(tmp_path, unique, cleanup) -> tuple[Path, str]:
    prefix = unique("apply")
    path = tmp_path / "small.conf"
    path.write_text(small_topology(prefix))
    cleanup(config.parse(path.read_text()))
    return path, prefix


def test_apply_creates_then_finds_everything_present(warren, warren_url, small) -> None:
    path, p = small
    result = warren("config", "apply", str(path), "--url", warren_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"created      exchange {p}.orders\n"
        f"created      exchange {p}.unrouted\n"
        f"created      queue {p}.billing\n"
        f"created      queue {p}.unrouted\n"
        f'bound        bind {p}.billing to {p}.orders key "order.*.created"\n'
        f"bound        bind {p}.unrouted to {p}.unrouted\n"
        "4 created, 2 bound\n"
    )
    assert exists(warren_url, "queue", f"{p}.billing")
    again = warren("config", "apply", str(path), "--url", warren_url)
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == "4 present, 2 bound"
    assert not [line for line in again.stdout.splitlines() if line.startswith("created")]


def test_conflicts_name_the_property_and_change_nothing(warren, warren_url, small, tmp_path) -> None:
    path, p = small
    assert warren("config", "apply", str(path), "--url", warren_url).returncode == 0
    changed = tmp_path / "changed.conf"
    changed.write_text(
        path.read_text()
        .replace(f"exchange {p}.unrouted type fanout", f"exchange {p}.unrouted type direct")
        .replace(f"queue {p}.billing durable", f"queue {p}.billing")
        .replace(f"queue {p}.unrouted\n", f"queue {p}.unrouted\n    message-ttl 5s\n")
    )
    code, outcomes = apply_json(warren, changed, warren_url)
    assert code == 1
    by_name = {o["declaration"]: o for o in outcomes}
    assert by_name[f"exchange {p}.unrouted"] == {
        "status": "conflict", "kind": "exchange", "name": f"{p}.unrouted",
        "declaration": f"exchange {p}.unrouted",
        "detail": "type is 'fanout' on the broker, 'direct' in the file", "reply_code": 406,
    }
    assert by_name[f"queue {p}.billing"]["detail"] == (
        "durable is 'true' on the broker, 'false' in the file"
    )
    assert by_name[f"queue {p}.unrouted"]["detail"] == (
        "x-message-ttl is not set on the broker, '5000' in the file"
    )
    assert by_name[f"exchange {p}.orders"]["status"] == "present"
    # the conflicting objects are still what they were
    again = warren("config", "apply", str(path), "--url", warren_url)
    assert again.stdout.splitlines()[-1] == "4 present, 2 bound"


def test_dry_run_creates_nothing_and_still_finds_conflicts(
    warren, warren_url, small, tmp_path
) -> None:
    path, p = small
    result = warren("config", "apply", str(path), "--url", warren_url, "--dry-run")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"would-create exchange {p}.orders",
        f"would-create exchange {p}.unrouted",
        f"would-create queue {p}.billing",
        f"would-create queue {p}.unrouted",
        f'would-bind   bind {p}.billing to {p}.orders key "order.*.created"',
        f"would-bind   bind {p}.unrouted to {p}.unrouted",
        "dry run, nothing changed: 4 would create, 2 would bind",
    ]
    assert not exists(warren_url, "exchange", f"{p}.orders")
    assert not exists(warren_url, "queue", f"{p}.billing")
    # with part of it there, and one queue different
    first = tmp_path / "first.conf"
    first.write_text(f"queue {p}.billing\n")
    assert warren("config", "apply", str(first), "--url", warren_url).returncode == 0
    code, outcomes = apply_json(warren, path, warren_url, "--dry-run")
    assert code == 1
    assert statuses(outcomes)[f"queue {p}.billing"] == "conflict"
    assert statuses(outcomes)[f"queue {p}.unrouted"] == "would-create"
    assert not exists(warren_url, "queue", f"{p}.unrouted")


def test_apply_reads_stdin(warren, warren_url, small) -> None:
    path, p = small
    result = warren("config", "apply", "-", "--url", warren_url, input=path.read_text())
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "4 created, 2 bound"


# -- bad input: one line, non-zero exit --------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_credentials(url: str, userinfo: str, vhost: str | None = None) -> str:
    rest = url.split("://", 1)[1].split("@", 1)[-1]
    host, _, path = rest.partition("/")
    return f"amqp://{userinfo}@{host}/{path if vhost is None else vhost}"


def test_bad_input_is_one_line(warren, warren_url) -> None:
    def one_line(*args: str) -> str:
        result = warren("config", "apply", *args)
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    example = str(EXAMPLE)
    port = closed_port()
    assert one_line(example, "--url", f"amqp://guest:guest@127.0.0.1:{port}/") == (
        f"warren config apply: cannot connect to 127.0.0.1:{port}: Error connecting to "
        f"('127.0.0.1', {port}): Connection refused\n"
    )
    refused = one_line(example, "--url", with_credentials(warren_url, "guest:wrong"))
    assert refused.startswith("warren config apply: ACCESS_REFUSED - Login was refused")
    assert refused.endswith("(reply code 403)\n")
    vhost = one_line(example, "--url", with_credentials(warren_url, "guest:guest", "nope"))
    assert vhost.startswith("warren config apply: NOT_ALLOWED - ")
    assert vhost.endswith("(reply code 530)\n")
    assert one_line(example, "--url", "http://localhost/") == (
        "warren config apply: not an AMQP URL (scheme must be amqp or amqps): "
        "'http://localhost/'\n"
    )
    assert one_line("missing.conf", "--url", warren_url) == (
        "warren config apply: cannot read missing.conf: No such file or directory\n"
    )


def test_an_invalid_file_is_one_line_and_touches_nothing(warren, warren_url, tmp_path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("exchange ok.but.never.declared type fanout\nqueue q message-ttl -1s\n")
    result = warren("config", "apply", str(bad), "--url", warren_url)
    assert result.returncode == 2
    assert result.stderr == (
        f"warren config apply: {bad}:2:21: message-ttl must not be negative, got '-1s'; "
        f"run `warren config check {bad}` for details\n"
    )
    assert not exists(warren_url, "exchange", "ok.but.never.declared")


def test_an_exclusive_queue_of_another_connection_is_a_conflict(
    warren, warren_url, unique, tmp_path
) -> None:
    name = unique("locked")

    async def hold_and_apply() -> subprocess.CompletedProcess:
        async with open_connection(warren_url) as conn, conn.open_channel() as ch:
            await ch.queue_declare(name, exclusive=True)
            path = tmp_path / "locked.conf"
            path.write_text(f"queue {name}\n")
            return await trio.to_thread.run_sync(
                lambda: warren("config", "apply", str(path), "--url", warren_url)
            )

    result = trio.run(hold_and_apply)
    assert result.returncode == 1
    assert result.stdout.startswith(f"conflict     queue {name}: RESOURCE_LOCKED - ")
    assert result.stdout.splitlines()[-1] == "1 conflicting"


# -- progress ------------------------------------------------------------------------------


def run_with_stderr_on_a_terminal(*args: str) -> tuple[int, str, str]:
    import os
    import pty

    from cli_helpers import WARREN

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(WARREN), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=30), stdout, b"".join(chunks).decode()


def test_progress_on_a_terminal_only(warren, fresh_warren_url) -> None:
    code, stdout, stderr = run_with_stderr_on_a_terminal(
        "config", "apply", str(EXAMPLE), "--url", fresh_warren_url
    )
    assert code == 0
    assert "\r\x1b[Kapplying: 1/18 (5%)" in stderr
    assert stderr.endswith("\r\x1b[K")  # the progress line is erased at the end
    assert stdout.splitlines()[-1] == "11 created, 7 bound"
    plain = warren("config", "apply", str(EXAMPLE), "--url", fresh_warren_url)
    assert plain.stderr == ""


# -- the round trip: definitions JSON -> from-definitions -> apply ----------------------------


def big_definitions(p: str) -> dict:
    """20 exchanges, 30 queues (with arguments), 60 bindings (headers and e2e included)."""
    types = ["direct", "fanout", "topic", "headers"]
    exchanges = []
    for i in range(20):
        arguments = {"alternate-exchange": f"{p}.x{(i + 1) % 20}"} if i % 6 == 0 else {}
        exchanges.append({
            "name": f"{p}.x{i}", "vhost": "/", "type": types[i % 4], "durable": i % 2 == 0,
            "auto_delete": i % 9 == 8, "internal": i % 7 == 6, "arguments": arguments,
        })
    argument_sets = [
        {},
        {"x-message-ttl": 30000},
        {"x-max-length": 1000, "x-overflow": "reject-publish"},
        {"x-dead-letter-exchange": f"{p}.x1", "x-dead-letter-routing-key": "dead"},
        {"x-max-priority": 10},
        {"x-expires": 3600000, "x-max-length-bytes": 1048576},
        {"x-queue-type": "classic", "x-message-ttl": 0},
    ]
    queues = [
        {"name": f"{p}.q{i}", "vhost": "/", "durable": i % 3 != 0, "auto_delete": False,
         "arguments": argument_sets[i % len(argument_sets)]}
        for i in range(30)
    ]
    bindings = []
    for j in range(44):  # queue bindings, 11 per exchange type
        i = j % 20
        source = exchanges[i]
        args: dict = {}
        key = ""
        if source["type"] == "direct":
            key = f"k{j}"
        elif source["type"] == "topic":
            key = f"order.*.{j}.#"
        elif source["type"] == "headers":
            args = {"x-match": "any" if j % 2 else "all", "region": "eu", "n": j,
                    "urgent": True}
        bindings.append({"source": source["name"], "vhost": "/",
                         "destination": f"{p}.q{j % 30}", "destination_type": "queue",
                         "routing_key": key, "arguments": args})
    for j in range(16):  # exchange-to-exchange bindings
        source = exchanges[(j * 3) % 20]
        destination = exchanges[(j * 3 + 5) % 20]
        args = {"x-match": "all", "tenant": f"t{j}"} if source["type"] == "headers" else {}
        bindings.append({"source": source["name"], "vhost": "/",
                         "destination": destination["name"], "destination_type": "exchange",
                         "routing_key": f"e2e.{j}", "arguments": args})
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def normalise(defs: dict, prefix: str) -> dict:
    """What must survive the round trip, comparable whatever the order."""
    mine = prefix + "."
    return {
        "exchanges": {
            x["name"]: (x["type"], x["durable"], x["auto_delete"], x["internal"],
                        json.dumps(x["arguments"], sort_keys=True))
            for x in defs["exchanges"] if x["name"].startswith(mine)
        },
        "queues": {
            q["name"]: (q["durable"], q["auto_delete"], json.dumps(q["arguments"], sort_keys=True))
            for q in defs["queues"] if q["name"].startswith(mine)
        },
        "bindings": sorted(
            (b["source"], b["destination_type"], b["destination"], b["routing_key"],
             json.dumps(b["arguments"], sort_keys=True))
            for b in defs["bindings"] if b["source"].startswith(mine)
        ),
    }


def round_trip(warren, tmp_path: Path, url: str, prefix: str, *extra: str) -> tuple[dict, list]:
    """definitions JSON -> from-definitions -> apply; the normalised input and second apply."""
    defs = big_definitions(prefix)
    assert len(defs["exchanges"]) >= 20 and len(defs["queues"]) >= 30
    assert len(defs["bindings"]) >= 60
    assert any(b["arguments"].get("x-match") for b in defs["bindings"])
    assert any(b["destination_type"] == "exchange" for b in defs["bindings"])
    (tmp_path / "defs.json").write_text(json.dumps(defs))
    converted = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    (tmp_path / "topology.conf").write_text(converted.stdout)
    code, first = apply_json(warren, tmp_path / "topology.conf", url, *extra)
    assert code == 0, [o for o in first if o["status"] not in ("created", "bound")]
    assert {o["status"] for o in first if o["kind"] != "binding"} == {"created"}
    assert len(first) == 110
    code, second = apply_json(warren, tmp_path / "topology.conf", url, *extra)
    assert code == 0
    assert not [o for o in second if o["status"] == "created"]
    return normalise(defs, prefix), second


def test_round_trip_on_warren(warren, fresh_warren, tmp_path) -> None:
    expected, second = round_trip(warren, tmp_path, fresh_warren.url, "rt")
    assert {o["status"] for o in second} == {"present", "bound"}

    def export() -> dict:
        # What the broker holds, in the definitions shape (Warren has no
        # management API yet: read its vhost directly).
        vhost = fresh_warren.broker.vhost
        return {
            "exchanges": [
                {"name": x.name, "type": x.type, "durable": x.durable,
                 "auto_delete": x.auto_delete, "internal": x.internal,
                 "arguments": dict(x.arguments)}
                for x in vhost.topology.exchanges.values()
            ],
            "queues": [
                {"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                 "arguments": dict(q.arguments)}
                for q in vhost.queues.values()
            ],
            "bindings": [
                {"source": b.source, "destination_type": b.destination.kind,
                 "destination": b.destination.name, "routing_key": b.routing_key,
                 "arguments": dict(b.arguments)}
                for b in vhost.topology.bindings()
            ],
        }

    assert normalise(fresh_warren.run_sync(export), "rt") == expected
    # and what passive declares see agrees
    assert all(exists(fresh_warren.url, "queue", name) for name in expected["queues"])
    assert all(exists(fresh_warren.url, "exchange", name) for name in expected["exchanges"])


@pytest.mark.skipif(not REFERENCE_URL, reason="needs WARREN_REFERENCE_URL (RabbitMQ)")
def test_round_trip_on_rabbitmq(warren, tmp_path, unique) -> None:
    import base64
    import urllib.request

    prefix = unique("rt").replace("t.test_round_trip_on_rabbitmq.", "cli-rt-")
    assert REFERENCE_URL is not None
    try:
        expected, second = round_trip(
            warren, tmp_path, REFERENCE_URL, prefix, "--management-url", REFERENCE_MANAGEMENT_URL
        )
        # with the management API, bindings are known too: everything is present
        assert {o["status"] for o in second} == {"present"}
        request = urllib.request.Request(f"{REFERENCE_MANAGEMENT_URL}/api/definitions")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        # The reference broker is shared: other suites leave objects with
        # deeply nested argument tables in it, deeper than json's default limit.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))
        try:
            exported = json.loads(raw)
        finally:
            sys.setrecursionlimit(limit)
        assert normalise(exported, prefix) == expected
    finally:
        defs = big_definitions(prefix)
        trio.run(_delete, REFERENCE_URL, [x["name"] for x in defs["exchanges"]],
                 [q["name"] for q in defs["queues"]])


def test_what_amqp_cannot_carry_is_refused_before_anything_is_declared(
    warren, warren_url, unique, tmp_path
) -> None:
    # An AMQP field table holds 64-bit integers at most: `config check` refuses
    # wider ones, so apply stops before it declares anything.
    q, x = unique("q"), unique("x")
    path = tmp_path / "wide.conf"
    path.write_text(
        f"exchange {x} type headers\nqueue {q}\n    x-wide 99999999999999999999999\n"
        f"bind {q} to {x} headers all n=99999999999999999999999\n"
    )
    result = warren("config", "apply", str(path), "--url", warren_url)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren config apply: {path}:3:12: integer 99999999999999999999999 does not fit an "
        f"AMQP field value (and 1 more); run `warren config check {path}` for details\n"
    )
    assert not exists(warren_url, "exchange", x)
    assert not exists(warren_url, "queue", q)


def test_an_unreachable_management_api_is_one_line(warren, warren_url) -> None:
    port = closed_port()
    result = warren("config", "apply", str(EXAMPLE), "--url", warren_url,
                    "--management-url", f"http://127.0.0.1:{port}")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren config apply: cannot connect to the management API at "
        f"http://127.0.0.1:{port}: connection refused (is the broker running, with its "
        "management API on that port?)\n"
    )
