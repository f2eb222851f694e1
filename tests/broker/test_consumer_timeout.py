"""Consumer acknowledgement timeouts in Warren: the node's `consumer_timeout`,
a queue's `x-consumer-timeout` and the policy key `consumer-timeout` (RabbitMQ 3.12's,
set through the management API),
the check's pacing, and the bookkeeping behind it. The behaviour as clients see
it against any broker is conformance/tests/test_consumer_timeout.py."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from broker.core.queue import Queue
from broker.session.acks import Acknowledgements
from broker.settings import HTTPListener, Listener, Settings
from broker.testing import BrokerThread

TEXT = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
    "Timeout value used: {timeout} ms. "
    "This timeout value can be configured, see consumers doc guide to learn more"
)


def start(consumer_timeout: int, api: bool = False) -> BrokerThread:
    extra: dict[str, Any] = {"management_tcp": HTTPListener(0, "127.0.0.1")} if api else {}
    thread = BrokerThread(settings=Settings(
        listeners_tcp=(Listener("127.0.0.1", 0),), consumer_timeout=consumer_timeout, **extra,
    ))
    thread.start()
    return thread


@pytest.fixture
def fast() -> Iterator[BrokerThread]:
    """A broker whose consumer_timeout is 300 ms."""
    thread = start(300)
    yield thread
    thread.stop()


@pytest.fixture
def slow() -> Iterator[BrokerThread]:
    """A broker whose consumer_timeout is a minute: checked every 6 s."""
    thread = start(60_000)
    yield thread
    thread.stop()


def closed_channel(connection, channel, limit: float) -> tuple[float, Exception] | None:
    """Pump until the broker closes `channel`: (seconds it took, the reason)."""
    started = time.monotonic()
    reasons: list[Exception] = []
    channel._impl.add_on_close_callback(lambda _channel, reason: reasons.append(reason))
    while not reasons and time.monotonic() - started < limit:
        connection.process_data_events(time_limit=0.02)
    return (time.monotonic() - started, reasons[0]) if reasons else None


def consume_unacked(url: str, messages: int = 2, arguments=None):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True, arguments=arguments).method.queue
    for i in range(messages):
        channel.basic_publish("", queue, b"m%d" % i)
    channel.basic_consume(queue, lambda *args: None)
    return connection, channel, queue


def test_node_timeout_closes_the_channel_and_requeues(fast: BrokerThread) -> None:
    connection, channel, queue = consume_unacked(fast.url)
    closed = closed_channel(connection, channel, 5)
    assert closed is not None
    took, reason = closed
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (
        406, TEXT.format(channel=channel.channel_number, timeout=300))
    # Checked every 30 ms (a tenth), known to within one check: 300 to 360 ms.
    assert 0.29 <= took < 1.5
    other = connection.channel()
    bodies = []
    while (got := other.basic_get(queue, auto_ack=True))[0] is not None:
        bodies.append((got[2], got[0].redelivered))
    assert bodies == [(b"m0", True), (b"m1", True)]
    connection.close()


def test_x_consumer_timeout_shorter_than_the_node_s(slow: BrokerThread) -> None:
    connection, channel, _ = consume_unacked(slow.url, arguments={"x-consumer-timeout": 300})
    closed = closed_channel(connection, channel, 5)
    assert closed is not None
    took, reason = closed
    assert reason.reply_text == TEXT.format(channel=channel.channel_number, timeout=300)
    # The consume woke the checks up: not paced for the node's minute (6 s).
    assert took < 2
    connection.close()


def test_x_consumer_timeout_longer_than_the_node_s(fast: BrokerThread) -> None:
    connection, channel, _ = consume_unacked(fast.url, arguments={"x-consumer-timeout": 60_000})
    assert closed_channel(connection, channel, 1.0) is None
    connection.close()


def test_x_consumer_timeout_zero_times_out_at_the_first_check(slow: BrokerThread) -> None:
    connection, channel, _ = consume_unacked(slow.url, arguments={"x-consumer-timeout": 0})
    closed = closed_channel(connection, channel, 5)
    assert closed is not None
    assert closed[1].reply_text == TEXT.format(channel=channel.channel_number, timeout=0)
    connection.close()


@pytest.mark.parametrize(("value", "why"), [
    (-1, "{value_negative,-1}"),
    ("60000", '"expected integer, got longstr"'),
])
def test_invalid_x_consumer_timeout_is_406(fast: BrokerThread, value, why) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(fast.url))
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised:
        channel.queue_declare("ct-invalid", arguments={"x-consumer-timeout": value})
    assert raised.value.reply_code == 406
    assert raised.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue 'ct-invalid' "
        f"in vhost '/': {why}"
    )
    connection.close()


@pytest.fixture
def slow_with_api() -> Iterator[BrokerThread]:
    """A broker whose consumer_timeout is a minute, with its management API."""
    thread = start(60_000, api=True)
    yield thread
    thread.stop()


def put_policy(thread: BrokerThread, path: str, body: dict) -> tuple[int, Any]:
    """PUT /api/{path} on `thread`'s management API: (status, decoded JSON or None)."""
    assert thread.broker is not None
    request = urllib.request.Request(
        f"{thread.broker.management_url}/api/{path}", data=json.dumps(body).encode(),
        method="PUT", headers={"content-type": "application/json",
                               "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.mark.parametrize(("argument", "by_policy", "used"), [
    (None, 300, 300),
    (30_000, 300, 300),  # the lower of the two, as RabbitMQ 3.12+
    (300, 30_000, 300),
])
def test_a_consumer_timeout_policy_closes_the_channel(
    slow_with_api: BrokerThread, argument: int | None, by_policy: int, used: int
) -> None:
    """`PUT /api/policies/%2F/ct {"definition": {"consumer-timeout": N}}`: a
    consumer of a matching queue that does not ack has its channel closed
    with RabbitMQ's 406 after the lower of N and x-consumer-timeout (the
    node's minute is not what counts)."""
    thread = slow_with_api
    assert put_policy(thread, "policies/%2F/ct", {
        "pattern": "^ct-", "definition": {"consumer-timeout": by_policy},
        "apply-to": "queues"}) == (201, None)
    connection = pika.BlockingConnection(pika.URLParameters(thread.url))
    channel = connection.channel()
    arguments = {"x-consumer-timeout": argument} if argument is not None else None
    channel.queue_declare("ct-policy", arguments=arguments)
    channel.basic_publish("", "ct-policy", b"m")
    channel.basic_consume("ct-policy", lambda *args: None)
    closed = closed_channel(connection, channel, 5)
    assert closed is not None
    took, reason = closed
    assert (reason.reply_code, reason.reply_text) == (
        406, TEXT.format(channel=channel.channel_number, timeout=used))
    assert took < 2  # not paced for the node's minute
    # The message was requeued for the next consumer.
    assert connection.channel().queue_declare("ct-policy", passive=True).method.message_count == 1
    connection.close()


def test_a_consumer_timeout_policy_applies_to_existing_queues_and_goes_when_cleared(
    slow_with_api: BrokerThread,
) -> None:
    thread = slow_with_api
    connection = pika.BlockingConnection(pika.URLParameters(thread.url))
    channel = connection.channel()
    channel.queue_declare("ct-early")
    channel.queue_declare("ct-cleared")
    assert put_policy(thread, "policies/%2F/ct", {
        "pattern": "^ct-", "definition": {"consumer-timeout": 300}})[0] == 201
    channel.basic_publish("", "ct-early", b"m")
    channel.basic_consume("ct-early", lambda *args: None)
    closed = closed_channel(connection, channel, 5)
    assert closed is not None
    assert closed[1].reply_text == TEXT.format(channel=channel.channel_number, timeout=300)

    # Narrowed to ct-early only: ct-cleared is back to the node's minute.
    assert put_policy(thread, "policies/%2F/ct", {
        "pattern": "^ct-early$", "definition": {"consumer-timeout": 300}})[0] == 204
    channel = connection.channel()
    channel.basic_publish("", "ct-cleared", b"m")
    channel.basic_consume("ct-cleared", lambda *args: None)
    assert closed_channel(connection, channel, 1.0) is None
    connection.close()


@pytest.mark.parametrize(("path", "definition", "reason"), [
    ("policies", {"consumer-timeout": -1},
     "Validation failed\n\n-1 is not a valid consumer timeout\n"),
    ("policies", {"consumer-timeout": "1000"},
     "Validation failed\n\n&lt;&lt;\"1000\"&gt;&gt; is not a valid consumer timeout\n"),
    # Not an operator policy key in RabbitMQ 3.12 either.
    ("operator-policies", {"consumer-timeout": 1000},
     'Validation failed\n\n[{<<"consumer-timeout">>,1000}] are not recognised policy settings\n'),
])
def test_a_bad_consumer_timeout_policy_is_refused_as_rabbitmq_3_12_refuses_it(
    slow_with_api: BrokerThread, path: str, definition: dict, reason: str
) -> None:
    assert put_policy(slow_with_api, f"{path}/%2F/ct", {
        "pattern": ".*", "definition": definition, "apply-to": "queues"}) == (
        400, {"error": "bad_request", "reason": reason})


def test_queue_timeout_is_the_lower_of_policy_and_argument() -> None:
    queue = Queue("q", arguments={"x-consumer-timeout": 5000})
    assert queue.consumer_timeout == 5000
    queue.policy_consumer_timeout = 1000
    assert queue.consumer_timeout == 1000
    queue.policy_consumer_timeout = 9000
    assert queue.consumer_timeout == 5000
    bare = Queue("bare")
    assert bare.consumer_timeout is None
    bare.policy_consumer_timeout = 7
    assert bare.consumer_timeout == 7


def test_acks_in_time_and_no_ack_keep_the_channel(fast: BrokerThread) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(fast.url))
    channel, quiet = connection.channel(), connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    quiet_queue = quiet.queue_declare("", exclusive=True).method.queue
    quiet.basic_publish("", quiet_queue, b"x")
    quiet.basic_consume(quiet_queue, lambda *args: None, auto_ack=True)
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue, lambda ch, method, props, body: ch.basic_ack(method.delivery_tag))
    deadline = time.monotonic() + 1.0  # three timeouts of steady traffic, each acked at once
    while time.monotonic() < deadline:
        channel.basic_publish("", queue, b"m")
        connection.process_data_events(time_limit=0.05)
    assert channel.is_open and quiet.is_open
    connection.close()


def test_oldest_outstanding_is_bounded_by_the_first_check_after_it() -> None:
    acks = Acknowledgements()
    assert acks.oldest_outstanding(1.0) is None
    tag = acks.next_delivery_tag()
    acks.record(tag, Queue("q"), object(), None)  # type: ignore[arg-type]
    delivery, delivered_by = acks.oldest_outstanding(2.0)
    assert delivered_by == 2.0  # delivered between the checks at 1.0 and 2.0
    # Later deliveries do not move the oldest one's time.
    acks.record(acks.next_delivery_tag(), Queue("q"), object(), None)  # type: ignore[arg-type]
    assert acks.oldest_outstanding(3.0)[1] == 2.0
    acks.take(tag, False)
    assert acks.oldest_outstanding(4.0)[1] == 3.0  # tag 2 came between 2.0 and 3.0
    acks.take_all()
    assert acks.oldest_outstanding(5.0) is None


def test_settings_file_key_reaches_the_sessions(tmp_path) -> None:
    """`consumer_timeout` in a settings file becomes every session's timeout."""
    from broker.server import Broker
    from broker.settings import load_settings

    path = tmp_path / "rabbitmq.conf"
    path.write_text("consumer_timeout = 2000\n")
    settings = load_settings(path, environ={})
    assert settings.origins["consumer_timeout"].endswith("rabbitmq.conf:1")
    assert Broker(settings).context.limits.consumer_timeout == 2000
    assert Broker(Settings()).context.limits.consumer_timeout == 1_800_000
