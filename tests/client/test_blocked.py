"""connection.blocked: publishing waits while the broker blocks the connection.

Against Warren in-process, under its disk alarm (a free-space limit above
what the disk has). Against RabbitMQ under a memory alarm, which needs a
broker we may disturb: a private node (``../shared/tools/reference-rabbitmq
start 5674``) named by ``WARREN_ALARM_URL`` (its amqp URL) and
``WARREN_ALARM_NODE`` (e.g. ``ref5674@localhost``, for rabbitmqctl); that
test is skipped without them.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import trio

from broker.client import open_connection

ALARM_URL = os.environ.get("WARREN_ALARM_URL")
ALARM_NODE = os.environ.get("WARREN_ALARM_NODE")

pytestmark = pytest.mark.trio
needs_alarm_node = pytest.mark.skipif(
    not (ALARM_URL and ALARM_NODE),
    reason="needs WARREN_ALARM_URL and WARREN_ALARM_NODE (a private RabbitMQ)")


async def test_publish_waits_while_warren_is_out_of_disk(tmp_path, name: str) -> None:
    from broker.server import open_broker

    async with open_broker(port=0, data_dir=tmp_path, disk_free_limit=2**62) as broker:
        async with open_connection(broker.url) as conn, conn.open_channel() as ch:
            await ch.queue_declare(name)
            await ch.publish("", name, b"trigger")  # the broker blocks us on a publish
            with trio.fail_after(10):
                while not conn.is_blocked:
                    await trio.sleep(0.01)
            assert conn.blocked_reason
            done = trio.Event()

            async def publish_when_unblocked() -> None:
                await ch.publish("", name, b"after")
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_when_unblocked)
                await trio.sleep(0.3)
                assert not done.is_set()
                broker.disk_monitor.limit = 0  # space "returns"
                broker.disk_monitor.check()
                with trio.fail_after(10):
                    await done.wait()
            assert not conn.is_blocked
            bodies = []
            with trio.fail_after(10):
                while len(bodies) < 2:
                    message = await ch.get(name, no_ack=True)
                    if message is not None:
                        bodies.append(message.body)
            assert bodies == [b"trigger", b"after"]


def _watermark(value: str) -> None:
    subprocess.run(["rabbitmqctl", "-n", str(ALARM_NODE), "set_vm_memory_high_watermark", value],
                   check=True, capture_output=True)


@needs_alarm_node
async def test_publish_waits_while_rabbitmq_is_blocked(name: str) -> None:
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
