"""A stream's log across a clean restart and a SIGKILL: every confirmed
message comes back at its offset, consumers read from any offset again,
appends go on at the next offset; a torn tail is cut; a deleted stream does
not come back.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pika
from test_crash import start_broker

STREAM = {"x-queue-type": "stream"}


def _stop(process: subprocess.Popen[bytes], sig: int) -> None:
    process.send_signal(sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _publish(url: str, name: str, bodies: list[bytes]) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(name, durable=True, arguments=STREAM)
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", name, body, pika.BasicProperties(delivery_mode=2))


def _read_all(url: str, name: str, offset: Any = "first", wait: float = 5.0) -> list[tuple[bytes, int]]:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        count = channel.queue_declare(name, passive=True).method.message_count
        channel.basic_qos(prefetch_count=500)
        got: list[tuple[bytes, int]] = []

        def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
            got.append((body, props.headers["x-stream-offset"]))
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(name, on_message, arguments={"x-stream-offset": offset})
        deadline = time.monotonic() + wait
        while len(got) < count and time.monotonic() < deadline:
            connection.process_data_events(0.05)
        return got


def test_stream_survives_restart_and_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process, url = start_broker(data, tmp_path / "log")
    try:
        _publish(url, "events", [b"e%d" % i for i in range(300)])
        _publish(url, "gone", [b"g"])
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            connection.channel().queue_delete("gone")
    finally:
        _stop(process, signal.SIGTERM)
    process, url = start_broker(data, tmp_path / "log")
    try:
        assert _read_all(url, "events") == [(b"e%d" % i, i) for i in range(300)]
        _publish(url, "events", [b"f%d" % i for i in range(200)])
    finally:
        _stop(process, signal.SIGKILL)  # every confirmed append was fsynced
    process, url = start_broker(data, tmp_path / "log")
    try:
        got = _read_all(url, "events")
        assert [offset for _, offset in got] == list(range(500))
        assert got[300:] == [(b"f%d" % i, 300 + i) for i in range(200)]
        assert _read_all(url, "events", 450) == [(b"f%d" % i, 300 + i) for i in range(150, 200)]
        _publish(url, "events", [b"after"])
        assert _read_all(url, "events", "last", wait=2) == [(b"after", 500)]
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            channel.queue_declare("gone", durable=True, arguments=STREAM)
            assert channel.queue_declare("gone", passive=True).method.message_count == 0
    finally:
        _stop(process, signal.SIGTERM)


def test_a_torn_tail_is_cut(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process, url = start_broker(data, tmp_path / "log")
    try:
        _publish(url, "torn", [b"t%d" % i for i in range(20)])
    finally:
        _stop(process, signal.SIGTERM)
    segments = sorted((data / "streams").glob("*/*.seg"))
    assert len(segments) == 1
    raw = segments[0].read_bytes()
    segments[0].write_bytes(raw[:-7])  # the last record is cut short
    process, url = start_broker(data, tmp_path / "log")
    try:
        assert _read_all(url, "torn") == [(b"t%d" % i, i) for i in range(19)]
        _publish(url, "torn", [b"next"])
        assert _read_all(url, "torn", "last", wait=2) == [(b"next", 19)]
    finally:
        _stop(process, signal.SIGTERM)
