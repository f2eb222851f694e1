"""Deduplication caches of durable exchanges and queues survive SIGKILL (issue 18, item 4).

Each cache insert is a DEDUP journal record written with the group commit,
so once the publisher has the confirm of the message that inserted a key,
the key is on disk: a broker killed with SIGKILL and restarted still drops
the same key. Expiries are wall-clock times: a key whose x-cache-ttl ran out
while the broker was down lets its message through. A deleted exchange's or
queue's keys never come back.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pika
from test_crash import start_broker

from broker.storage import records as r
from broker.storage.recovery import recover

DEDUP = {"x-message-deduplication": True}


def _props(key: str) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-deduplication-header": key})


def _bodies(channel: Any, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def _declare(channel: Any) -> None:
    channel.exchange_declare("orders", "fanout", durable=True, arguments=DEDUP)
    channel.queue_declare("orders-q", durable=True)
    channel.queue_bind("orders-q", "orders")
    channel.queue_declare("intake", durable=True, arguments={**DEDUP, "x-cache-size": 100})
    channel.exchange_declare(
        "short", "fanout", durable=True, arguments={**DEDUP, "x-cache-ttl": 1000}
    )
    channel.queue_bind("orders-q", "short")


def test_a_confirmed_key_is_still_a_duplicate_after_sigkill(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        _declare(channel)
        channel.confirm_delivery()  # each publish returns once basic.ack came
        for i in range(5):
            channel.basic_publish("orders", "", b"o%d" % i, _props(f"order-{i}"))
            channel.basic_publish("", "intake", b"i%d" % i, _props(f"intake-{i}"))
        channel.basic_publish("short", "", b"s", _props("brief"))
        killed = time.monotonic()
        process.send_signal(signal.SIGKILL)  # no clean shutdown, no flush
        process.wait(timeout=10)
        connection = None

        process, url = start_broker(data_dir, log)
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.confirm_delivery()
        assert len(_bodies(channel, "orders-q")) == 0  # transient messages: gone
        assert [b for b in _bodies(channel, "intake")] == []
        for i in range(5):
            channel.basic_publish("orders", "", b"again", _props(f"order-{i}"))
            channel.basic_publish("", "intake", b"again", _props(f"intake-{i}"))
        channel.basic_publish("orders", "", b"new", _props("order-new"))
        channel.basic_publish("", "intake", b"new", _props("intake-new"))
        assert _bodies(channel, "orders-q") == [b"new"]
        assert _bodies(channel, "intake") == [b"new"]
        # The 1 s ttl of "brief" ran out (wall clock) across the restart.
        time.sleep(max(0.0, killed + 1.2 - time.monotonic()))
        channel.basic_publish("short", "", b"s2", _props("brief"))
        assert _bodies(channel, "orders-q") == [b"s2"]
        connection.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def test_keys_of_a_deleted_exchange_or_queue_do_not_come_back(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        _declare(channel)
        channel.confirm_delivery()
        channel.basic_publish("orders", "", b"o", _props("k"))
        channel.basic_publish("", "intake", b"i", _props("k"))
        channel.exchange_delete("orders")
        channel.queue_delete("intake")
        _declare(channel)  # the same names, new caches
        channel.basic_publish("orders", "", b"o2", _props("k"))  # confirmed: all on disk
        channel.basic_publish("", "intake", b"i2", _props("k"))
        assert _bodies(channel, "intake") == [b"i2"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        process, url = start_broker(data_dir, log)
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.basic_publish("orders", "", b"o3", _props("k"))  # the new cache's key: dropped
        channel.basic_publish("", "intake", b"i3", _props("k"))
        channel.basic_publish("", "intake", b"i4", _props("other"))
        assert _bodies(channel, "intake") == [b"i4"]
        assert _bodies(channel, "orders-q") == [b"o", b"o2"][:0]  # transient, gone at restart
        connection.close()
    finally:
        process.kill()
        process.wait(timeout=10)
    # The journal holds the drop: recovery finds only the new caches' keys.
    recovered = recover(data_dir / "journal")
    assert {owner: list(keys) for owner, keys in recovered.dedup.items()} == {
        ("exchange", "/", "orders"): [recovered_key("k")],
        ("queue", "/", "intake"): [recovered_key("k"), recovered_key("other")],
    }


def recovered_key(value: str) -> bytes:
    from broker.core.features.deduplication import dedup_key

    return dedup_key(value)


def test_dedup_records_round_trip() -> None:
    payload = r.encode_dedup("queue", "vh", "q", b"\x00\x00\x00\x01k", 123)
    assert r.decode_dedup(payload) == r.Dedup("queue", "vh", "q", b"\x00\x00\x00\x01k", 123)
    payload = r.encode_dedup("exchange", "/", "x", b"key", None)
    assert r.decode_dedup(payload).expires is None
    drop = r.encode_dedup("exchange", "/", "x")
    assert r.decode_dedup(drop, r.FLAG_DEDUP_DROP) == r.Dedup("exchange", "/", "x", None, None)


def test_a_deleted_vhost_lets_go_of_its_keys(tmp_path: Path) -> None:
    """Deleting a vhost drops its exchanges' keys: the journal stops counting
    them (their segments may go) and they do not come back in a new vhost."""
    from broker.auth.permissions import Permission
    from broker.testing import BrokerThread

    thread = BrokerThread(data_dir=tmp_path / "data")
    thread.start()
    try:
        broker = thread.broker
        assert broker is not None
        thread.run_sync(lambda: broker.vhosts.create("shop"))
        thread.run_sync(lambda: broker.access.set_permission("guest", "shop", Permission()))
        url = thread.url.rsplit("/", 1)[0] + "/shop"
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.exchange_declare("orders", "fanout", durable=True, arguments=DEDUP)
        channel.confirm_delivery()
        channel.basic_publish("orders", "", b"o", _props("k"))
        connection.close()
        journal = broker.journal
        assert journal is not None
        live_before = sum(journal._live.values())
        thread.run_sync(lambda: broker.vhosts.delete("shop"))
        assert sum(journal._live.values()) == live_before - 1
    finally:
        thread.stop()
    recovered = recover(tmp_path / "data" / "journal")
    assert ("exchange", "shop", "orders") not in recovered.dedup
