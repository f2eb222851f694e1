"""Connections: handshake, authentication, vhosts, tuning, heartbeats, channels,
graceful shutdown, the command line and its logs. Real clients, real sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import amqp
import pika
import pika.exceptions
import pytest
from broker_helpers import RawClient, connect, host_port

from broker.testing import BrokerThread
from protocol import methods as m
from protocol.frames import MethodFrame, encode_method_frame


def test_pika_handshake_and_server_properties(warren_url: str) -> None:
    connection = connect(warren_url)
    try:
        props = connection._impl.server_properties
        capabilities = props["capabilities"]
        for claimed in (
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "authentication_failure_close",
            "per_consumer_qos",
            "connection.blocked",
            "direct_reply_to",
            "consumer_priorities",
        ):
            assert capabilities[claimed] is True
        # RabbitMQ 3.10 announces exactly these; Warren implements them all.
        assert set(capabilities) == {
            "publisher_confirms", "exchange_exchange_bindings", "basic.nack",
            "consumer_cancel_notify", "authentication_failure_close", "per_consumer_qos",
            "connection.blocked", "direct_reply_to", "consumer_priorities",
        }
        assert props["product"] == b"Warren" or props["product"] == "Warren"
        # Tuned maxima are RabbitMQ's defaults.
        assert connection._impl.params.frame_max == 131072
        assert connection._impl.params.channel_max == 2047
    finally:
        connection.close()


def test_amqplain_login_with_py_amqp(warren_url: str) -> None:
    host, port = host_port(warren_url)
    connection = amqp.Connection(
        f"{host}:{port}", userid="guest", password="guest", login_method="AMQPLAIN"
    )
    connection.connect()
    try:
        channel = connection.channel()
        queue, _, _ = channel.queue_declare(exclusive=True)
        assert queue.startswith("amq.gen-")
    finally:
        connection.close()


def test_wrong_password_is_403(warren_url: str) -> None:
    url = warren_url.replace("guest:guest", "guest:wrong")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        connect(url)
    assert "ACCESS_REFUSED" in str(info.value)


def test_unknown_user_is_403_with_amqplain(warren_url: str) -> None:
    host, port = host_port(warren_url)
    connection = amqp.Connection(
        f"{host}:{port}", userid="nobody", password="x", login_method="AMQPLAIN"
    )
    with pytest.raises(amqp.exceptions.AccessRefused) as info:
        connection.connect()
    assert info.value.reply_code == 403


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_guest_may_log_in_only_from_loopback(tmp_path) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    thread = BrokerThread(host="0.0.0.0", port=0)
    thread.start()
    try:
        port = thread.broker.port
        # From loopback: fine.
        connect(f"amqp://guest:guest@127.0.0.1:{port}/%2F").close()
        # From another address: 403 ACCESS_REFUSED, as RabbitMQ's loopback_users.
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
            connect(f"amqp://guest:guest@{address}:{port}/%2F")
        assert "ACCESS_REFUSED" in str(info.value)
    finally:
        thread.stop()


def test_unknown_vhost_is_530(warren_url: str) -> None:
    url = warren_url.rsplit("/", 1)[0] + "/nosuch"
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(url)
    assert "(530) 'NOT_ALLOWED - vhost nosuch not found'" in str(info.value)


def test_bad_protocol_header_gets_ours_back(warren_url: str) -> None:
    host, port = host_port(warren_url)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x08\x00")
        assert sock.recv(8) == b"AMQP\x00\x00\x09\x01"
        try:
            assert sock.recv(8) == b""  # then the broker closes
        except ConnectionResetError:
            pass  # RabbitMQ closes with a reset


def test_heartbeats_keep_an_idle_connection_alive(warren_url: str) -> None:
    connection = connect(warren_url, heartbeat=1)
    try:
        assert connection._impl.params.heartbeat == 1
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.5)
        # pika closes the connection itself if it misses the broker's heartbeats.
        assert connection.is_open
        connection.channel().queue_declare("", exclusive=True)
    finally:
        connection.close()


def test_silent_peer_is_dropped_after_two_heartbeats(warren_url: str) -> None:
    with RawClient(warren_url, open_connection=False) as client:
        client.send(b"AMQP\x00\x00\x09\x01")
        client.expect(m.ConnectionStart)
        client.method(
            0,
            m.ConnectionStartOk(
                client_properties={}, mechanism="PLAIN", response=b"\0guest\0guest"
            ),
        )
        client.expect(m.ConnectionTune)
        client.method(0, m.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=1))
        client.method(0, m.ConnectionOpen(virtual_host="/"))
        client.expect(m.ConnectionOpenOk)
        started = time.monotonic()
        client.wait_closed(timeout=6)
        assert client.eof
        assert time.monotonic() - started < 5
        # The broker sent heartbeats while waiting.
        assert any(type(f).__name__ == "HeartbeatFrame" for f in client.frames)


def test_channels_open_close_and_flow(warren_url: str) -> None:
    connection = connect(warren_url)
    try:
        channels = [connection.channel() for _ in range(5)]
        assert len({c.channel_number for c in channels}) == 5
        channels[2].close()
        assert channels[2].is_closed
        assert channels[3].is_open
        # channel.flow active=true is answered flow-ok.
        channels[0].flow(True)
        channels[0].queue_declare("", exclusive=True)
    finally:
        connection.close()


def test_channel_flow_false_is_540_as_rabbitmq(warren_url: str) -> None:
    connection = connect(warren_url)
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.flow(False)
    assert info.value.reply_code == 540


def test_method_on_unopened_channel_is_504(warren_url: str) -> None:
    with RawClient(warren_url) as client:
        client.expect(m.ConnectionOpenOk)
        client.method(1, m.QueueDeclare(queue="", exclusive=True))
        close = client.expect(m.ConnectionClose)
        assert close.reply_code == 504
        assert close.reply_text.startswith("CHANNEL_ERROR")
        assert (close.class_id, close.method_id) == (50, 10)


def test_second_channel_open_is_504(warren_url: str) -> None:
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.method(1, m.ChannelOpen())
        assert client.expect(m.ConnectionClose).reply_code == 504


def test_bad_frame_end_is_501_and_others_keep_working(warren_url: str) -> None:
    other = connect(warren_url)
    try:
        with RawClient(warren_url) as client:
            client.open_channel(1)
            frame = bytearray(
                __import__("protocol.frames", fromlist=["x"]).encode_method_frame(
                    1, m.ChannelFlow(active=True)
                )
            )
            frame[-1] = 0
            client.send(bytes(frame))
            assert client.expect(m.ConnectionClose).reply_code == 501
            client.method(0, m.ConnectionCloseOk())
            client.wait_closed()
        other.channel().queue_declare("", exclusive=True)
    finally:
        other.close()


def test_content_body_without_header_is_505(warren_url: str) -> None:
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.send(b"\x03\x00\x01\x00\x00\x00\x02hi\xce")
        assert client.expect(m.ConnectionClose).reply_code == 505


def test_client_sending_a_server_method_is_503(warren_url: str) -> None:
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.method(1, m.BasicQosOk())
        assert client.expect(m.ConnectionClose).reply_code == 503


def test_graceful_shutdown_closes_connections_with_320() -> None:
    thread = BrokerThread()
    thread.start()
    connection = connect(thread.url)
    stopped = False
    try:
        connection.channel()
        import threading

        stopper = threading.Thread(target=thread.stop)
        stopper.start()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            while True:
                connection.process_data_events(time_limit=0.2)
        stopper.join()
        stopped = True
        assert info.value.reply_code == 320
        assert "CONNECTION_FORCED" in info.value.reply_text
    finally:
        if not stopped:
            thread.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_warren_serve_cli_logs_json_and_exits_0_on_sigterm(tmp_path) -> None:
    port = _free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        # Port 0 for the HTTP listeners: other brokers on this machine may
        # hold the well-known 15672 and 15692.
        [sys.executable, "-m", "broker", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--management-port", "0", "--prometheus-port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                connection = connect(f"amqp://guest:guest@127.0.0.1:{port}/%2F")
                break
            except pika.exceptions.AMQPConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        channel = connection.channel()
        channel.exchange_declare("cli-x", "fanout")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_declare("missing", passive=True)
        process.send_signal(signal.SIGTERM)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            while True:
                connection.process_data_events(time_limit=0.2)
        assert info.value.reply_code == 320
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert data_dir.is_dir()
    events = [json.loads(line) for line in process.stderr.read().decode().splitlines() if line]
    by_name = {e["event"]: e for e in events}
    assert by_name["connection.opened"]["peer"].startswith("127.0.0.1:")
    assert by_name["exchange.declared"]["exchange"] == "cli-x"
    assert by_name["channel.error"]["reply_code"] == 404
    closed = by_name["connection.closed"]
    assert closed["reply_code"] == 320 and closed["peer"].startswith("127.0.0.1:")


def test_warren_serve_refuses_a_bad_config_file(tmp_path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("exchange orders type nosuch\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--port", "0", "--management-port", "0",
         "--prometheus-port", "0", "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert result.returncode == 2
    assert "bad.conf" in result.stderr


def test_frames_pipelined_behind_connection_open(warren_url: str) -> None:
    # Clients may write channel.open and more right behind connection.open,
    # before open-ok comes back: everything is answered, in order.
    client = RawClient(warren_url, open_connection=False)
    try:
        client.handshake()  # tune-ok and connection.open, not waiting for open-ok
        client.send(
            encode_method_frame(1, m.ChannelOpen())
            + encode_method_frame(1, m.QueueDeclare(exclusive=True))
        )
        client.expect(m.ConnectionOpenOk)
        client.expect(m.ChannelOpenOk)
        assert client.expect(m.QueueDeclareOk).queue.startswith("amq.gen-")
    finally:
        client.sock.close()


def test_frames_pipelined_behind_a_refused_connection_open(warren_url: str) -> None:
    client = RawClient(warren_url, open_connection=False)
    try:
        client.handshake(vhost="no-such-vhost")
        client.send(encode_method_frame(1, m.ChannelOpen()))
        close = client.expect(m.ConnectionClose)
        assert close.reply_code == 530
        # Spec 4.2.3: the channel.open is ignored (the broker may then hang up).
        with pytest.raises((TimeoutError, EOFError)):
            client.read_until(
                lambda f: isinstance(getattr(f, "method", None), m.ChannelOpenOk), 0.5
            )
    finally:
        client.sock.close()


@pytest.mark.parametrize("properties,reply_code,reason", [
    # delivery_mode announced, the octet missing
    (b"\x10\x00", 502, "a property runs past the end of the content header"),
    # content_type longer than what follows
    (b"\x90\x00\x10json\x02", 502, "a property runs past the end of the content header"),
    # an octet after the last property
    (b"\x10\x00\x02\x02", 502, "content header size does not match its properties"),
    # content_type that is not UTF-8
    (b"\x80\x00\x02\xff\xfe", 502, "a short string property is not UTF-8"),
    # half a flags word: the frame itself is too short
    (b"\x00", 501, "content header frame too short"),
])
def test_malformed_properties_close_the_connection_and_are_not_confirmed(
        warren_url: str, properties: bytes, reply_code: int, reason: str) -> None:
    """The message is refused before it is routed: no confirm, nothing queued
    for a consumer to choke on (RabbitMQ: 541, Warren: 502 with the reason)."""
    queue = f"malformed-{properties.hex()}"
    other = connect(warren_url)
    try:
        other.channel().queue_declare(queue)
        with RawClient(warren_url) as client:
            client.open_channel(1)
            client.method(1, m.ConfirmSelect())
            client.expect(m.ConfirmSelectOk)
            client.publish(1, "", queue, b"hello", properties=properties)
            frame = client.read_until(lambda f: isinstance(f, MethodFrame) and isinstance(
                f.method, (m.ConnectionClose, m.BasicAck)))
            close = frame.method
            assert isinstance(close, m.ConnectionClose)
            assert close.reply_code == reply_code
            assert reason in close.reply_text
        channel = other.channel()
        assert channel.queue_declare(queue, passive=True).method.message_count == 0
        channel.queue_delete(queue)
    finally:
        other.close()


def test_after_close_ok_the_broker_waits_for_the_client_to_close(fresh_warren: BrokerThread) -> None:
    """As RabbitMQ (rabbit_reader: the heartbeat interval, 30 s at most): after
    close-ok the broker keeps reading and dropping until the client closes, so
    a client still flushing publishes gets no EPIPE and reads its close-ok.
    RabbitMQ 3.10.8 kept such a socket open for more than 10 s."""
    with RawClient(fresh_warren.url) as client:
        client.open_channel(1)
        client.method(0, m.ConnectionClose(reply_code=200, reply_text="bye"))
        # Publishes the client had buffered arrive after its close: no reset.
        for _ in range(50):
            client.publish(1, "", "nowhere", b"late" * 256)
        client.expect(m.ConnectionCloseOk)
        client.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            client.sock.recv(1)  # still open a second later
    deadline = time.monotonic() + 5
    while fresh_warren.run_sync(lambda: len(fresh_warren.broker.connections)):
        assert time.monotonic() < deadline, "the connection outlived the client's close"
        time.sleep(0.05)
