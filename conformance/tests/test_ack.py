"""basic.ack, basic.nack, basic.reject and the order of requeued messages (spec 1.8.3.13-14)."""

from __future__ import annotations

from conformance.helpers import (
    Consumer,
    channel_closed_with,
    get,
    get_all,
    publish,
    pump,
    sync,
)

AREA = "ack/nack/reject"


def fill(channel, queue, count):
    for i in range(count):
        publish(channel, "", queue, f"m{i}")
    sync(channel)


def queue_with(channel, names, count):
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, count)
    return queue


def test_ack_removes_message(connection, names):
    channel = connection.channel()
    queue = queue_with(channel, names, 1)
    channel.basic_ack(get(channel, queue).delivery_tag)
    channel.close()
    assert get(connection.channel(), queue) is None


def test_ack_multiple_acks_everything_up_to_tag(connection, names):
    channel = connection.channel()
    queue = queue_with(channel, names, 4)
    tags = [get(channel, queue).delivery_tag for _ in range(4)]
    channel.basic_ack(tags[2], multiple=True)
    channel.close()
    remaining = get_all(connection.channel(), queue)
    assert remaining == [b"m3"]


def test_ack_zero_multiple_acks_all(connection, names):
    channel = connection.channel()
    queue = queue_with(channel, names, 3)
    for _ in range(3):
        get(channel, queue)
    # Spec 1.8.3.13: delivery-tag 0 with multiple set means "all outstanding".
    channel.basic_ack(0, multiple=True)
    channel.close()
    assert get(connection.channel(), queue) is None


def test_ack_unknown_delivery_tag_is_406(channel, names):
    queue = queue_with(channel, names, 1)
    get(channel, queue)
    channel.basic_ack(99)
    with channel_closed_with(406):
        sync(channel)


def test_double_ack_is_406(channel, names):
    queue = queue_with(channel, names, 1)
    tag = get(channel, queue).delivery_tag
    channel.basic_ack(tag)
    channel.basic_ack(tag)
    with channel_closed_with(406):
        sync(channel)


def test_ack_of_auto_acked_delivery_is_406(channel, names):
    queue = queue_with(channel, names, 1)
    tag = get(channel, queue, auto_ack=True).delivery_tag
    channel.basic_ack(tag)
    with channel_closed_with(406):
        sync(channel)


def test_reject_requeue_redelivers_with_flag(channel, names):
    queue = queue_with(channel, names, 1)
    channel.basic_reject(get(channel, queue).delivery_tag, requeue=True)
    again = get(channel, queue, auto_ack=True)
    assert again.body == b"m0"
    assert again.redelivered is True


def test_reject_without_requeue_drops(channel, names):
    queue = queue_with(channel, names, 1)
    channel.basic_reject(get(channel, queue).delivery_tag, requeue=False)
    sync(channel)
    assert get(channel, queue) is None


def test_nack_requeue_redelivers_with_flag(channel, names):
    queue = queue_with(channel, names, 1)
    channel.basic_nack(get(channel, queue).delivery_tag, requeue=True)
    again = get(channel, queue, auto_ack=True)
    assert (again.body, again.redelivered) == (b"m0", True)


def test_nack_multiple_requeues_all_up_to_tag(channel, names):
    queue = queue_with(channel, names, 4)
    tags = [get(channel, queue).delivery_tag for _ in range(4)]
    channel.basic_nack(tags[2], multiple=True, requeue=True)
    again = [get(channel, queue, auto_ack=True) for _ in range(3)]
    assert [d.body for d in again] == [b"m0", b"m1", b"m2"]
    assert all(d.redelivered for d in again)
    assert get(channel, queue) is None  # m3 is still held unacked


def test_nack_without_requeue_drops(channel, names):
    queue = queue_with(channel, names, 2)
    tags = [get(channel, queue).delivery_tag for _ in range(2)]
    channel.basic_nack(tags[1], multiple=True, requeue=False)
    sync(channel)
    assert get(channel, queue) is None


def test_nack_unknown_delivery_tag_is_406(channel, names):
    queue_with(channel, names, 0)
    channel.basic_nack(7, requeue=True)
    with channel_closed_with(406):
        sync(channel)


def test_reject_unknown_delivery_tag_is_406(channel, names):
    channel.basic_reject(7, requeue=True)
    with channel_closed_with(406):
        sync(channel)


def test_requeued_messages_return_to_their_original_position(channel, names):
    """RabbitMQ puts requeued messages back in publish order, ahead of newer ones."""
    queue = queue_with(channel, names, 5)
    held = {d.body: d for d in (get(channel, queue) for _ in range(5))}
    channel.basic_reject(held[b"m3"].delivery_tag, requeue=True)
    channel.basic_reject(held[b"m1"].delivery_tag, requeue=True)
    publish(channel, "", queue, b"m5")
    sync(channel)
    assert get_all(channel, queue) == [b"m1", b"m3", b"m5"]


def test_requeue_to_consumer_preserves_order(connection, names):
    channel = connection.channel()
    queue = queue_with(channel, names, 3)
    consumer = Consumer(channel, queue)
    consumer.wait(3)
    channel.basic_nack(0, multiple=True, requeue=True)
    consumer.wait(6)
    pump(connection)
    assert consumer.bodies == [b"m0", b"m1", b"m2", b"m0", b"m1", b"m2"]
    assert [d.redelivered for d in consumer.deliveries] == [False] * 3 + [True] * 3
    channel.basic_ack(0, multiple=True)


def test_delivery_tags_are_per_channel(connection, names):
    first, second = connection.channel(), connection.channel()
    queue = queue_with(first, names, 2)
    assert get(first, queue).delivery_tag == 1
    assert get(second, queue).delivery_tag == 1


def test_ack_on_other_channel_is_406(connection, names):
    first, second = connection.channel(), connection.channel()
    queue = queue_with(first, names, 2)
    get(first, queue)
    second.basic_ack(1)
    with channel_closed_with(406):
        sync(second)
