"""The connection state machine, both roles, driven by real bytes."""

import pytest
from sized_frames import body_frame, header_frame, prefix_for, sized_frame

from protocol import methods as m
from protocol.connection import (
    MAX_BODY_SIZE,
    Command,
    Connection,
    ConnectionState,
    HeartbeatReceived,
    LocalProtocolError,
    ProtocolFailure,
    ProtocolHeaderReceived,
    Role,
    client_start_ok,
    negotiate_tune,
    parse_sasl_response,
    server_start,
)
from protocol.constants import PROTOCOL_HEADER
from protocol.errors import BadProtocolHeader, ConnectionException
from protocol.fields import encode_table
from protocol.frames import encode_content_frames, encode_heartbeat, encode_method_frame
from protocol.properties import BasicProperties


def open_pair(heartbeat=60, frame_max=131072, channel_max=2047):
    """A client and a server machine talking to each other until both are open."""
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)
    events = server.receive_data(client.send_protocol_header())
    assert events == [ProtocolHeaderReceived()]
    [start] = client.receive_data(server.send(0, server_start()))
    assert isinstance(start.method, m.ConnectionStart)
    [start_ok] = server.receive_data(client.send(0, client_start_ok("guest", "guest")))
    assert parse_sasl_response(start_ok.method.mechanism, start_ok.method.response) == (
        "guest", "guest",
    )
    tune = m.ConnectionTune(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat)
    [tune_cmd] = client.receive_data(server.send(0, tune))
    tune_ok = negotiate_tune(tune_cmd.method)
    # pika and py-amqp pipeline tune-ok and open in one write
    data = client.send(0, tune_ok) + client.send(0, m.ConnectionOpen(virtual_host="/"))
    events = server.receive_data(data)
    assert [type(e.method) for e in events] == [m.ConnectionTuneOk, m.ConnectionOpen]
    assert server.virtual_host == "/"
    [open_ok] = client.receive_data(server.send(0, m.ConnectionOpenOk()))
    assert isinstance(open_ok.method, m.ConnectionOpenOk)
    assert client.state is server.state is ConnectionState.OPEN
    return client, server


def open_channel(client, server, channel=1):
    [cmd] = server.receive_data(client.send(channel, m.ChannelOpen()))
    assert cmd == Command(channel, m.ChannelOpen())
    [ok] = client.receive_data(server.send(channel, m.ChannelOpenOk()))
    assert isinstance(ok.method, m.ChannelOpenOk)


def test_handshake_negotiates_both_sides():
    client, server = open_pair(heartbeat=30, frame_max=131072, channel_max=100)
    for conn in (client, server):
        assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (100, 131072, 30)
    assert client.our_role is Role.CLIENT and client.their_role is Role.SERVER
    assert server.our_role is Role.SERVER and server.their_role is Role.CLIENT


def test_protocol_header_in_pieces_and_with_frames_behind_it():
    server = Connection(Role.SERVER)
    assert server.receive_data(b"AMQ") == []
    assert server.receive_data(b"P\x00\x00") == []
    start_ok = encode_method_frame(0, client_start_ok("u", "p"))
    events = server.receive_data(b"\x09\x01" + start_ok)
    assert events[0] == ProtocolHeaderReceived()
    assert isinstance(events[1].method, m.ConnectionStartOk)


@pytest.mark.parametrize(
    "header", [b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x09", b"GET / HTTP/1.1\r\n", b"\x01"]
)
def test_bad_protocol_header(header):
    server = Connection(Role.SERVER)
    with pytest.raises(BadProtocolHeader):
        server.receive_data(header)
    assert server.receive_data(b"more") == []


def test_client_sees_server_refusing_its_version():
    client = Connection(Role.CLIENT)
    client.send_protocol_header()
    [failure] = client.receive_data(b"AMQP\x00\x00\x08\x00")
    assert isinstance(failure, ProtocolFailure) and failure.error.reply_code == 501


def test_handshake_out_of_order_is_503():
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    [failure] = server.receive_data(encode_method_frame(0, m.ConnectionOpen()))
    assert isinstance(failure, ProtocolFailure)
    assert failure.error.reply_code == 503
    assert (failure.error.class_id, failure.error.method_id) == (10, 40)


def test_channel_method_before_open_is_504():
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    [failure] = server.receive_data(encode_method_frame(1, m.ChannelOpen()))
    assert failure.error.reply_code == 504


def test_tune_ok_above_offer_is_refused():
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    server.receive_data(encode_method_frame(0, client_start_ok("u", "p")))
    server.send(0, m.ConnectionTune(channel_max=10, frame_max=131072, heartbeat=60))
    [failure] = server.receive_data(
        encode_method_frame(0, m.ConnectionTuneOk(channel_max=10, frame_max=1 << 20, heartbeat=0))
    )
    assert failure.error.reply_code == 530


def test_tune_ok_zero_accepts_our_limits():
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    server.receive_data(encode_method_frame(0, client_start_ok("u", "p")))
    server.send(0, m.ConnectionTune(channel_max=10, frame_max=131072, heartbeat=60))
    server.receive_data(encode_method_frame(0, m.ConnectionTuneOk(0, 0, 0)))
    assert (server.channel_max, server.frame_max, server.heartbeat) == (10, 131072, 0)


def test_negotiate_tune_rules():
    tune = m.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=60)
    assert negotiate_tune(tune) == m.ConnectionTuneOk(2047, 131072, 60)
    assert negotiate_tune(tune, 10, 8192, 5) == m.ConnectionTuneOk(10, 8192, 5)
    assert negotiate_tune(tune, 0, 0, 0) == m.ConnectionTuneOk(2047, 131072, 60)
    zero = m.ConnectionTune(channel_max=0, frame_max=0, heartbeat=0)
    assert negotiate_tune(zero, 5, 0, 10) == m.ConnectionTuneOk(5, 0, 10)
    assert negotiate_tune(zero, 0, 0, 0) == m.ConnectionTuneOk(0, 0, 0)


def test_sasl_responses():
    assert parse_sasl_response("PLAIN", b"\x00guest\x00secret") == ("guest", "secret")
    assert parse_sasl_response("PLAIN", b"admin\x00guest\x00secret") == ("guest", "secret")
    amqplain = encode_table({"LOGIN": "bob", "PASSWORD": "pw"})
    assert parse_sasl_response("AMQPLAIN", amqplain[4:]) == ("bob", "pw")  # py-amqp's form
    assert parse_sasl_response("AMQPLAIN", amqplain) == ("bob", "pw")
    for mechanism, response, code in [
        ("PLAIN", b"guest", 403),
        ("PLAIN", b"\x00\xff\x00x", 403),
        ("AMQPLAIN", b"\x05LOGINS\x00", 403),
        ("AMQPLAIN", encode_table({"LOGIN": "bob"})[4:], 403),
        ("EXTERNAL", b"", 503),
    ]:
        with pytest.raises(ConnectionException) as info:
            parse_sasl_response(mechanism, response)
        assert info.value.reply_code == code
        assert info.value.closes_connection


def test_client_start_ok_amqplain_round_trip():
    start_ok = client_start_ok("u", "p", mechanism="AMQPLAIN")
    assert parse_sasl_response("AMQPLAIN", start_ok.response) == ("u", "p")


def test_content_assembly_across_frames_and_batches():
    client, server = open_pair(frame_max=4096)
    open_channel(client, server)
    body = bytes(range(256)) * 50  # 12800 octets: four body frames
    props = BasicProperties(content_type="application/octet-stream", delivery_mode=2)
    data = client.send(1, m.BasicPublish(exchange="", routing_key="q"), props, body)
    data += client.send(1, m.BasicPublish(exchange="", routing_key="q"), props, b"")
    events = []
    for i in range(0, len(data), 1000):
        events += server.receive_data(data[i : i + 1000])
    assert len(events) == 2
    first, second = events
    assert first.method == m.BasicPublish(exchange="", routing_key="q")
    assert first.body == body
    assert BasicProperties.decode(first.properties) == props
    assert second.body == b""


def test_deliver_assembled_on_the_client():
    client, server = open_pair()
    open_channel(client, server)
    data = server.send(
        1,
        m.BasicDeliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q"),
        b"\x00\x00",
        b"hi",
    )
    [cmd] = client.receive_data(data)
    assert cmd.method.delivery_tag == 1 and cmd.body == b"hi" and cmd.properties == b"\x00\x00"


def _server_with_channel():
    client, server = open_pair(frame_max=4096)
    open_channel(client, server)
    return client, server


@pytest.mark.parametrize(
    "frames",
    [
        # header without a method
        lambda: encode_content_frames(1, m.BasicPublish(), b"\x00\x00", b"abc", 4096)[
            len(encode_method_frame(1, m.BasicPublish())):
        ],
        # method, then another method instead of the header
        lambda: encode_method_frame(1, m.BasicPublish()) + encode_method_frame(1, m.BasicQos()),
        # body frame with no content in progress
        lambda: b"\x03\x00\x01\x00\x00\x00\x01x\xce",
    ],
)
def test_out_of_order_content_is_505(frames):
    _, server = _server_with_channel()
    events = server.receive_data(frames())
    assert isinstance(events[-1], ProtocolFailure)
    assert events[-1].error.reply_code == 505
    assert events[-1].error.closes_connection


def test_content_error_texts_are_rabbitmqs():
    _, server = _server_with_channel()
    [failure] = server.receive_data(
        encode_method_frame(1, m.BasicPublish()) + encode_method_frame(1, m.BasicQos())
    )
    assert failure.error.reply_text == (
        "expected content header for class 60, got non content header frame instead"
    )
    assert (failure.error.class_id, failure.error.method_id) == (60, 40)
    _, server = _server_with_channel()
    [failure] = server.receive_data(b"\x03\x00\x01\x00\x00\x00\x01x\xce")
    assert failure.error.reply_text == "expected method frame, got non method frame instead"
    _, server = _server_with_channel()
    whole = encode_content_frames(1, m.BasicPublish(), b"\x00\x00", b"abc", 4096)
    [failure] = server.receive_data(whole[:-11] + encode_method_frame(1, m.BasicQos()))
    assert failure.error.reply_text == (
        "expected content body, got non content body frame instead"
    )


def test_body_larger_than_announced_is_an_error():
    _, server = _server_with_channel()
    data = encode_method_frame(1, m.BasicPublish())
    data += b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00" + (2).to_bytes(8, "big") + b"\x00\x00\xce"
    data += b"\x03\x00\x01\x00\x00\x00\x03abc\xce"
    [failure] = server.receive_data(data)
    assert failure.error.reply_code == 505
    assert (failure.error.class_id, failure.error.method_id) == (60, 40)


def test_body_over_max_body_size_closes_only_the_channel():
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, max_body_size=1000)
    server.receive_data(client.send_protocol_header())
    client.receive_data(server.send(0, server_start()))
    server.receive_data(client.send(0, client_start_ok("u", "p")))
    client.receive_data(server.send(0, m.ConnectionTune(0, 4096, 0)))
    server.receive_data(client.send(0, m.ConnectionTuneOk(0, 4096, 0)))
    server.receive_data(client.send(0, m.ConnectionOpen()))
    client.receive_data(server.send(0, m.ConnectionOpenOk()))
    open_channel(client, server, 1)
    open_channel(client, server, 2)
    data = client.send(1, m.BasicPublish(routing_key="q"), b"\x00\x00", b"x" * 5000)
    data += client.send(2, m.BasicPublish(routing_key="q"), b"\x00\x00", b"ok")
    events = server.receive_data(data)
    assert isinstance(events[0], ProtocolFailure)
    assert events[0].error.reply_code == 406 and not events[0].error.closes_connection
    assert events[0].channel == 1
    assert events[1].channel == 2 and events[1].body == b"ok"
    # the machine ignores the rest of channel 1 until close-ok
    server.send(1, m.ChannelClose(406, "too big", 60, 40))
    assert server.receive_data(client.send(1, m.BasicAck(delivery_tag=1))) == []
    [ok] = server.receive_data(client.send(1, m.ChannelCloseOk()))
    assert isinstance(ok.method, m.ChannelCloseOk)
    assert 1 not in server.open_channels


def test_channel_bookkeeping():
    """Reply codes and texts as RabbitMQ 3.10 gives them for the same frames."""
    client, server = open_pair(channel_max=3)
    open_channel(client, server, 1)
    [failure] = server.receive_data(client.send(1, m.ChannelOpen()))
    assert failure.error.reply_code == 504
    assert failure.error.reply_text == "second 'channel.open' seen"
    # channel_max bounds how many are open at once, not the numbers (as RabbitMQ)
    client, server = open_pair(channel_max=3)
    for number in (7, 100, 65535):
        open_channel(client, server, number)
    [failure] = server.receive_data(encode_method_frame(4, m.ChannelOpen()))
    # class 0, method 0: RabbitMQ 3.10.8 names no method in this close (read off the node)
    assert (failure.error.reply_code, failure.error.class_id, failure.error.method_id) == (530, 0, 0)
    client, server = open_pair()
    [failure] = server.receive_data(encode_method_frame(5, m.BasicQos()))
    assert failure.error.reply_code == 504
    assert failure.error.reply_text == "expected 'channel.open'"
    assert (failure.error.class_id, failure.error.method_id) == (60, 10)
    client, server = open_pair()
    [failure] = server.receive_data(encode_method_frame(0, m.BasicQos()))
    assert failure.error.reply_code == 504
    assert failure.error.reply_text == "unexpected method in connection state running"
    client, server = open_pair()
    [failure] = server.receive_data(encode_method_frame(1, m.ConnectionOpen()))
    assert (failure.error.reply_code, failure.error.class_id, failure.error.method_id) == (
        503, 10, 40,
    )
    client, server = _server_with_channel()
    [failure] = server.receive_data(encode_method_frame(1, m.ChannelCloseOk()))
    assert (failure.error.reply_code, failure.error.reply_text) == (503, "unimplemented method")
    client, server = open_pair()
    [failure] = server.receive_data(encode_method_frame(0, m.ConnectionCloseOk()))
    assert failure.error.reply_code == 504


def test_channel_close_initiated_by_peer():
    client, server = _server_with_channel()
    [close] = server.receive_data(client.send(1, m.ChannelClose(200, "bye")))
    assert isinstance(close.method, m.ChannelClose)
    [ok] = client.receive_data(server.send(1, m.ChannelCloseOk()))
    assert isinstance(ok.method, m.ChannelCloseOk)
    assert 1 not in server.open_channels and 1 not in client.open_channels
    open_channel(client, server, 1)  # the number can be reused


def test_simultaneous_channel_close():
    client, server = _server_with_channel()
    to_client = server.send(1, m.ChannelClose(406, "PRECONDITION_FAILED", 60, 40))
    to_server = client.send(1, m.ChannelClose(200, "bye"))
    [close] = server.receive_data(to_server)
    [close_too] = client.receive_data(to_client)
    assert isinstance(close.method, m.ChannelClose) and isinstance(close_too.method, m.ChannelClose)
    # each answers the other's close; the channel is free once both close-oks are in
    to_client = server.send(1, m.ChannelCloseOk())
    to_server = client.send(1, m.ChannelCloseOk())
    assert 1 in server.open_channels and 1 in client.open_channels
    [ok] = server.receive_data(to_server)
    [ok_too] = client.receive_data(to_client)
    assert isinstance(ok.method, m.ChannelCloseOk) and isinstance(ok_too.method, m.ChannelCloseOk)
    assert 1 not in server.open_channels and 1 not in client.open_channels
    open_channel(client, server, 1)


def test_simultaneous_connection_close():
    client, server = _server_with_channel()
    to_client = server.send(0, m.ConnectionClose(320, "CONNECTION_FORCED"))
    to_server = client.send(0, m.ConnectionClose(200, "bye"))
    [close] = server.receive_data(to_server)
    [close_too] = client.receive_data(to_client)
    assert isinstance(close.method, m.ConnectionClose)
    assert isinstance(close_too.method, m.ConnectionClose)
    to_client = server.send(0, m.ConnectionCloseOk())
    to_server = client.send(0, m.ConnectionCloseOk())
    assert server.receive_data(to_server) == [] and client.receive_data(to_client) == []
    assert server.state is client.state is ConnectionState.CLOSED


def test_after_channel_close_only_close_ok_counts():
    client, server = _server_with_channel()
    server.send(1, m.ChannelClose(404, "NOT_FOUND - no queue 'q'", 50, 10))
    noise = encode_content_frames(1, m.BasicPublish(), b"\x00\x00", b"zz", 4096)
    noise += encode_method_frame(1, m.BasicAck(delivery_tag=1))
    assert server.receive_data(noise) == []
    [ok] = server.receive_data(encode_method_frame(1, m.ChannelCloseOk()))
    assert ok == Command(1, m.ChannelCloseOk())


def test_after_connection_close_only_close_ok_counts():
    client, server = _server_with_channel()
    server.send(0, m.ConnectionClose(320, "CONNECTION_FORCED", 0, 0))
    assert server.state is ConnectionState.CLOSING
    noise = encode_method_frame(1, m.BasicAck(delivery_tag=1)) + encode_method_frame(0, m.BasicQos())
    assert server.receive_data(noise) == []
    [close] = client.receive_data(
        encode_method_frame(0, m.ConnectionClose(320, "CONNECTION_FORCED"))
    )
    assert client.state is ConnectionState.CLOSE_RECEIVED
    [ok] = server.receive_data(client.send(0, m.ConnectionCloseOk()))
    assert isinstance(ok.method, m.ConnectionCloseOk)
    assert server.state is client.state is ConnectionState.CLOSED
    assert server.receive_data(b"anything") == []
    with pytest.raises(LocalProtocolError):
        server.send(1, m.BasicAck())


def test_garbage_after_close_is_ignored():
    _, server = _server_with_channel()
    server.send(0, m.ConnectionClose(501, "FRAME_ERROR"))
    assert server.receive_data(b"\xff" * 20) == []


def test_unknown_method_after_close_still_lets_close_ok_through():
    client, server = _server_with_channel()
    server.send(0, m.ConnectionClose(320, "CONNECTION_FORCED"))
    unknown = b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x03\xe7\xce"
    assert server.receive_data(unknown) == []
    [ok] = server.receive_data(client.send(0, m.ConnectionCloseOk()))
    assert isinstance(ok.method, m.ConnectionCloseOk)


def test_frame_error_is_a_failure_event_after_valid_events():
    client, server = _server_with_channel()
    data = client.send(1, m.BasicAck(delivery_tag=1)) + b"\x01\x00\x01\x00\x00\x00\x00\x00"
    events = server.receive_data(data)
    assert events[0] == Command(1, m.BasicAck(delivery_tag=1))
    assert isinstance(events[1], ProtocolFailure) and events[1].error.reply_code == 501


def test_undecodable_arguments_keep_the_stream_readable_for_close_ok():
    client, server = _server_with_channel()
    bad = b"\x01\x00\x01\x00\x00\x00\x05\x00\x3c\x00\x50\x00\xce"  # basic.ack, 1 arg byte
    [failure] = server.receive_data(bad)
    assert failure.error.reply_code == 501  # RabbitMQ: FRAME_ERROR - cannot decode
    assert (failure.error.class_id, failure.error.method_id) == (60, 80)
    server.send(0, m.ConnectionClose(501, "FRAME_ERROR", 60, 80))
    [ok] = server.receive_data(client.send(0, m.ConnectionCloseOk()))
    assert server.state is ConnectionState.CLOSED and isinstance(ok.method, m.ConnectionCloseOk)


def test_frame_max_is_enforced_after_tune():
    client, server = open_pair(frame_max=4096)
    open_channel(client, server)
    big = b"\x03\x00\x01" + (5000).to_bytes(4, "big")
    [failure] = server.receive_data(encode_method_frame(1, m.BasicPublish()) + big)
    assert failure.error.reply_code == 501


def test_heartbeats():
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)
    server.receive_data(client.send_protocol_header(now=0.0), now=0.0)
    client.receive_data(server.send(0, server_start(), now=0.0), now=0.0)
    server.receive_data(client.send(0, client_start_ok("u", "p"), now=0.0), now=0.0)
    client.receive_data(server.send(0, m.ConnectionTune(0, 131072, 10), now=0.0), now=0.0)
    server.receive_data(client.send(0, m.ConnectionTuneOk(0, 131072, 10), now=0.0), now=0.0)
    server.receive_data(client.send(0, m.ConnectionOpen(), now=0.0), now=0.0)
    client.receive_data(server.send(0, m.ConnectionOpenOk(), now=1.0), now=1.0)
    assert server.heartbeat == client.heartbeat == 10
    assert not server.heartbeat_due(5.0)
    assert server.heartbeat_due(6.0)  # nothing sent for heartbeat/2
    [beat] = client.receive_data(server.send_heartbeat(now=6.0), now=6.0)
    assert beat == HeartbeatReceived()
    assert not server.heartbeat_due(10.0)
    assert server.heartbeat_deadline() == 11.0
    assert not server.peer_is_dead(19.0)
    assert server.peer_is_dead(20.0)  # two heartbeat periods of silence
    server.receive_data(encode_heartbeat(), now=19.5)
    assert not server.peer_is_dead(20.0)
    server.data_sent(14.0)  # e.g. deliveries written with encode_basic_deliver
    assert not server.heartbeat_due(18.0) and server.heartbeat_due(19.0)
    no_beat = Connection(Role.SERVER)
    assert not no_beat.heartbeat_due(100.0) and not no_beat.peer_is_dead(100.0)


def test_connection_blocked_and_update_secret():
    client, server = open_pair()
    [blocked] = client.receive_data(server.send(0, m.ConnectionBlocked(reason="low on memory")))
    assert blocked.method.reason == "low on memory"
    [unblocked] = client.receive_data(server.send(0, m.ConnectionUnblocked()))
    assert isinstance(unblocked.method, m.ConnectionUnblocked)
    [update] = server.receive_data(
        client.send(0, m.ConnectionUpdateSecret(new_secret=b"token", reason="refresh"))
    )
    assert update.method.new_secret == b"token"
    [ok] = client.receive_data(server.send(0, m.ConnectionUpdateSecretOk()))
    assert isinstance(ok.method, m.ConnectionUpdateSecretOk)


def test_secure_round_trips_before_tune():
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)
    server.receive_data(client.send_protocol_header())
    client.receive_data(server.send(0, server_start()))
    server.receive_data(client.send(0, client_start_ok("u", "p")))
    for challenge in (b"first", b"second"):
        [secure] = client.receive_data(server.send(0, m.ConnectionSecure(challenge=challenge)))
        assert secure.method.challenge == challenge
        [secure_ok] = server.receive_data(client.send(0, m.ConnectionSecureOk(response=b"r")))
        assert secure_ok.method.response == b"r"
    [tune] = client.receive_data(server.send(0, m.ConnectionTune(0, 131072, 0)))
    server.receive_data(client.send(0, negotiate_tune(tune.method)))
    server.receive_data(client.send(0, m.ConnectionOpen(virtual_host="v")))
    client.receive_data(server.send(0, m.ConnectionOpenOk()))
    assert server.state is client.state is ConnectionState.OPEN
    assert server.virtual_host == client.virtual_host == "v"


def test_secure_ok_when_no_secure_was_sent_is_503():
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    server.receive_data(encode_method_frame(0, client_start_ok("u", "p")))
    server.send(0, m.ConnectionTune(0, 131072, 0))
    [failure] = server.receive_data(encode_method_frame(0, m.ConnectionSecureOk(response=b"x")))
    assert failure.error.reply_code == 503


def _server_before_open():
    """A server machine that has seen start-ok and tune-ok, and a client behind it."""
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)
    server.receive_data(client.send_protocol_header())
    client.receive_data(server.send(0, server_start()))
    server.receive_data(client.send(0, client_start_ok("guest", "guest")))
    tune = m.ConnectionTune(channel_max=10, frame_max=131072, heartbeat=0)
    [tune_cmd] = client.receive_data(server.send(0, tune))
    server.receive_data(client.send(0, negotiate_tune(tune_cmd.method)))
    return client, server


def test_frames_pipelined_behind_connection_open_wait_for_the_answer():
    client, server = _server_before_open()
    data = (
        client.send(0, m.ConnectionOpen(virtual_host="/"))
        + encode_method_frame(1, m.ChannelOpen())
        + encode_method_frame(1, m.BasicQos(prefetch_count=5))
    )
    [open_cmd] = server.receive_data(data)
    assert isinstance(open_cmd.method, m.ConnectionOpen)
    assert server.frames_held
    server.send(0, m.ConnectionOpenOk())
    events = server.receive_data(b"")
    assert events == [Command(1, m.ChannelOpen()), Command(1, m.BasicQos(prefetch_count=5))]
    assert not server.frames_held


def test_frames_behind_a_refused_connection_open_are_ignored():
    client, server = _server_before_open()
    data = client.send(0, m.ConnectionOpen(virtual_host="nope")) + encode_method_frame(
        1, m.ChannelOpen()
    )
    [open_cmd] = server.receive_data(data)
    server.send(0, m.ConnectionClose(reply_code=530, reply_text="NOT_ALLOWED - vhost nope"))
    assert server.receive_data(b"") == []  # spec 4.2.3: only close/close-ok from now on
    assert not server.frames_held


def test_receiving_content_until_the_last_body_frame():
    client, server = open_pair()
    open_channel(client, server)
    method = encode_method_frame(1, m.BasicPublish(exchange="", routing_key="q"))
    rest = encode_content_frames(1, m.BasicPublish(), b"\x00\x00", b"body", 131072)[
        len(encode_method_frame(1, m.BasicPublish())) :
    ]
    assert not server.receiving_content
    assert server.receive_data(method) == []
    assert server.receiving_content  # the header and body are still due
    [command] = server.receive_data(rest)
    assert command.body == b"body"
    assert not server.receiving_content


# -- receive_basic_ack: the shortcut must agree with receive_data -----------

_ACK_PREFIXES = {
    "nothing": b"",
    "half a frame": encode_method_frame(1, m.BasicAck(delivery_tag=1))[:10],
    # basic.deliver and its content header; the body frame (12 octets) not yet
    "a deliver waiting for its body": encode_content_frames(
        1, m.BasicDeliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q"),
        b"\x00\x00", b"body", 131072)[:-12],
}


def _ack_machines():
    """A client with channels 1 (open), 2 (never opened), 3 (closing), in
    every state a basic.ack could find it."""
    client, server = open_pair()
    open_channel(client, server, 1)
    open_channel(client, server, 3)
    client.send(3, m.ChannelClose(reply_code=200, reply_text="", class_id=0, method_id=0))
    return client, server


@pytest.mark.parametrize("prefix", list(_ACK_PREFIXES))
@pytest.mark.parametrize("channel", [1, 2, 3])
@pytest.mark.parametrize("tag,bits", [(1, 0), (2**64 - 1, 1), (7, 0xFE), (9, 0xFF)])
def test_receive_basic_ack_agrees_with_receive_data(prefix, channel, tag, bits):
    frame = bytearray(encode_method_frame(channel, m.BasicAck(delivery_tag=tag)))
    frame[19] = bits  # the packed bits octet: only bit 0 (multiple) means anything
    frame = bytes(frame)
    fast_client, _ = _ack_machines()
    slow_client, _ = _ack_machines()
    before = _ACK_PREFIXES[prefix]
    if before:
        fast_client.receive_data(before)
        slow_client.receive_data(before)
    shortcut = fast_client.receive_basic_ack(frame)
    events = slow_client.receive_data(frame)
    if shortcut is None:
        # Declined: nothing changed, the general path gives what it always gives.
        assert fast_client.receive_data(frame) == events
    else:
        assert events == [Command(channel, m.BasicAck(delivery_tag=tag, multiple=bool(bits & 1)))]
        assert shortcut == (channel, tag, bool(bits & 1))
    assert (shortcut is not None) == (prefix == "nothing" and channel == 1)


@pytest.mark.parametrize("data", [
    encode_method_frame(1, m.BasicNack(delivery_tag=1)),
    encode_method_frame(1, m.BasicAck(delivery_tag=1))[:-1] + b"\x00",  # bad frame-end
    encode_method_frame(1, m.BasicAck(delivery_tag=1)) + b"\x01",
    encode_heartbeat() + encode_heartbeat() + b"\x01\x00\x01\x00\x00",
])
def test_receive_basic_ack_declines_anything_else(data):
    client, server = open_pair()
    open_channel(client, server, 1)
    assert client.receive_basic_ack(data) is None


def test_receive_basic_ack_before_open():
    client = Connection(Role.CLIENT)
    client.send_protocol_header()
    assert client.receive_basic_ack(encode_method_frame(1, m.BasicAck(delivery_tag=1))) is None


# -- a message still arriving on a channel that is being closed ----------------
#
# The peer may have the rest of a message on the wire when we close its channel
# (406 for an oversized message, or any channel error raised by an earlier
# message of the same read). Those frames must be read and dropped, and only on
# that channel: RabbitMQ 3.10 closes the channel and the connection goes on.

_PUBLISH = encode_method_frame(1, m.BasicPublish(exchange="", routing_key="q"))


def _server_with_channels(*numbers):
    client, server = open_pair()
    for number in numbers:
        open_channel(client, server, number)
    return client, server


def _reopen_and_publish(client, server, channel=1):
    open_channel(client, server, channel)
    [command] = server.receive_data(
        client.send(channel, m.BasicPublish(routing_key="q"), b"\x00\x00", b"again")
    )
    assert command == Command(channel, m.BasicPublish(routing_key="q"), b"\x00\x00", b"again")


@pytest.mark.parametrize("body_size", [MAX_BODY_SIZE + 1, 2**63, 2**64 - 1])
def test_body_frames_in_flight_after_a_406_are_dropped(body_size):
    client, server = _server_with_channels(1, 2)
    [failure] = server.receive_data(_PUBLISH + header_frame(1, body_size))
    assert failure.channel == 1 and failure.error.reply_code == 406
    assert not failure.error.closes_connection
    assert failure.error.reply_text == (
        f"PRECONDITION_FAILED - message size {body_size} is larger than configured "
        f"max size {MAX_BODY_SIZE}"
    )
    server.send(1, m.ChannelClose(406, failure.error.reply_text, 60, 40))
    # body frames the client wrote before it saw our channel.close, in several
    # reads, mixed with work on channel 2
    for _ in range(3):
        assert server.receive_data(body_frame(1, b"x" * 4000) * 8) == []
        assert server.receive_data(client.send(2, m.BasicQos(prefetch_count=1))) == [
            Command(2, m.BasicQos(prefetch_count=1))
        ]
    assert server.state is ConnectionState.OPEN
    # the client gives up on the message and answers our close
    [ok] = server.receive_data(client.send(1, m.ChannelCloseOk()))
    assert ok == Command(1, m.ChannelCloseOk())
    assert 1 not in server.open_channels and not server.receiving_content
    _reopen_and_publish(client, server)


def test_a_406_body_sent_in_full_is_dropped_then_the_channel_closes():
    client, server = _server_with_channels(1)
    size = MAX_BODY_SIZE + 1
    [failure] = server.receive_data(_PUBLISH + header_frame(1, size))
    server.send(1, m.ChannelClose(406, failure.error.reply_text, 60, 40))
    chunk = body_frame(1, b"x" * 131064) * 16
    sent = 0
    while sent + 16 * 131064 <= size:
        assert server.receive_data(chunk) == []
        sent += 16 * 131064
    last = size - sent
    while last:
        n = min(last, 131064)
        assert server.receive_data(body_frame(1, b"y" * n)) == []
        last -= n
    assert not server.receiving_content
    # a whole message after it, still before close-ok: ignored as well
    assert server.receive_data(
        client.send(1, m.BasicPublish(routing_key="q"), b"\x00\x00", b"late")) == []
    [ok] = server.receive_data(client.send(1, m.ChannelCloseOk()))
    assert ok == Command(1, m.ChannelCloseOk())
    _reopen_and_publish(client, server)


_WHOLE = encode_content_frames(1, m.BasicPublish(exchange="", routing_key="q"), b"\x00\x00",
                               b"0123456789", 131072)
_SPLITS = {
    "after the method": len(_PUBLISH),
    "after the header": len(_WHOLE) - 18,
    "in the body": len(_WHOLE) - 6,
}


@pytest.mark.parametrize("split", list(_SPLITS))
def test_the_rest_of_a_message_after_we_closed_its_channel_is_dropped(split):
    """A channel error raised by one message (404 no exchange, say) while the
    next is half received: its header and body still arrive after our close."""
    client, server = _server_with_channels(1, 2)
    cut = _SPLITS[split]
    first, *rest = server.receive_data(_WHOLE + _WHOLE[:cut])
    assert first.body == b"0123456789" and rest == []
    assert server.receiving_content
    server.send(1, m.ChannelClose(404, "NOT_FOUND - no exchange 'x' in vhost '/'", 60, 40))
    assert server.receive_data(_WHOLE[cut:]) == []
    assert not server.receiving_content
    assert server.receive_data(client.send(2, m.BasicQos())) == [Command(2, m.BasicQos())]
    [ok] = server.receive_data(client.send(1, m.ChannelCloseOk()))
    assert ok == Command(1, m.ChannelCloseOk())
    _reopen_and_publish(client, server)


def test_a_message_left_unfinished_by_close_ok_is_dropped():
    """The peer answers our channel.close without sending the rest of the message
    (it saw the close first): the message is dropped with the channel."""
    client, server = _server_with_channels(1)
    server.receive_data(_PUBLISH + header_frame(1, 100) + body_frame(1, b"x" * 10))
    server.send(1, m.ChannelClose(404, "NOT_FOUND", 60, 40))
    [ok] = server.receive_data(client.send(1, m.ChannelCloseOk()))
    assert ok == Command(1, m.ChannelCloseOk())
    assert not server.receiving_content
    _reopen_and_publish(client, server)


def test_the_frames_of_a_closing_channel_are_still_framed():
    """Dropping a message is not dropping the rules: a body frame with no message
    on a closing channel is still 505, as RabbitMQ answers (probed)."""
    client, server = _server_with_channels(1)
    server.send(1, m.ChannelClose(404, "NOT_FOUND", 60, 40))
    [failure] = server.receive_data(body_frame(1, b"zz"))
    assert failure.error.reply_code == 505
    client, server = _server_with_channels(1)
    server.send(1, m.ChannelClose(404, "NOT_FOUND", 60, 40))
    [failure] = server.receive_data(header_frame(1, 2))
    assert failure.error.reply_code == 505


def test_a_delivery_in_flight_when_the_client_closes_its_channel():
    """Client role, the same thing: a consumer closes its channel while the
    server is in the middle of writing a delivery on it."""
    client, server = _server_with_channels(1)
    delivery = server.send(
        1, m.BasicDeliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q"),
        b"\x00\x00", b"payload",
    )
    assert client.receive_data(delivery[:-15]) == []  # method + header, body still due
    server.receive_data(client.send(1, m.ChannelClose(200, "bye")))
    assert client.receive_data(delivery[-15:]) == []
    [ok] = client.receive_data(server.send(1, m.ChannelCloseOk()))
    assert ok == Command(1, m.ChannelCloseOk())
    assert client.state is ConnectionState.OPEN and not client.receiving_content


@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])
def test_a_message_in_progress_is_dropped_when_the_connection_closes(role):
    """After connection.close only close and close-ok count (spec 4.2.3): the
    end of a message that was arriving does not come out as a Command."""
    client, server = _server_with_channels(1)
    if role is Role.SERVER:
        us = server
        whole = client.send(1, m.BasicPublish(routing_key="q"), b"\x00\x00", b"late body")
    else:
        us = client
        whole = server.send(
            1, m.BasicDeliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q"),
            b"\x00\x00", b"late body",
        )
    assert us.receive_data(whole[:-17]) == []
    assert us.receiving_content
    us.send(0, m.ConnectionClose(320, "CONNECTION_FORCED - shutdown"))
    assert not us.receiving_content
    assert us.receive_data(whole[-17:]) == []
    [ok] = us.receive_data(encode_method_frame(0, m.ConnectionCloseOk()))
    assert isinstance(ok.method, m.ConnectionCloseOk) and us.state is ConnectionState.CLOSED


def test_a_message_in_progress_is_dropped_when_the_peer_closes_the_connection():
    client, server = _server_with_channels(1)
    whole = client.send(1, m.BasicPublish(routing_key="q"), b"\x00\x00", b"late body")
    assert server.receive_data(whole[:-17]) == []
    [close] = server.receive_data(client.send(0, m.ConnectionClose(200, "bye")))
    assert isinstance(close.method, m.ConnectionClose)
    assert not server.receiving_content


# -- frame_max at its boundary ----------------------------------------------


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_body_frames_of_frame_max_octets_are_accepted(frame_max):
    """Some clients fill body frames to frame_max octets of payload (frame_max + 8
    on the wire); RabbitMQ accepts them, so do we. One octet more is 501."""
    client, server = open_pair(frame_max=frame_max)
    open_channel(client, server)
    body = bytes(range(256)) * (frame_max // 128) + b"!"  # two full frames and one octet
    data = _PUBLISH + header_frame(1, len(body))
    data += body_frame(1, body[:frame_max]) + body_frame(1, body[frame_max:-1])
    data += body_frame(1, body[-1:])
    [command] = server.receive_data(data)
    assert command.body == body
    # the same, a byte at a time (every cut of the frame-max frame)
    events = []
    for i in range(len(data)):
        events += server.receive_data(data[i : i + 1])
    assert [e.body for e in events] == [body]
    [failure] = server.receive_data(
        _PUBLISH + header_frame(1, frame_max + 1) + body_frame(1, b"x" * (frame_max + 1))
    )
    assert failure.error.reply_code == 501 and failure.error.closes_connection
    assert failure.error.reply_text == (
        f"type 3, all octets = <<>>: {{frame_too_large,{frame_max + 1},{frame_max - 8}}}"
    )


@pytest.mark.parametrize("frame_type", [1, 2])
def test_method_and_header_frames_of_frame_max_octets_are_accepted(frame_type):
    client, server = open_pair(frame_max=4096)
    open_channel(client, server)
    events = server.receive_data(prefix_for(frame_type, 0) + sized_frame(frame_type, 4096))
    assert [type(e.method) for e in events] == [
        {1: m.QueueDeclare, 2: m.BasicPublish}[frame_type]
    ]
    [failure] = server.receive_data(prefix_for(frame_type, 0) + sized_frame(frame_type, 4097))
    assert failure.error.reply_code == 501
