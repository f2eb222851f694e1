"""Connection negotiation: connection.start, tune, open, heartbeats (spec 1.4.2)."""

from __future__ import annotations

import asyncio
import time

import aiormq
import pika
import pika.exceptions
import pytest

from conformance.helpers import Consumer, connection_closed_with, publish, pump

AREA = "connection negotiation"

#: Spec 4.2.1: "frame-min-size = 4096"; a server must accept frames up to this size.
FRAME_MIN_SIZE = 4096


def server_tune(url: str):
    """The connection.tune the server proposes, as aiormq received it."""

    async def _tune():
        connection = await aiormq.connect(url)
        try:
            return connection.connection_tune, connection.server_properties
        finally:
            await connection.close()

    return asyncio.run(_tune())


def test_server_properties_name_product_and_version(connection):
    properties = connection._impl.server_properties
    assert properties.get("product"), "connection.start must name the product"
    assert properties.get("version"), "connection.start must give a version"


@pytest.mark.parametrize(
    "capability",
    [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "per_consumer_qos",
        "authentication_failure_close",
        "direct_reply_to",
    ],
)
def test_server_advertises_capability(connection, capability):
    # Clients (pika, kombu, amqplib) read these flags to decide what to use.
    capabilities = connection._impl.server_properties.get("capabilities", {})
    assert capabilities.get(capability) is True


def test_tune_proposes_frame_max_of_at_least_frame_min_size(amqp_url):
    tune, _ = server_tune(amqp_url)
    assert tune.frame_max == 0 or tune.frame_max >= FRAME_MIN_SIZE


def test_tune_proposes_a_channel_max(amqp_url):
    tune, _ = server_tune(amqp_url)
    # RabbitMQ proposes 2047; 0 would mean "no limit", which no bounded broker offers.
    assert 0 < tune.channel_max <= 65535


def test_tune_proposes_a_heartbeat(amqp_url, connect):
    proposed = []

    def accept(_connection, server_value):
        proposed.append(server_value)
        return server_value

    connect(heartbeat=accept)
    assert len(proposed) == 1
    assert proposed[0] > 0  # RabbitMQ proposes 60 seconds


def test_client_smaller_frame_max_is_honoured(connect, names):
    """With frame_max 4096 a 50 kB body must arrive split and reassembled intact."""
    connection = connect(frame_max=FRAME_MIN_SIZE)
    assert connection._impl.params.frame_max == FRAME_MIN_SIZE
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    body = bytes(range(256)) * 200
    publish(channel, "", queue, body)
    consumer = Consumer(channel, queue, auto_ack=True)
    assert consumer.wait(1)[0].body == body


def test_client_smaller_channel_max_is_honoured(connect):
    connection = connect(channel_max=3)
    assert connection._impl.params.channel_max == 3
    channels = [connection.channel() for _ in range(3)]
    assert sorted(ch.channel_number for ch in channels) == [1, 2, 3]


def test_opening_more_channels_than_channel_max_closes_connection(connect):
    """Spec 1.4.2.6: channel-max bounds the channels a client may use at once.

    RabbitMQ counts open channels and closes the connection with 530 NOT_ALLOWED
    when one more is opened; pika would refuse a fourth number itself, so the
    test names the channel number explicitly.
    """
    connection = connect(channel_max=2)
    connection.channel()
    connection.channel()
    with connection_closed_with(530):
        connection.channel(channel_number=3)


def test_negotiated_heartbeat_keeps_an_idle_connection_alive(connect, names):
    """With a 1 s heartbeat the server sends heartbeat frames while we are idle."""
    connection = connect(heartbeat=1)
    assert connection._impl.params.heartbeat == 1
    pump(connection, 2.5)
    checker = connection._impl._heartbeat_checker
    assert checker is not None
    assert checker._heartbeat_frames_received >= 1
    assert connection.is_open
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)


def test_silent_client_is_disconnected_after_missed_heartbeats(connect):
    """Spec 4.2.7: a peer that sends nothing for about two heartbeat intervals is dead.

    Blocking pika sends heartbeats only while its I/O loop runs, so sleeping
    makes the client silent; the server must close the socket.
    """
    connection = connect(heartbeat=1)
    time.sleep(4.0)
    with pytest.raises(pika.exceptions.AMQPConnectionError) as exc:
        connection.process_data_events(time_limit=1)
        connection.channel()
    # The server closed it, not pika's own checker (which waits heartbeat + 5 s).
    assert not isinstance(exc.value, pika.exceptions.AMQPHeartbeatTimeout)


def _py_amqp(amqp_url: str, heartbeat: int):
    import amqp

    params = pika.URLParameters(amqp_url)
    connection = amqp.Connection(
        f"{params.host}:{params.port}",
        userid=params.credentials.username,
        password=params.credentials.password,
        virtual_host=params.virtual_host,
        heartbeat=heartbeat,
    )
    connection.connect()
    return connection


def test_a_client_that_only_answers_server_heartbeats_stays_connected(amqp_url):
    """Some clients (one Node client among them) send a heartbeat only in answer
    to one of the server's: with a 1 s heartbeat the server must send often
    enough (every half interval when idle, as RabbitMQ) for them to live."""

    connection = _py_amqp(amqp_url, heartbeat=1)
    try:
        heard = connection.bytes_recv
        answered = 0
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=0.05)
            except TimeoutError:
                pass
            if connection.bytes_recv != heard:
                heard = connection.bytes_recv
                connection.send_heartbeat()
                answered += 1
        assert answered >= 5, "the server sent too few heartbeats to answer"
        assert connection.channel().is_open
    finally:
        connection.close()


def test_a_silent_client_is_dropped_after_about_three_heartbeat_intervals(amqp_url):
    """RabbitMQ looks at the bytes received every interval and gives up after two
    looks with nothing: a client silent from the start is dropped 3 intervals
    after tune-ok (rabbit_heartbeat.erl); a 1 s heartbeat gives 2 to 3.5 s."""
    connection = _py_amqp(amqp_url, heartbeat=1)
    sock = connection.sock
    started = time.monotonic()
    sock.settimeout(10)
    try:
        while sock.recv(4096):  # the server's heartbeats, then nothing
            pass
    except ConnectionResetError:
        pass  # RabbitMQ resets, Warren closes: both end the connection
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed <= 3.5, elapsed


def test_heartbeat_zero_disables_heartbeats(connect):
    connection = connect(heartbeat=0)
    assert connection._impl.params.heartbeat == 0
    assert connection._impl._heartbeat_checker is None
    assert connection.channel().is_open


def test_wrong_password_is_refused_with_403(amqp_url):
    params = pika.URLParameters(amqp_url)
    params.credentials = pika.PlainCredentials(
        params.credentials.username, params.credentials.password + "-wrong"
    )
    # authentication_failure_close: the server says connection.close 403
    # ACCESS_REFUSED before closing the socket, so pika knows why.
    with pytest.raises(pika.exceptions.AMQPConnectionError) as exc:
        pika.BlockingConnection(params)
    assert "(403)" in str(exc.value), repr(exc.value)


def test_unknown_vhost_is_refused_with_530(amqp_url):
    params = pika.URLParameters(amqp_url)
    params.virtual_host = "conformance-no-such-vhost"
    with pytest.raises(pika.exceptions.AMQPConnectionError) as exc:
        pika.BlockingConnection(params)
    assert "(530)" in str(exc.value), repr(exc.value)


def test_connection_close_is_clean(connect):
    connection = connect()
    connection.channel()
    connection.close()
    assert connection.is_closed
