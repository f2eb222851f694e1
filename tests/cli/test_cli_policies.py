"""Policies on the command line: `warren config apply` through the management API
(Warren's own, in-process; and the reference RabbitMQ's when WARREN_REFERENCE_URL
and WARREN_REFERENCE_MANAGEMENT_URL are set), check and from-definitions."""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from broker.commands.apply import PolicyState, plan_policies
from broker.testing import BrokerThread
from routing import config

FILE = """\
policy {p}-ttl pattern "^{p}-orders\\\\." apply-to queues priority 1
    message-ttl 30s
    max-length 2
operator-policy {p}-cap pattern "^{p}-"
    max-length 1000
exchange {p}-orders type topic
queue {p}-orders.eu
bind {p}-orders.eu to {p}-orders key "#"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.conf"
    path.write_text(text)
    return str(path)


def http(base: str, method: str, path: str, auth: str = "guest:guest") -> object:
    request = urllib.request.Request(base.rstrip("/") + path, method=method)
    request.add_header("authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        return error.code
    return json.loads(raw) if raw else None


def apply_three_times(warren, tmp_path: Path, url: str, management: str, p: str) -> None:
    path = write(tmp_path, FILE.format(p=p))
    first = warren("config", "apply", path, "--url", url, "--management-url", management)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:2] == [f"created      policy {p}-ttl", f"created      operator-policy {p}-cap"]
    assert f"created      queue {p}-orders.eu" in lines
    # the queue was declared after its policy: the limit holds at once
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for i in range(4):
        channel.basic_publish("", f"{p}-orders.eu", f"m{i}".encode())
    assert channel.queue_declare(f"{p}-orders.eu", passive=True).method.message_count == 2
    connection.close()
    again = warren("config", "apply", path, "--url", url, "--management-url", management)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:2] == [
        f"present      policy {p}-ttl", f"present      operator-policy {p}-cap"
    ]
    changed = FILE.format(p=p).replace("max-length 2", "max-length 3").replace(
        "    message-ttl 30s\n", "")
    path = write(tmp_path, changed)
    dry = warren("config", "apply", path, "--url", url, "--management-url", management,
                 "--dry-run")
    assert dry.stdout.splitlines()[0] == (
        f"would-change policy {p}-ttl: max-length was 2, now 3; message-ttl 30000 removed"
    )
    done = warren("config", "apply", path, "--url", url, "--management-url", management)
    assert done.stdout.splitlines()[0] == (
        f"changed      policy {p}-ttl: max-length was 2, now 3; message-ttl 30000 removed"
    )
    policy = http(management, "GET", f"/api/policies/%2F/{p}-ttl")
    assert policy == {"vhost": "/", "name": f"{p}-ttl", "pattern": f"^{p}-orders\\.",
                      "apply-to": "queues", "definition": {"max-length": 3}, "priority": 1}


def test_apply_sets_policies_through_warrens_management_api(warren, tmp_path) -> None:
    thread = BrokerThread(data_dir=tmp_path / "data")
    thread.start()
    try:
        assert thread.broker is not None
        apply_three_times(warren, tmp_path, thread.url, thread.broker.management_url, "pol")
    finally:
        thread.stop()


REFERENCE_URL = os.environ.get("WARREN_REFERENCE_URL")
REFERENCE_MANAGEMENT_URL = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")


@pytest.mark.skipif(
    not (REFERENCE_URL and REFERENCE_MANAGEMENT_URL),
    reason="needs WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL",
)
def test_apply_sets_policies_on_rabbitmq(warren, tmp_path) -> None:
    assert REFERENCE_URL and REFERENCE_MANAGEMENT_URL
    p = f"pol-{secrets.token_hex(4)}"
    try:
        apply_three_times(warren, tmp_path, REFERENCE_URL, REFERENCE_MANAGEMENT_URL, p)
    finally:
        http(REFERENCE_MANAGEMENT_URL, "DELETE", f"/api/policies/%2F/{quote(p)}-ttl")
        http(REFERENCE_MANAGEMENT_URL, "DELETE", f"/api/operator-policies/%2F/{quote(p)}-cap")
        connection = pika.BlockingConnection(pika.URLParameters(REFERENCE_URL))
        channel = connection.channel()
        channel.queue_delete(f"{p}-orders.eu")
        channel.exchange_delete(f"{p}-orders")
        connection.close()


def test_apply_needs_the_management_api_for_policies(warren, tmp_path, warren_url) -> None:
    path = write(tmp_path, FILE.format(p="x"))
    result = warren("config", "apply", path, "--url", warren_url)
    assert result.returncode == 2
    assert result.stderr == (
        f"warren config apply: {path}:1: policy x-ttl and 1 more (1 policy, 1 operator-policy) "
        "cannot be applied over AMQP: pass --management-url http://HOST:15672 (RabbitMQ's "
        "management API); nothing was applied\n"
    )


def test_plan_policies_compares_every_field() -> None:
    model = config.parse(
        'policy a pattern "x" apply-to queues priority 2\n    max-length 5\n'
        'policy b pattern "y"\n    expires 1s\n'
        'operator-policy a pattern "x"\n    max-length 9\n'
    )
    state = PolicyState(
        policies={"a": {"pattern": "z", "apply-to": "all", "priority": 2,
                        "definition": {"max-length": 5, "message-ttl": 1}}},
        operator_policies={"a": {"pattern": "x", "apply-to": "all", "priority": 0,
                                 "definition": {"max-length": 9}}},
    )
    actions = plan_policies(model, state, "v/1")
    assert [(a.outcome.status, a.outcome.detail) for a in actions] == [
        ("changed", "pattern was 'z', now 'x'; apply-to was 'all', now 'queues'; "
                    "message-ttl 1 removed"),
        ("created", ""),
        ("present", ""),
    ]
    assert actions[0].requests == [("/api/policies/v%2F1/a", {
        "pattern": "x", "definition": {"max-length": 5}, "priority": 2, "apply-to": "queues"})]
    assert actions[2].requests == []


def test_from_definitions_of_policies_with_a_setting_warren_lacks(warren, tmp_path) -> None:
    (tmp_path / "defs.json").write_text(json.dumps({"policies": [
        {"vhost": "/", "name": "ha", "pattern": ".", "apply-to": "all",
         "definition": {"ha-mode": "all"}, "priority": 0},
        {"vhost": "/", "name": "ttl", "pattern": "^q", "apply-to": "queues",
         "definition": {"message-ttl": 1000}, "priority": 0},
    ]}))
    result = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == 'policy ttl pattern "^q" apply-to queues\n    message-ttl 1s\n'
    assert result.stderr == (
        "warren config from-definitions: defs.json: warning: policies[0]: skipped policy 'ha': "
        "setting 'ha-mode' is a RabbitMQ policy setting Warren does not implement (classic "
        "queue mirroring: Warren is a single node)\n"
    )
