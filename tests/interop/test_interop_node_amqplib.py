"""Node's amqplib (from npm) publishes and consumes through the broker.

The npm project lives in tests/interop/node/ (package.json and package-lock.json
committed, node_modules/ ignored); `npm ci` installs it on first use. Only a
machine without `node` skips these tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pika
import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "amqp_client.js"
TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="`node` is not installed (apt-get install nodejs npm)"
)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    modules = NODE_DIR / "node_modules" / "amqplib"
    if not modules.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install amqplib")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return modules


@pytest.fixture
def queue(interop_url):
    name = f"interop.node.{uuid.uuid4().hex[:10]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(interop_url))
    try:
        connection.channel().queue_delete(name)
    finally:
        connection.close()


def run_node(mode: str, url: str, queue: str, count: int) -> dict:
    result = subprocess.run(
        ["node", str(SCRIPT), mode, url, queue, str(count)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"amqplib {mode} failed:\n{result.stderr}\n{result.stdout}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_amqplib_publishes_and_consumes(node_modules, interop_url, queue):
    result = run_node("roundtrip", interop_url, queue, 25)
    assert result["published"] == 25
    bodies = [m["body"] for m in result["received"]]
    assert bodies == [f"node-{i}" for i in range(25)]
    first = result["received"][0]
    assert first["headers"] == {"seq": 0, "source": "amqplib", "nested": {"ok": True}}
    assert first["contentType"] == "text/plain"
    assert first["messageId"] == "m-0"


def test_amqplib_publishes_pika_consumes(node_modules, interop_url, queue):
    assert run_node("publish", interop_url, queue, 5)["published"] == 5
    connection = pika.BlockingConnection(pika.URLParameters(interop_url))
    try:
        channel = connection.channel()
        received = []
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            received.append(message)
    finally:
        connection.close()
    assert [body for _, _, body in received] == [f"node-{i}".encode() for i in range(5)]
    _, properties, _ = received[1]
    assert properties.headers == {"seq": 1, "source": "amqplib", "nested": {"ok": True}}
    assert properties.delivery_mode == 1
    assert received[0][1].delivery_mode == 2  # persistent: true


def test_pika_publishes_amqplib_consumes(node_modules, interop_url, queue):
    connection = pika.BlockingConnection(pika.URLParameters(interop_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=False)
        channel.confirm_delivery()
        for i in range(5):
            channel.basic_publish(
                "",
                queue,
                f"pika-{i}".encode(),
                pika.BasicProperties(content_type="text/plain", headers={"from": "pika", "i": i}),
            )
    finally:
        connection.close()
    received = run_node("consume", interop_url, queue, 5)["received"]
    assert [m["body"] for m in received] == [f"pika-{i}" for i in range(5)]
    assert received[3]["headers"] == {"from": "pika", "i": 3}
    assert received[3]["contentType"] == "text/plain"
