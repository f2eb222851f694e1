"""Channel lifecycle: open, close, errors confined to one channel (spec 1.5)."""

from __future__ import annotations

from conformance.helpers import Consumer, channel_closed_with, get, publish, sync

AREA = "channel lifecycle"


def test_many_channels_open_and_close(connection):
    channels = [connection.channel() for _ in range(50)]
    assert len({ch.channel_number for ch in channels}) == 50
    for ch in channels:
        ch.close()
    assert all(ch.is_closed for ch in channels)
    assert connection.channel().is_open


def test_channel_number_is_reusable_after_close(connection):
    channel = connection.channel(channel_number=7)
    channel.close()
    again = connection.channel(channel_number=7)
    assert again.is_open


def test_channel_error_leaves_other_channels_and_connection_open(connection, names):
    healthy = connection.channel()
    doomed = connection.channel()
    with channel_closed_with(404):
        doomed.queue_declare(names.queue(), passive=True)
    assert doomed.is_closed
    assert connection.is_open
    queue = names.queue()
    healthy.queue_declare(queue)
    publish(healthy, "", queue, b"still works")
    assert get(healthy, queue, auto_ack=True).body == b"still works"


def test_channel_number_is_reusable_after_broker_closed_it(connection, names):
    doomed = connection.channel(channel_number=9)
    with channel_closed_with(404):
        doomed.queue_declare(names.queue(), passive=True)
    again = connection.channel(channel_number=9)
    queue = names.queue()
    again.queue_declare(queue)
    publish(again, "", queue, b"fresh channel")
    assert get(again, queue, auto_ack=True).body == b"fresh channel"


def test_channel_flow_active_is_acknowledged(channel):
    # channel.flow(active=true) is the "resume" half every broker must accept.
    assert channel.flow(True) is True


def test_closing_channel_requeues_unacked_messages(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    for i in range(3):
        publish(channel, "", queue, f"m{i}")
    first = get(channel, queue)
    second = get(channel, queue)
    assert (first.body, second.body) == (b"m0", b"m1")
    channel.close()

    other = connection.channel()
    bodies = []
    flags = []
    while (delivery := get(other, queue, auto_ack=True)) is not None:
        bodies.append(delivery.body)
        flags.append(delivery.redelivered)
    assert bodies == [b"m0", b"m1", b"m2"]
    assert flags == [True, True, False]


def test_closing_channel_cancels_its_consumers(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    Consumer(channel, queue)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 1
    channel.close()
    observer = connection.channel()
    sync(observer)
    assert observer.queue_declare(queue, passive=True).method.consumer_count == 0


def test_closing_connection_requeues_unacked_messages(connect, names):
    first = connect()
    channel = first.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"unacked")
    assert get(channel, queue).body == b"unacked"
    first.close()

    channel = connect().channel()
    delivery = get(channel, queue, auto_ack=True)
    assert delivery.body == b"unacked"
    assert delivery.redelivered is True
