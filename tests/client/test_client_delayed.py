"""The trio client and a delayed-message exchange (``x-delayed-message``):
confirmed publishes held for their ``x-delay``, consumed in due order with
``x-delay`` set to minus the delay. Skipped on a broker without the exchange
type (the reference RabbitMQ has no delayed-message plugin)."""

from __future__ import annotations

import time

import pytest
import trio

from broker.client import ConnectionClosed, open_connection

pytestmark = pytest.mark.trio


async def test_confirmed_publishes_come_out_in_due_order(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as probe:
        try:
            async with probe.open_channel() as ch:
                await ch.exchange_declare(name, "x-delayed-message", auto_delete=True,
                                          arguments={"x-delayed-type": "fanout"})
                await ch.exchange_delete(name)
        except ConnectionClosed as closed:
            pytest.skip(f"no x-delayed-message exchange type: {closed}")
    async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
        await ch.exchange_declare(name, "x-delayed-message",
                                  arguments={"x-delayed-type": "fanout"})
        await ch.queue_declare(name, exclusive=True)
        await ch.queue_bind(name, name)
        start = time.monotonic()
        for delay in (250, 50, 150):
            # Returns once the broker confirmed it: held, not yet delivered.
            await ch.publish(name, "", str(delay).encode(), persistent=True,
                             headers={"x-delay": delay})
        assert (await ch.queue_declare(name, passive=True)).message_count == 0
        got: list[tuple[bytes, object, float]] = []
        with trio.fail_after(5):
            async with ch.consume(name) as messages:
                async for message in messages:
                    got.append((message.body, (message.headers or {}).get("x-delay"),
                                time.monotonic() - start))
                    await message.ack()
                    if len(got) == 3:
                        break
        assert [(body, header) for body, header, _ in got] == [
            (b"50", -50), (b"150", -150), (b"250", -250)
        ]
        for body, _, at in got:
            assert at >= int(body) / 1000 - 0.01
        await ch.exchange_delete(name)
