"""A follower's AMQP port: real clients are told who leads, and a client with a
list of URLs moves on to the leader (broker.cluster.refusal)."""

from __future__ import annotations

import amqp
import pika
import pika.exceptions
import pytest
import trio

from broker.cluster.refusal import serve_refusals
from broker.server import open_broker

REASON = "warren-2 is a follower in cluster prod; the leader is warren-1 at 127.0.0.1:5672"


async def _follower_port(nursery: trio.Nursery) -> int:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(serve_refusals, listeners, lambda: REASON)
    return int(listeners[0].socket.getsockname()[1])


def _pika(port: int) -> None:
    pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, connection_attempts=1))


def _py_amqp(port: int) -> None:
    connection = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest")
    connection.connect()


@pytest.mark.trio
async def test_pika_sees_530_naming_the_leader() -> None:
    async with trio.open_nursery() as nursery:
        port = await _follower_port(nursery)
        # pika reports a close during the handshake as it reports RabbitMQ's
        # refusal of a vhost: ProbableAccessDeniedError, with the broker's words.
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as closed:
            await trio.to_thread.run_sync(_pika, port)
        assert f"(530) 'NOT_ALLOWED - {REASON}'" in str(closed.value)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_py_amqp_sees_530_naming_the_leader() -> None:
    async with trio.open_nursery() as nursery:
        port = await _follower_port(nursery)
        with pytest.raises(amqp.exceptions.NotAllowed, match="the leader is warren-1"):
            await trio.to_thread.run_sync(_py_amqp, port)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_list_of_urls_reaches_the_leader() -> None:
    async with open_broker(port=0) as leader, trio.open_nursery() as nursery:
        port = await _follower_port(nursery)

        def connect() -> int:
            params = [pika.ConnectionParameters("127.0.0.1", p, connection_attempts=1)
                      for p in (port, leader.port)]
            with pika.BlockingConnection(params) as connection:
                return int(connection._impl.params.port)

        assert await trio.to_thread.run_sync(connect) == leader.port
        nursery.cancel_scope.cancel()
