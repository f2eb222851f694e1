"""The disk alarm (connection.blocked) and writes that fail on a full disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pika
import pytest

from broker.alarms.disk import parse_size
from broker.testing import BrokerThread


def test_parse_size_accepts_rabbitmq_style_units() -> None:
    assert parse_size("50MB") == 50_000_000
    assert parse_size("1GiB") == 2**30
    assert parse_size("2gb") == 2_000_000_000
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError):
        parse_size("lots")


def test_publishers_are_blocked_while_disk_is_low_and_unblocked_after(tmp_path: Path) -> None:
    thread = BrokerThread(data_dir=tmp_path)
    thread.start()
    try:
        alarm = thread.broker.disk_monitor
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        events: list[str] = []
        connection.add_on_connection_blocked_callback(lambda _c, _m: events.append("blocked"))
        connection.add_on_connection_unblocked_callback(lambda _c, _m: events.append("unblocked"))
        channel = connection.channel()
        channel.queue_declare("q", durable=True)
        channel.confirm_delivery()
        channel.basic_publish("", "q", b"before", pika.BasicProperties(delivery_mode=2))

        # A limit above the free space of the real disk: the alarm goes off.
        def raise_limit() -> bool:
            alarm.limit = alarm.free_bytes() + 2**50
            return alarm.check()

        assert thread.run_sync(raise_limit)
        # This publish is read, then the connection is blocked before the next read.
        channel.basic_publish("", "q", b"during", pika.BasicProperties(delivery_mode=2))
        connection.process_data_events(time_limit=0.3)
        assert events == ["blocked"]
        # A consumer is not blocked: it drains and acks.
        consumer = pika.BlockingConnection(pika.URLParameters(thread.url))
        method, _p, body = consumer.channel().basic_get("q", auto_ack=True)
        assert body == b"before"
        consumer.close()

        def lower_limit() -> bool:
            alarm.limit = 0
            return alarm.check()

        assert not thread.run_sync(lower_limit)
        deadline = time.monotonic() + 5
        while events != ["blocked", "unblocked"] and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        assert events == ["blocked", "unblocked"]
        channel.basic_publish("", "q", b"after", pika.BasicProperties(delivery_mode=2))
        bodies = []
        while (got := channel.basic_get("q", auto_ack=True))[0] is not None:
            bodies.append(got[2])
        assert bodies == [b"during", b"after"]
        connection.close()
    finally:
        thread.stop()


def test_a_write_that_fails_leaves_no_half_batch(tmp_path: Path) -> None:
    # A real write failure: RLIMIT_FSIZE makes write() fail with EFBIG once the
    # file would pass the limit, as ENOSPC does on a full disk.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from broker.storage import records as r
        from broker.storage.segments import SegmentWriter, segment_path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
        writer = SegmentWriter(Path({str(tmp_path)!r}))
        seq, failures, good = 1, 0, 0
        for batch in range(40):
            data = b"".join(
                r.encode_record(r.ACK, seq + i, r.encode_ids(range(40))) for i in range(3)
            )
            try:
                writer.write_batch([(1, data)], [])
                seq += 3
                good += 3
            except OSError:
                failures += 1
        print(good, failures, segment_path(Path({str(tmp_path)!r}), 1).stat().st_size)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    good, failures, size = map(int, out.stdout.split())
    assert failures > 0 and good > 0
    from broker.storage import records as r
    from broker.storage.segments import segment_path

    scanned = r.scan(segment_path(tmp_path, 1).read_bytes())
    assert not scanned.damage  # every failed batch was cut back
    assert len(scanned.records) == good
    assert scanned.valid_end == size
