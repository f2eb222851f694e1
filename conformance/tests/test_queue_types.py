"""Queue types (x-queue-type) and the queue arguments RabbitMQ 3.10 knows.

Which arguments each type takes and the exact 406 texts for the others, a
quorum queue's required properties, and arguments RabbitMQ does not know
(accepted). Where Warren refuses what RabbitMQ accepts (streams, lazy mode,
queue versions, in-memory limits) the test is not here: see
docs/compatibility.md.
"""

from __future__ import annotations

import pytest

from conformance.helpers import Consumer, channel_closed_with, get_all, publish, sync

AREA = "queue types and arguments"

QUORUM = {"x-queue-type": "quorum"}


def text(queue, why):
    return f"PRECONDITION_FAILED - invalid arg {why.format(queue=queue)}"


def test_classic_type_is_accepted_and_equivalent_to_none(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-queue-type": "classic"})
    channel.queue_declare(queue)
    channel.queue_declare(queue, arguments={"x-queue-type": "classic"})


def test_quorum_queue_is_declared_durable(channel, names):
    queue = names.queue()
    declared = channel.queue_declare(queue, durable=True, arguments=QUORUM)
    assert declared.method.message_count == 0


def test_quorum_queue_delivers_in_order(connection, channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    for i in range(3):
        publish(channel, "", queue, f"m{i}")
    sync(channel)
    consumer = Consumer(connection.channel(), queue, auto_ack=True)
    consumer.wait(3)
    assert consumer.bodies == [b"m0", b"m1", b"m2"]


def test_quorum_queue_ignores_message_priority(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    for i in range(3):
        publish(channel, "", queue, f"r{i}", priority=i)
    sync(channel)
    assert get_all(channel, queue) == [b"r0", b"r1", b"r2"]


@pytest.mark.parametrize(
    "durable, exclusive, auto_delete, prop",
    [
        (False, False, False, "non-durable"),
        (True, True, False, "exclusive-owner"),
        (False, True, False, "exclusive-owner"),
        (True, False, True, "auto-delete"),
        (False, True, True, "auto-delete"),
    ],
)
def test_quorum_queue_refuses_properties(channel, names, durable, exclusive, auto_delete, prop):
    queue = names.queue()
    with channel_closed_with(
        406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{queue}' in vhost '/'"
    ):
        channel.queue_declare(
            queue, durable=durable, exclusive=exclusive, auto_delete=auto_delete, arguments=QUORUM
        )


@pytest.mark.parametrize(
    "argument, value",
    [
        ("x-max-priority", 5),
        ("x-max-priority", "x"),
        ("x-queue-mode", "lazy"),
        ("x-queue-master-locator", "min-masters"),
        ("x-queue-version", 2),
        ("x-max-age", "1D"),
        ("x-stream-max-segment-size-bytes", 100),
        ("x-initial-cluster-size", 3),
    ],
)
def test_quorum_queue_refuses_classic_and_stream_arguments(channel, names, argument, value):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{queue}' in vhost '/' "
        "of queue type rabbit_quorum_queue",
    ):
        channel.queue_declare(queue, durable=True, arguments={**QUORUM, argument: value})


@pytest.mark.parametrize(
    "argument, value",
    [
        ("x-message-ttl", 1000),
        ("x-expires", 60000),
        ("x-max-length", 5),
        ("x-max-length-bytes", 5000),
        ("x-overflow", "reject-publish"),
        ("x-overflow", "reject-publish-dlx"),
        ("x-dead-letter-exchange", "amq.direct"),
        ("x-single-active-consumer", True),
        ("x-delivery-limit", 5),
        ("x-quorum-initial-group-size", 3),
        ("x-queue-leader-locator", "client-local"),
        ("x-queue-leader-locator", "balanced"),
        ("x-dead-letter-strategy", "at-most-once"),
        ("x-foo", 1),
    ],
)
def test_quorum_queue_accepts_argument(channel, names, argument, value):
    queue = names.queue()
    channel.queue_declare(queue, durable=True, arguments={**QUORUM, argument: value})


@pytest.mark.parametrize(
    "argument, value, why",
    [
        ("x-quorum-initial-group-size", "x", '"expected integer, got longstr"'),
        ("x-quorum-initial-group-size", 0, "{value_zero,0}"),
        ("x-quorum-initial-group-size", -1, "{value_negative,-1}"),
        ("x-max-in-memory-length", -1, "{value_negative,-1}"),
        ("x-max-in-memory-bytes", "x", '"expected integer, got longstr"'),
        ("x-dead-letter-strategy", "bad", "invalid_dlx_strategy"),
        ("x-dead-letter-strategy", 5, "{unacceptable_type,signedint}"),
        ("x-queue-leader-locator", "bad", "invalid_queue_locator_arg"),
        ("x-queue-leader-locator", 5, "{unacceptable_type,signedint}"),
        ("x-message-ttl", -1, "{value_negative,-1}"),
    ],
)
def test_quorum_queue_invalid_value_is_406(channel, names, argument, value, why):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{queue}' in vhost '/': {why}",
    ):
        channel.queue_declare(queue, durable=True, arguments={**QUORUM, argument: value})


def test_quorum_value_checks_come_before_property_checks(channel, names):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{queue}' in vhost '/': "
        "{value_negative,-1}",
    ):
        channel.queue_declare(queue, arguments={**QUORUM, "x-message-ttl": -1})


def test_quorum_type_check_comes_before_value_checks(channel, names):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{queue}' in vhost '/' "
        "of queue type rabbit_quorum_queue",
    ):
        channel.queue_declare(queue, arguments={**QUORUM, "x-max-priority": "x"})


@pytest.mark.parametrize(
    "argument, value",
    [
        ("x-max-in-memory-length", 5),
        ("x-max-in-memory-bytes", 5),
        ("x-max-in-memory-length", "x"),
        ("x-quorum-initial-group-size", 3),
        ("x-max-age", "1D"),
        ("x-stream-max-segment-size-bytes", 100),
        ("x-initial-cluster-size", 3),
        ("x-dead-letter-strategy", "at-least-once"),
        ("x-queue-leader-locator", "client-local"),
    ],
)
def test_classic_queue_refuses_quorum_and_stream_arguments(channel, names, argument, value):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{queue}' in vhost '/' "
        "of queue type rabbit_classic_queue",
    ):
        channel.queue_declare(queue, arguments={argument: value})


@pytest.mark.parametrize(
    "value, why",
    [
        ("foo", "\"unsupported queue type 'foo'\""),
        ("Classic", "\"unsupported queue type 'Classic'\""),
        ("", "\"unsupported queue type ''\""),
        (5, "{unacceptable_type,signedint}"),
    ],
)
def test_unknown_queue_type_is_406(channel, names, value, why):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{queue}' in vhost '/': "
        f"{why}",
    ):
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": value})


@pytest.mark.parametrize(
    "argument, value, why",
    [
        ("x-queue-mode", "bad", "\"unsupported queue mode 'bad'\""),
        ("x-queue-mode", 1, "{unacceptable_type,signedint}"),
        ("x-queue-version", 3, "\"unsupported queue version '3'\""),
        ("x-queue-version", 0, "\"unsupported queue version '0'\""),
        ("x-queue-version", -1, "{value_negative,-1}"),
        ("x-queue-version", "2", '"expected integer, got longstr"'),
    ],
)
def test_invalid_classic_argument_value_is_406(channel, names, argument, value, why):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{queue}' in vhost '/': {why}",
    ):
        channel.queue_declare(queue, arguments={argument: value})


def test_values_are_checked_in_rabbitmq_order(channel, names):
    queue = names.queue()
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{queue}' in vhost '/': "
        "{value_zero,0}",
    ):
        channel.queue_declare(queue, arguments={"x-message-ttl": -1, "x-expires": 0})


@pytest.mark.parametrize("argument", ["x-foo", "x-consumer-timeout", "y-foo", "foo"])
def test_unknown_argument_is_accepted(channel, names, argument):
    queue = names.queue()
    channel.queue_declare(queue, arguments={argument: 1})
    publish(channel, "", queue, "m")
    sync(channel)
    assert get_all(channel, queue) == [b"m"]


def test_unknown_argument_is_not_compared_on_redeclare(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-foo": 1})
    channel.queue_declare(queue, arguments={"x-foo": 2})
    channel.queue_declare(queue)


@pytest.mark.parametrize(
    "argument, value, shown",
    [
        ("x-queue-type", "quorum", "the value 'quorum' of type 'longstr'"),
        ("x-max-priority", 5, "the value '5' of type 'signedint'"),
        ("x-queue-master-locator", "random", "the value 'random' of type 'longstr'"),
        ("x-queue-mode", "default", "the value 'default' of type 'longstr'"),
    ],
)
def test_redeclare_without_argument_is_406(channel, names, argument, value, shown):
    queue = names.queue()
    durable = value == "quorum"
    channel.queue_declare(queue, durable=durable, arguments={argument: value})
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{argument}' for queue '{queue}' in vhost '/': "
        f"received none but current is {shown}",
    ):
        channel.queue_declare(queue, durable=durable)


def test_redeclare_with_other_max_priority_is_406(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-priority": 5})
    with channel_closed_with(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{queue}' "
        "in vhost '/': received '6' but current is '5'",
    ):
        channel.queue_declare(queue, arguments={"x-max-priority": 6})


@pytest.mark.parametrize(
    "argument, value",
    [
        ("x-queue-master-locator", "min-masters"),
        ("x-queue-master-locator", "client-local"),
        ("x-queue-master-locator", "random"),
        ("x-queue-mode", "default"),
    ],
)
def test_classic_argument_without_effect_on_one_node_is_accepted(channel, names, argument, value):
    queue = names.queue()
    channel.queue_declare(queue, arguments={argument: value})
