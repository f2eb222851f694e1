"""Celery Flower's broker view, unmodified, against a real Warren.

Flower (`celery flower --broker_api=http://guest:guest@HOST:PORT/api/`) runs
as a subprocess: it connects to Warren over AMQP for Celery's events, and its
Broker page and /api/queues/length read Warren's management API
(flower.utils.broker.RabbitMQ: GET /api/queues/{vhost}). The queues it shows
are the Celery app's (task_queues), with Warren's counts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import amqp, start_broker
from tool_helpers import missing_tool

from broker.testing import BrokerThread

try:
    import flower  # noqa: F401
except ImportError:  # pragma: no cover - the test extras install it
    flower = None

APP = textwrap.dedent("""
    import os
    from celery import Celery
    from kombu import Queue

    app = Celery("flowertest", broker=os.environ["FLOWER_TEST_BROKER"])
    app.conf.task_queues = [Queue(n) for n in os.environ["FLOWER_TEST_QUEUES"].split(",")]
""")


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    thread = start_broker()
    try:
        yield thread
    finally:
        thread.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_flower(
    broker: BrokerThread, tmp_path: Path, vhost: str, queues: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    if flower is None:
        missing_tool("flower is not installed (pip install -e '.[test]')")
    assert broker.broker is not None
    (tmp_path / "flowertest.py").write_text(APP)
    management = urllib.parse.urlsplit(broker.broker.management_url)
    amqp_url = urllib.parse.urlsplit(broker.url)
    port = free_port()
    env = dict(
        os.environ,
        FLOWER_TEST_BROKER=f"amqp://guest:guest@{amqp_url.netloc.split('@')[-1]}/"
        f"{urllib.parse.quote(vhost, safe='')}",
        FLOWER_TEST_QUEUES=",".join(queues),
        FLOWER_UNAUTHENTICATED_API="true",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "flowertest",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
            f"--broker_api=http://guest:guest@{management.netloc}/api/",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(base + "/healthcheck", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
            raise AssertionError(f"flower did not start:\n{output}")
        time.sleep(0.1)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


@pytest.mark.parametrize("vhost", ["/", "flower-vhost"])
def test_flower_shows_warrens_queues_and_counts(broker, tmp_path, vhost) -> None:
    connection = amqp(broker)
    channel = connection.channel()
    if vhost != "/":
        from api_helpers import api_of

        api = api_of(broker)
        assert api.call("PUT", f"/api/vhosts/{vhost}").status in (201, 204)
        assert api.call(
            "PUT",
            f"/api/permissions/{vhost}/guest",
            {"configure": ".*", "write": ".*", "read": ".*"},
        ).status in (201, 204)
        connection.close()
        connection = amqp(broker, virtual_host=vhost)
        channel = connection.channel()
    names = ["fl.tasks", "fl.empty", "fl.busy"]
    for name in names:
        channel.queue_declare(name)
    for i in range(3):
        channel.basic_publish("", "fl.tasks", f"t{i}".encode())
    for i in range(2):
        channel.basic_publish("", "fl.busy", f"b{i}".encode())
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=1)
    consumer.basic_consume("fl.busy", lambda *a: None)  # holds one, unacked
    connection.process_data_events(0.2)
    process, base = run_flower(broker, tmp_path, vhost, names + ["fl.not-declared"])
    try:
        lengths: dict[str, Any] = json.loads(fetch(base + "/api/queues/length"))
        got = {q["name"]: q for q in lengths["active_queues"]}
        assert set(got) == set(names)  # a queue Warren has not: not listed, as on RabbitMQ
        counts = {
            n: (q["messages"], q["messages_ready"], q["messages_unacknowledged"], q["consumers"])
            for n, q in got.items()
        }
        assert counts == {
            "fl.tasks": (3, 3, 0, 0),
            "fl.empty": (0, 0, 0, 0),
            "fl.busy": (2, 1, 1, 1),
        }
        assert all(q["vhost"] == vhost for q in got.values())
        page = fetch(base + "/broker")
        for name in names:
            assert f"<td>{name}</td>" in page
        assert "No queue data is available" not in page
        row = page[page.index('<tr id="fl.tasks">') :]
        row = row[: row.index("</tr>")]
        assert [cell.split(">")[-1] for cell in row.split("</td>")[1:4]] == ["3", "0", "3"]
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
        connection.close()
    assert "RabbitMQ management API call failed" not in output
    assert "Unable to get queues" not in output
