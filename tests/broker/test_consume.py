"""Consuming: consume/cancel, server-sent cancel, get, ack/nack/reject with
multiple and requeue, recover, prefetch per consumer and per channel, round
robin, and the errors RabbitMQ gives for each. Real pika clients."""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest
from broker_helpers import RawClient, connect

from protocol import methods as m


def fill(channel, queue: str, count: int, prefix: bytes = b"m") -> None:
    channel.queue_declare(queue, exclusive=True)
    for i in range(count):
        channel.basic_publish("", queue, prefix + b"%d" % i)
    channel.queue_declare(queue, passive=True)  # a round trip: publishes are in


def pump(connection, until, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.02)
    assert until(), "timed out"


def test_consume_ack_and_server_consumer_tag(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 5)
    got = []

    def on_message(ch, method, props, body):
        got.append((method.consumer_tag, method.delivery_tag, method.redelivered, body))
        ch.basic_ack(method.delivery_tag)

    tag = channel.basic_consume(queue, on_message)
    pump(connection, lambda: len(got) == 5)
    assert [g[3] for g in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert [g[1] for g in got] == [1, 2, 3, 4, 5]
    assert all(g[0] == tag and not g[2] for g in got)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 1
    channel.basic_cancel(tag)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 0


def test_server_made_consumer_tag(warren_url: str, unique) -> None:
    queue = unique()
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.method(1, m.QueueDeclare(queue=queue, exclusive=True))
        client.expect(m.QueueDeclareOk)
        client.method(1, m.BasicConsume(queue=queue, consumer_tag="", arguments={"x-any": 1}))
        tag = client.expect(m.BasicConsumeOk).consumer_tag
        assert tag.startswith("amq.ctag-") and len(tag) == len("amq.ctag-") + 22


def test_duplicate_consumer_tag_is_530(warren_url: str, unique) -> None:
    queue = unique()
    with RawClient(warren_url) as client:
        client.open_channel(1)
        client.method(1, m.QueueDeclare(queue=queue, exclusive=True))
        client.method(1, m.BasicConsume(queue=queue, consumer_tag="t1"))
        client.method(1, m.BasicConsume(queue=queue, consumer_tag="t1"))
        close = client.expect(m.ConnectionClose)
        assert (close.reply_code, close.reply_text) == (
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 't1'",
        )


def test_no_ack_consumer(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 3)
    got = []
    channel.basic_consume(queue, lambda ch, meth, p, body: got.append(body), auto_ack=True)
    pump(connection, lambda: len(got) == 3)
    # Nothing to ack: closing the channel requeues nothing.
    channel.close()
    assert connection.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_exclusive_consumer(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    channel.basic_consume(queue, lambda *a: None, exclusive=True)
    other = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.basic_consume(queue, lambda *a: None)
    assert info.value.reply_code == 403
    assert info.value.reply_text == f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"


def test_consume_missing_queue_is_404(connection, unique) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        connection.channel().basic_consume(unique(), lambda *a: None)
    assert info.value.reply_code == 404


def test_server_cancels_consumers_of_a_deleted_queue(warren_url: str, unique) -> None:
    queue = unique()
    consumer_connection = connect(warren_url)
    admin = connect(warren_url)
    try:
        channel = consumer_connection.channel()
        channel.queue_declare(queue)
        cancelled = []
        channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        tag = channel.basic_consume(queue, lambda *a: None)
        admin.channel().queue_delete(queue)
        pump(consumer_connection, lambda: cancelled)
        assert cancelled == [tag]
        assert channel.is_open
    finally:
        consumer_connection.close()
        admin.close()


def test_basic_get_counts_and_empty(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 3)
    method, _, body = channel.basic_get(queue)
    assert (body, method.message_count, method.redelivered) == (b"m0", 2, False)
    assert (method.exchange, method.routing_key) == ("", queue)
    channel.basic_get(queue, auto_ack=True)
    method, _, _ = channel.basic_get(queue, auto_ack=True)
    assert method.message_count == 0
    assert channel.basic_get(queue) == (None, None, None)  # get-empty


def test_reject_requeue_keeps_place_and_sets_redelivered(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 4)
    first, _, _ = channel.basic_get(queue)
    second, _, _ = channel.basic_get(queue)
    channel.basic_reject(second.delivery_tag, requeue=True)
    channel.basic_nack(first.delivery_tag, requeue=True)
    bodies = []
    for _ in range(4):
        method, _, body = channel.basic_get(queue, auto_ack=True)
        bodies.append((body, method.redelivered))
    assert bodies == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False)]


def test_nack_multiple_and_reject_without_requeue(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 5)
    tags = [channel.basic_get(queue)[0].delivery_tag for _ in range(5)]
    channel.basic_nack(tags[2], multiple=True, requeue=True)  # m0..m2 back
    channel.basic_reject(tags[3], requeue=False)  # m3 dropped
    channel.basic_ack(tags[4])
    assert channel.queue_declare(queue, passive=True).method.message_count == 3
    bodies = [channel.basic_get(queue, auto_ack=True)[2] for _ in range(3)]
    assert bodies == [b"m0", b"m1", b"m2"]


def test_ack_multiple(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 4)
    tags = [channel.basic_get(queue)[0].delivery_tag for _ in range(4)]
    channel.basic_ack(tags[2], multiple=True)
    channel.close()  # only m3 was unacked: it is requeued
    channel = connection.channel()
    assert channel.queue_declare(queue, passive=True).method.message_count == 1
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"m3" and method.redelivered


@pytest.mark.parametrize("settle", ["ack", "double-ack", "reject", "nack"])
def test_unknown_delivery_tag_is_406(connection, unique, settle: str) -> None:
    channel = connection.channel()
    tag = 99
    if settle == "double-ack":
        queue = unique()
        fill(channel, queue, 1)
        tag = channel.basic_get(queue)[0].delivery_tag
        channel.basic_ack(tag)
        settle = "ack"
    getattr(channel, f"basic_{settle}")(tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {tag}"


def test_recover_requeues_everything_unacked(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 2)
    channel.basic_get(queue)
    channel.basic_get(queue)
    channel.basic_recover(requeue=True)
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"m0", True)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.basic_recover(requeue=False)
    assert info.value.reply_code == 540


def test_closing_a_channel_requeues_its_unacked_messages(warren_url: str, unique) -> None:
    queue = unique()
    consumer = connect(warren_url)
    other = connect(warren_url)
    try:
        channel = consumer.channel()
        channel.queue_declare(queue)
        fill_channel = other.channel()
        for i in range(3):
            fill_channel.basic_publish("", queue, b"m%d" % i)
        got = []
        channel.basic_consume(queue, lambda ch, meth, p, body: got.append(body))
        pump(consumer, lambda: len(got) == 3)
        consumer.close()
        time.sleep(0.05)
        ch = other.channel()
        assert ch.queue_declare(queue, passive=True).method.message_count == 3
        redelivered = [ch.basic_get(queue, auto_ack=True)[0].redelivered for _ in range(3)]
        assert redelivered == [True, True, True]
        ch.queue_delete(queue)
    finally:
        other.close()
        if consumer.is_open:
            consumer.close()


def test_prefetch_per_consumer(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    fill(channel, queue, 10)
    channel.basic_qos(prefetch_count=3)
    got = []
    channel.basic_consume(queue, lambda ch, meth, p, body: got.append(meth.delivery_tag))
    pump(connection, lambda: len(got) == 3)
    connection.process_data_events(time_limit=0.2)
    assert len(got) == 3  # no fourth before an ack
    channel.basic_ack(got[0])
    pump(connection, lambda: len(got) == 4)
    channel.basic_ack(got[3], multiple=True)
    pump(connection, lambda: len(got) == 7)


def test_prefetch_per_consumer_applies_to_each_new_consumer(connection, unique) -> None:
    channel = connection.channel()
    q1, q2 = unique("a"), unique("b")
    fill(channel, q1, 5)
    fill(channel, q2, 5)
    channel.basic_qos(prefetch_count=2)  # global=false: each consumer gets 2
    got = {q1: 0, q2: 0}

    def counter(queue):
        def on_message(ch, method, props, body):
            got[queue] += 1
        return on_message

    channel.basic_consume(q1, counter(q1))
    channel.basic_consume(q2, counter(q2))
    pump(connection, lambda: got[q1] == 2 and got[q2] == 2)
    connection.process_data_events(time_limit=0.2)
    assert got == {q1: 2, q2: 2}


def test_prefetch_global_is_shared_by_the_channel(connection, unique) -> None:
    channel = connection.channel()
    q1, q2 = unique("a"), unique("b")
    fill(channel, q1, 5)
    fill(channel, q2, 5)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    tags = []
    channel.basic_consume(q1, lambda ch, meth, p, body: tags.append(meth.delivery_tag))
    channel.basic_consume(q2, lambda ch, meth, p, body: tags.append(meth.delivery_tag))
    pump(connection, lambda: len(tags) == 3)
    connection.process_data_events(time_limit=0.2)
    assert len(tags) == 3  # three for the whole channel
    channel.basic_ack(tags[-1], multiple=True)
    pump(connection, lambda: len(tags) == 6)


def test_qos_prefetch_size_is_540(connection) -> None:
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        connection.channel().basic_qos(prefetch_size=10)
    assert (info.value.reply_code, info.value.reply_text) == (
        540,
        "NOT_IMPLEMENTED - prefetch_size!=0 (10)",
    )


def test_round_robin_between_consumers_with_credit(warren_url: str, unique) -> None:
    queue = unique()
    connections = [connect(warren_url) for _ in range(3)]
    try:
        got: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        for index, conn in enumerate(connections):
            channel = conn.channel()
            channel.queue_declare(queue, auto_delete=True)
            channel.basic_qos(prefetch_count=100)
            channel.basic_consume(
                queue,
                lambda ch, meth, p, body, i=index: (got[i].append(body),
                                                    ch.basic_ack(meth.delivery_tag)),
            )
        publisher = connections[0].channel()
        for i in range(30):
            publisher.basic_publish("", queue, b"%d" % i)

        def done():
            for conn in connections:
                conn.process_data_events(time_limit=0.01)
            return sum(len(v) for v in got.values()) == 30

        pump(connections[0], done)
        assert [len(v) for v in got.values()] == [10, 10, 10]
    finally:
        for conn in connections:
            conn.close()


def test_a_consumer_without_credit_is_skipped(connection, unique) -> None:
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue, exclusive=True)
    slow = connection.channel()
    slow.basic_qos(prefetch_count=1)
    slow_got, fast_got = [], []
    slow.basic_consume(queue, lambda ch, meth, p, body: slow_got.append(body))  # never acks
    fast = connection.channel()
    fast.basic_consume(
        queue, lambda ch, meth, p, body: (fast_got.append(body), ch.basic_ack(meth.delivery_tag))
    )
    for i in range(10):
        channel.basic_publish("", queue, b"%d" % i)
    pump(connection, lambda: len(slow_got) + len(fast_got) == 10)
    assert len(slow_got) == 1 and len(fast_got) == 9
