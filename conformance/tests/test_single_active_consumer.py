"""Single active consumer: x-single-active-consumer (RabbitMQ extension).

One consumer receives; the next takes over when it cancels or its channel or
connection closes (its unacknowledged messages requeued first); on a classic
queue the successor is the waiting consumer of highest x-priority, on a
quorum queue (RabbitMQ 3.10) the earliest registered. Exclusive consumers
and basic.get around it, as RabbitMQ 3.10.8 answers them.
"""

from __future__ import annotations

import pika
import pytest

from conformance.helpers import Consumer, channel_closed_with, get, publish, pump, sync

AREA = "single active consumer"

SAC = {"x-single-active-consumer": True}
QUORUM = {"x-queue-type": "quorum"}


def sac_queue(channel, names, **arguments):
    queue = names.queue()
    durable = arguments.get("x-queue-type") == "quorum"
    channel.queue_declare(queue, durable=durable, arguments={**SAC, **arguments})
    return queue


def fill(channel, queue, count, prefix="m"):
    for i in range(count):
        publish(channel, "", queue, f"{prefix}{i}")
    sync(channel)


def test_only_the_first_consumer_receives(connection, channel, names):
    queue = sac_queue(channel, names)
    first = Consumer(connection.channel(), queue)
    second = Consumer(connection.channel(), queue)
    fill(channel, queue, 3)
    pump(connection)
    assert (first.bodies, second.bodies) == ([b"m0", b"m1", b"m2"], [])


def test_waiting_consumers_count_as_consumers(connection, channel, names):
    queue = sac_queue(channel, names)
    Consumer(connection.channel(), queue)
    Consumer(connection.channel(), queue)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 2


def test_blocked_active_consumer_does_not_pass_messages_on(connection, channel, names):
    queue = sac_queue(channel, names)
    limited = connection.channel()
    limited.basic_qos(prefetch_count=1)
    first = Consumer(limited, queue)
    second = Consumer(connection.channel(), queue)
    fill(channel, queue, 3)
    pump(connection)
    assert (first.bodies, second.bodies) == ([b"m0"], [])


def test_next_consumer_takes_over_after_cancel(connection, channel, names):
    queue = sac_queue(channel, names)
    first = Consumer(connection.channel(), queue, auto_ack=True)
    second = Consumer(connection.channel(), queue, auto_ack=True)
    fill(channel, queue, 1, prefix="a")
    pump(connection)
    first.cancel()
    fill(channel, queue, 1, prefix="b")
    pump(connection)
    assert (first.bodies, second.bodies) == ([b"a0"], [b"b0"])


def test_waiting_messages_go_to_the_quorum_successor_after_cancel(connection, channel, names):
    # A quorum queue hands the waiting messages over at once. (RabbitMQ
    # 3.10's classic queue leaves them until something else runs the queue,
    # and meanwhile gives newer messages to the successor: a stall Warren
    # does not copy, docs/compatibility.md.)
    queue = sac_queue(channel, names, **QUORUM)
    limited = connection.channel()
    limited.basic_qos(prefetch_count=1)
    first = Consumer(limited, queue)
    second = Consumer(connection.channel(), queue, auto_ack=True)
    fill(channel, queue, 3)
    pump(connection)
    first.cancel()
    pump(connection)
    # m0 stays unacknowledged on the first channel (cancel does not requeue).
    assert (first.bodies, second.bodies) == ([b"m0"], [b"m1", b"m2"])


def test_unacked_messages_are_requeued_first_on_channel_close(connection, channel, names):
    queue = sac_queue(channel, names)
    first_channel = connection.channel()
    first_channel.basic_qos(prefetch_count=2)
    first = Consumer(first_channel, queue)
    second = Consumer(connection.channel(), queue, auto_ack=True)
    fill(channel, queue, 4)
    pump(connection)
    assert first.bodies == [b"m0", b"m1"]
    first_channel.close()
    second.wait(4)
    assert second.bodies == [b"m0", b"m1", b"m2", b"m3"]
    assert [d.redelivered for d in second.deliveries] == [True, True, False, False]


def test_next_consumer_takes_over_when_connection_closes(connect, channel, names):
    queue = sac_queue(channel, names)
    first_connection = connect()
    first = Consumer(first_connection.channel(), queue)
    waiting_connection = connect()
    second = Consumer(waiting_connection.channel(), queue, auto_ack=True)
    fill(channel, queue, 2)
    pump(first_connection)
    assert first.bodies == [b"m0", b"m1"]
    first_connection.close()
    second.wait(2)
    assert second.bodies == [b"m0", b"m1"]
    assert all(d.redelivered for d in second.deliveries)


def test_later_higher_priority_consumer_does_not_displace_the_active_one(
    connection, channel, names
):
    queue = sac_queue(channel, names)
    first = Consumer(connection.channel(), queue, auto_ack=True)
    higher = Consumer(connection.channel(), queue, auto_ack=True, arguments={"x-priority": 10})
    fill(channel, queue, 2)
    pump(connection)
    assert (first.bodies, higher.bodies) == ([b"m0", b"m1"], [])


def successors(connection, channel, queue, priorities):
    """Register consumers with `priorities`, then cancel the active one again
    and again: the order in which they became active."""
    receiving = connection.channel()
    consumers = []
    for index, priority in enumerate(priorities):
        arguments = {"x-priority": priority} if priority is not None else None
        consumer = Consumer(receiving, queue, auto_ack=True, arguments=arguments)
        consumer.index = index
        consumers.append(consumer)
    order = []
    for round_ in range(len(priorities)):
        publish(channel, "", queue, f"t{round_}")
        sync(channel)
        pump(connection)
        active = [c for c in consumers if c.bodies and c.bodies[-1] == f"t{round_}".encode()]
        assert len(active) == 1
        order.append(active[0].index)
        active[0].cancel()
        consumers.remove(active[0])
    return order


def test_classic_successor_is_the_highest_priority(connection, channel, names):
    queue = sac_queue(channel, names)
    assert successors(connection, channel, queue, [None, 5, 10, 5]) == [0, 2, 1, 3]


def test_classic_successor_among_equals_is_the_earliest(connection, channel, names):
    queue = sac_queue(channel, names)
    assert successors(connection, channel, queue, [None, None, None]) == [0, 1, 2]


def test_quorum_successor_is_the_earliest_whatever_its_priority(connection, channel, names):
    queue = sac_queue(channel, names, **QUORUM)
    assert successors(connection, channel, queue, [None, 5, 10, 5]) == [0, 1, 2, 3]


def test_exclusive_consume_on_classic_sac_queue_is_403(connection, channel, names):
    queue = sac_queue(channel, names)
    other = connection.channel()
    with channel_closed_with(
        403, f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    ):
        other.basic_consume(queue, lambda *a: None, exclusive=True)


def test_exclusive_consume_on_quorum_sac_queue_is_allowed(connection, channel, names):
    queue = sac_queue(channel, names, **QUORUM)
    exclusive = Consumer(connection.channel(), queue, auto_ack=True, exclusive=True)
    fill(channel, queue, 1)
    exclusive.wait(1)
    assert exclusive.bodies == [b"m0"]


def test_basic_get_works_on_classic_sac_queue(connection, channel, names):
    queue = sac_queue(channel, names)
    limited = connection.channel()
    limited.basic_qos(prefetch_count=1)
    Consumer(limited, queue)
    fill(channel, queue, 2)
    pump(connection)
    assert get(channel, queue, auto_ack=True).body == b"m1"


def test_basic_get_on_quorum_sac_queue_is_405(channel, names):
    queue = sac_queue(channel, names, **QUORUM)
    with channel_closed_with(
        405,
        f"RESOURCE_LOCKED - cannot obtain access to locked queue '{queue}' in vhost '/'. "
        "basic.get operations are not supported by quorum queues with single active consumer",
    ):
        channel.basic_get(queue)


@pytest.mark.parametrize("value, kind", [("yes", "longstr"), (1, "signedint")])
def test_invalid_single_active_consumer_is_406(channel, names, value, kind):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{queue}' "
        f"in vhost '/': {{unacceptable_type,{kind}}}",
    ):
        channel.queue_declare(queue, arguments={"x-single-active-consumer": value})


def test_single_active_consumer_false_is_round_robin(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-single-active-consumer": False})
    receiving = connection.channel()
    first = Consumer(receiving, queue, auto_ack=True)
    second = Consumer(receiving, queue, auto_ack=True)
    fill(channel, queue, 2)
    pump(connection)
    assert (first.bodies, second.bodies) == ([b"m0"], [b"m1"])


def test_redeclare_without_single_active_consumer_is_406(channel, names):
    queue = sac_queue(channel, names)
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue "
        f"'{queue}' in vhost '/': received none but current is the value 'true' of type 'bool'",
    ):
        channel.queue_declare(queue)


def test_sac_on_priority_queue_delivers_by_message_priority(connection, channel, names):
    queue = sac_queue(channel, names, **{"x-max-priority": 5})
    for body, priority in [("low", 1), ("high", 5)]:
        channel.basic_publish("", queue, body, pika.BasicProperties(priority=priority))
    sync(channel)
    first = Consumer(connection.channel(), queue, auto_ack=True)
    first.wait(2)
    assert first.bodies == [b"high", b"low"]
