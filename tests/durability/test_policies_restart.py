"""Policies and operator policies are durable: they survive a restart and apply
again to the durable queues and exchanges restored with them (real HTTP and pika).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika

from broker.storage.definitions import FILE_NAME, DefinitionsStore
from broker.testing import BrokerThread


@contextmanager
def broker_on(data_dir: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=data_dir)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def call(thread: BrokerThread, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert thread.broker is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(thread.broker.management_url + path, data=data, method=method)
    request.add_header("authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    return status, json.loads(raw) if raw else None


POLICY = {"pattern": "^orders\\.", "definition": {"max-length": 3, "message-ttl": 60000},
          "priority": 1.5, "apply-to": "queues"}
OPERATOR = {"pattern": "^orders\\.", "definition": {"max-length": 2}, "priority": 0,
            "apply-to": "all"}
AE = {"pattern": "^in$", "definition": {"alternate-exchange": "unrouted"},
      "apply-to": "exchanges"}


def test_policies_survive_a_restart_and_apply_to_restored_queues(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread:
        assert call(thread, "PUT", "/api/policies/%2F/orders", POLICY)[0] == 201
        assert call(thread, "PUT", "/api/operator-policies/%2F/cap", OPERATOR)[0] == 201
        assert call(thread, "PUT", "/api/policies/%2F/ae", AE)[0] == 201
        listed = call(thread, "GET", "/api/policies")[1]
    with broker_on(tmp_path) as thread:
        assert call(thread, "GET", "/api/policies")[1] == listed
        assert call(thread, "GET", "/api/operator-policies/%2F/cap")[1] == {
            "vhost": "/", "name": "cap", **OPERATOR}
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.queue_declare("orders.eu", durable=True)
        channel.exchange_declare("unrouted", "fanout", durable=True)
        channel.queue_declare("lost", durable=True)
        channel.queue_bind("lost", "unrouted")
        channel.exchange_declare("in", "direct", durable=True)
        connection.close()
    with broker_on(tmp_path) as thread:
        # Restored queues and exchanges get the restored policies again.
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        for i in range(5):
            channel.basic_publish("", "orders.eu", f"m{i}".encode())
        channel.basic_publish("in", "no-binding", b"unroutable")
        assert channel.queue_declare("orders.eu", passive=True).method.message_count == 2
        assert channel.queue_declare("lost", passive=True).method.message_count == 1
        connection.close()
        assert call(thread, "DELETE", "/api/policies/%2F/orders")[0] == 204
        assert call(thread, "DELETE", "/api/operator-policies/%2F/cap")[0] == 204
    with broker_on(tmp_path) as thread:
        assert [p["name"] for p in call(thread, "GET", "/api/policies")[1]] == ["ae"]
        assert call(thread, "GET", "/api/operator-policies")[1] == []


def test_a_file_from_before_policies_still_loads(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("kept", durable=True)
        connection.close()
    stored = DefinitionsStore(tmp_path).load()
    assert "policies" not in stored["vhosts"][0]  # nothing written when there are none
    assert (tmp_path / FILE_NAME).exists()
    with broker_on(tmp_path) as thread:
        assert call(thread, "GET", "/api/policies")[1] == []
