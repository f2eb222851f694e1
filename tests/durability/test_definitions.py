"""Durable definitions survive a restart; transient ones do not (real pika clients).

The broker runs in-process (`broker.testing.BrokerThread`) on a data
directory; "restart" is a graceful stop and a new broker on the same
directory. Crash restarts are in test_crash.py.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pika.exceptions
import pytest

from broker.storage.definitions import FILE_NAME, DefinitionsStore
from broker.testing import BrokerThread


@contextmanager
def broker_on(data_dir: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=data_dir)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@contextmanager
def channel_to(thread: BrokerThread) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(thread.url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def exists(thread: BrokerThread, kind: str, name: str) -> bool:
    with channel_to(thread) as channel:
        try:
            if kind == "queue":
                channel.queue_declare(name, passive=True)
            else:
                channel.exchange_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert error.reply_code == 404
            return False
        return True


ARGS = {
    "x-max-length": 1000,
    "x-message-ttl": 60000,
    "x-dead-letter-exchange": "dlx",
    "x-overflow": "reject-publish",
    "custom-str": "hello",
    "custom-decimal": decimal.Decimal("1.5"),
    "custom-table": {"nested": [1, "two", True]},
}


def test_durable_definitions_survive_restart_transient_ones_do_not(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread, channel_to(thread) as ch:
        ch.exchange_declare(
            "d.topic", "topic", durable=True, arguments={"alternate-exchange": "d.ae"}
        )
        ch.exchange_declare("d.ae", "fanout", durable=True)
        ch.exchange_declare("d.headers", "headers", durable=True, internal=False)
        ch.exchange_declare("d.auto", "direct", durable=True, auto_delete=True)
        ch.exchange_declare("t.fanout", "fanout", durable=False)
        ch.queue_declare("d.q", durable=True, arguments=ARGS)
        ch.queue_declare("d.q2", durable=True)
        ch.queue_declare("d.auto.q", durable=True, auto_delete=True)
        ch.queue_declare("t.q", durable=False)
        ch.queue_declare("d.excl", durable=True, exclusive=True)
        ch.queue_bind("d.q", "d.topic", "a.*.c")
        ch.queue_bind("d.q2", "d.headers", "", arguments={"x-match": "any", "k": "v"})
        ch.queue_bind("d.q2", "d.auto", "k")
        ch.queue_bind("t.q", "d.topic", "t.#")  # transient queue: binding not durable
        ch.queue_bind("d.q", "t.fanout")  # transient exchange: binding not durable
        ch.queue_bind("d.q2", "amq.direct", "built-in")  # built-in durable source
        ch.exchange_bind("d.ae", "d.topic", "x.#")  # exchange-to-exchange, both durable
        ch.exchange_declare("d.gone", "direct", durable=True)
        ch.exchange_delete("d.gone")
        ch.queue_declare("d.gone.q", durable=True)
        ch.queue_delete("d.gone.q")
        ch.queue_bind("d.q2", "d.topic", "unbound.later")
        ch.queue_unbind("d.q2", "d.topic", "unbound.later")

    with broker_on(tmp_path) as thread:
        for name in ("d.topic", "d.ae", "d.headers", "d.auto"):
            assert exists(thread, "exchange", name), name
        for name in ("t.fanout", "d.gone"):
            assert not exists(thread, "exchange", name), name
        for name in ("d.q", "d.q2", "d.auto.q"):
            assert exists(thread, "queue", name), name
        for name in ("t.q", "d.excl", "d.gone.q"):
            assert not exists(thread, "queue", name), name

        with channel_to(thread) as ch:
            # Redeclaring with the same properties and arguments is accepted...
            ch.exchange_declare(
                "d.topic", "topic", durable=True, arguments={"alternate-exchange": "d.ae"}
            )
            ch.queue_declare("d.q", durable=True, arguments=ARGS)
            ch.exchange_declare("d.auto", "direct", durable=True, auto_delete=True)
            ch.queue_declare("d.auto.q", durable=True, auto_delete=True)
        with channel_to(thread) as ch:
            # ...and a different argument is refused: the arguments came back.
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                ch.queue_declare("d.q", durable=True, arguments={**ARGS, "x-max-length": 5})
            assert info.value.reply_code == 406
        with channel_to(thread) as ch:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                ch.exchange_declare("d.topic", "topic", durable=True)
            assert info.value.reply_code == 406

        # Bindings route as before the restart.
        def routes(thread: BrokerThread) -> dict[str, object]:
            def collect() -> dict[str, object]:
                topology = thread.broker.vhost.topology
                return {
                    "a.b.c": topology.route("d.topic", "a.b.c", None),
                    "t.x": topology.route("d.topic", "t.x", None),
                    "x.y": topology.route("d.topic", "x.y", None),
                    "headers": topology.route("d.headers", "", {"k": "v"}),
                    "auto": topology.route("d.auto", "k", None),
                    "amq.direct": topology.route("amq.direct", "built-in", None),
                    "fanout-gone": topology.has_exchange("t.fanout"),
                    "unbound": topology.route("d.topic", "unbound.later", None),
                }

            return thread.run_sync(collect)

        got = routes(thread)
        assert got["a.b.c"] == ["d.q"]
        assert got["t.x"] == []  # the transient queue's binding went with it
        assert got["x.y"] == []  # e2e binding to d.ae (fanout) which has no queue
        assert got["headers"] == ["d.q2"]
        assert got["auto"] == ["d.q2"]
        assert got["amq.direct"] == ["d.q2"]
        assert got["fanout-gone"] is False
        assert got["unbound"] == []

        def e2e() -> list[tuple[str, str]]:
            return [
                (b.source, b.destination.name)
                for b in thread.broker.vhost.topology.bindings()
                if b.destination.kind == "exchange"
            ]

        assert thread.run_sync(e2e) == [("d.topic", "d.ae")]


def test_arguments_keep_their_types(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread, channel_to(thread) as ch:
        ch.queue_declare("typed", durable=True, arguments=ARGS)
    with broker_on(tmp_path) as thread:
        arguments = thread.run_sync(lambda: dict(thread.broker.vhost.queues["typed"].arguments))
    assert arguments == ARGS
    assert type(arguments["custom-decimal"]) is decimal.Decimal


def test_deleting_durable_queue_and_exchange_is_durable(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread, channel_to(thread) as ch:
        ch.queue_declare("q", durable=True)
        ch.exchange_declare("x", "direct", durable=True)
    with broker_on(tmp_path) as thread, channel_to(thread) as ch:
        ch.queue_delete("q")
        ch.exchange_delete("x")
    with broker_on(tmp_path) as thread:
        assert not exists(thread, "queue", "q")
        assert not exists(thread, "exchange", "x")


def test_damaged_definitions_file_is_set_aside_and_broker_starts(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread, channel_to(thread) as ch:
        ch.queue_declare("q", durable=True)
    path = tmp_path / FILE_NAME
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with broker_on(tmp_path) as thread:
        assert not exists(thread, "queue", "q")
    assert (tmp_path / (FILE_NAME + ".damaged")).exists()


def test_rewrite_is_atomic_no_temp_file_left(tmp_path: Path) -> None:
    with broker_on(tmp_path) as thread, channel_to(thread) as ch:
        for i in range(20):
            ch.queue_declare(f"q{i}", durable=True)
    # .lock: the data directory's lock (broker/storage/lock.py), kept after a stop.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", FILE_NAME, "journal"]
    loaded = DefinitionsStore(tmp_path).load()
    [root] = loaded["vhosts"]
    assert root["name"] == "/"
    assert [q["name"] for q in root["queues"]] == [f"q{i}" for i in range(20)]
