"""Persistent messages through a real broker: restart, order, redelivered, confirms, damage."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pytest
from durability_helpers import PERSISTENT, TRANSIENT, Publisher, journal_bodies

from broker.storage import records as r
from broker.storage.segments import list_segments, segment_path
from broker.testing import BrokerThread


@contextmanager
def broker_on(data_dir: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=data_dir)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def drain(url: str, queue: str) -> list[tuple[bytes, bool]]:
    """(body, redelivered) of every ready message, consumed with auto-ack."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        out = []
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((body, method.redelivered))
    finally:
        connection.close()


def test_persistent_messages_on_durable_queues_survive_restart(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        ch = connection.channel()
        ch.confirm_delivery()
        ch.queue_declare("durable", durable=True)
        ch.queue_declare("transient", durable=False)
        ch.exchange_declare("fan", "fanout", durable=True)
        ch.queue_declare("durable2", durable=True)
        ch.queue_bind("durable", "fan")
        ch.queue_bind("durable2", "fan")
        persistent = pika.BasicProperties(delivery_mode=2)
        for i in range(30):
            ch.basic_publish("", "durable", b"p%d" % i, persistent)
            ch.basic_publish("", "durable", b"t%d" % i)  # not persistent: lost
            ch.basic_publish("", "transient", b"x%d" % i, persistent)  # transient queue: lost
        ch.basic_publish("fan", "", b"both", persistent)  # one message, two durable queues
        # Acked ones must not come back; delivered-unacked ones come back redelivered.
        for _ in range(4):
            method, _p, body = ch.basic_get("durable")
            if body.startswith(b"p"):
                ch.basic_ack(method.delivery_tag)
        held = []
        for _ in range(3):
            method, _p, body = ch.basic_get("durable")
            held.append(body)
        ch.basic_get("durable2", auto_ack=True)  # no-ack: gone
        connection.close()  # held deliveries are requeued, still marked delivered

    with broker_on(tmp_path) as thread:
        got = drain(thread.url, "durable")
        assert "transient" not in thread.broker.vhost.queues  # with its messages
        assert drain(thread.url, "durable2") == []
    bodies = [body for body, _ in got]
    # p0, p1 acked (t0, t1 were transient); held = t2, p2, t3 -> only p2 is persistent.
    expected = [b"p%d" % i for i in range(2, 30)] + [b"both"]
    assert bodies == expected
    redelivered = {body for body, flag in got if flag}
    assert held == [b"p2", b"t2", b"p3"]
    assert redelivered == {b"p2", b"p3"}


def test_group_commit_many_publishes_share_an_fsync(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("q", durable=True)
        connection.close()
        publisher = Publisher(thread.url)
        count = 0
        for _round in range(5):
            last = publisher.publish_many(
                "q", [b"m%d" % (count + i) for i in range(400)], PERSISTENT
            )
            count += 400
        publisher.wait_confirms(last)
        assert not publisher.nacked
        journal = thread.broker.vhost.journal
        batches, fsyncs = thread.run_sync(lambda: (journal.batches, journal.fsyncs))
        publisher.close()
        # 2000 confirmed messages; a fsync each would be 2000.
        assert 1 <= fsyncs <= count / 10, (batches, fsyncs)
        on_disk = journal_bodies(tmp_path)["q"]
        assert on_disk == [b"m%d" % i for i in range(count)]


def test_confirm_is_sent_only_once_the_message_is_written(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        ch = connection.channel()
        ch.queue_declare("q", durable=True)
        publisher = Publisher(thread.url)
        for i in range(40):
            seq = publisher.publish_many("q", [b"a%d" % i, b"b%d" % i], PERSISTENT)
            publisher.wait_confirms(seq)
            # When the confirm arrives the records are in the segment file already.
            assert journal_bodies(tmp_path)["q"][-2:] == [b"a%d" % i, b"b%d" % i]
        publisher.close()
        connection.close()


def test_transient_confirms_are_not_held_behind_an_idle_journal(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread:
        publisher = Publisher(thread.url)
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("tq")
        seq = publisher.publish_many("tq", [b"x"] * 100, TRANSIENT)
        publisher.wait_confirms(seq)
        journal = thread.broker.vhost.journal
        assert thread.run_sync(lambda: journal.appended) == 0
        publisher.close()
        connection.close()


def test_deleted_queue_messages_do_not_come_back_in_a_new_queue_of_that_name(
    tmp_path: Path,
) -> None:
    with broker_on(tmp_path) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        ch = connection.channel()
        ch.confirm_delivery()
        ch.queue_declare("q", durable=True)
        ch.queue_declare("purged", durable=True)
        for i in range(5):
            ch.basic_publish("", "q", b"old%d" % i, pika.BasicProperties(delivery_mode=2))
            ch.basic_publish("", "purged", b"old%d" % i, pika.BasicProperties(delivery_mode=2))
        ch.queue_delete("q")
        ch.queue_purge("purged")
        ch.queue_declare("q", durable=True)
        ch.basic_publish("", "q", b"new", pika.BasicProperties(delivery_mode=2))
        connection.close()
    with broker_on(tmp_path) as thread:
        assert drain(thread.url, "q") == [(b"new", False)]
        assert drain(thread.url, "purged") == []


def _fill(data_dir: Path, count: int) -> None:
    with broker_on(data_dir) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("q", durable=True)
        connection.close()
        publisher = Publisher(thread.url)
        seq = publisher.publish_many(
            "q", [b"m%03d" % i + b"." * (i % 37) for i in range(count)], PERSISTENT
        )
        publisher.wait_confirms(seq)
        publisher.close()


@pytest.mark.parametrize("seed", range(6))
def test_torn_tail_recovers_every_whole_record_before_it(tmp_path: Path, seed: int) -> None:
    pristine = tmp_path / "pristine"
    _fill(pristine, 60)
    directory = pristine / "journal"
    (last,) = list_segments(directory)
    raw = segment_path(directory, last).read_bytes()
    ends = [rec.offset + rec.size for rec in r.scan(raw).records]
    rng = random.Random(seed)
    for round_ in range(4):
        work = tmp_path / f"round{round_}"
        shutil.copytree(pristine, work)
        cut = rng.randrange(0, len(raw))
        path = segment_path(work / "journal", last)
        with open(path, "r+b") as f:
            f.truncate(cut)
        whole = sum(1 for end in ends if end <= cut)
        with broker_on(work) as thread:
            # The torn tail was cut off: a second start finds a clean file.
            assert path.stat().st_size == (ends[whole - 1] if whole else 0)
            got = [body for body, _ in drain(thread.url, "q")]
        assert got == [b"m%03d" % i + b"." * (i % 37) for i in range(whole)]


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bytes_lose_only_the_damaged_record(tmp_path: Path, seed: int) -> None:
    pristine = tmp_path / "pristine"
    _fill(pristine, 40)
    directory = pristine / "journal"
    (last,) = list_segments(directory)
    raw = segment_path(directory, last).read_bytes()
    records = r.scan(raw).records
    rng = random.Random(seed)
    for round_ in range(4):
        work = tmp_path / f"round{round_}"
        shutil.copytree(pristine, work)
        victim = rng.randrange(len(records))
        record = records[victim]
        position = rng.randrange(record.offset, record.offset + record.size)
        data = bytearray(raw)
        data[position] ^= rng.randrange(1, 256)
        segment_path(work / "journal", last).write_bytes(bytes(data))
        with broker_on(work) as thread:
            got = [body for body, _ in drain(thread.url, "q")]
        expected = [b"m%03d" % i + b"." * (i % 37) for i in range(40) if i != victim]
        assert got == expected
