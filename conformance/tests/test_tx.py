"""Transactions: tx.select, tx.commit, tx.rollback (spec 1.9)."""

from __future__ import annotations

from conformance.helpers import channel_closed_with, get, publish, sync

AREA = "transactions"


def ready(channel, queue):
    return channel.queue_declare(queue, passive=True).method.message_count


def test_publishes_are_invisible_until_commit(connection, names):
    channel = connection.channel()
    observer = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    channel.tx_select()
    publish(channel, "", queue, b"a")
    publish(channel, "", queue, b"b")
    sync(channel)
    assert ready(observer, queue) == 0
    channel.tx_commit()
    assert ready(observer, queue) == 2


def test_rollback_discards_publishes(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    channel.tx_select()
    publish(channel, "", queue, b"discarded")
    channel.tx_rollback()
    channel.tx_commit()
    assert ready(channel, queue) == 0


def test_channel_stays_transactional_after_commit(connection, names):
    channel = connection.channel()
    observer = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    channel.tx_select()
    publish(channel, "", queue, b"1")
    channel.tx_commit()
    publish(channel, "", queue, b"2")
    sync(channel)
    assert ready(observer, queue) == 1
    channel.tx_commit()
    assert ready(observer, queue) == 2


def test_acks_take_effect_at_commit(connection, names):
    channel = connection.channel()
    observer = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m")
    sync(channel)
    channel.tx_select()
    delivery = get(channel, queue)
    channel.basic_ack(delivery.delivery_tag)
    channel.close()  # closing before commit: the ack never happened
    redelivered = get(observer, queue, auto_ack=True)
    assert redelivered.body == b"m"
    assert redelivered.redelivered is True


def test_committed_ack_removes_message(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m")
    sync(channel)
    channel.tx_select()
    delivery = get(channel, queue)
    channel.basic_ack(delivery.delivery_tag)
    channel.tx_commit()
    channel.close()
    observer = connection.channel()
    assert get(observer, queue) is None


def test_rolled_back_ack_leaves_message_unacked(connection, names):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    publish(channel, "", queue, b"m")
    sync(channel)
    channel.tx_select()
    delivery = get(channel, queue)
    channel.basic_ack(delivery.delivery_tag)
    channel.tx_rollback()
    # RabbitMQ: rollback forgets the ack; the message stays unacknowledged on
    # this channel (not requeued) until the channel closes.
    assert get(channel, queue) is None
    channel.close()
    assert get(connection.channel(), queue, auto_ack=True).redelivered is True


def test_commit_without_select_is_406(channel):
    with channel_closed_with(406):
        channel.tx_commit()


def test_rollback_without_select_is_406(channel):
    with channel_closed_with(406):
        channel.tx_rollback()


def test_tx_select_twice_is_ok(channel):
    channel.tx_select()
    channel.tx_select()
    channel.tx_commit()
