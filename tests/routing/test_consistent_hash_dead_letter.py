"""A dead letter reaches the queue a publish with the same property reaches.

RabbitMQ routes dead letters through rabbit_exchange:route like a publish, so
a consistent-hash exchange with `hash-property` as a dead-letter exchange
hashes the dead letter's property too. Runs against Warren (or, with
WARREN_REFERENCE_URL, a RabbitMQ with the plugin; a broker without the
exchange type skips).
"""

from __future__ import annotations

import uuid

import pika
import pika.exceptions
import pytest

CHX = "x-consistent-hash"


def test_dead_letters_hash_their_property(warren_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(warren_url))
    tag = uuid.uuid4().hex[:8]
    exchange, source = f"chx.dl.{tag}", f"chx.dl.src.{tag}"
    ring = [f"chx.dl.{tag}.{i}" for i in range(3)]
    channel = connection.channel()
    try:
        channel.exchange_declare(exchange, CHX, arguments={"hash-property": "message_id"})
    except pika.exceptions.ConnectionClosedByBroker as closed:
        pytest.skip(f"the broker has no {CHX} exchange: {closed}")
    try:
        for queue in ring:
            channel.queue_declare(queue)
            channel.queue_bind(queue, exchange, "1")
        channel.queue_declare(source, arguments={"x-dead-letter-exchange": exchange})
        channel.confirm_delivery()
        ids = [f"id-{i}" for i in range(60)]
        # Published straight to the exchange: where each id goes.
        for message_id in ids:
            channel.basic_publish(exchange, "ignored", message_id.encode(),
                                  pika.BasicProperties(message_id=message_id))
        direct = {queue: _drain(channel, queue) for queue in ring}
        assert sum(len(v) for v in direct.values()) == len(ids)
        assert sum(1 for v in direct.values() if v) > 1, "the ids all hashed to one queue"
        # The same ids dead-lettered from `source` (routing key not the id).
        for message_id in ids:
            channel.basic_publish("", source, message_id.encode(),
                                  pika.BasicProperties(message_id=message_id))
        for _ in ids:
            method, _props, _body = channel.basic_get(source)
            assert method is not None
            channel.basic_reject(method.delivery_tag, requeue=False)
        channel.queue_declare(source, passive=True)  # a round trip: the rejects are done
        dead = {queue: _drain(channel, queue) for queue in ring}
        assert dead == direct
    finally:
        for queue in (*ring, source):
            channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        connection.close()


def _drain(channel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return sorted(bodies)
        bodies.append(body)
