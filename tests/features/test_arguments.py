"""Queue x-arguments: the 406 texts RabbitMQ 3.10.8 sends (checked against it),
and the arguments set from the binding-configuration language (issue item 6)."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from feature_helpers import PAST_TTL, connect, count, get, pump, wait_get

from broker.testing import BrokerThread

INVALID = "PRECONDITION_FAILED - invalid arg '{key}' for queue '{queue}' in vhost '/': {why}"


@pytest.mark.parametrize(
    ("arguments", "key", "why"),
    [
        ({"x-message-ttl": -1}, "x-message-ttl", "{value_negative,-1}"),
        ({"x-message-ttl": "100"}, "x-message-ttl", '"expected integer, got longstr"'),
        ({"x-message-ttl": True}, "x-message-ttl", '"expected integer, got bool"'),
        ({"x-message-ttl": 2**40}, "x-message-ttl", "{value_too_large,1099511627776}"),
        ({"x-expires": 0}, "x-expires", "{value_zero,0}"),
        ({"x-expires": -1}, "x-expires", "{value_negative,-1}"),
        ({"x-expires": "a"}, "x-expires", '"expected integer, got longstr"'),
        ({"x-max-length": "1"}, "x-max-length", '"expected integer, got longstr"'),
        ({"x-max-length-bytes": -5}, "x-max-length-bytes", "{value_negative,-5}"),
        ({"x-overflow": 1}, "x-overflow", "{unacceptable_type,signedint}"),
        ({"x-overflow": "explode"}, "x-overflow", "invalid_overflow"),
        (
            {"x-dead-letter-routing-key": "k"},
            "x-dead-letter-routing-key",
            "routing_key_but_no_dlx_defined",
        ),
        (
            {"x-dead-letter-exchange": "a", "x-dead-letter-routing-key": 5},
            "x-dead-letter-routing-key",
            "{unacceptable_type,signedint}",
        ),
    ],
)
def test_invalid_arguments_are_406_in_rabbitmq_words(connection, unique, arguments, key, why):
    channel = connection.channel()
    queue = unique()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, arguments=arguments)
    assert info.value.reply_code == 406
    assert info.value.reply_text == INVALID.format(key=key, queue=queue, why=why)


def test_dead_letter_exchange_of_the_wrong_type(connection, unique):
    channel = connection.channel()
    queue = unique()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, arguments={"x-dead-letter-exchange": 5})
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' "
        f"in queue '{queue}' in vhost '/'"
    )


def test_delivery_limit_must_be_a_count(connection, unique):
    """RabbitMQ 3.10 refuses it on classic queues; Warren takes it, as a count."""
    channel = connection.channel()
    channel.queue_declare(unique(), arguments={"x-delivery-limit": 3})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(unique(), arguments={"x-delivery-limit": -1})
    assert info.value.reply_code == 406


CONFIG = """
exchange retry.dlx type direct
queue work
    message-ttl 60ms
    dead-letter-exchange retry.dlx
    dead-letter-routing-key "parked"
queue capped
    max-length 1
    overflow reject-publish-dlx
    dead-letter-exchange retry.dlx
    dead-letter-routing-key "parked"
queue poison
    delivery-limit 0
    dead-letter-exchange retry.dlx
    dead-letter-routing-key "parked"
queue short-lived
    expires 150ms
queue parked
bind parked to retry.dlx key "parked"
"""


def test_every_feature_is_set_from_the_configuration_language(tmp_path):
    path = tmp_path / "topology.conf"
    path.write_text(CONFIG)
    broker = BrokerThread(port=0, config_path=path)
    broker.start()
    try:
        connection = connect(broker.url)
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", "work", b"expired")
        channel.basic_publish("", "capped", b"kept")
        with pytest.raises(pika.exceptions.NackError):
            channel.basic_publish("", "capped", b"refused")
        channel.basic_publish("", "poison", b"poison")
        method, _, _ = get(channel, "poison", auto_ack=False)
        channel.basic_nack(method.delivery_tag, requeue=True)
        pump(connection, PAST_TTL)
        reasons = {}
        for _ in range(3):
            _, properties, body = wait_get(connection, channel, "parked")
            reasons[body] = properties.headers["x-death"][0]["reason"]
        assert reasons == {
            b"expired": "expired",
            b"refused": "maxlen",
            b"poison": "delivery_limit",
        }
        assert count(channel, "capped") == 1
        pump(connection, 0.3)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            connection.channel().queue_declare("short-lived", passive=True)
        assert info.value.reply_code == 404
        connection.close()
    finally:
        broker.stop()


@pytest.mark.parametrize("key", ["x-message-ttl", "x-expires"])
def test_ten_years_is_the_longest_ttl(connection, unique, key):
    channel = connection.channel()
    channel.queue_declare(unique(), arguments={key: 315_360_000_000})
    queue = unique()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, arguments={key: 315_360_000_001})
    assert info.value.reply_text == INVALID.format(
        key=key, queue=queue, why="{value_too_large,315360000001}"
    )


def test_ten_years_is_the_longest_expiration(connection, unique):
    channel = connection.channel()
    queue = unique()
    channel.queue_declare(queue)
    channel.confirm_delivery()  # a publish returns once the broker took it
    channel.basic_publish("", queue, b"m", pika.BasicProperties(expiration="315360000000"))
    assert count(channel, queue) == 1
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("", queue, b"m", pika.BasicProperties(expiration="315360000001"))
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - invalid expiration '315360000001': {value_too_large,315360000001}"
    )
