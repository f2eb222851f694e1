"""Connection-level error paths and their reply codes (spec 1.4.2.5, 2.3.7, 4.2.3).

Soft errors (a channel closed with 403/404/405/406) are tested beside the
feature that raises them; this module holds the hard errors that close the
whole connection, driven by real clients pushed into doing the wrong thing.
"""

from __future__ import annotations

import amqp
import amqp.exceptions
import pytest
from amqp import spec

from conformance.helpers import Consumer, connection_closed_with, publish

AREA = "connection errors"


def test_body_frame_larger_than_frame_max_is_501(connect, names):
    connection = connect(frame_max=4096)
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    # Make pika put 15000 bytes in one body frame although frame_max is 4096.
    connection._impl._body_max_length = 20_000
    with connection_closed_with(501):
        channel.basic_publish("", queue, b"x" * 15_000)
        channel.queue_declare(queue, passive=True)


def test_second_channel_open_on_same_number_is_504(py_amqp_channel):
    with pytest.raises(amqp.exceptions.AMQPError) as exc:
        py_amqp_channel.send_method(spec.Channel.Open, "s", ("",), wait=spec.Channel.OpenOk)
    assert exc.value.reply_code == 504


def test_method_where_content_header_expected_is_505(py_amqp_channel):
    """Spec 4.2.6: basic.publish must be followed by its content header frame.

    py-amqp sends a bare basic.publish method when asked for one, then a
    queue.declare: RabbitMQ closes the connection with 505 UNEXPECTED_FRAME.
    """
    py_amqp_channel.send_method(spec.Basic.Publish, "Bssbb", (0, "", "nowhere", False, False))
    with pytest.raises(amqp.exceptions.AMQPError) as exc:
        py_amqp_channel.queue_declare("", exclusive=True)
    assert exc.value.reply_code == 505
    assert isinstance(exc.value, amqp.exceptions.ConnectionError)


def test_channel_flow_inactive_is_540(connection):
    channel = connection.channel()
    # RabbitMQ no longer implements the client stopping the server's flow.
    with connection_closed_with(540):
        channel.flow(False)


def test_publish_immediate_is_540(py_amqp_channel, names):
    queue = names.queue()
    py_amqp_channel.queue_declare(queue)
    py_amqp_channel.basic_publish(amqp.Message(b"x"), "", queue, immediate=True)
    with pytest.raises(amqp.exceptions.AMQPError) as exc:
        py_amqp_channel.queue_declare(queue, passive=True)
    assert exc.value.reply_code == 540
    assert isinstance(exc.value, amqp.exceptions.ConnectionError)


def test_connection_error_does_not_disturb_other_connections(connect, names):
    healthy = connect()
    channel = healthy.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True)

    broken = connect()
    with connection_closed_with(540):
        broken.channel().flow(False)

    publish(channel, "", queue, b"still here")
    assert [d.body for d in consumer.wait(1)] == [b"still here"]
