"""Robust mode through a real TCP proxy that the test can cut: reconnection,
restored topology and consumers, and in-flight publishes that raise."""

from __future__ import annotations

import pytest
import trio

from broker.client import ConnectionClosed, open_connection
from broker.client.url import parse_url

pytestmark = pytest.mark.trio


class Proxy:
    """A loopback TCP proxy to the broker: ``cut()`` drops every connection
    (both sockets closed), ``hold()`` stops forwarding broker-to-client bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.holding = False
        self._scopes: list[trio.CancelScope] = []

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream(*self.target)
        with trio.CancelScope() as scope:
            self._scopes.append(scope)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream, False)
                nursery.start_soon(self._pump, upstream, client, True)
        await client.aclose()
        await upstream.aclose()

    async def _pump(self, source, sink, from_broker: bool) -> None:
        try:
            async for data in source:
                while from_broker and self.holding:
                    await trio.sleep(0.01)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def cut(self) -> None:
        self.holding = False
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()


async def test_reconnects_restores_and_raises_in_flight(amqp_url: str, name: str) -> None:
    params = parse_url(amqp_url)
    proxy = Proxy(params.host, params.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        url = (f"amqp://{params.username}:{params.password}@127.0.0.1:{proxy.port}/"
               f"{'%2F' if params.vhost == '/' else params.vhost}")
        async with open_connection(url, reconnect=True) as conn:
            async with conn.open_channel(confirms=True) as ch:
                await ch.exchange_declare(name, "direct", auto_delete=True)
                await ch.queue_declare(name, exclusive=True)
                await ch.queue_bind(name, name, "k")
                async with ch.consume(name, prefetch=10) as messages:
                    await ch.publish(name, "k", b"before")
                    first = await messages.get()
                    assert first.body == b"before"
                    await first.ack()

                    # Publishes whose confirms are in flight when the link dies.
                    proxy.holding = True
                    pending = [await ch.publish(name, "k", b"lost?", wait=False)
                               for _ in range(3)]
                    await trio.sleep(0.1)
                    proxy.cut()
                    for confirmation in pending:
                        with pytest.raises(ConnectionClosed):
                            await confirmation.wait()

                    # Waits for the reconnection; the exclusive queue, its
                    # binding and the consumer are back.
                    with trio.fail_after(20):
                        await ch.publish(name, "k", b"after")
                        while True:
                            message = await messages.get()
                            if message.body == b"after":
                                break
                            assert message.body == b"lost?"  # got there before the cut
                            await message.ack()
                    await message.ack()
                    assert conn.reconnects == 1
            async with conn.open_channel() as ch:
                await ch.exchange_delete(name)
        nursery.cancel_scope.cancel()


async def _reconnected(conn, count: int) -> None:
    """Wait until the robust connection has reconnected ``count`` times (a
    publish sent before it notices the cut raises, as documented)."""
    while conn.reconnects < count:
        await trio.sleep(0.01)


def _proxied(amqp_url: str, proxy: Proxy) -> str:
    params = parse_url(amqp_url)
    return (f"amqp://{params.username}:{params.password}@127.0.0.1:{proxy.port}/"
            f"{'%2F' if params.vhost == '/' else params.vhost}")


async def test_server_named_queue_is_declared_again_under_a_new_name(
        amqp_url: str, name: str) -> None:
    """The fanout-subscriber pattern: an exclusive server-named queue, bound and
    consumed. Its name dies with the connection; robust mode declares a new
    one, binds and consumes it in its place, and maps the old name to it."""
    params = parse_url(amqp_url)
    proxy = Proxy(params.host, params.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        async with open_connection(_proxied(amqp_url, proxy), reconnect=True) as conn:
            async with conn.open_channel(confirms=True) as ch:
                await ch.exchange_declare(name, "fanout")
                queue = (await ch.queue_declare("", exclusive=True)).name
                assert conn.current_queue_name(queue) == queue
                await ch.queue_bind(queue, name)
                async with ch.consume(queue) as messages:
                    await ch.publish(name, "", b"before")
                    assert (await messages.get()).body == b"before"
                    proxy.cut()
                    with trio.fail_after(20):
                        await _reconnected(conn, 1)
                        await ch.publish(name, "", b"after")
                        message = await messages.get()
                    assert message.body == b"after"
                    await message.ack()
                    assert conn.reconnects == 1
                    renamed = conn.current_queue_name(queue)
                    assert renamed != queue
                    assert renamed.startswith("amq.gen-")
                    # The old name still works in this connection's calls.
                    assert (await ch.queue_declare(queue, passive=True)).name == renamed
                    await ch.publish("", queue, b"direct")
                    assert (await messages.get()).body == b"direct"
                # A second outage: renamed again, from the name the caller knows.
                proxy.cut()
                with trio.fail_after(20):
                    await _reconnected(conn, 2)
                await ch.queue_bind(queue, name, "again")
                assert conn.current_queue_name(queue) not in (queue, renamed)
                await ch.queue_delete(queue)
                assert conn.current_queue_name(queue) == queue
                await ch.exchange_delete(name)
        proxy.cut()
        nursery.cancel_scope.cancel()


async def test_first_connection_failure_is_raised(amqp_url: str) -> None:
    params = parse_url(amqp_url)
    bad = f"amqp://{params.username}:wrong@{params.host}:{params.port}/"
    with pytest.raises(ConnectionClosed) as info:
        async with open_connection(bad, reconnect=True):
            pass
    assert info.value.reply_code == 403


async def test_missed_heartbeats_close_the_connection(amqp_url: str) -> None:
    params = parse_url(amqp_url)
    proxy = Proxy(params.host, params.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        url = f"amqp://{params.username}:{params.password}@127.0.0.1:{proxy.port}/"
        with pytest.raises(ConnectionClosed) as info:
            async with open_connection(url, heartbeat=1) as conn:
                proxy.holding = True  # the broker goes silent
                with trio.fail_after(6):
                    await conn.wait_closed()
        assert "missed heartbeats" in info.value.reply_text
        proxy.cut()
        nursery.cancel_scope.cancel()
