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


def _write_log(files: Any) -> None:
    """What the journal's group commit does: take, write (fsync), written."""
    taken = files.take()
    files.write(taken)
    files.written(taken)


def test_recovery_reads_segments_in_blocks_and_cuts_at_a_bad_checksum(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from broker.core.message import Message
    from broker.storage import streams

    files = streams.StreamFiles(tmp_path / "streams")
    log = files.open_log("/", "s", 20_000)
    bodies = [b"%03d" % i + b"y" * (i * 37 % 900) for i in range(120)]
    for i, body in enumerate(bodies):
        log.append(Message("ex", "key", b"\x00\x00", body), 1_000 + i)
        if i % 7 == 0:
            _write_log(files)
    _write_log(files)
    assert log.first_offset == 0 and log.next_offset == 120 and len(log.segments) > 2
    files.close()
    monkeypatch.setattr(streams, "SCAN_BLOCK", 1000)  # records straddle every block
    again = streams.StreamFiles(tmp_path / "streams").open_log("/", "s", 20_000)
    assert again.next_offset == 120 and again.body_bytes == sum(len(b) for b in bodies)
    cursor = again.cursor(0)
    read = [cursor.read() for _ in range(120)]
    assert [m.body for m in read if m] == bodies and cursor.read() is None
    assert read[5] is not None and read[5].exchange == "ex" and read[5].routing_key == "key"
    assert again.offset_at(1_050) == 50
    # A flipped byte inside record 100's body: recovery keeps 0..99 and
    # removes what follows (later segments included).
    segment = again.segment_of(100)
    position = segment.positions[100 - segment.first] + 30
    again.close()
    data = bytearray(segment.path.read_bytes())
    data[position] ^= 0xFF
    segment.path.write_bytes(bytes(data))
    cut = streams.StreamFiles(tmp_path / "streams").open_log("/", "s", 20_000)
    assert cut.next_offset == 100
    cursor = cut.cursor(95)
    assert [cursor.read().body for _ in range(5)] == bodies[95:100]  # type: ignore[union-attr]
    assert cursor.read() is None
