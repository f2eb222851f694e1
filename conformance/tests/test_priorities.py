"""Priority queues: x-max-priority and the message priority property (RabbitMQ extension).

Each behaviour as RabbitMQ 3.10.8 shows it: the argument's accepted range and
its 406 texts, delivery order (highest priority first, FIFO within a
priority), requeue, basic.get, and the other queue features on a priority
queue (TTL, length limits, dead-lettering, delivery limit).
"""

from __future__ import annotations

import time

import pika
import pytest

from conformance.helpers import (
    Consumer,
    channel_closed_with,
    get,
    get_all,
    publish,
    pump,
    sync,
)

AREA = "priority queues"


def priority_queue(channel, names, max_priority=10, **arguments):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-priority": max_priority, **arguments})
    return queue


def send(channel, queue, messages):
    """Publish (body, priority) pairs; priority None means no priority property."""
    for body, priority in messages:
        publish(channel, "", queue, body, priority=priority)
    sync(channel)


@pytest.mark.parametrize("value", [1, 10, 255, 0])
def test_max_priority_in_range_is_accepted(channel, names, value):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-priority": value})


@pytest.mark.parametrize(
    "value, why",
    [
        (256, "{max_value_exceeded,256}"),
        (1000, "{max_value_exceeded,1000}"),
        (-1, "{value_negative,-1}"),
        ("5", '"expected integer, got longstr"'),
        (True, '"expected integer, got bool"'),
        (None, '"expected integer, got void"'),
    ],
)
def test_invalid_max_priority_is_406(channel, names, value, why):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{queue}' "
        f"in vhost '/': {why}",
    ):
        channel.queue_declare(queue, arguments={"x-max-priority": value})


def test_float_max_priority_is_406(py_amqp_channel, names):
    import amqp

    queue = names.queue()
    with pytest.raises(amqp.exceptions.PreconditionFailed) as raised:
        py_amqp_channel.queue_declare(queue, arguments={"x-max-priority": 2.5})
    assert raised.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{queue}' "
        "in vhost '/': \"expected integer, got double\""
    )


def test_highest_priority_is_delivered_first(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("low", 1), ("high", 9), ("mid", 5)])
    assert get_all(channel, queue) == [b"high", b"mid", b"low"]


def test_same_priority_is_fifo(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("a1", 3), ("b1", 7), ("a2", 3), ("b2", 7), ("a3", 3)])
    assert get_all(channel, queue) == [b"b1", b"b2", b"a1", b"a2", b"a3"]


def test_no_priority_counts_as_zero(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("none", None), ("zero", 0), ("one", 1), ("none2", None)])
    assert get_all(channel, queue) == [b"one", b"none", b"zero", b"none2"]


def test_priority_above_maximum_counts_as_maximum(channel, names):
    queue = priority_queue(channel, names, max_priority=5)
    send(channel, queue, [("five", 5), ("two-hundred", 200), ("nine", 9), ("four", 4)])
    assert get_all(channel, queue) == [b"five", b"two-hundred", b"nine", b"four"]


def test_max_priority_zero_is_fifo(channel, names):
    queue = priority_queue(channel, names, max_priority=0)
    send(channel, queue, [("a", None), ("b", 3), ("c", 0)])
    assert get_all(channel, queue) == [b"a", b"b", b"c"]


def test_priority_property_is_delivered_unchanged(channel, names):
    queue = priority_queue(channel, names, max_priority=5)
    send(channel, queue, [("m", 200)])
    delivery = get(channel, queue, auto_ack=True)
    assert delivery.properties.priority == 200


def test_basic_get_takes_the_highest_priority(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("low", 1), ("high", 8)])
    delivery = get(channel, queue, auto_ack=True)
    assert delivery.body == b"high"
    method, _props, _body = channel.basic_get(queue, auto_ack=True)
    assert method.message_count == 0


def test_consumer_receives_in_priority_order(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("l1", 1), ("h1", 9), ("l2", 1), ("h2", 9)])
    consumer = Consumer(channel, queue, auto_ack=True)
    consumer.wait(4)
    assert consumer.bodies == [b"h1", b"h2", b"l1", b"l2"]


def test_requeued_messages_return_in_priority_order(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 2), ("c0", 0)])
    taken = [get(channel, queue) for _ in range(3)]
    assert [d.body for d in taken] == [b"b1", b"b2", b"a1"]
    send(channel, queue, [("b3", 2), ("a3", 1)])
    channel.basic_nack(taken[-1].delivery_tag, multiple=True, requeue=True)
    sync(channel)
    assert get_all(channel, queue) == [b"b1", b"b2", b"b3", b"a1", b"a2", b"a3", b"c0"]


def test_requeued_message_goes_back_before_newer_of_its_priority(channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("x1", 2), ("x2", 2), ("x3", 2), ("x4", 2)])
    tags = [get(channel, queue).delivery_tag for _ in range(3)]
    channel.basic_reject(tags[2], requeue=True)
    channel.basic_reject(tags[0], requeue=True)
    sync(channel)
    assert get_all(channel, queue) == [b"x1", b"x3", b"x4"]
    channel.basic_reject(tags[1], requeue=True)
    sync(channel)
    redelivered = get(channel, queue, auto_ack=True)
    assert (redelivered.body, redelivered.redelivered) == (b"x2", True)


def test_requeue_on_channel_close_keeps_priority_order(connection, channel, names):
    queue = priority_queue(channel, names)
    send(channel, queue, [("l1", 1), ("h1", 9), ("l2", 1), ("h2", 9)])
    other = connection.channel()
    for _ in range(4):
        get(other, queue)
    other.close()
    assert get_all(channel, queue) == [b"h1", b"h2", b"l1", b"l2"]


def test_drop_head_drops_the_highest_priority_head(channel, names):
    # RabbitMQ drops "the head": the message that would be delivered next.
    queue = priority_queue(channel, names, max_priority=5, **{"x-max-length": 3})
    send(channel, queue, [("h1", 5), ("l1", 1), ("h2", 5), ("l2", 1), ("m1", 3)])
    assert get_all(channel, queue) == [b"m1", b"l1", b"l2"]


def test_reject_publish_refuses_even_high_priority(channel, names):
    queue = priority_queue(
        channel, names, max_priority=5, **{"x-max-length": 2, "x-overflow": "reject-publish"}
    )
    send(channel, queue, [("l1", 1), ("l2", 1), ("h1", 5)])
    assert get_all(channel, queue) == [b"l1", b"l2"]


def test_drop_head_can_drop_the_message_just_published(channel, names):
    # Enqueued first, then the head is dropped: a message that outranks all
    # the others is the head, so it is the one that goes.
    queue = priority_queue(channel, names, max_priority=5, **{"x-max-length": 1})
    send(channel, queue, [("low", 1), ("high", 5)])
    assert get_all(channel, queue) == [b"low"]


def test_dropped_head_is_dead_lettered_as_maxlen(channel, names):
    dead = names.queue("dead")
    channel.queue_declare(dead)
    queue = priority_queue(
        channel,
        names,
        max_priority=5,
        **{
            "x-max-length": 1,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    send(channel, queue, [("high", 5), ("low", 1)])
    time.sleep(0.1)
    delivery = get(channel, dead, auto_ack=True)
    assert delivery.body == b"high"
    assert delivery.headers["x-death"][0]["reason"] == "maxlen"
    assert get_all(channel, queue) == [b"low"]


def test_message_ttl_expires_every_priority(channel, names):
    queue = priority_queue(channel, names, max_priority=5, **{"x-message-ttl": 100})
    send(channel, queue, [("l1", 1), ("h1", 5), ("l2", 1)])
    time.sleep(0.3)
    declared = channel.queue_declare(queue, passive=True)
    assert declared.method.message_count == 0
    assert get_all(channel, queue) == []


def test_expired_lower_priority_is_dropped_once_it_is_the_head(channel, names):
    queue = priority_queue(channel, names, max_priority=5, **{"x-message-ttl": 200})
    send(channel, queue, [("l1", 1)])
    time.sleep(0.1)
    send(channel, queue, [("h1", 5)])
    time.sleep(0.15)  # l1 has expired, h1 (published 100 ms later) has not
    method, _props, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"h1"
    assert method.message_count == 0
    assert get_all(channel, queue) == []


def test_expired_message_behind_a_higher_priority_one_is_not_delivered(channel, names):
    queue = priority_queue(channel, names, max_priority=5)
    publish(channel, "", queue, "h1", priority=5)
    publish(channel, "", queue, "l1", priority=1, expiration="50")
    sync(channel)
    time.sleep(0.2)
    assert get_all(channel, queue) == [b"h1"]


def test_expired_high_priority_head_is_dead_lettered(channel, names):
    dead = names.queue("dead")
    channel.queue_declare(dead)
    queue = priority_queue(
        channel, names, max_priority=5,
        **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
    )  # fmt: skip
    publish(channel, "", queue, "h1", priority=5, expiration="50")
    publish(channel, "", queue, "l1", priority=1)
    sync(channel)
    time.sleep(0.3)
    assert get_all(channel, queue) == [b"l1"]
    delivery = get(channel, dead, auto_ack=True)
    assert delivery.body == b"h1"
    assert delivery.headers["x-death"][0]["reason"] == "expired"


def test_rejected_message_is_dead_lettered_from_priority_queue(channel, names):
    dead = names.queue("dead")
    channel.queue_declare(dead)
    queue = priority_queue(
        channel, names, max_priority=5,
        **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
    )  # fmt: skip
    send(channel, queue, [("low", 1), ("high", 4)])
    taken = get(channel, queue)
    channel.basic_reject(taken.delivery_tag, requeue=False)
    sync(channel)
    time.sleep(0.1)
    letter = get(channel, dead, auto_ack=True)
    assert letter.body == b"high"
    assert letter.properties.priority == 4
    assert letter.headers["x-death"][0]["reason"] == "rejected"


def test_persistent_messages_keep_priority_order(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 5})
    for body, priority in [("l1", 1), ("h1", 5), ("l2", 1), ("h2", 5)]:
        channel.basic_publish(
            "", queue, body, pika.BasicProperties(priority=priority, delivery_mode=2)
        )
    sync(channel)
    assert get_all(channel, queue) == [b"h1", b"h2", b"l1", b"l2"]


def test_priority_consumer_gets_new_high_priority_first(connection, channel, names):
    queue = priority_queue(channel, names)
    consuming = connection.channel()
    consuming.basic_qos(prefetch_count=1)
    consumer = Consumer(consuming, queue)
    send(channel, queue, [("first", 1)])
    consumer.wait(1)
    send(channel, queue, [("low", 1), ("high", 9)])
    pump(connection)
    consuming.basic_ack(consumer.deliveries[0].delivery_tag)
    consumer.wait(2)
    consuming.basic_ack(consumer.deliveries[1].delivery_tag)
    consumer.wait(3)
    assert consumer.bodies == [b"first", b"high", b"low"]
