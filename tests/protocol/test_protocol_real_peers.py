"""The state machine against real peers over real sockets.

- Server role: pika, py-amqp (PLAIN and AMQPLAIN) and aio-pika (pamqp) open a
  connection and a channel against a minimal loop around `Connection(Role.SERVER)`,
  then close both. This is the handshake each of them really sends, pipelining
  included.
- Client role: `Connection(Role.CLIENT)` against the reference RabbitMQ
  (amqp://guest:guest@127.0.0.1:5673/), publishing and getting a message back.
  Skipped when the reference broker is not running.
"""

import asyncio
import socket
import threading
import time

import pytest

from protocol import methods as m
from protocol.connection import (
    Command,
    Connection,
    ConnectionState,
    ProtocolHeaderReceived,
    Role,
    client_start_ok,
    negotiate_tune,
    parse_sasl_response,
    server_start,
)
from protocol.constants import PROTOCOL_HEADER
from protocol.properties import BasicProperties

REFERENCE = ("127.0.0.1", 5673)


class MiniServer:
    """Just enough of a server to open and close connections and channels."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.logins: list[tuple[str, str, str]] = []
        self.errors: list[BaseException] = []
        self.closed_cleanly = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        conn = Connection(Role.SERVER)
        try:
            with sock:
                while conn.state is not ConnectionState.CLOSED:
                    data = sock.recv(65536)
                    if not data:
                        return
                    for event in conn.receive_data(data):
                        out = self._handle(conn, event)
                        if out:
                            sock.sendall(out)
                self.closed_cleanly += 1
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _handle(self, conn, event):
        if isinstance(event, ProtocolHeaderReceived):
            # aio-pika reads the capabilities table; this tiny server has none.
            return conn.send(0, server_start({"product": "test", "capabilities": {}}))
        assert isinstance(event, Command), event
        method = event.method
        if isinstance(method, m.ConnectionStartOk):
            user, password = parse_sasl_response(method.mechanism, method.response)
            self.logins.append((method.mechanism, user, password))
            return conn.send(0, m.ConnectionTune(channel_max=2047, frame_max=131072,
                                                 heartbeat=60))
        if isinstance(method, m.ConnectionOpen):
            return conn.send(0, m.ConnectionOpenOk())
        if isinstance(method, m.ChannelOpen):
            return conn.send(event.channel, m.ChannelOpenOk())
        if isinstance(method, m.ChannelClose):
            return conn.send(event.channel, m.ChannelCloseOk())
        if isinstance(method, m.ConnectionClose):
            return conn.send(0, m.ConnectionCloseOk())
        return b""

    def close(self):
        self.listener.close()


@pytest.fixture
def mini_server():
    server = MiniServer()
    yield server
    server.close()


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_pika_handshake(mini_server):
    import pika

    params = pika.ConnectionParameters(
        "127.0.0.1", mini_server.port, credentials=pika.PlainCredentials("alice", "s3cret")
    )
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.close()
    connection.close()
    assert _wait_for(lambda: mini_server.closed_cleanly == 1)
    assert mini_server.logins == [("PLAIN", "alice", "s3cret")]
    assert mini_server.errors == []


@pytest.mark.parametrize("login_method", ["PLAIN", "AMQPLAIN"])
def test_py_amqp_handshake(mini_server, login_method):
    import amqp

    connection = amqp.Connection(
        f"127.0.0.1:{mini_server.port}", userid="bob", password="pw",
        login_method=login_method, connect_timeout=5,
    )
    connection.connect()
    channel = connection.channel()
    channel.close()
    connection.close()
    assert _wait_for(lambda: mini_server.closed_cleanly == 1)
    assert mini_server.logins == [(login_method, "bob", "pw")]
    assert mini_server.errors == []


def test_aio_pika_handshake(mini_server):
    import aio_pika

    async def main():
        connection = await aio_pika.connect(f"amqp://carol:pw@127.0.0.1:{mini_server.port}/")
        channel = await connection.channel(publisher_confirms=False)
        await channel.close()
        await connection.close()

    asyncio.run(main())
    assert _wait_for(lambda: mini_server.closed_cleanly == 1)
    assert mini_server.logins == [("PLAIN", "carol", "pw")]
    assert mini_server.errors == []


def _reference_available():
    try:
        socket.create_connection(REFERENCE, timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _reference_available(), reason="reference RabbitMQ not running")
def test_client_role_against_rabbitmq():
    sock = socket.create_connection(REFERENCE, timeout=5)
    conn = Connection(Role.CLIENT)
    pending: list = []

    def next_command():
        while not pending:
            data = sock.recv(65536)
            assert data, "RabbitMQ closed the socket"
            pending.extend(conn.receive_data(data))
        event = pending.pop(0)
        assert isinstance(event, Command), event
        return event

    with sock:
        sock.sendall(conn.send_protocol_header())
        start = next_command().method
        assert isinstance(start, m.ConnectionStart)
        assert "PLAIN" in start.mechanisms.split()
        assert start.server_properties["product"] == "RabbitMQ"
        sock.sendall(conn.send(0, client_start_ok("guest", "guest")))
        tune = next_command().method
        assert isinstance(tune, m.ConnectionTune)
        sock.sendall(conn.send(0, negotiate_tune(tune, heartbeat=0)))
        sock.sendall(conn.send(0, m.ConnectionOpen(virtual_host="/")))
        assert isinstance(next_command().method, m.ConnectionOpenOk)
        assert conn.state is ConnectionState.OPEN and conn.frame_max == tune.frame_max

        sock.sendall(conn.send(1, m.ChannelOpen()))
        assert isinstance(next_command().method, m.ChannelOpenOk)
        sock.sendall(conn.send(1, m.QueueDeclare(exclusive=True, arguments={"x-max-length": 10})))
        declare_ok = next_command().method
        assert declare_ok.queue.startswith("amq.gen-")
        body = bytes(range(256)) * 1000  # several body frames each way
        props = BasicProperties(content_type="application/octet-stream", delivery_mode=1,
                                headers={"n": 1, "s": "x", "t": True, "l": [1, "a"]})
        sock.sendall(conn.send(1, m.BasicPublish(routing_key=declare_ok.queue), props, body))
        for _ in range(50):
            sock.sendall(conn.send(1, m.BasicGet(queue=declare_ok.queue, no_ack=True)))
            got = next_command()
            if isinstance(got.method, m.BasicGetOk):
                break
            time.sleep(0.05)
        assert isinstance(got.method, m.BasicGetOk)
        assert got.body == body
        assert BasicProperties.decode(got.properties) == props

        # a channel error from RabbitMQ: 404 on a passive declare
        sock.sendall(conn.send(1, m.QueueDeclare(queue="warren-no-such-queue", passive=True)))
        close = next_command()
        assert isinstance(close.method, m.ChannelClose) and close.method.reply_code == 404
        assert (close.method.class_id, close.method.method_id) == (50, 10)
        sock.sendall(conn.send(1, m.ChannelCloseOk()))
        assert 1 not in conn.open_channels

        sock.sendall(conn.send(0, m.ConnectionClose(200, "bye")))
        assert isinstance(next_command().method, m.ConnectionCloseOk)
        assert conn.state is ConnectionState.CLOSED


def test_protocol_header_is_what_rabbitmq_answers_with():
    if not _reference_available():
        pytest.skip("reference RabbitMQ not running")
    with socket.create_connection(REFERENCE, timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x08\x00")
        assert sock.recv(8) == PROTOCOL_HEADER
