"""Publishing: mandatory and basic.return, publisher confirms (ack, multiple,
nack), transactions, CC/BCC, headers routing, properties forwarded as sent."""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest
from broker_helpers import RawClient

from protocol import methods as m
from protocol.frames import BodyFrame, HeaderFrame, MethodFrame
from protocol.properties import BasicProperties


def test_properties_and_body_arrive_as_sent(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    properties = pika.BasicProperties(
        content_type="application/json",
        headers={"a": 1, "nested": {"b": [1, "two"]}},
        delivery_mode=2,
        priority=3,
        correlation_id="c-1",
        reply_to="r",
        message_id="m-1",
        timestamp=1700000000,
        type="t",
        app_id="app",
    )
    body = bytes(range(256)) * 1000  # bigger than one frame
    channel.basic_publish("", queue, body, properties)
    method, got, received = channel.basic_get(queue, auto_ack=True)
    assert received == body
    for name in ("content_type", "headers", "delivery_mode", "priority", "correlation_id",
                 "reply_to", "message_id", "timestamp", "type", "app_id"):
        assert getattr(got, name) == getattr(properties, name), name


def test_mandatory_unroutable_is_returned_with_312(connection, unique) -> None:
    channel = connection.channel()
    returned = []
    channel.add_on_return_callback(lambda ch, method, props, body: returned.append((method, body)))
    channel.basic_publish("amq.direct", unique("nowhere"), b"lost?", mandatory=True)
    channel.basic_publish("amq.direct", unique("nowhere"), b"dropped", mandatory=False)
    deadline = time.monotonic() + 2
    while not returned and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert len(returned) == 1
    method, body = returned[0]
    assert (method.reply_code, method.reply_text, body) == (312, "NO_ROUTE", b"lost?")
    assert method.exchange == "amq.direct"


def test_confirms_ack_and_unroutable_mandatory(connection, unique) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    for i in range(20):
        channel.basic_publish("", queue, b"%d" % i)  # raises unless acked
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("amq.direct", unique("nowhere"), b"x", mandatory=True)
    assert channel.queue_declare(queue, passive=True).method.message_count == 20


def test_confirms_coalesce_into_multiple_acks(warren_url: str, unique) -> None:
    queue = unique()
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.method(1, m.ConfirmSelect())
        client.expect(m.ConfirmSelectOk)
        client.method(1, m.QueueDeclare(queue=queue, exclusive=True))
        client.expect(m.QueueDeclareOk)
        # 50 publishes in one write: one read on the broker, one multiple ack.
        frames = b"".join(
            __import__("protocol.frames", fromlist=["x"]).encode_content_frames(
                1, m.BasicPublish(exchange="", routing_key=queue), b"\x00\x00", b"x", 131072
            )
            for _ in range(50)
        )
        client.send(frames)
        last = client.read_until(
            lambda f: isinstance(f, MethodFrame)
            and isinstance(f.method, m.BasicAck)
            and f.method.delivery_tag == 50
        )
        acks = [f.method for f in client.frames
                if isinstance(f, MethodFrame) and isinstance(f.method, m.BasicAck)]
        start = next(f.method for f in client.frames if isinstance(f.method, m.ConnectionStart))
        if start.server_properties.get("product") == "Warren":
            # Warren's design, not a protocol rule (RabbitMQ may ack one by one).
            assert last.method.multiple
            assert len(acks) < 50
        # Every tag is covered exactly once, in order.
        covered = 0
        for ack in acks:
            assert ack.delivery_tag > covered
            assert ack.multiple or ack.delivery_tag == covered + 1
            covered = ack.delivery_tag
        assert covered == 50


def test_nack_when_the_queue_refuses(connection, unique) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    queue = unique()
    channel.queue_declare(
        queue, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    channel.basic_publish("", queue, b"fits")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"refused")
    assert channel.basic_get(queue, auto_ack=True)[2] == b"fits"


def test_tx_publish_and_ack_wait_for_commit(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    channel.tx_select()
    channel.basic_publish("", queue, b"one")
    channel.basic_publish("", queue, b"two")
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    channel.tx_commit()
    assert channel.queue_declare(queue, passive=True).method.message_count == 2
    channel.basic_publish("", queue, b"rolled back")
    channel.tx_rollback()
    assert channel.queue_declare(queue, passive=True).method.message_count == 2
    method, _, body = channel.basic_get(queue)
    assert body == b"one"
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()  # the ack is undone: the message is unacked again
    channel.basic_ack(method.delivery_tag)  # so it can be acked again
    channel.tx_commit()
    channel.close()
    # Nothing requeued on close: "one" was acked, "two" remains.
    other = connection.channel()
    assert other.queue_declare(queue, passive=True).method.message_count == 1
    assert other.basic_get(queue, auto_ack=True)[2] == b"two"


def test_tx_errors(connection) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        connection.channel().tx_commit()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.tx_select()
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    channel = connection.channel()
    channel.tx_select()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.confirm_delivery()
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from tx to confirm mode"


def test_publish_to_missing_exchange_is_404(connection, unique) -> None:
    channel = connection.channel()
    name = unique("x")
    channel.basic_publish(name, "k", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"
    # The connection and other channels carry on.
    connection.channel().queue_declare("", exclusive=True)


def test_cc_and_bcc_route_and_bcc_is_removed(connection, unique) -> None:
    channel = connection.channel()
    to, cc, bcc = unique("to"), unique("cc"), unique("bcc")
    for queue in (to, cc, bcc):
        channel.queue_declare(queue, exclusive=True)
    channel.confirm_delivery()
    channel.basic_publish(
        "", to, b"memo", pika.BasicProperties(headers={"CC": [cc], "BCC": [bcc], "x": 1})
    )
    for queue in (to, cc, bcc):
        _, props, body = channel.basic_get(queue, auto_ack=True)
        assert body == b"memo"
        assert "BCC" not in props.headers
        assert props.headers["CC"] == [cc] and props.headers["x"] == 1


def test_headers_exchange(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, "amq.headers", arguments={"x-match": "all", "kind": "a", "n": 1})
    channel.confirm_delivery()
    channel.basic_publish("amq.headers", "", b"yes", pika.BasicProperties(
        headers={"kind": "a", "n": 1, "extra": True}))
    channel.basic_publish("amq.headers", "", b"no", pika.BasicProperties(headers={"kind": "a"}))
    assert channel.basic_get(queue, auto_ack=True)[2] == b"yes"
    assert channel.basic_get(queue, auto_ack=True)[0] is None


def test_immediate_is_540(warren_url: str) -> None:
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.publish(1, "", "q", b"x", immediate=True)
        close = client.expect(m.ConnectionClose)
        assert (close.reply_code, close.reply_text) == (540, "NOT_IMPLEMENTED - immediate=true")


def test_user_id_must_match_the_login(warren_url: str) -> None:
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.publish(1, "", "q", b"x", properties=BasicProperties(user_id="mallory").encode())
        close = client.expect(m.ChannelClose)
        assert close.reply_code == 406
        assert "user_id property set to 'mallory'" in close.reply_text


def test_fanout_reaches_every_bound_queue_once(connection, unique) -> None:
    channel = connection.channel()
    exchange = unique("fan")
    channel.exchange_declare(exchange, "fanout", auto_delete=True)
    queues = [unique(str(i)) for i in range(10)]
    for queue in queues:
        channel.queue_declare(queue, exclusive=True)
        channel.queue_bind(queue, exchange)
        channel.queue_bind(queue, exchange, "again")  # a second binding: still one copy
    channel.confirm_delivery()
    channel.basic_publish(exchange, "", b"all")
    for queue in queues:
        assert channel.queue_declare(queue, passive=True).method.message_count == 1


def test_header_and_body_frames_are_split_at_frame_max(warren_url: str, unique) -> None:
    queue = unique()
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.method(1, m.QueueDeclare(queue=queue, exclusive=True))
        client.expect(m.QueueDeclareOk)
        client.publish(1, "", queue, b"z" * 300_000)
        client.method(1, m.BasicGet(queue=queue, no_ack=True))
        client.expect(m.BasicGetOk)
        header = client.read_until(lambda f: isinstance(f, HeaderFrame))
        assert header.body_size == 300_000
        bodies = []
        deadline = time.monotonic() + 5
        while sum(len(b.payload) for b in bodies) < 300_000 and time.monotonic() < deadline:
            try:
                client.read_until(lambda f: False, timeout=0.2)
            except TimeoutError:
                pass
            bodies = [f for f in client.frames if isinstance(f, BodyFrame)]
        assert sum(len(b.payload) for b in bodies) == 300_000
        assert all(len(b.payload) <= 131072 - 8 for b in bodies)
