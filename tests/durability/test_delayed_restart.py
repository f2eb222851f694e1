"""Held messages of a durable delayed-message exchange across a restart and a
SIGKILL: persistent ones come back with the remaining delay kept (their due
time is absolute), those due while the broker was down go at once in due
order; transient ones are gone, as with the plugin; a held message that was
released or dropped with its exchange does not come back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pika
from test_crash import start_broker

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def _props(delay: int, persistent: bool = True) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-delay": delay}, delivery_mode=2 if persistent else 1)


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _drain_for(url: str, queue: str, seconds: float) -> list[tuple[bytes, float]]:
    """Every message arriving in `queue` within `seconds`: (body, arrival monotonic time)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    got: list[tuple[bytes, float]] = []

    def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
        got.append((body, time.monotonic()))
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.02)
    connection.close()
    return got


def _setup(url: str) -> tuple[pika.BlockingConnection, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.exchange_declare("later", "x-delayed-message", durable=True,
                             arguments={"x-delayed-type": "direct"})
    channel.queue_declare("out", durable=True)
    channel.queue_bind("out", "later", "k")
    return connection, channel


def test_persistent_held_messages_survive_sigkill_with_their_remaining_delay(
    tmp_path: Path,
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    try:
        connection, channel = _setup(url)
        channel.basic_publish("later", "k", b"released", _props(1))
        time.sleep(0.2)  # `released` goes into `out` before the kill
        published = time.monotonic()
        # Confirmed (after fsync) before the kill: each must come back.
        channel.basic_publish("later", "k", b"p-300", _props(300))
        channel.basic_publish("later", "k", b"p-5000", _props(5000))
        channel.basic_publish("later", "k", b"p-200", _props(200))
        channel.basic_publish("later", "k", b"transient", _props(250, persistent=False))
        connection.close()
        _stop(process, signal.SIGKILL)
        time.sleep(max(0.0, published + 0.5 - time.monotonic()))  # p-200, p-300 are due now

        process, url = start_broker(data_dir, log)
        got = _drain_for(url, "out", 1.0)
        bodies = [body for body, _ in got]
        # Due while down: at once, in due order; `released` once (it was in
        # the durable queue already, not held again); the transient one is gone.
        assert sorted(bodies) == sorted([b"released", b"p-200", b"p-300"])
        assert bodies.index(b"p-200") < bodies.index(b"p-300")
        # The long one keeps its remaining delay: not yet, then about 5 s after publish.
        got = _drain_for(url, "out", max(0.1, published + 4.5 - time.monotonic()))
        assert got == []
        got = _drain_for(url, "out", max(0.1, published + 6.5 - time.monotonic()))
        assert [body for body, _ in got] == [b"p-5000"]
        assert got[0][1] - published >= 4.95
    finally:
        _stop(process)
    text = log.read_text()
    assert "Traceback" not in text
    recovered = [json.loads(line) for line in text.splitlines() if "journal.recovered" in line]
    assert recovered[1]["delayed"] == 3  # p-200, p-300, p-5000 (not the transient one)


def test_held_messages_survive_a_clean_restart_and_deleted_exchanges_drop_theirs(
    tmp_path: Path,
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    try:
        connection, channel = _setup(url)
        channel.exchange_declare("gone", "x-delayed-message", durable=True,
                                 arguments={"x-delayed-type": "fanout"})
        channel.queue_bind("out", "gone")
        channel.basic_publish("later", "k", b"kept", _props(400))
        channel.basic_publish("gone", "", b"dropped", _props(400))
        channel.exchange_delete("gone")
        channel.exchange_declare("gone", "x-delayed-message", durable=True,
                                 arguments={"x-delayed-type": "fanout"})
        channel.queue_bind("out", "gone")
        connection.close()
        _stop(process)
        process, url = start_broker(data_dir, log)
        got = _drain_for(url, "out", 1.0)
        assert [body for body, _ in got] == [b"kept"]
        # Released and acknowledged: not back after another restart.
        _stop(process)
        process, url = start_broker(data_dir, log)
        assert _drain_for(url, "out", 0.6) == []
    finally:
        _stop(process)
    assert "Traceback" not in log.read_text()
