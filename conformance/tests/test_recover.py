"""basic.recover (spec 1.8.3.16)."""

from __future__ import annotations

from conformance.helpers import Consumer, get, publish, pump, sync

AREA = "recover"


def test_recover_requeue_redelivers_unacked(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    for i in range(3):
        publish(channel, "", queue, f"m{i}")
    sync(channel)
    first = get(channel, queue)
    get(channel, queue)
    channel.basic_ack(first.delivery_tag)
    channel.basic_recover(requeue=True)
    again = get(channel, queue, auto_ack=True)
    assert (again.body, again.redelivered) == (b"m1", True)
    assert get(channel, queue, auto_ack=True).body == b"m2"
    assert get(channel, queue) is None


def test_recover_redelivers_to_consumer(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue)
    publish(channel, "", queue, b"m")
    consumer.wait(1)
    channel.basic_recover(requeue=True)
    consumer.wait(2)
    assert consumer.bodies == [b"m", b"m"]
    assert [d.redelivered for d in consumer.deliveries] == [False, True]
    channel.basic_ack(consumer.deliveries[-1].delivery_tag)


def test_recover_with_nothing_unacked_is_ok(channel):
    channel.basic_recover(requeue=True)
    assert channel.is_open


def test_recover_does_not_touch_acked_messages(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue)
    publish(channel, "", queue, b"done")
    consumer.wait(1)
    channel.basic_ack(consumer.deliveries[0].delivery_tag)
    channel.basic_recover(requeue=True)
    pump(connection)
    assert consumer.bodies == [b"done"]
