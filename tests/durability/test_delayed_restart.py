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


def test_compaction_moves_held_messages_and_keeps_their_due_time(tmp_path: Path) -> None:
    """A message held for long in the oldest segment does not pin the segments:
    compaction copies its record (same msg_id, same absolute due time), the old
    segments go, and recovery finds it once, still held, still due when it was."""
    import trio

    from broker.core.message import Message
    from broker.core.vhost import VHost
    from broker.storage import Journal
    from broker.storage.recovery import recover
    from broker.storage.segments import list_segments
    from protocol.properties import BasicProperties

    def message(i: int, delay: int) -> Message:
        props = BasicProperties(delivery_mode=2, headers={"x-delay": delay}).encode()
        return Message("later", "k", props, b"body-%05d-" % i + b"x" * 90)

    async def main() -> None:
        journal = Journal(tmp_path, segment_size=4096)
        vhost = VHost("/")
        vhost.journal = journal
        for name in ("later", "short"):
            vhost.declare_exchange(name, "x-delayed-message", durable=True,
                                   arguments={"x-delayed-type": "direct"})
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            vhost.route("later", message(0, 3_600_000))  # held for an hour
            for i in range(1, 200):
                vhost.route("short", message(i, 600_000))
            while journal.synced < journal.appended:
                await trio.sleep(0.001)
            before = list_segments(tmp_path)
            assert len(before) > 4
            ((long_due, long_held),) = [
                (due, h) for due, h in vhost.delayed.held_in_segment(before[0])
                if h.exchange == "later"
            ]
            assert long_held.message is None  # journalled: no body kept in memory
            # The others leave with their exchange: only the long one pins the old segment.
            vhost.delete_exchange("short")
            # (The group-commit task compacts by itself; this finishes the job.)
            while journal.compact_oldest():
                pass
            while journal.synced < journal.appended or journal.has_pending():
                await trio.sleep(0.001)
            after = list_segments(tmp_path)
            assert after[0] > before[0] and len(after) <= 2
            assert long_held.segment != before[0]
            assert journal.load(long_held.segment, long_held.offset).body.startswith(b"body-00000")
            await journal.close()
            nursery.cancel_scope.cancel()
        recovered = recover(tmp_path)
        (entry,) = recovered.delayed[("/", "later")]
        assert entry.msg_id == long_held.msg_id
        assert abs(entry.expires_at - long_due) < 0.01

    trio.run(main)
