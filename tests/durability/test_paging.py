"""Paging: bodies of long queues wait on disk and come back intact and in order.

A small `warren.paging.queue_bytes` makes queues page after a few messages;
the read-ahead and page-out constants are made small too so that a few
thousand messages go through many reads, refills, page-out slices and file
rolls. A model test mixes publishes (transient, persistent, with a TTL that
keeps them in memory), basic.get, consumers that ack or requeue, purges and
memory pressure on and off, and checks every message comes back where the
queue's order says, with its properties.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import pika
import pytest
import trio

from broker.client import open_connection
from broker.server import open_broker
from broker.settings import HTTPListener, Listener, Settings
from broker.storage import paging
from broker.testing import BrokerThread


def _settings(queue_bytes: int | None) -> Settings:
    return Settings(listeners_tcp=(Listener("127.0.0.1", 0),),
                    management_tcp=HTTPListener(0, "127.0.0.1"),
                    prometheus_tcp=HTTPListener(0, "127.0.0.1"),
                    paging_queue_bytes=queue_bytes)


def _body(i: int) -> bytes:
    # Sizes from 8 bytes to about 3 KiB; the number in every one of them.
    return f"{i:08d}".encode() * (1 + (i * 7919) % 400)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small read-ahead, reads, page-out slices and files: many of each."""
    monkeypatch.setattr(paging, "READ_AHEAD", 16)
    monkeypatch.setattr(paging, "READ_BYTES", 8192)
    monkeypatch.setattr(paging, "PAGE_OUT_SLICE", 37)
    monkeypatch.setattr(paging, "PRESSURE_QUEUE_BYTES", 20_000)
    monkeypatch.setattr(paging, "FILE_SIZE", 64 * 1024)


def test_a_long_queue_keeps_its_bodies_on_disk_and_delivers_them_in_order(tmp_path: Path) -> None:
    count = 5000
    thread = BrokerThread(data_dir=tmp_path, settings=_settings(64 * 1024))
    thread.start()
    try:
        broker = thread.broker
        store = broker.paging
        assert store.path == tmp_path / "paging"
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.queue_declare("long")
        channel.confirm_delivery()
        for i in range(count):
            props = pika.BasicProperties(message_id=str(i), headers={"n": i}) if i % 3 else None
            channel.basic_publish("", "long", _body(i), props)

        def state() -> dict[str, Any]:
            queue = broker.vhost.queues["long"]
            return {"ready": len(queue.ready), "paged": queue.pager.paged,
                    "memory": queue.pager.memory_cost(), "files": _files(store.path)}

        seen = thread.run_sync(state)
        assert seen["ready"] == count
        assert seen["paged"] > count * 0.9
        assert seen["memory"] < 64 * 1024 + 4096  # what stays in memory: the limit
        assert seen["files"] and all(name.endswith(".wp") for name in seen["files"])
        # The bodies go to the files (written without waiting for anything:
        # the paging task's worker thread may still be on the last batch).
        deadline = time.monotonic() + 10
        while True:
            files = thread.run_sync(state)["files"]
            on_disk = b"".join((store.path / name).read_bytes() for name in files)
            if _body(count - 1) in on_disk or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert _body(count - 1) in on_disk

        channel.basic_qos(prefetch_count=100)
        received: list[tuple[bytes, Any]] = []

        def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
            received.append((body, props))
            ch.basic_ack(method.delivery_tag)
            if len(received) == count:
                ch.stop_consuming()

        channel.basic_consume("long", on_message)
        channel.start_consuming()
        for i, (body, props) in enumerate(received):
            assert body == _body(i)
            if i % 3:
                assert props.message_id == str(i) and props.headers == {"n": i}
            else:
                assert props.message_id is None
        connection.close()

        def done() -> dict[str, Any]:
            return {"paged": store.paged, "reads": store.reads, "takes": store.takes,
                    "stalls": store.stalls, "files": _files(store.path)}

        after = thread.run_sync(done)
        assert after["paged"] == 0 and after["reads"] > 0
        assert after["takes"] == 0  # a consumer never makes the event loop read
        assert after["stalls"] < after["reads"]  # read ahead: mostly found in memory
        deadline = time.monotonic() + 5
        while after["files"] and time.monotonic() < deadline:
            time.sleep(0.01)  # deleted by the paging task's next batch
            after = thread.run_sync(done)
        assert after["files"] == []  # read back: deleted
    finally:
        thread.stop()
    assert not (tmp_path / "paging").exists()  # removed at stop


@pytest.mark.trio
async def test_get_requeue_purge_and_delete_with_paged_messages(tmp_path: Path, small: None) -> None:
    # Every message but the first is paged out at once.
    async with open_broker(settings=_settings(1), data_dir=tmp_path) as broker:
        store = broker.paging
        async with open_connection(broker.url) as conn, conn.open_channel() as ch:
            await ch.queue_declare("q")
            for i in range(300):
                await ch.publish("", "q", _body(i))
            await ch.queue_declare("q")  # after the publishes (one channel: in order)
            queue = broker.vhost.queues["q"]
            assert queue.message_count == 300 and queue.pager.paged > 250
            # Taking a paged-out head (basic.get, drop-head, dead-lettering)
            # reads it at once: here on the broker's own loop, before the
            # refill the first get asked for could run.
            entries = [queue.get() for _ in range(3)]
            assert [e.message.body for e in entries] == [_body(0), _body(1), _body(2)]
            assert store.takes == 2
            for entry in entries:
                queue.handed_out(entry, no_ack=False)
            queue.requeue(entries[:2])  # back in their place
            queue.ack(entries[2])
            got = await ch.get("q")
            assert got.body == _body(0) and got.redelivered
            await got.reject(requeue=True)
            bodies = []
            async with ch.consume("q", prefetch=10) as messages:
                async for message in messages:
                    bodies.append(message.body)
                    await message.ack()
                    if len(bodies) == 150:
                        break
            assert bodies == [_body(0), _body(1)] + [_body(i) for i in range(3, 151)]
            # Purge: the rest are gone, files too.
            await ch.queue_purge("q")
            assert queue.pager.paged == 0
            for i in range(300, 400):
                await ch.publish("", "q", _body(i))
            await ch.queue_declare("q")
            assert queue.pager.paged > 0
            message = await ch.get("q", no_ack=True)
            assert message.body == _body(300)
            await ch.queue_delete("q")
        with trio.fail_after(5):
            while _files(store.path):
                await trio.sleep(0.01)


SEEDS = [(1, 2048, False), (2, None, True), (3, 30_000, True), (4, 1, False)]


@pytest.mark.trio
@pytest.mark.parametrize(("seed", "queue_bytes", "durable"), SEEDS)
async def test_model_every_message_comes_back_in_queue_order(
    tmp_path: Path, small: None, seed: int, queue_bytes: int | None, durable: bool
) -> None:
    rng = random.Random(seed)
    async with open_broker(settings=_settings(queue_bytes), data_dir=tmp_path) as broker:
        store = broker.paging
        async with open_connection(broker.url) as conn, conn.open_channel() as ch:
            await ch.queue_declare("m", durable=durable)
            queue = broker.vhost.queues["m"]
            ready: list[int] = []  # ids in the queue, in its order (requeues go back in place)
            next_id = 0

            def check(message: Any) -> int:
                i = int(message.properties.message_id)
                assert message.body == _body(i), i
                return i

            for _step in range(60):
                op = rng.choice(["publish", "publish", "publish", "get", "consume",
                                 "pressure", "purge" if rng.random() < 0.2 else "get"])
                if op == "publish":
                    for _ in range(rng.randint(1, 200)):
                        extra: dict[str, Any] = {}
                        roll = rng.random()
                        if durable and roll < 0.2:
                            extra["persistent"] = True  # journalled, not paged by us
                        elif roll < 0.25:
                            extra["expiration"] = "600000"  # a deadline: kept in memory
                        await ch.publish("", "m", _body(next_id), message_id=str(next_id), **extra)
                        ready.append(next_id)
                        next_id += 1
                elif op == "get":
                    message = await ch.get("m")
                    if not ready:
                        assert message is None
                        continue
                    assert check(message) == ready[0]
                    if rng.random() < 0.5:
                        await message.ack()
                        ready.pop(0)
                    else:
                        await message.reject(requeue=True)
                elif op == "consume" and ready:
                    want = rng.randint(1, len(ready))
                    requeue = rng.random() < 0.3
                    # Unacknowledged deliveries must all fit in the prefetch.
                    prefetch = want if requeue else rng.choice([1, 7, 50])
                    async with conn.open_channel() as consumer_channel:
                        seen = []
                        async with consumer_channel.consume("m", prefetch=prefetch) as messages:
                            async for message in messages:
                                seen.append(check(message))
                                if not requeue:
                                    await message.ack()
                                if len(seen) == want:
                                    break
                        # Closing the channel requeues what is unacknowledged.
                    assert seen == ready[:want]
                    if not requeue:
                        del ready[:want]
                elif op == "pressure":
                    store.set_pressure(True)
                    before = -1
                    while store.paged_out != before:
                        before = store.paged_out
                        await trio.sleep(0.02)
                    store.set_pressure(False)
                elif op == "purge":
                    await ch.queue_purge("m")
                    ready.clear()
                await ch.queue_declare("m", durable=durable)  # after this channel's publishes
                assert queue.message_count == len(ready)
            # Drain: everything, in order.
            seen = []
            if ready:
                async with ch.consume("m", prefetch=100) as messages:
                    async for message in messages:
                        seen.append(check(message))
                        await message.ack()
                        if len(seen) == len(ready):
                            break
            assert seen == ready
            assert store.paged == 0
        assert store.records_written > 0
        with trio.fail_after(5):
            while _files(store.path):
                await trio.sleep(0.01)


@pytest.mark.trio
async def test_memory_pressure_pages_out_what_is_in_memory(small: None) -> None:
    # Paging only under pressure (RabbitMQ 3.10's way): all in memory first.
    async with open_broker(settings=_settings(None)) as broker:
        store = broker.paging
        async with open_connection(broker.url) as conn, conn.open_channel() as ch:
            await ch.queue_declare("p")
            for i in range(2000):
                await ch.publish("", "p", _body(i))
            await ch.queue_declare("p")
            queue = broker.vhost.queues["p"]
            assert queue.pager is None
            in_memory = queue.ready_bytes
            store.set_pressure(True)  # as the memory monitor does above the paging ratio
            with trio.fail_after(10):
                while queue.pager is None or queue.pager.memory_cost() > 20_000 + 16 * 3300:
                    await trio.sleep(0.01)
            assert queue.pager.paged_bytes > in_memory * 0.9
            # A temporary directory without a data directory.
            assert store.path.parent == Path(tempfile.gettempdir())
            assert store.path.name.startswith(f"warren-paging-{os.getpid()}-")
            # New messages are paged out at once meanwhile.
            await ch.publish("", "p", _body(2000))
            store.set_pressure(False)
            for i in range(2001, 2100):
                await ch.publish("", "p", _body(i))
            bodies = []
            async with ch.consume("p", prefetch=50) as messages:
                async for message in messages:
                    bodies.append(message.body)
                    await message.ack()
                    if len(bodies) == 2100:
                        break
            assert bodies == [_body(i) for i in range(2100)]
        path = store.path
    assert not path.exists()


def test_the_paging_directory_is_emptied_at_start(tmp_path: Path) -> None:
    (tmp_path / "paging").mkdir()
    (tmp_path / "paging" / "00000001-000001.wp").write_bytes(b"x" * 1000)
    thread = BrokerThread(data_dir=tmp_path)
    thread.start()
    try:
        assert _files(tmp_path / "paging") == []
    finally:
        thread.stop()


@pytest.mark.trio
async def test_a_priority_queue_is_not_paged_and_keeps_its_order(small: None) -> None:
    # A paged-out run is read back in arrival order; a priority queue
    # delivers by level, so it stays in memory even under pressure.
    async with open_broker(settings=_settings(1)) as broker:
        store = broker.paging
        async with open_connection(broker.url) as conn, conn.open_channel() as ch:
            await ch.queue_declare("prio", arguments={"x-max-priority": 9})
            await ch.queue_declare("plain")
            store.set_pressure(True)
            for i in range(300):
                await ch.publish("", "prio", _body(i), priority=i % 10)
                await ch.publish("", "plain", _body(i))
            await ch.queue_declare("prio", passive=True)
            queue = broker.vhost.queues["prio"]
            assert queue.pager is None and queue.message_count == 300
            assert broker.vhost.queues["plain"].pager is not None  # the same load pages a plain one
            bodies = []
            async with ch.consume("prio", prefetch=50) as messages:
                async for message in messages:
                    bodies.append(message.body)
                    await message.ack()
                    if len(bodies) == 300:
                        break
            expected = [_body(i) for level in range(9, -1, -1) for i in range(level, 300, 10)]
            assert bodies == expected
