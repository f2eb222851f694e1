"""A data directory from before vhosts comes back, whole, in vhost `/`.

`tests/fixtures/data-e4724bc/` holds two data directories written by Warren
e4724bc (the last tree before vhosts and users were stored: a version 1
`definitions.bin`, journal records without a vhost), made by
`make_data_dir.py` there: one stopped cleanly, one killed. Today's broker
opens a copy of each, and everything is in `/`: exchanges (and an
exchange-to-exchange binding), durable queues with their arguments, bindings,
the persistent messages with their properties; not the transient message, the
acknowledged one, or the non-durable queue. `guest` is seeded, as the broker of
then had it. A second start reads what the first one wrote back (version 2).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from broker.testing import BrokerThread

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data-e4724bc"


def _check_everything_is_in_slash(thread: BrokerThread, first_start: bool) -> None:
    def model() -> tuple[list[str], dict[str, object], list[str]]:
        assert thread.broker is not None
        vhost = thread.broker.vhosts["/"]
        return (
            list(thread.broker.vhosts),
            dict(vhost.queues["legacy.orders"].arguments),
            sorted(thread.broker.access.users),
        )

    vhosts, arguments, users = thread.run_sync(model)
    assert vhosts == ["/"]
    assert arguments == {"x-max-length": 100}
    assert users == ["guest"]
    connection = pika.BlockingConnection(pika.URLParameters(thread.url))
    try:
        channel = connection.channel()
        for exchange, kind in (("legacy.topic", "topic"), ("legacy.fanout", "fanout")):
            channel.exchange_declare(exchange, kind, durable=True, passive=True)
        counts = {
            name: channel.queue_declare(name, durable=True, passive=True).method.message_count
            for name in ("legacy.orders", "legacy.audit", "legacy.done")
        }
        if first_start:
            assert counts == {"legacy.orders": 2, "legacy.audit": 1, "legacy.done": 0}
            got = []
            for _ in range(2):
                method, properties, body = channel.basic_get("legacy.orders", auto_ack=True)
                assert method is not None
                got.append((body, method.routing_key, properties.message_id,
                            properties.headers, properties.content_type,
                            properties.delivery_mode))
            assert got == [
                (b"first", "order.created", "m1", {"n": 1}, "text/plain", 2),
                (b"second", "order.paid", "m2", {"n": 2}, "text/plain", 2),
            ]
            method, _properties, body = channel.basic_get("legacy.audit", auto_ack=True)
            assert (body, method.exchange, method.routing_key) == (
                b"first", "legacy.topic", "order.created"
            )
            # The bindings route, the exchange-to-exchange one included.
            channel.confirm_delivery()
            channel.basic_publish("legacy.topic", "order.created", b"new",
                                  pika.BasicProperties(delivery_mode=2))
        else:
            assert counts == {"legacy.orders": 1, "legacy.audit": 1, "legacy.done": 0}
            for queue in ("legacy.orders", "legacy.audit"):
                assert channel.basic_get(queue, auto_ack=True)[2] == b"new"
        with pytest.raises(ChannelClosedByBroker) as missing:
            channel.queue_declare("legacy.transient", passive=True)
        assert missing.value.reply_code == 404
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.parametrize("stopped", ["clean", "killed"])
def test_a_data_dir_from_before_vhosts_recovers_into_slash(tmp_path: Path, stopped: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / stopped, data)
    assert (data / "definitions.bin").read_bytes().startswith(b"WARRENDEFS1\n")
    for first_start in (True, False):
        thread = BrokerThread(data_dir=data)
        thread.start()
        try:
            _check_everything_is_in_slash(thread, first_start)
        finally:
            thread.stop()
