"""Differential: the x-consistent-hash exchange picks the queue RabbitMQ picks.

Each test builds a ring on a real broker over AMQP (pika) and the same ring in
a ``routing.Topology`` (weights, bindings in the same order, churn: a second
binding to a queue, unbinding, rebinding, an exchange on the ring), publishes
hundreds of messages and compares, message by message, the queue each reached
with the one ``Topology.route`` names.

By default the broker is Warren (the ``warren_url`` fixture), which checks the
broker wiring. With ``WARREN_REFERENCE_URL`` pointing at a RabbitMQ 3.10.8 with
the plugin enabled, it is RabbitMQ, which checks the algorithm itself:

    /work/shared/tools/reference-rabbitmq start 5683
    rabbitmq-plugins -n ref5683@localhost enable rabbitmq_consistent_hash_exchange
    WARREN_REFERENCE_URL=amqp://guest:guest@127.0.0.1:5683/ \\
        .venv/bin/python -m pytest tests/routing/test_consistent_hash_against_broker.py

A broker without the exchange type (503 on declare) skips every test, saying so.
"""

from __future__ import annotations

import datetime
import decimal
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.data
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from protocol.fields import decode_table
from routing.exchanges import Destination
from routing.topology import Topology

CHX = "x-consistent-hash"


def as_received(headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headers as a broker decodes what pika sends (bytes go as ``x``...)."""
    if headers is None:
        return None
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, headers)
    return decode_table(b"".join(pieces))[0]


class Ring:
    """One consistent-hash exchange, its queues and bindings, on both sides."""

    def __init__(self, channel: BlockingChannel, arguments: dict[str, Any] | None = None) -> None:
        self.channel = channel
        self.prefix = f"chx.{uuid.uuid4().hex[:8]}."
        self.exchange = self.prefix + "x"
        self.topology = Topology()
        self.queues: list[str] = []
        self.exchanges = [self.exchange]
        channel.exchange_declare(self.exchange, CHX, arguments=arguments)
        self.topology.declare_exchange(self.exchange, CHX, arguments=arguments)

    def queue(self) -> str:
        name = self.prefix + f"q{len(self.queues)}"
        self.channel.queue_declare(name, exclusive=True)
        self.topology.add_queue(name)
        self.queues.append(name)
        return name

    def bind(self, queue: str, weight: str) -> None:
        self.channel.queue_bind(queue, self.exchange, weight)
        self.topology.bind(self.exchange, Destination.queue(queue), weight)

    def unbind(self, queue: str, weight: str) -> None:
        self.channel.queue_unbind(queue, self.exchange, weight)
        self.topology.unbind(self.exchange, Destination.queue(queue), weight)

    def fanout_member(self, weight: str) -> None:
        """A fanout exchange on the ring, with two queues of its own."""
        inner = self.prefix + f"inner{len(self.exchanges)}"
        self.channel.exchange_declare(inner, "fanout")
        self.topology.declare_exchange(inner, "fanout")
        self.exchanges.append(inner)
        for _ in range(2):
            queue = self.queue()
            self.channel.queue_bind(queue, inner, "")
            self.topology.bind(inner, Destination.queue(queue))
        self.channel.exchange_bind(inner, self.exchange, weight)
        self.topology.bind(self.exchange, Destination.exchange(inner), weight)

    def check(self, messages: list[tuple[str, dict[str, Any] | None, dict[str, Any]]]) -> None:
        """Publish (routing key, headers, properties) messages; compare where each went."""
        self.channel.confirm_delivery()
        expected: dict[str, list[str]] = {}
        for n, (key, headers, props) in enumerate(messages):
            mid = props.get("message_id") or f"m{n}"
            assert mid not in expected
            expected[mid] = sorted(
                self.topology.route(self.exchange, key, as_received(headers), props)
            )
            properties = pika.BasicProperties(
                message_id=mid,
                headers=headers,
                correlation_id=props.get("correlation_id"),
                timestamp=props.get("timestamp"),
            )
            self.channel.basic_publish(self.exchange, key, b"", properties)
        got: dict[str, list[str]] = {mid: [] for mid in expected}
        for queue in self.queues:
            while True:
                method, properties, _ = self.channel.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                got[properties.message_id].append(queue)
        mismatches = {m: (expected[m], sorted(got[m])) for m in expected if expected[m] != sorted(got[m])}
        assert not mismatches, f"{len(mismatches)} of {len(expected)}: {list(mismatches.items())[:5]}"
        # Every message reached something: the spread is not vacuous.
        assert all(expected.values())
        assert len({q for qs in expected.values() for q in qs}) > 1

    def delete(self) -> None:
        for name in self.exchanges:
            self.channel.exchange_delete(name)


@pytest.fixture
def broker(warren_url: str) -> Iterator[tuple[pika.BlockingConnection, BlockingChannel]]:
    connection = pika.BlockingConnection(pika.URLParameters(warren_url))
    probe = connection.channel()
    name = f"chx.probe.{uuid.uuid4().hex[:8]}"
    try:
        probe.exchange_declare(name, CHX)
    except pika.exceptions.ConnectionClosedByBroker as closed:
        if closed.reply_code == 503:
            pytest.skip(
                f"the broker has no {CHX} exchange type (503: {closed.reply_text}); "
                "on RabbitMQ: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
            )
        raise
    probe.exchange_delete(name)
    probe.close()
    try:
        yield connection, connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def random_keys(rng: random.Random, n: int) -> list[str]:
    keys = ["", "a", "é", "日本", "order-17", "user:42"]
    while len(keys) < n:
        keys.append(uuid.UUID(int=rng.getrandbits(128)).hex[: rng.randrange(1, 33)])
    return keys


@pytest.mark.parametrize("seed", range(4))
def test_routing_key_spread_matches(broker, seed: int) -> None:
    _, channel = broker
    rng = random.Random(seed)
    ring = Ring(channel)
    try:
        queues = [ring.queue() for _ in range(rng.randint(2, 7))]
        for queue in queues:
            ring.bind(queue, str(rng.randint(1, 5)))
        if seed % 2:
            ring.fanout_member(str(rng.randint(1, 3)))
        ring.check([(key, None, {}) for key in random_keys(rng, 300)])
    finally:
        ring.delete()


@pytest.mark.parametrize("seed", range(3))
def test_churned_ring_matches(broker, seed: int) -> None:
    """Unbinding in the middle, a second binding to a queue, rebinding."""
    _, channel = broker
    rng = random.Random(100 + seed)
    ring = Ring(channel)
    try:
        queues = [ring.queue() for _ in range(6)]
        weights = {q: str(rng.randint(1, 4)) for q in queues}
        for queue in queues:
            ring.bind(queue, weights[queue])
        middle = queues[2]
        ring.unbind(middle, weights[middle])  # later buckets move down
        ring.bind(middle, "2")  # back, at the end of the ring
        ring.bind(queues[0], "9")  # a second binding: no buckets
        ring.unbind(queues[4], weights[queues[4]])
        ring.check([(key, None, {}) for key in random_keys(rng, 300)])
        ring.unbind(queues[0], "9")  # removes queue 0's buckets though "1" stays
        ring.check([(key, None, {"message_id": f"again-{key}-{i}"})
                    for i, key in enumerate(random_keys(rng, 200))])  # fmt: skip
    finally:
        ring.delete()


def test_cc_keys_are_not_hashed(broker) -> None:
    _, channel = broker
    rng = random.Random(7)
    ring = Ring(channel)
    try:
        for _ in range(4):
            ring.bind(ring.queue(), "1")
        ring.check([(k, {"CC": ["cc-1", "cc-2"]}, {}) for k in random_keys(rng, 150)])
    finally:
        ring.delete()


#: Header values of every type pika can send (not floats: pika refuses them).
HEADER_VALUES: list[Any] = [
    "alice", "bob", "", "日本", 0, 7, -3, 2**31, -(2**40), True, False, b"raw bytes", decimal.Decimal("1.25"), datetime.datetime(2024, 5, 6, 7, 8, 9),
    {"nested": "t", "n": 1}, ["a", 1, True], None,
]  # fmt: skip


def test_hash_header_matches(broker) -> None:
    _, channel = broker
    rng = random.Random(11)
    ring = Ring(channel, {"hash-header": "shard-by"})
    try:
        for _ in range(5):
            ring.bind(ring.queue(), str(rng.randint(1, 3)))
        messages: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
        for value in HEADER_VALUES:
            messages.append(("k", {"shard-by": value}, {}))
        for i in range(200):
            messages.append((f"key{i}", {"shard-by": f"user-{rng.randrange(10**6)}"}, {}))
            messages.append(("same", {"shard-by": rng.randrange(-(2**45), 2**45)}, {}))
        messages.append(("no-header", {"other": 1}, {}))
        messages.append(("no-headers", None, {}))
        ring.check(messages)
    finally:
        ring.delete()


@pytest.mark.parametrize("prop", ["message_id", "correlation_id", "timestamp"])
def test_hash_property_matches(broker, prop: str) -> None:
    connection, channel = broker
    rng = random.Random(13)
    ring = Ring(channel, {"hash-property": prop})
    try:
        for _ in range(5):
            ring.bind(ring.queue(), str(rng.randint(1, 3)))
        messages: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
        for i in range(250):
            props: dict[str, Any] = {"message_id": f"p{i}-{rng.randrange(10**9)}"}
            if prop == "correlation_id":
                props["correlation_id"] = f"c{rng.randrange(10**9)}"
            elif prop == "timestamp":
                props["timestamp"] = 1_700_000_000 + rng.randrange(10**6)
            messages.append((f"k{i % 3}", None, props))
        messages.append(("k", None, {"message_id": "without-the-property"}))
        ring.check(messages)
    finally:
        ring.delete()


def test_hash_header_floats_match(broker, warren_url: str) -> None:
    """Floats, which pika cannot send, from py-amqp (it writes them as ``d``)."""
    import amqp

    _, channel = broker
    ring = Ring(channel, {"hash-header": "shard-by"})
    params = pika.URLParameters(warren_url)
    sender = amqp.Connection(
        f"{params.host}:{params.port}",
        userid=params.credentials.username,
        password=params.credentials.password,
        virtual_host=params.virtual_host,
    )
    sender.connect()
    try:
        for _ in range(4):
            ring.bind(ring.queue(), "1")
        rng = random.Random(17)
        values = [0.0, -0.0, 1.0, 2.5, -1e300, 3.141592653589793]
        values += [rng.uniform(-1e6, 1e6) for _ in range(150)]
        out = sender.channel()
        out.confirm_select()
        expected = {}
        for n, value in enumerate(values):
            mid = f"f{n}"
            expected[mid] = ring.topology.route(ring.exchange, "k", {"shard-by": value})
            message = amqp.Message(b"", message_id=mid, application_headers={"shard-by": value})
            out.basic_publish(message, exchange=ring.exchange, routing_key="k")
        got = {}
        for queue in ring.queues:
            while True:
                method, properties, _ = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                got[properties.message_id] = [queue]
        assert got == expected
        assert len({q for qs in expected.values() for q in qs}) == 4
    finally:
        sender.close()
        ring.delete()
