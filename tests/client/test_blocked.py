"""connection.blocked: publishing waits while the broker blocks the connection.

Needs a broker we may put under a memory alarm without disturbing anyone: a
private RabbitMQ node (``../shared/tools/reference-rabbitmq start 5674``),
named by ``WARREN_ALARM_URL`` (its amqp URL) and ``WARREN_ALARM_NODE`` (its
node name, e.g. ``ref5674@localhost``, for rabbitmqctl). Skipped otherwise:
Warren never blocks publishers yet.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import trio

from broker.client import open_connection

ALARM_URL = os.environ.get("WARREN_ALARM_URL")
ALARM_NODE = os.environ.get("WARREN_ALARM_NODE")

pytestmark = [
    pytest.mark.trio,
    pytest.mark.skipif(not (ALARM_URL and ALARM_NODE),
                       reason="needs WARREN_ALARM_URL and WARREN_ALARM_NODE (a private RabbitMQ)"),
]


def _watermark(value: str) -> None:
    subprocess.run(["rabbitmqctl", "-n", str(ALARM_NODE), "set_vm_memory_high_watermark", value],
                   check=True, capture_output=True)


async def test_publish_waits_while_blocked(name: str) -> None:
    assert ALARM_URL is not None
    async with open_connection(ALARM_URL) as conn:
        async with conn.open_channel(confirms=True) as ch:
            await ch.queue_declare(name, exclusive=True)
            await ch.publish("", name, b"before")
            try:
                await trio.to_thread.run_sync(_watermark, "0.0000001")
                # RabbitMQ blocks a connection when it next publishes.
                await ch.publish("", name, b"trigger", wait=False)
                with trio.fail_after(10):
                    while not conn.is_blocked:
                        await trio.sleep(0.05)
                assert conn.blocked_reason
                with trio.move_on_after(0.5) as waited:
                    await ch.publish("", name, b"while blocked")
                assert waited.cancelled_caught  # it waited
                async with trio.open_nursery() as nursery:
                    done = trio.Event()

                    async def publish_when_unblocked() -> None:
                        await ch.publish("", name, b"after")
                        done.set()

                    nursery.start_soon(publish_when_unblocked)
                    await trio.sleep(0.3)
                    assert not done.is_set()
                    await trio.to_thread.run_sync(_watermark, "0.4")
                    with trio.fail_after(10):
                        await done.wait()
                assert not conn.is_blocked
            finally:
                await trio.to_thread.run_sync(_watermark, "0.4")
            await ch.wait_for_confirms()
            bodies = []
            while (message := await ch.get(name, no_ack=True)) is not None:
                bodies.append(message.body)
            assert bodies[0] == b"before" and bodies[-1] == b"after"
            assert b"while blocked" not in bodies  # cancelled before it was written
