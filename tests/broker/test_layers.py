"""The seams between broker/'s layers, each used on its own.

- a session runs over any `trio.abc.Stream` (here an in-memory one, no
  socket) with nothing but a `SessionContext`: no server involved;
- reading a queue's state (`message_count`, `snapshot()`) changes nothing,
  while an explicit `expire()` does what a read used to do behind its back;
- resource alarms are state and a wait, with one reason text for all.
"""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from broker.alarms import ResourceAlarms
from broker.alarms.state import DISK, MEMORY
from broker.core.message import Message
from broker.core.vhost import VHost
from broker.session.connection import ClientConnection
from broker.session.context import SessionContext
from broker.session.handshake import CAPABILITIES
from broker.session.info import ConnectionInfo
from protocol import methods as m
from protocol.connection import Command, Connection, Role, client_start_ok
from protocol.properties import BasicProperties


async def _expect(client: Connection, stream: trio.abc.Stream, kind: type) -> Command:
    """Read until the client machine yields a command of `kind` (5 s at most)."""
    with trio.fail_after(5):
        while True:
            data = await stream.receive_some(65536)
            assert data, f"stream closed while waiting for {kind.__name__}"
            for event in client.receive_data(data):
                if isinstance(event, Command):
                    assert isinstance(event.method, kind), event
                    return event


@pytest.mark.trio
async def test_a_session_runs_over_an_in_memory_stream_without_a_server() -> None:
    vhost = VHost("/")
    context = SessionContext(vhosts={"/": vhost})
    client_stream, server_stream = trio.testing.memory_stream_pair()
    info = ConnectionInfo("127.0.0.1", 40000, listener="test")
    session = ClientConnection(server_stream, info, context)
    client = Connection(Role.CLIENT)
    ended = trio.Event()

    async def run_session() -> None:
        await session.run()
        ended.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_session)
        await client_stream.send_all(client.send_protocol_header())
        start = await _expect(client, client_stream, m.ConnectionStart)
        # What is announced is the handshake's one table, nothing else.
        assert start.method.server_properties["capabilities"] == CAPABILITIES
        await client_stream.send_all(client.send(0, client_start_ok("guest", "guest")))
        tune = await _expect(client, client_stream, m.ConnectionTune)
        await client_stream.send_all(
            client.send(0, m.ConnectionTuneOk(channel_max=tune.method.channel_max,
                                              frame_max=tune.method.frame_max, heartbeat=0))
            + client.send(0, m.ConnectionOpen(virtual_host="/"))
        )
        await _expect(client, client_stream, m.ConnectionOpenOk)
        await client_stream.send_all(client.send(1, m.ChannelOpen()))
        await _expect(client, client_stream, m.ChannelOpenOk)
        await client_stream.send_all(client.send(1, m.QueueDeclare(queue="q")))
        await _expect(client, client_stream, m.QueueDeclareOk)
        publish = client.send(
            1, m.BasicPublish(exchange="", routing_key="q"),
            BasicProperties().encode(), b"over memory",
        )
        await client_stream.send_all(publish + client.send(1, m.BasicGet(queue="q", no_ack=True)))
        got = await _expect(client, client_stream, m.BasicGetOk)
        assert got.body == b"over memory"
        assert session.peer_text == "127.0.0.1:40000" and session.user == "guest"
        await client_stream.send_all(client.send(0, m.ConnectionClose(reply_code=200)))
        await _expect(client, client_stream, m.ConnectionCloseOk)
        # The client closes its end after close-ok; the session, which waits
        # for that (as RabbitMQ does), ends.
        await client_stream.aclose()
        with trio.fail_after(5):
            await ended.wait()
    assert "q" in vhost.queues and vhost.queues["q"].message_count == 0


@pytest.mark.trio
async def test_a_session_refuses_a_vhost_it_was_not_handed() -> None:
    context = SessionContext(vhosts={"/": VHost("/")})
    client_stream, server_stream = trio.testing.memory_stream_pair()
    session = ClientConnection(server_stream, ConnectionInfo("127.0.0.1", 1), context)
    client = Connection(Role.CLIENT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        await client_stream.send_all(client.send_protocol_header())
        await _expect(client, client_stream, m.ConnectionStart)
        await client_stream.send_all(client.send(0, client_start_ok("guest", "guest")))
        await _expect(client, client_stream, m.ConnectionTune)
        await client_stream.send_all(
            client.send(0, m.ConnectionTuneOk(channel_max=0, frame_max=131072, heartbeat=0))
            + client.send(0, m.ConnectionOpen(virtual_host="elsewhere"))
        )
        close = await _expect(client, client_stream, m.ConnectionClose)
        assert close.method.reply_code == 530
        assert close.method.reply_text == "NOT_ALLOWED - vhost elsewhere not found"
        nursery.cancel_scope.cancel()


def _message(body: bytes = b"x") -> Message:
    return Message("", "q", BasicProperties().encode(), body)


def test_reading_a_queue_changes_nothing_expiring_does() -> None:
    vhost = VHost("/")
    vhost.declare_queue(None, "dead")
    queue = vhost.declare_queue(None, "q", arguments={
        "x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead",
    })
    for _ in range(3):
        queue.enqueue(_message())
    time.sleep(0.03)  # every message is now past its TTL; no timer runs here
    snapshot = queue.snapshot()
    assert queue.message_count == 3 and snapshot.messages_ready == 3
    assert snapshot.message_bytes_ready == 3 and snapshot.messages == 3
    assert vhost.queues["dead"].message_count == 0  # reading dead-lettered nothing
    queue.expire()
    assert queue.message_count == 0 and vhost.queues["dead"].message_count == 3
    # The snapshot taken before is a value: it did not change either.
    assert snapshot.messages_ready == 3


def test_a_queue_counts_its_unacknowledged_deliveries() -> None:
    vhost = VHost("/")
    queue = vhost.declare_queue(None, "q")
    for _ in range(3):
        queue.enqueue(_message())
    first, second = queue.get(), queue.get()
    assert first is not None and second is not None
    queue.handed_out(first, no_ack=False)
    queue.handed_out(second, no_ack=True)
    assert queue.snapshot().messages_unacknowledged == 1
    queue.requeue([first])
    snapshot = queue.snapshot()
    assert (snapshot.messages_ready, snapshot.messages_unacknowledged) == (2, 0)


@pytest.mark.trio
async def test_alarms_block_until_every_reason_clears() -> None:
    alarms = ResourceAlarms()
    assert not alarms.active
    await alarms.wait_clear()  # nothing on: returns at once
    alarms.set(DISK)
    alarms.set(MEMORY)
    assert alarms.reason() == "low on disk & memory"  # RabbitMQ 3.10.8, either order
    cleared = trio.Event()

    async def waiter() -> None:
        await alarms.wait_clear()
        cleared.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        alarms.clear(DISK)
        await trio.testing.wait_all_tasks_blocked()
        assert not cleared.is_set() and alarms.reason() == "low on memory"
        alarms.clear(MEMORY)
        with trio.fail_after(1):
            await cleared.wait()
    assert not alarms.active and alarms.resources == frozenset()


@pytest.mark.parametrize("peer, loopback", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("2001:db8::1", False), ("?", False),
])
def test_connection_info_knows_loopback_peers(peer: str, loopback: bool) -> None:
    assert ConnectionInfo(peer, 1).is_loopback is loopback
