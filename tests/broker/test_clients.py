"""The same broker through other real clients: pika's SelectConnection
(callback style), aio-pika (asyncio) and kombu (py-amqp, AMQPLAIN)."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq.exceptions
import kombu
import pika
import pytest


def test_pika_select_connection_roundtrip(warren_url: str, unique) -> None:
    queue = unique()
    received: list[bytes] = []
    state: dict[str, object] = {}

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        state["channel"] = channel
        channel.confirm_delivery(ack_nack_callback=on_confirm)
        channel.queue_declare(queue, exclusive=True, callback=on_declared)

    def on_declared(frame):
        channel = state["channel"]
        channel.basic_consume(queue, on_message)
        channel.basic_publish("", queue, b"select", pika.BasicProperties(message_id="s1"))

    def on_confirm(frame):
        state["confirm"] = type(frame.method).__name__

    def on_message(channel, method, props, body):
        received.append(body)
        channel.basic_ack(method.delivery_tag)
        channel.connection.close()

    connection = pika.SelectConnection(
        pika.URLParameters(warren_url),
        on_open_callback=on_open,
        on_open_error_callback=lambda c, e: state.setdefault("error", e),
        on_close_callback=lambda c, e: c.ioloop.stop(),
    )
    connection.ioloop.call_later(5, connection.ioloop.stop)
    connection.ioloop.start()
    assert "error" not in state
    assert received == [b"select"]
    assert state["confirm"] == "Ack"


def test_aio_pika_roundtrip_confirms_and_errors(warren_url: str, unique) -> None:
    queue_name = unique()

    async def main() -> None:
        connection = await aio_pika.connect_robust(warren_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=10)
            queue = await channel.declare_queue(queue_name, exclusive=True)
            exchange = await channel.declare_exchange(unique("x"), "topic", auto_delete=True)
            await queue.bind(exchange, "a.*")
            for i in range(20):
                confirmation = await exchange.publish(
                    aio_pika.Message(b"%d" % i, headers={"i": i}), routing_key="a.b"
                )
                assert confirmation is not None
            bodies = []
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        bodies.append(message.body)
                        assert message.headers["i"] == int(message.body)
                    if len(bodies) == 20:
                        break
            assert bodies == [b"%d" % i for i in range(20)]
            # get, then reject with requeue: redelivered.
            await exchange.publish(aio_pika.Message(b"again"), routing_key="a.c")
            message = await queue.get(timeout=2)
            await message.reject(requeue=True)
            message = await queue.get(timeout=2)
            assert message.redelivered and message.body == b"again"
            await message.ack()
            # A soft error closes the channel with the code the client sees.
            bad = await connection.channel()
            # aiormq maps reply code 404 to ChannelNotFoundEntity.
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
                await bad.declare_queue(unique("missing"), passive=True)
            assert "NOT_FOUND - no queue" in str(info.value)
            # The connection carries on.
            other = await connection.channel()
            await other.declare_queue("", exclusive=True)

    asyncio.run(asyncio.wait_for(main(), 20))


def test_kombu_producer_consumer(warren_url: str, unique) -> None:
    queue_name = unique()
    url = warren_url.replace("amqp://", "pyamqp://")
    exchange = kombu.Exchange(unique("kx"), type="direct", auto_delete=True)
    queue = kombu.Queue(queue_name, exchange, routing_key="task", auto_delete=True)
    with kombu.Connection(url, login_method="AMQPLAIN") as connection:
        producer = connection.Producer()
        for i in range(5):
            producer.publish(
                {"n": i},
                exchange=exchange,
                routing_key="task",
                declare=[queue],
                serializer="json",
                retry=False,
            )
        received = []

        def on_message(body, message):
            received.append(body["n"])
            message.ack()

        with connection.Consumer(queue, callbacks=[on_message], accept=["json"]):
            while len(received) < 5:
                connection.drain_events(timeout=5)
        assert received == [0, 1, 2, 3, 4]


def test_kombu_simple_queue(warren_url: str, unique) -> None:
    with kombu.Connection(warren_url.replace("amqp://", "pyamqp://")) as connection:
        name = unique()
        simple = connection.SimpleQueue(name)
        simple.put({"hello": "world"})
        message = simple.get(block=True, timeout=5)
        assert message.payload == {"hello": "world"}
        message.ack()
        simple.close()
        assert connection.default_channel.queue_delete(name) == 0
