"""The memory alarm (vm_memory_high_watermark): connection.blocked as RabbitMQ sends it.

The reason texts were read from RabbitMQ 3.10.8 on a private node
(`reference-rabbitmq start 5681`; `rabbitmqctl set_vm_memory_high_watermark
0.0001`, `set_disk_free_limit 10000GB`): "low on memory", "low on disk", and
"low on disk & memory" with both alarms on, whichever went off first; one
blocked/unblocked pair per connection, the unblocked only once every alarm
has cleared.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pika
import pytest

from broker.alarms.memory import MemoryMonitor, cgroup_memory_limit, read_rss, watermark_bytes
from broker.alarms.state import MEMORY, ResourceAlarms
from broker.settings import AbsoluteLimit, Settings
from broker.testing import BrokerThread

# Any broker's RSS is above one byte: the alarm is on from the start.
TINY = Settings(vm_memory_high_watermark=AbsoluteLimit(1))


def _pump(connection: pika.BlockingConnection, events: list[Any], want: int, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while len(events) < want and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)


def _watch(url: str) -> tuple[pika.BlockingConnection, list[Any]]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    events: list[Any] = []
    connection.add_on_connection_blocked_callback(
        lambda _c, frame: events.append(("blocked", frame.method.reason)))
    connection.add_on_connection_unblocked_callback(lambda _c, _f: events.append("unblocked"))
    return connection, events


def _health(broker: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        broker.management_url + "/api/health/checks/alarms",
        headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},  # guest:guest
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_memory_alarm_blocks_publishers_and_unblocks_them() -> None:
    thread = BrokerThread(settings=TINY)
    thread.start()
    try:
        broker = thread.broker
        monitor = broker.memory_monitor
        assert monitor.active and broker.alarms.resources == {MEMORY}
        status, body = _health(broker)
        assert status == 503 and [a["resource"] for a in body["alarms"]] == ["memory"]

        connection, events = _watch(thread.url)
        channel = connection.channel()
        channel.queue_declare("mem-q")
        # Read and routed; then the connection is blocked before its next read.
        channel.basic_publish("", "mem-q", b"during")
        _pump(connection, events, 1)
        assert events == [("blocked", "low on memory")]
        # A consumer is not blocked.
        consumer = pika.BlockingConnection(pika.URLParameters(thread.url))
        assert consumer.channel().basic_get("mem-q", auto_ack=True)[2] == b"during"
        consumer.close()

        def watermark_up() -> bool:
            monitor.limit = 2**62
            return monitor.check()

        assert not thread.run_sync(watermark_up)
        _pump(connection, events, 2)
        assert events == [("blocked", "low on memory"), "unblocked"]
        assert _health(broker) == (200, {"status": "ok"})
        channel.basic_publish("", "mem-q", b"after")
        deadline = time.monotonic() + 5
        got = None
        while got is None and time.monotonic() < deadline:
            got = channel.basic_get("mem-q", auto_ack=True)[2]
        assert got == b"after"
        connection.close()
    finally:
        thread.stop()


def test_disk_and_memory_alarms_together_are_one_blocked_unblocked_pair(tmp_path: Path) -> None:
    thread = BrokerThread(data_dir=tmp_path, settings=TINY)
    thread.start()
    try:
        broker = thread.broker
        memory, disk = broker.memory_monitor, broker.disk_monitor

        def set_limits(memory_limit: int | None = None, disk_limit: int | None = None) -> None:
            if memory_limit is not None:
                memory.limit = memory_limit
                memory.check()
            if disk_limit is not None:
                disk.limit = disk_limit
                disk.check()

        # Both alarms on before the connection publishes: the reason names both.
        thread.run_sync(lambda: set_limits(disk_limit=disk.free_bytes() + 2**50))
        first, first_events = _watch(thread.url)
        first.channel().basic_publish("", "nowhere", b"x")
        _pump(first, first_events, 1)
        assert first_events == [("blocked", "low on disk & memory")]

        # Clearing one alarm unblocks nobody; clearing the last one unblocks.
        thread.run_sync(lambda: set_limits(memory_limit=2**62))
        first.process_data_events(time_limit=0.3)
        assert first_events == [("blocked", "low on disk & memory")]

        # A connection blocked by one alarm is not told again when the other goes off.
        second, second_events = _watch(thread.url)
        second.channel().basic_publish("", "nowhere", b"x")
        _pump(second, second_events, 1)
        assert second_events == [("blocked", "low on disk")]
        thread.run_sync(lambda: set_limits(memory_limit=1))
        second.process_data_events(time_limit=0.3)
        thread.run_sync(lambda: set_limits(disk_limit=0))
        second.process_data_events(time_limit=0.3)
        assert second_events == [("blocked", "low on disk")]  # memory still on
        thread.run_sync(lambda: set_limits(memory_limit=2**62))
        _pump(first, first_events, 2)
        _pump(second, second_events, 2)
        assert first_events == [("blocked", "low on disk & memory"), "unblocked"]
        assert second_events == [("blocked", "low on disk"), "unblocked"]
        first.close()
        second.close()
    finally:
        thread.stop()


# -- the monitor alone ---------------------------------------------------------------


def test_watermark_is_rabbitmqs() -> None:
    gib = 2**30
    assert watermark_bytes(available=10 * gib) == 4 * gib  # relative 0.4 by default
    assert watermark_bytes(relative=0.5, available=10 * gib) == 5 * gib
    assert watermark_bytes(relative=2.5, available=10 * gib) == 10 * gib  # at most 1.0
    assert watermark_bytes(absolute=gib, available=10 * gib) == gib
    assert watermark_bytes(absolute=20 * gib, available=10 * gib) == 10 * gib  # at most the RAM
    assert watermark_bytes(relative=0.0, available=10 * gib) == 0


def test_cgroup_limit_is_read_where_the_process_is(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    (tmp_path / "sys" / "a" / "b").mkdir(parents=True)
    proc.write_text("0::/a/b\n")
    (tmp_path / "sys" / "a" / "b" / "memory.max").write_text("536870912\n")
    assert cgroup_memory_limit(tmp_path / "sys", proc) == 512 * 2**20
    (tmp_path / "sys" / "a" / "b" / "memory.max").write_text("max\n")
    assert cgroup_memory_limit(tmp_path / "sys", proc) is None
    # cgroup v1, whose "no limit" is a huge number.
    proc.write_text("4:memory:/c\n")
    (tmp_path / "sys" / "memory" / "c").mkdir(parents=True)
    (tmp_path / "sys" / "memory" / "c" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_memory_limit(tmp_path / "sys", proc) is None
    (tmp_path / "sys" / "memory" / "c" / "memory.limit_in_bytes").write_text("1073741824\n")
    assert cgroup_memory_limit(tmp_path / "sys", proc) == 2**30


def test_monitor_sets_and_clears_the_alarm_and_reports_paging() -> None:
    alarms = ResourceAlarms()
    rss = [100]
    paging: list[bool] = []
    trims: list[int] = []
    monitor = MemoryMonitor(alarms, 1000, rss=lambda: rss[0], on_paging=paging.append,
                            trim=lambda: trims.append(1))
    assert not monitor.check() and not monitor.paging and trims == []
    rss[0] = 501  # above 0.5 of the watermark: pages, no alarm (and one trim first)
    assert not monitor.check() and paging == [True] and trims == [1]
    rss[0] = 1000  # at the watermark: RabbitMQ alarms only above it
    assert not monitor.check()
    rss[0] = 1001
    assert monitor.check() and alarms.reason() == "low on memory"
    rss[0] = 400
    assert not monitor.check() and not alarms.active and paging == [True, False]
    assert trims == [1]  # at most every TRIM_INTERVAL


def test_rss_is_read_from_proc() -> None:
    rss = read_rss()
    if rss is None:
        pytest.skip("no /proc/self/statm")
    assert 10 * 2**20 < rss < 2**40
