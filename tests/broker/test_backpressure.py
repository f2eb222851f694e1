"""Bounded memory and isolation: a consumer that stops reading, or a publisher
that stops reading its own replies, costs at most OUTPUT_HIGH_WATER of buffer
in the broker, and nobody else waits for them."""

from __future__ import annotations

import threading
import time

import pytest
from broker_helpers import RawClient, connect

from broker.session.output import OUTPUT_HIGH_WATER
from broker.testing import BrokerThread
from protocol import methods as m
from protocol.frames import encode_content_frames

BODY = b"b" * 1024


def _connection_state(thread: BrokerThread, local_port: int) -> tuple[int, int]:
    """(buffered output bytes, bytes being sent) of the broker side of a client."""

    def read() -> tuple[int, int]:
        for connection in thread.broker.connections:
            if connection.info.peer_port == local_port:
                return len(connection.output._buffer), connection.output._in_flight
        raise LookupError(local_port)

    return thread.run_sync(read)


def _publish_batch(queue: str, count: int, mandatory: bool = False) -> bytes:
    frame = encode_content_frames(
        1, m.BasicPublish(exchange="", routing_key=queue, mandatory=mandatory), b"\x00\x00",
        BODY, 131072,
    )
    return frame * count


def test_a_consumer_that_stops_reading_is_bounded_and_holds_up_nobody(
    fresh_warren: BrokerThread,
) -> None:
    url = fresh_warren.url
    with RawClient(url, receive_buffer=4096) as stuck:
        stuck.open_channel(1)
        stuck.method(1, m.QueueDeclare(queue="stuck"))
        stuck.expect(m.QueueDeclareOk)
        stuck.method(1, m.BasicConsume(queue="stuck", no_ack=True))
        stuck.expect(m.BasicConsumeOk)
        # From now on `stuck` reads nothing.
        with RawClient(url) as publisher:
            publisher.open_channel(1)
            for _ in range(30):  # 30 MiB for a consumer that reads nothing
                publisher.send(_publish_batch("stuck", 1024))
            publisher.method(1, m.QueueDeclare(queue="stuck", passive=True))
            backlog = publisher.expect(m.QueueDeclareOk, timeout=20).message_count
        buffered, in_flight = _connection_state(fresh_warren, stuck.local_port)
        # The broker keeps at most the high-water mark (plus one message) for it...
        assert buffered + in_flight <= OUTPUT_HIGH_WATER + 2 * len(BODY)
        # ...and the rest waits in the queue.
        assert backlog > 30 * 1024 - (OUTPUT_HIGH_WATER // len(BODY)) - 8192

        # Another consumer, another queue, another connection: served at once.
        other = connect(url)
        try:
            channel = other.channel()
            channel.queue_declare("free", exclusive=True)
            got: list[bytes] = []
            channel.basic_consume("free", lambda ch, meth, p, body: got.append(body),
                                  auto_ack=True)
            channel.basic_publish("", "free", b"not held up")
            started = time.monotonic()
            while not got and time.monotonic() - started < 2:
                other.process_data_events(time_limit=0.01)
            assert got == [b"not held up"]
            # And a second consumer of the stuck queue gets its messages.
            channel.basic_qos(prefetch_count=10)
            second: list[bytes] = []
            channel.basic_consume("stuck", lambda ch, meth, p, body: (
                second.append(body), ch.basic_ack(meth.delivery_tag)))
            while len(second) < 50 and time.monotonic() - started < 5:
                other.process_data_events(time_limit=0.01)
            assert len(second) >= 50
        finally:
            other.close()


def test_a_publisher_that_does_not_read_its_returns_is_throttled(
    fresh_warren: BrokerThread,
) -> None:
    url = fresh_warren.url
    with RawClient(url, receive_buffer=4096) as publisher:
        publisher.open_channel(1)
        batch = _publish_batch("nowhere", 1024, mandatory=True)  # each one is returned
        sent = 0
        publisher.sock.settimeout(2)
        blocked = False
        try:
            for _ in range(40):  # 40 MiB of returns it will never read
                publisher.sock.sendall(batch)
                sent += 1
        except TimeoutError:
            blocked = True
        assert blocked, "the broker kept reading from a publisher that reads nothing"
        buffered, in_flight = _connection_state(fresh_warren, publisher.local_port)
        # One 64 KiB read of publishes makes at most ~70 KB of returns past the mark.
        assert buffered + in_flight <= OUTPUT_HIGH_WATER + 2 * 65536
        # Everyone else is unaffected.
        other = connect(url)
        try:
            other.channel().queue_declare("", exclusive=True)
        finally:
            other.close()


@pytest.mark.parametrize("clients", [20])
def test_many_connections_at_once(fresh_warren: BrokerThread, clients: int) -> None:
    url = fresh_warren.url
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            connection = connect(url)
            channel = connection.channel()
            queue = channel.queue_declare("", exclusive=True).method.queue
            channel.confirm_delivery()
            for i in range(50):
                channel.basic_publish("", queue, b"%d-%d" % (index, i))
            for i in range(50):
                assert channel.basic_get(queue, auto_ack=True)[2] == b"%d-%d" % (index, i)
            connection.close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
