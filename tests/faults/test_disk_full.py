"""The disk alarm on a real small disk, and a client closing while blocked.

- A fast publisher of 64 KiB persistent messages on a 48 MiB tmpfs with a
  24 MB disk_free_limit: the alarm blocks it before the disk fills (the
  journal never hits ENOSPC), every confirmed message is kept, and the alarm
  clears once consumers free the space. With the old once-a-second check the
  margin was gone in well under a second and the journal hit ENOSPC.
- A pika client that closes its connection while blocked gets close-ok, and
  the broker logs no crash (it used to send connection.blocked on the closed
  connection and crash the connection's task).

Mounting a tmpfs needs root (CI runs as root); elsewhere the disk test skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from durability_helpers import PERSISTENT, TRANSIENT, Publisher

from broker.settings import AbsoluteLimit, Settings
from broker.testing import BrokerThread

TMPFS_SIZE = 48 * 1024 * 1024
LIMIT = 24_000_000
BODY = b"x" * 65536


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mountpoint)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_the_disk_alarm_holds_its_limit_under_a_fast_writer(small_disk: Path) -> None:
    settings = Settings(disk_free_limit=AbsoluteLimit(LIMIT))
    thread = BrokerThread(data_dir=small_disk / "data", settings=settings)
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("fill", durable=True)
        connection.close()
        publisher = Publisher(thread.url)
        sent = 0
        deadline = time.monotonic() + 10
        blocked = False
        while time.monotonic() < deadline:
            sent = publisher.publish_many("fill", [BODY] * 16, PERSISTENT)
            try:
                publisher.wait_confirms(sent, timeout=2)
            except TimeoutError:
                blocked = True  # the broker stopped reading us: the alarm is on
                break
        broker = thread.broker
        assert blocked, "the publisher was never blocked"
        assert thread.run_sync(lambda: broker.alarms.active)
        assert thread.run_sync(lambda: broker.journal.write_errors) == 0, "the journal hit ENOSPC"
        assert shutil.disk_usage(small_disk).free > 0
        assert thread.run_sync(lambda: broker.disk_monitor.early_checks) > 0
        confirmed = publisher.acked
        # Every confirmed message is in the queue.
        count = thread.run_sync(lambda: broker.vhost.queues["fill"].message_count)
        assert count >= confirmed > 0
        # Consumers are not blocked: draining frees the disk and clears the alarm.
        consumer = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = consumer.channel()
        while channel.basic_get("fill", auto_ack=True)[0] is not None:
            pass
        deadline = time.monotonic() + 10
        while thread.run_sync(lambda: broker.alarms.active) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not thread.run_sync(lambda: broker.alarms.active)
        consumer.close()
        publisher.close()
    finally:
        thread.stop()


def test_the_disk_alarm_counts_the_page_files_under_a_fast_writer(small_disk: Path) -> None:
    # Transient messages to a long queue go to DATA_DIR/paging, not to the
    # journal: the early check must count those writes too, or the margin is
    # gone between two once-a-second looks and the page files hit ENOSPC.
    settings = Settings(disk_free_limit=AbsoluteLimit(LIMIT), paging_queue_bytes=1024 * 1024)
    thread = BrokerThread(data_dir=small_disk / "data", settings=settings)
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("paged")
        connection.close()
        publisher = Publisher(thread.url)
        sent = 0
        deadline = time.monotonic() + 10
        blocked = False
        while time.monotonic() < deadline:
            sent = publisher.publish_many("paged", [BODY] * 16, TRANSIENT)
            try:
                publisher.wait_confirms(sent, timeout=2)
            except TimeoutError:
                blocked = True  # the broker stopped reading us: the alarm is on
                break
        broker = thread.broker
        assert blocked, "the publisher was never blocked"
        assert thread.run_sync(lambda: broker.alarms.active)
        # Let the paging task write everything it holds, then look.
        time.sleep(1.5)
        paging = broker.paging
        assert thread.run_sync(lambda: paging.write_errors) == 0, "the page files hit ENOSPC"
        assert thread.run_sync(lambda: paging.bytes_written) > LIMIT // 4
        assert thread.run_sync(lambda: paging.unwritten_bytes) == 0
        assert thread.run_sync(lambda: broker.journal.write_errors) == 0
        assert thread.run_sync(lambda: broker.disk_monitor.early_checks) > 0
        count = thread.run_sync(lambda: broker.vhost.queues["paged"].message_count)
        assert count >= publisher.acked > 0
        # Draining the queue deletes the page files and clears the alarm.
        consumer = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = consumer.channel()
        got = 0
        while channel.basic_get("paged", auto_ack=True)[0] is not None:
            got += 1
        assert got == count
        deadline = time.monotonic() + 10
        while thread.run_sync(lambda: broker.alarms.active) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not thread.run_sync(lambda: broker.alarms.active)
        consumer.close()
        publisher.close()
    finally:
        thread.stop()


def test_a_broker_stops_cleanly_on_a_full_disk(small_disk: Path) -> None:
    # The journal's clean-shutdown marker cannot be written: the stop goes
    # on (it used to raise ENOSPC out of the broker), and the next start
    # recovers the messages as after a crash.
    data = small_disk / "data"
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("kept", durable=True)
        channel.basic_publish("", "kept", b"m", pika.BasicProperties(delivery_mode=2))
        connection.close()
        fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            for size in (1 << 20, 4096, 1):  # to the last byte
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
    finally:
        thread.stop()  # raised "the broker died while running" before
    assert not (data / "journal" / "clean-shutdown").exists()
    assert not (data / "journal" / "clean-shutdown.tmp").exists()
    (small_disk / "filler").unlink()
    again = BrokerThread(data_dir=data)
    again.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(again.url))
        method, _properties, body = connection.channel().basic_get("kept", auto_ack=True)
        assert body == b"m" and method.redelivered
        connection.close()
    finally:
        again.stop()


def test_closing_a_blocked_connection_gets_close_ok_and_crashes_nothing(tmp_path: Path) -> None:
    thread = BrokerThread(data_dir=tmp_path / "data")
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        events: list[str] = []
        connection.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
        channel = connection.channel()
        channel.queue_declare("q", durable=True)
        channel.basic_publish("", "q", b"1", pika.BasicProperties(delivery_mode=2))
        thread.run_sync(lambda: thread.broker.alarms.set("disk"))
        channel.basic_publish("", "q", b"2", pika.BasicProperties(delivery_mode=2))
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        assert events == ["blocked"]
        started = time.monotonic()
        connection.close()  # waits for close-ok; would time out on EOF
        assert time.monotonic() - started < 3
        time.sleep(0.3)
        assert thread.run_sync(lambda: thread.broker.crashed_connections) == 0
        thread.run_sync(lambda: thread.broker.alarms.clear("disk"))
    finally:
        thread.stop()
