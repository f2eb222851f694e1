"""TTLs across a restart: expiry is timed from the original publish (issue 6, item 1).

The journal records each persistent message's absolute expiry (wall clock);
recovery restores it, so a message whose TTL ran out while the broker was
down is expired (dead-lettered) at recovery and the others expire on time.
`x-expires` leases start again at recovery, as RabbitMQ's do ("Leases of
durable queues restart when the server restarts", RabbitMQ's TTL guide).
Journals written before expiries were recorded still recover.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pika
from durability_helpers import PERSISTENT
from test_crash import start_broker

from broker.storage import records as r
from broker.storage.recovery import recover
from broker.storage.segments import segment_path
from broker.testing import BrokerThread

DLX = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}


def _drain(url: str, queue: str) -> list[tuple[bytes, dict]]:
    """(body, headers) of every message in `queue`, consumed."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((body, props.headers or {}))
    connection.close()
    return out


def test_ttl_that_ran_out_while_down_dead_letters_at_recovery(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("dead", durable=True)
        channel.queue_declare("work", durable=True, arguments=DLX)
        channel.queue_declare("ttl", durable=True, arguments={"x-message-ttl": 1500, **DLX})
        channel.queue_declare("keep", durable=True, arguments={"x-message-ttl": 600_000})
        short = pika.BasicProperties(delivery_mode=2, expiration="1500")
        for i in range(3):
            channel.basic_publish("", "work", b"w%d" % i, short)
        long_ = pika.BasicProperties(delivery_mode=2, expiration="600000")
        channel.basic_publish("", "work", b"w-long", long_)  # behind the short ones
        persistent = pika.BasicProperties(delivery_mode=2)
        for i in range(2):
            channel.basic_publish("", "ttl", b"q%d" % i, persistent)
        channel.basic_publish("", "keep", b"k0", persistent)
        published = time.monotonic()
        connection.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        time.sleep(max(0.0, published + 2.0 - time.monotonic()))  # every 1.5 s TTL ran out

        process, url = start_broker(data_dir, log)
        dead = _drain(url, "dead")
        by_source: dict[str, list[bytes]] = {}
        for body, headers in dead:
            death = headers["x-death"][0]
            assert death["reason"] == "expired"
            assert headers["x-first-death-reason"] == "expired"
            by_source.setdefault(death["queue"], []).append(body)
            if death["queue"] == "work":
                assert death["original-expiration"] == "1500"
        assert by_source == {"work": [b"w0", b"w1", b"w2"], "ttl": [b"q0", b"q1"]}
        assert [body for body, _ in _drain(url, "work")] == [b"w-long"]
        assert [body for body, _ in _drain(url, "keep")] == [b"k0"]
        assert _drain(url, "ttl") == []
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    text = log.read_text()
    assert "Traceback" not in text
    recovered = [json.loads(line) for line in text.splitlines() if "journal.recovered" in line]
    assert recovered[-1]["expired_while_down"] == 5


def test_expiry_is_timed_from_the_publish_and_x_expires_restarts(tmp_path: Path) -> None:
    thread = BrokerThread(data_dir=tmp_path)
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("dead", durable=True)
        channel.queue_declare("slow", durable=True, arguments={"x-message-ttl": 3000, **DLX})
        channel.queue_declare("lease", durable=True, arguments={"x-expires": 1000})
        channel.basic_publish("", "slow", b"m", pika.BasicProperties(delivery_mode=2))
        published = time.monotonic()
        connection.close()
    finally:
        thread.stop()
    time.sleep(max(0.0, published + 1.2 - time.monotonic()))  # the lease ran out while down

    thread = BrokerThread(data_dir=tmp_path)
    thread.start()
    restarted = time.monotonic()
    vhost = thread.broker.vhost

    def lengths() -> tuple[int, int, bool]:
        return (
            len(vhost.queues["slow"].ready),
            len(vhost.queues["dead"].ready),
            "lease" in vhost.queues,
        )

    try:
        # RabbitMQ restarts x-expires leases at recovery: the queue is still there.
        assert thread.run_sync(lengths) == (1, 0, True)
        time.sleep(max(0.0, published + 2.5 - time.monotonic()))
        assert thread.run_sync(lengths)[:2] == (1, 0)  # 3 s from the publish: not yet
        # Timed from the publish it expires at +3.0 s; from the restart it would be +4.2 s.
        time.sleep(max(0.0, published + 3.6 - time.monotonic()))
        assert thread.run_sync(lengths)[:2] == (0, 1)
        time.sleep(max(0.0, restarted + 1.6 - time.monotonic()))
        assert thread.run_sync(lengths)[2] is False  # the restarted lease ran out
    finally:
        thread.stop()


def test_a_journal_without_expiries_still_recovers(tmp_path: Path) -> None:
    thread = BrokerThread(data_dir=tmp_path)
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.queue_declare("dead", durable=True)
        channel.queue_declare("old-ttl", durable=True, arguments={"x-message-ttl": 1000, **DLX})
        channel.queue_declare("old-plain", durable=True)
        connection.close()
    finally:
        thread.stop()
    # A segment as journals were written before expiries: PUBLISH records
    # without FLAG_EXPIRES and without the expiry field.
    directory = tmp_path / "journal"
    before = recover(directory)
    number = (before.segments[-1] + 1) if before.segments else 1
    data = b""
    for index, (queue, body) in enumerate((("old-ttl", b"t"), ("old-plain", b"p"))):
        payload = r.encode_publish(before.next_msg_id + index, queue, "", queue, PERSISTENT, body)
        data += r.encode_record(r.PUBLISH, before.next_seq + index, payload)
    segment_path(directory, number).write_bytes(data)

    thread = BrokerThread(data_dir=tmp_path)
    thread.start()
    vhost = thread.broker.vhost
    try:
        assert thread.run_sync(lambda: len(vhost.queues["old-ttl"].ready)) == 1
        # On a TTL queue an old record is timed from the recovery.
        time.sleep(1.6)
        assert _drain(thread.url, "old-ttl") == []
        assert [body for body, _ in _drain(thread.url, "dead")] == [b"t"]
        assert [body for body, _ in _drain(thread.url, "old-plain")] == [b"p"]
    finally:
        thread.stop()
