"""The trio client against a real broker (Warren in-process, or the reference
RabbitMQ when WARREN_REFERENCE_URL is set): every operation over a real socket."""

from __future__ import annotations

import time

import pytest
import trio

from broker.client import (
    BasicProperties,
    ChannelClosed,
    ConnectionClosed,
    ConsumerCancelled,
    ReplyCode,
    Unroutable,
    open_connection,
)
from broker.client.url import parse_url

pytestmark = pytest.mark.trio


async def test_declare_publish_get_with_all_properties(amqp_url: str, name: str) -> None:
    props = dict(
        content_type="application/json", content_encoding="utf-8",
        headers={"k": "v", "n": 7, "nested": {"a": [1, "x"]}}, delivery_mode=2, priority=5,
        correlation_id="c1", reply_to="r1", expiration="60000", message_id="m1",
        timestamp=1700000000, type="order", user_id="guest", app_id="tests", cluster_id="cl",
    )
    async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
        await ch.exchange_declare(name, "topic", auto_delete=True)
        declared = await ch.queue_declare(name, exclusive=True)
        assert declared == (name, 0, 0)
        await ch.queue_bind(name, name, "order.*.created")
        await ch.publish(name, "order.eu.created", b"{...}", **props)
        await ch.publish(name, "order.eu.deleted", b"not routed")
        again = await ch.queue_declare(name, passive=True)
        assert (again.name, again.message_count, again.consumer_count) == (name, 1, 0)
        message = await ch.get(name)
        assert message is not None
        assert message.body == b"{...}"
        assert message.routing_key == "order.eu.created"
        assert message.exchange == name
        assert message.message_count == 0
        assert message.properties == BasicProperties(**props)
        await message.ack()
        assert await ch.get(name) is None
        await ch.exchange_delete(name)


async def test_soft_error_closes_only_the_channel(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn:
        async with conn.open_channel() as ch:
            with pytest.raises(ChannelClosed) as info:
                await ch.queue_declare(name, passive=True)
            error = info.value
            assert error.reply_code == 404 == ReplyCode.NOT_FOUND
            assert error.code_name == "NOT_FOUND"
            assert (error.class_id, error.method_id) == (50, 10)
            assert not ch.is_open
            # The same error again on the dead channel, from any operation.
            with pytest.raises(ChannelClosed):
                await ch.publish("", name, b"x")
        async with conn.open_channel() as ch:  # the connection lives on
            await ch.queue_declare(name, exclusive=True)


async def test_exchange_redeclare_mismatch_is_406(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn:
        async with conn.open_channel() as ch:
            await ch.exchange_declare(name, "direct", auto_delete=True)
            with pytest.raises(ChannelClosed) as info:
                await ch.exchange_declare(name, "fanout", auto_delete=True)
            assert info.value.reply_code == 406
            assert (info.value.class_id, info.value.method_id) == (40, 10)
        async with conn.open_channel() as ch:
            await ch.exchange_delete(name)


async def test_hard_error_closes_the_connection(amqp_url: str, name: str) -> None:
    # An unknown exchange type is 503 COMMAND_INVALID, a connection error.
    with pytest.raises(ConnectionClosed) as info:
        async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
            await ch.exchange_declare(name, "no-such-type")
    assert info.value.reply_code == 503
    assert info.value.code_name == "COMMAND_INVALID"
    assert not conn.is_open


async def test_server_close_is_raised_on_exit_if_nobody_saw_it(amqp_url: str, name: str) -> None:
    # The error closes the connection while the block is busy elsewhere: it is
    # not lost in the reader task, leaving the block raises it.
    with pytest.raises(ConnectionClosed) as info:
        async with open_connection(amqp_url) as conn:
            ch = await conn.channel()
            conn._send_method(ch.number, __import__("protocol.methods").methods.ExchangeDeclare(
                exchange=name, type="no-such-type"))
            with trio.move_on_after(5):
                while conn.is_open:
                    await trio.sleep(0.01)
    assert info.value.reply_code == 503


async def test_confirms_one_at_a_time_and_in_flight(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
        await ch.queue_declare(name, exclusive=True)
        confirmation = await ch.publish("", name, b"one", persistent=True)
        assert confirmation is not None and confirmation.done and confirmation.error is None
        pending = [await ch.publish("", name, b"%d" % i, wait=False) for i in range(500)]
        assert ch.unconfirmed > 0 or all(p.done for p in pending)
        await ch.wait_for_confirms()
        assert ch.unconfirmed == 0
        assert all(p.done and p.error is None for p in pending)
        assert (await ch.queue_declare(name, passive=True)).message_count == 501


async def test_max_in_flight_bounds_unconfirmed(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn:
        async with conn.open_channel(confirms=True, max_in_flight=8) as ch:
            await ch.queue_declare(name, exclusive=True)
            for i in range(200):
                await ch.publish("", name, b"%d" % i, wait=False)
                assert ch.unconfirmed <= 8
            await ch.wait_for_confirms()


async def test_unroutable_mandatory_raises(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
        await ch.queue_declare(name, exclusive=True)
        with pytest.raises(Unroutable) as info:
            await ch.publish("", name + "-nowhere", b"lost", mandatory=True)
        assert info.value.reply_code == 312
        assert info.value.routing_key == name + "-nowhere"
        # Routed mandatory messages confirm normally.
        await ch.publish("", name, b"routed", mandatory=True)
        # In flight: the failure surfaces from wait_for_confirms.
        await ch.publish("", name, b"a", mandatory=True, wait=False)
        await ch.publish("", name + "-nowhere", b"b", mandatory=True, wait=False)
        await ch.publish("", name, b"c", mandatory=True, wait=False)
        with pytest.raises(Unroutable):
            await ch.wait_for_confirms()
        await ch.wait_for_confirms()  # reported once
        assert (await ch.queue_declare(name, passive=True)).message_count == 3


async def test_returned_without_confirms_is_kept(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.publish("", name + "-nowhere", b"back", mandatory=True, message_id="m")
        await ch.queue_declare(name, exclusive=True)  # a round trip: the return came first
        assert len(ch.returned_messages) == 1
        returned = ch.returned_messages[0]
        assert returned.body == b"back" and returned.properties.message_id == "m"


async def test_consume_ack_nack_reject(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.exchange_declare(name + "-dlx", "fanout", auto_delete=True)
        await ch.queue_declare(name + "-dead", exclusive=True)
        await ch.queue_bind(name + "-dead", name + "-dlx")
        await ch.queue_declare(name, exclusive=True,
                               arguments={"x-dead-letter-exchange": name + "-dlx"})
        for body in (b"ack", b"nack", b"reject", b"requeue"):
            await ch.publish("", name, body)
        seen: list[tuple[bytes, bool]] = []
        async with ch.consume(name, prefetch=10) as messages:
            async for message in messages:
                seen.append((message.body, message.redelivered))
                if message.body == b"ack":
                    await message.ack()
                elif message.body == b"nack":
                    await message.nack(requeue=False)
                elif message.body == b"reject":
                    await message.reject(requeue=False)
                elif not message.redelivered:
                    await message.nack(requeue=True)
                else:
                    await message.ack()
                    break
        assert seen == [(b"ack", False), (b"nack", False), (b"reject", False),
                        (b"requeue", False), (b"requeue", True)]
        with pytest.raises(RuntimeError):
            await message.ack()  # already settled: caught here, not as a 406
        dead = []
        for _ in range(2):
            got = await ch.get(name + "-dead", no_ack=True)
            assert got is not None
            dead.append(got.body)
        assert sorted(dead) == [b"nack", b"reject"]
        await ch.exchange_delete(name + "-dlx")


async def test_prefetch_limits_unacked_deliveries(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(name, exclusive=True)
        for i in range(10):
            await ch.publish("", name, b"%d" % i)
        async with ch.consume(name, prefetch=3) as messages:
            first = await messages.get()
            await trio.sleep(0.2)  # give the broker every chance to overshoot
            assert len(messages._buffer) == 2  # 3 in flight, one handed out
            await first.ack()
            await trio.sleep(0.2)
            assert len(messages._buffer) == 3
        # Leaving the block cancelled the consumer and requeued what it held
        # (RabbitMQ counts requeued messages a moment later: poll).
        assert await _eventually_count(ch, name, 9)


async def _eventually_count(ch, queue: str, expected: int, timeout: float = 5.0) -> bool:
    with trio.move_on_after(timeout):
        while (await ch.queue_declare(queue, passive=True)).message_count != expected:
            await trio.sleep(0.02)
        return True
    return False


async def test_many_messages_in_order(amqp_url: str, name: str) -> None:
    count = 3000
    async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
        await ch.queue_declare(name, exclusive=True)
        for i in range(count):
            await ch.publish("", name, b"%d" % i, wait=False)
        await ch.wait_for_confirms()
        received = []
        async with ch.consume(name, prefetch=1000) as messages:
            async for message in messages:
                received.append(int(message.body))
                await message.ack()
                if len(received) == count:
                    break
        assert received == list(range(count))


async def test_no_ack_consumer_and_large_bodies(amqp_url: str, name: str) -> None:
    body = bytes(range(256)) * 2000  # 512000 bytes: split over several frames
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(name, exclusive=True)
        await ch.publish("", name, body)
        await ch.publish("", name, b"")
        async with ch.consume(name, no_ack=True) as messages:
            assert (await messages.get()).body == body
            assert (await messages.get()).body == b""


async def test_broker_cancels_consumer_when_queue_deleted(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(name)
        await ch.publish("", name, b"last")
        async with conn.open_channel() as other:
            async with ch.consume(name) as messages:
                first = await messages.get()
                await first.ack()
                await other.queue_delete(name)
                with pytest.raises(ConsumerCancelled):
                    await messages.get()
        assert ch.is_open


async def test_recover_redelivers(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(name, exclusive=True)
        await ch.publish("", name, b"x")
        async with ch.consume(name) as messages:
            first = await messages.get()
            assert not first.redelivered
            await ch.recover(requeue=True)
            second = await messages.get()
            assert second.redelivered and second.body == b"x"
            await second.ack()


async def test_transactions(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(name, exclusive=True)
        await ch.tx_select()
        await ch.publish("", name, b"rolled back")
        await ch.tx_rollback()
        await ch.publish("", name, b"committed")
        await ch.tx_commit()
        async with conn.open_channel() as other:
            got = await other.get(name, no_ack=True)
            assert got is not None and got.body == b"committed"
            assert await other.get(name) is None


async def test_exchange_bindings_purge_delete(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        await ch.exchange_declare(name + "-src", "topic", auto_delete=True)
        await ch.exchange_declare(name + "-dst", "headers", auto_delete=True)
        await ch.exchange_bind(name + "-dst", name + "-src", "a.#")
        await ch.queue_declare(name)
        await ch.queue_bind(name, name + "-dst", "",
                            {"x-match": "any", "kind": "order", "n": 1})
        await ch.publish(name + "-src", "a.b", b"1", headers={"kind": "order"})
        await ch.publish(name + "-src", "a.b", b"2", headers={"kind": "other"})
        await ch.publish(name + "-src", "b.a", b"3", headers={"kind": "order"})
        await ch.queue_declare(name, passive=True)
        assert await ch.queue_purge(name) == 1
        await ch.queue_unbind(name, name + "-dst", "", {"x-match": "any", "kind": "order",
                                                         "n": 1})
        await ch.exchange_unbind(name + "-dst", name + "-src", "a.#")
        await ch.publish("", name, b"x")
        await ch.publish("", name, b"y")
        await ch.queue_declare(name, passive=True)
        assert await ch.queue_delete(name) == 2
        await ch.exchange_delete(name + "-dst")
        await ch.exchange_delete(name + "-src")


async def test_channel_flow_roundtrip(amqp_url: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        assert await ch.flow(True) is True


async def test_login_refused(amqp_url: str) -> None:
    params = parse_url(amqp_url)
    bad = amqp_url.replace(f"{params.username}:{params.password}@", "guest:wrong@", 1)
    with pytest.raises(ConnectionClosed) as info:
        async with open_connection(bad):
            pass
    assert info.value.reply_code == 403
    assert info.value.code_name == "ACCESS_REFUSED"


async def test_unknown_vhost(amqp_url: str) -> None:
    params = parse_url(amqp_url)
    url = f"amqp://{params.username}:{params.password}@{params.host}:{params.port}/no-such-vhost"
    with pytest.raises(ConnectionClosed) as info:
        async with open_connection(url):
            pass
    assert info.value.reply_code == 530


async def test_unreachable_broker() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionClosed) as info:
        async with open_connection(f"amqp://127.0.0.1:{port}/?connection_timeout=2000"):
            pass
    assert info.value.reply_code == 0
    assert "cannot connect" in info.value.reply_text


async def test_heartbeats_keep_an_idle_connection_alive(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url, heartbeat=1) as conn:
        assert conn.heartbeat == 1
        started = time.monotonic()
        await trio.sleep(3.5)  # more than two intervals of our own silence
        assert time.monotonic() - started >= 3.5
        async with conn.open_channel() as ch:
            await ch.queue_declare(name, exclusive=True)
        assert conn.is_open


async def test_no_task_is_left_behind(amqp_url: str, name: str) -> None:
    me = trio.lowlevel.current_task()
    before = len(me.child_nurseries)
    async with open_connection(amqp_url, heartbeat=5) as conn:
        assert len(me.child_nurseries) == before + 1
        nursery = me.child_nurseries[-1]
        assert len(nursery.child_tasks) == 3  # reader, writer, heartbeats
        async with conn.open_channel() as ch:
            await ch.queue_declare(name, exclusive=True)
            await ch.publish("", name, b"x")
            async with ch.consume(name) as messages:
                await (await messages.get()).ack()
    assert len(me.child_nurseries) == before
    assert not nursery.child_tasks


async def test_cancelled_rpc_does_not_confuse_the_next(amqp_url: str, name: str) -> None:
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        with trio.CancelScope() as scope:
            scope.cancel()
            await ch.queue_declare(name, exclusive=True)
        # The abandoned declare-ok is discarded; this reply is the purge-ok.
        await ch.queue_declare(name, exclusive=True)
        assert await ch.queue_purge(name) == 0


async def test_errors_in_the_block_come_out_unwrapped(amqp_url: str) -> None:
    with pytest.raises(KeyError):
        async with open_connection(amqp_url) as conn, conn.open_channel():
            raise KeyError("mine")
    # Cancellation from outside leaves cleanly too.
    with trio.move_on_after(0.2) as scope:
        async with open_connection(amqp_url) as conn:
            await trio.sleep(10)
    assert scope.cancelled_caught
    assert not conn.is_open


async def test_a_request_that_cannot_be_encoded_leaves_the_channel_usable(
    amqp_url: str, name: str
) -> None:
    # Nothing is sent and no reply is awaited for a method that cannot be
    # encoded: the next request on the channel gets its own reply.
    async with open_connection(amqp_url) as conn, conn.open_channel() as ch:
        with trio.fail_after(10):
            with pytest.raises(ValueError, match="longer than 255 bytes"):
                await ch.queue_declare("q" * 256)
            assert await ch.queue_declare(name, exclusive=True) == (name, 0, 0)
            with pytest.raises(ValueError, match="does not fit any AMQP field type"):
                await ch.queue_declare(name, arguments={"x-wide": 2**64})
            with pytest.raises(ValueError, match="longer than 255 bytes"):
                await ch.exchange_declare("é" * 128, "fanout")
            await ch.publish("", name, b"one")
            assert await ch.queue_purge(name) == 1
            with pytest.raises(ValueError, match="longer than 255 bytes"):
                await ch.close(200, "x" * 256)
            assert ch.is_open
            assert (await ch.queue_declare(name, passive=True)).name == name


async def test_a_publish_that_cannot_be_encoded_takes_no_delivery_tag(
    amqp_url: str, name: str
) -> None:
    # With confirms, a publish that never left must not take a sequence number,
    # or the broker's ack for the next publish would confirm the wrong one.
    async with open_connection(amqp_url) as conn, conn.open_channel(confirms=True) as ch:
        await ch.queue_declare(name, exclusive=True)
        with trio.fail_after(10):
            with pytest.raises(ValueError, match="at most 255 bytes"):
                await ch.publish("", "k" * 256, b"lost")
            confirmation = await ch.publish("", name, b"kept")
            assert confirmation is not None
            await ch.wait_for_confirms()
        message = await ch.get(name, no_ack=True)
        assert message is not None and message.body == b"kept"
