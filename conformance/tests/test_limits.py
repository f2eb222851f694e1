"""Queue length limits: x-max-length, x-max-length-bytes, x-overflow (RabbitMQ extensions)."""

from __future__ import annotations

from conformance.helpers import channel_closed_with, get, get_all, publish, sync

AREA = "queue length limits"


def fill(channel, queue, count, size=2):
    for i in range(count):
        publish(channel, "", queue, f"m{i}".ljust(size, "."))
    sync(channel)


def test_max_length_drops_oldest_by_default(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 3})
    fill(channel, queue, 5)
    assert get_all(channel, queue) == [b"m2", b"m3", b"m4"]


def test_max_length_drop_head_explicit(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 2, "x-overflow": "drop-head"})
    fill(channel, queue, 4)
    assert get_all(channel, queue) == [b"m2", b"m3"]


def test_max_length_reject_publish_keeps_oldest(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 3, "x-overflow": "reject-publish"})
    fill(channel, queue, 5)
    assert get_all(channel, queue) == [b"m0", b"m1", b"m2"]


def test_max_length_zero_keeps_nothing(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 0})
    fill(channel, queue, 3)
    assert get(channel, queue) is None


def test_max_length_bytes_counts_body_bytes(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length-bytes": 10})
    fill(channel, queue, 4, size=4)  # 16 bytes offered, room for 2 messages
    assert get_all(channel, queue) == [b"m2..", b"m3.."]


def test_max_length_bytes_reject_publish(channel, names):
    queue = names.queue()
    channel.queue_declare(
        queue, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"}
    )
    fill(channel, queue, 4, size=4)
    assert get_all(channel, queue) == [b"m0..", b"m1.."]


def test_max_length_counts_ready_messages_only(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 2})
    fill(channel, queue, 2)
    held = [get(channel, queue) for _ in range(2)]  # unacknowledged, not counted
    publish(channel, "", queue, b"m2")
    publish(channel, "", queue, b"m3")
    sync(channel)
    assert channel.queue_declare(queue, passive=True).method.message_count == 2
    channel.basic_ack(held[-1].delivery_tag, multiple=True)
    assert get_all(channel, queue) == [b"m2", b"m3"]


def test_max_length_and_bytes_together_lowest_wins(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 5, "x-max-length-bytes": 4})
    fill(channel, queue, 3)
    assert get_all(channel, queue) == [b"m1", b"m2"]


def test_unknown_overflow_mode_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-overflow": "explode"})


def test_negative_max_length_bytes_is_406(channel, names):
    with channel_closed_with(406):
        channel.queue_declare(names.queue(), arguments={"x-max-length-bytes": -5})
