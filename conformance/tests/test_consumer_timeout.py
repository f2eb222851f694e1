"""Consumer acknowledgement timeout (RabbitMQ's `consumer_timeout`).

A delivery that stays unacknowledged longer than the broker's consumer_timeout
(30 minutes by default) makes the broker close its channel with 406
PRECONDITION_FAILED, class and method id 0:

    PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out.
    Timeout value used: 2000 ms. This timeout value can be configured, see
    consumers doc guide to learn more

(one line). The channel's unacknowledged messages are requeued; the connection
and its other channels go on. Only the oldest outstanding delivery counts, a
consumer's or basic.get's; no-ack deliveries never time out. The broker looks
periodically, so the close comes some time after the timeout, never before.

These tests need a broker whose consumer_timeout is a few seconds:
--short-consumer-timeout-url (and --short-consumer-timeout MS, default 2000).

- RabbitMQ 3.10: `rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, 2000).'`
  and, so that it looks every second rather than every minute,
  `rabbitmqctl eval 'application:set_env(rabbit, channel_tick_interval, 1000).'`
  (both read when a channel opens);
- Warren: `consumer_timeout = 2000` in a `warren serve --settings` file.

Every queue here is exclusive to its connection, so the broker under test
needs nothing cleaned up afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import amqp
import amqp.exceptions
import pika
import pytest

AREA = "consumer timeout"

TEXT = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
    "Timeout value used: {timeout} ms. "
    "This timeout value can be configured, see consumers doc guide to learn more"
)

#: How late after the timeout the close may come and still pass: RabbitMQ
#: looks every channel_tick_interval (set to 1 s for these tests), Warren
#: every tenth of the timeout.
GRACE = 10.0

#: Delivery times are measured at the client: a hair after the broker's.
EARLY = 0.1


@dataclass
class ShortTimeoutBroker:
    """The broker with a short consumer_timeout, and py-amqp connections to it."""

    url: str
    timeout_ms: int
    opened: list[amqp.Connection] = field(default_factory=list)

    @property
    def timeout(self) -> float:
        return self.timeout_ms / 1000

    def connect(self) -> amqp.Connection:
        params = pika.URLParameters(self.url)
        connection = amqp.Connection(
            f"{params.host}:{params.port}",
            userid=params.credentials.username,
            password=params.credentials.password,
            virtual_host=params.virtual_host,
        )
        connection.connect()
        self.opened.append(connection)
        return connection

    def text(self, channel: amqp.Channel) -> str:
        return TEXT.format(channel=channel.channel_id, timeout=self.timeout_ms)

    def close_all(self) -> None:
        for connection in self.opened:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - the broker may have closed it
                pass


@pytest.fixture
def short(short_consumer_timeout: tuple[str, int]) -> Iterator[ShortTimeoutBroker]:
    broker = ShortTimeoutBroker(*short_consumer_timeout)
    yield broker
    broker.close_all()


def exclusive_queue(channel: amqp.Channel, messages: int = 0) -> str:
    queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=False)
    for i in range(messages):
        channel.basic_publish(amqp.Message(f"m{i}".encode()), "", queue)
    channel.queue_declare(queue, passive=True)  # a round trip: the publishes are in
    return queue


def drain_until_closed(
    connection: amqp.Connection, limit: float, on_event: Callable[[], None] | None = None
) -> tuple[float, amqp.exceptions.AMQPError] | None:
    """Handle the connection's frames until the broker closes a channel (its
    error and when, `time.monotonic()`), or None after `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            connection.drain_events(timeout=0.05)
        except TimeoutError:
            pass
        except amqp.exceptions.AMQPError as error:
            return time.monotonic(), error
        if on_event is not None:
            on_event()
    return None


def assert_timed_out(short, channel, delivered_at: float, closed) -> None:
    assert closed is not None, f"no channel.close within {short.timeout + GRACE:g} s"
    closed_at, error = closed
    assert error.reply_code == 406
    assert error.reply_text == short.text(channel)
    assert error.method_sig == (0, 0)
    assert closed_at - delivered_at >= short.timeout - EARLY, "closed before the timeout"


def test_unacknowledged_delivery_closes_the_channel_with_406(short):
    connection = short.connect()
    channel = connection.channel()
    queue = exclusive_queue(channel, 3)
    channel.basic_qos(0, 2, False)
    delivered: list[float] = []
    channel.basic_consume(queue, callback=lambda message: delivered.append(time.monotonic()))
    closed = drain_until_closed(connection, short.timeout + GRACE)
    assert len(delivered) == 2
    assert_timed_out(short, channel, delivered[0], closed)


def test_messages_of_the_timed_out_channel_are_requeued(short):
    connection = short.connect()
    channel = connection.channel()
    queue = exclusive_queue(channel, 3)
    channel.basic_qos(0, 2, False)
    channel.basic_consume(queue, callback=lambda message: None)
    assert drain_until_closed(connection, short.timeout + GRACE) is not None
    # The connection and a new channel on it work; the two delivered
    # messages are back at the head, marked redelivered.
    other = connection.channel()
    got = []
    while (message := other.basic_get(queue, no_ack=True)) is not None:
        got.append((message.body, message.delivery_info["redelivered"]))
    assert got == [(b"m0", True), (b"m1", True), (b"m2", False)]


def test_other_channels_of_the_connection_are_not_closed(short):
    connection = short.connect()
    idle = connection.channel()
    channel = connection.channel()
    queue = exclusive_queue(channel, 1)
    channel.basic_consume(queue, callback=lambda message: None)
    closed = drain_until_closed(connection, short.timeout + GRACE)
    assert closed is not None and closed[1].reply_text == short.text(channel)
    assert idle.is_open
    idle.queue_declare(queue, passive=True)


def test_unacknowledged_basic_get_times_out_too(short):
    connection = short.connect()
    channel = connection.channel()
    queue = exclusive_queue(channel, 1)
    message = channel.basic_get(queue, no_ack=False)
    delivered_at = time.monotonic()
    assert message.body == b"m0"
    closed = drain_until_closed(connection, short.timeout + GRACE)
    assert_timed_out(short, channel, delivered_at, closed)


def test_acknowledging_each_delivery_in_time_keeps_the_channel(short):
    """Four deliveries held half the timeout each: twice the timeout in all."""
    connection = short.connect()
    channel = connection.channel()
    queue = exclusive_queue(channel, 4)
    channel.basic_qos(0, 1, False)
    pending: list[tuple[float, int]] = []
    acked: list[int] = []
    channel.basic_consume(queue, callback=lambda message: pending.append(
        (time.monotonic(), message.delivery_tag)))

    def ack_when_due() -> None:
        if pending and time.monotonic() - pending[0][0] >= short.timeout / 2:
            _, tag = pending.pop(0)
            channel.basic_ack(tag)
            acked.append(tag)

    closed = drain_until_closed(connection, short.timeout * 2.5, ack_when_due)
    assert closed is None, f"closed: {closed}"
    assert len(acked) == 4
    channel.queue_declare(queue, passive=True)


def test_only_the_oldest_delivery_counts(short):
    """Acknowledging newer deliveries does not help the oldest one."""
    connection = short.connect()
    channel = connection.channel()
    queue = exclusive_queue(channel, 1)
    delivered: list[float] = []

    def on_message(message: amqp.Message) -> None:
        delivered.append(time.monotonic())
        if message.body != b"m0":
            channel.basic_ack(message.delivery_tag)

    channel.basic_consume(queue, callback=on_message)
    publisher = connection.channel()
    last = [time.monotonic()]

    def keep_publishing() -> None:
        if time.monotonic() - last[0] >= short.timeout / 4:
            last[0] = time.monotonic()
            publisher.basic_publish(amqp.Message(b"newer"), "", queue)

    closed = drain_until_closed(connection, short.timeout + GRACE, keep_publishing)
    assert len(delivered) > 2
    assert_timed_out(short, channel, delivered[0], closed)


def test_no_ack_deliveries_never_time_out(short):
    connection = short.connect()
    channel = connection.channel()
    queue = exclusive_queue(channel, 2)
    got = []
    channel.basic_consume(queue, callback=got.append, no_ack=True)
    # Past the timeout plus one of RabbitMQ's 1 s checks and two of Warren's.
    assert drain_until_closed(connection, short.timeout * 1.5 + 1.0) is None
    assert len(got) == 2
    channel.queue_declare(queue, passive=True)
