"""aio-pika (asyncio, robust connection) drives the broker end to end."""

from __future__ import annotations

import asyncio

import aio_pika


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def test_publish_with_confirms_and_iterate(interop_url, unique_name):
    async def scenario():
        connection = await aio_pika.connect_robust(interop_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=5)
            exchange = await channel.declare_exchange(
                unique_name("x"), aio_pika.ExchangeType.DIRECT, auto_delete=True
            )
            queue = await channel.declare_queue(unique_name("q"), auto_delete=True)
            await queue.bind(exchange, routing_key="work")
            for i in range(50):
                await exchange.publish(
                    aio_pika.Message(f"job-{i}".encode(), headers={"n": i}), routing_key="work"
                )
            received = []
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        received.append((message.body, message.headers["n"]))
                    if len(received) == 50:
                        break
            return received

    assert run(scenario()) == [(f"job-{i}".encode(), i) for i in range(50)]


def test_rpc_over_reply_to_and_correlation_id(interop_url, unique_name):
    async def scenario():
        connection = await aio_pika.connect_robust(interop_url)
        async with connection:
            channel = await connection.channel()
            requests = await channel.declare_queue(unique_name("rpc"), auto_delete=True)
            callback = await channel.declare_queue(exclusive=True)

            async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    reply = aio_pika.Message(
                        str(int(message.body) * 2).encode(),
                        correlation_id=message.correlation_id,
                    )
                    await channel.default_exchange.publish(reply, routing_key=message.reply_to)

            await requests.consume(serve)
            answers: asyncio.Queue = asyncio.Queue()

            async def on_answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                answers.put_nowait((message.correlation_id, message.body))

            await callback.consume(on_answer, no_ack=True)
            for i in range(5):
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        str(i).encode(), reply_to=callback.name, correlation_id=f"c{i}"
                    ),
                    routing_key=requests.name,
                )
            return sorted([await answers.get() for _ in range(5)])

    assert run(scenario()) == [(f"c{i}", str(i * 2).encode()) for i in range(5)]


def test_nack_requeue_redelivers(interop_url, unique_name):
    async def scenario():
        connection = await aio_pika.connect_robust(interop_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(unique_name(), auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"again"), queue.name)
            first = await queue.get(timeout=5)
            await first.nack(requeue=True)
            second = await queue.get(timeout=5)
            await second.ack()
            return first.redelivered, second.redelivered, second.body

    assert run(scenario()) == (False, True, b"again")
