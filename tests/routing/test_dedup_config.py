"""Deduplication in the configuration language and in definitions JSON: the
options cache-size, cache-ttl, deduplication-header and the argument
x-message-deduplication round-trip, bad values are errors, and a definitions
document with them imports into a running Warren that then deduplicates."""

from __future__ import annotations

from typing import Any

import pika
import pytest

from broker.admin.definitions import export_definitions, import_definitions
from broker.testing import BrokerThread
from routing import config

EXAMPLE = """\
exchange orders type direct durable
    cache-size 1000
    cache-ttl 1m
    deduplication-header "order-id"
    x-message-deduplication true

queue intake durable
    cache-ttl 10m
    x-message-deduplication true

bind intake to orders key "new"
"""


def test_the_options_round_trip_through_definitions() -> None:
    model = config.parse(EXAMPLE)
    assert config.format(model) == EXAMPLE
    definitions = config.to_definitions(model)
    (x,) = definitions["exchanges"]
    assert x["arguments"] == {
        "x-message-deduplication": True,
        "x-cache-size": 1000,
        "x-cache-ttl": 60_000,
        "x-deduplication-header": "order-id",
    }
    (q,) = definitions["queues"]
    assert q["arguments"] == {"x-message-deduplication": True, "x-cache-ttl": 600_000}
    back = config.from_definitions(definitions)
    assert config.to_definitions(back) == definitions
    assert config.format(back) == EXAMPLE


def test_the_raw_argument_names_are_checked_and_written_friendly() -> None:
    model = config.parse("queue q x-message-deduplication true x-cache-size 5 x-cache-ttl 30s\n")
    assert model.declarations[0].arguments == {
        "x-message-deduplication": True, "x-cache-size": 5, "x-cache-ttl": 30_000,
    }  # fmt: skip
    assert config.format(model) == (
        "queue q\n    cache-size 5\n    cache-ttl 30s\n    x-message-deduplication true\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("queue q x-message-deduplication yes", "x-message-deduplication: {unacceptable_type,longstr}"),
        ("queue q cache-size 0", "cache-size must be at least 1, got '0'"),
        ("exchange e type fanout cache-ttl 0ms", "cache-ttl must be at least 1ms"),
        ('exchange e type fanout deduplication-header ""', "x-deduplication-header: empty header name"),
        ("exchange e type fanout cache-size 10000001", "cache-size must be at most"),
    ],
)
def test_bad_values_are_errors(text: str, message: str) -> None:
    errors = config.check(text + "\n")
    assert errors, text
    assert errors[0].message.startswith(message), errors[0].message


def _bodies(channel: Any, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _p, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def test_definitions_import_into_warren_and_export_back(fresh_warren: BrokerThread) -> None:
    document = config.to_definitions(config.parse(EXAMPLE))
    broker = fresh_warren.broker
    assert broker is not None
    result = fresh_warren.run_sync(
        lambda: import_definitions(broker.vhosts, broker.access, document)
    )
    assert not getattr(result, "errors", None)
    exported = fresh_warren.run_sync(lambda: export_definitions(broker.vhosts, broker.access))
    by_name = {x["name"]: x for x in exported["exchanges"]}
    assert by_name["orders"]["arguments"] == document["exchanges"][0]["arguments"]
    queues = {q["name"]: q for q in exported["queues"]}
    assert queues["intake"]["arguments"] == document["queues"][0]["arguments"]
    connection = pika.BlockingConnection(pika.URLParameters(fresh_warren.url))
    channel = connection.channel()
    for body in (b"1", b"2"):
        channel.basic_publish(
            "orders", "new", body, pika.BasicProperties(headers={"order-id": "A-1"})
        )
    assert _bodies(channel, "intake") == [b"1"]
    connection.close()
