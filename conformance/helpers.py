"""Small helpers shared by the conformance tests.

Everything here drives a real client (pika's BlockingConnection) against the
broker under test; nothing imitates a broker. The helpers exist so each test can
say in a few lines what it observes: which messages arrive, in what order, with
which flags, and which reply code closes a channel or a connection.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

#: How long a test waits for something that should happen (a delivery, a return).
#: Generous, because a loaded 2-core machine can be slow; a passing test never
#: waits this long.
SETTLE_TIMEOUT = 5.0

#: How long a test waits to be reasonably sure something does NOT happen (no
#: further delivery past a prefetch limit, no copy of a message routed twice).
QUIET_PERIOD = 0.15


def unique(prefix: str) -> str:
    """A name no other test run uses, so the suite can run against a long-lived broker."""
    return f"conformance.{prefix}.{uuid.uuid4().hex[:12]}"


@dataclass
class Delivery:
    """One message as a consumer or basic.get saw it."""

    body: bytes
    routing_key: str
    exchange: str
    redelivered: bool
    delivery_tag: int
    properties: pika.BasicProperties
    consumer_tag: str | None = None

    @property
    def headers(self) -> dict:
        return self.properties.headers or {}


def get(channel: BlockingChannel, queue: str, auto_ack: bool = False) -> Delivery | None:
    """basic.get one message; None on basic.get-empty."""
    method, properties, body = channel.basic_get(queue, auto_ack=auto_ack)
    if method is None:
        return None
    return Delivery(
        body=body,
        routing_key=method.routing_key,
        exchange=method.exchange,
        redelivered=method.redelivered,
        delivery_tag=method.delivery_tag,
        properties=properties,
    )


def get_all(channel: BlockingChannel, queue: str, auto_ack: bool = True) -> list[bytes]:
    """Drain a queue with basic.get and return the bodies in the order received."""
    bodies = []
    while (delivery := get(channel, queue, auto_ack=auto_ack)) is not None:
        bodies.append(delivery.body)
    return bodies


def wait_for(
    connection: BlockingConnection,
    predicate: Callable[[], bool],
    timeout: float = SETTLE_TIMEOUT,
) -> bool:
    """Pump the connection's I/O until predicate() is true or timeout passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        connection.process_data_events(time_limit=0.01)
    return True


def pump(connection: BlockingConnection, seconds: float = QUIET_PERIOD) -> None:
    """Let the connection process I/O for a while (to observe that nothing more comes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.01)


class Consumer:
    """A basic.consume subscription that records every delivery it receives."""

    def __init__(
        self,
        channel: BlockingChannel,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict | None = None,
    ) -> None:
        self.channel = channel
        self.deliveries: list[Delivery] = []
        self.cancelled_by_broker = False
        self.consumer_tag = channel.basic_consume(
            queue,
            self._on_message,
            auto_ack=auto_ack,
            exclusive=exclusive,
            consumer_tag=consumer_tag,
            arguments=arguments,
        )

    def _on_message(self, channel, method, properties, body) -> None:
        self.deliveries.append(
            Delivery(
                body=body,
                routing_key=method.routing_key,
                exchange=method.exchange,
                redelivered=method.redelivered,
                delivery_tag=method.delivery_tag,
                properties=properties,
                consumer_tag=method.consumer_tag,
            )
        )

    @property
    def bodies(self) -> list[bytes]:
        return [d.body for d in self.deliveries]

    def wait(self, count: int, timeout: float = SETTLE_TIMEOUT) -> list[Delivery]:
        """Wait until at least `count` deliveries arrived; return them all."""
        wait_for(self.channel.connection, lambda: len(self.deliveries) >= count, timeout)
        return self.deliveries

    def cancel(self) -> None:
        self.channel.basic_cancel(self.consumer_tag)


def publish(
    channel: BlockingChannel,
    exchange: str,
    routing_key: str,
    body: bytes | str = b"",
    *,
    mandatory: bool = False,
    **properties,
) -> None:
    """basic.publish with the given content properties."""
    if isinstance(body, str):
        body = body.encode()
    channel.basic_publish(
        exchange,
        routing_key,
        body,
        properties=pika.BasicProperties(**properties) if properties else None,
        mandatory=mandatory,
    )


def sync(channel: BlockingChannel) -> None:
    """A synchronous round trip on the channel.

    Methods on one channel are handled in order (spec 4.2.3 / 2.3.6), so once a
    synchronous reply arrives every publish sent before it has been processed by
    the channel; routing to queues follows. A passive declare of the default
    exchange is the cheapest synchronous method every broker accepts.
    """
    channel.exchange_declare("amq.direct", passive=True)


@dataclass
class Cleanup:
    """Names a test created, deleted after the test over a fresh connection."""

    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def run(self, parameters: pika.URLParameters) -> None:
        """Delete everything registered; never fails the test over cleanup."""
        pending = [("queue", n) for n in self.queues] + [("exchange", n) for n in self.exchanges]
        connection = None
        try:
            for kind, name in pending:
                if connection is None or not connection.is_open:
                    connection = pika.BlockingConnection(parameters)
                    channel = connection.channel()
                try:
                    if kind == "queue":
                        channel.queue_delete(name)
                    else:
                        channel.exchange_delete(name)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = connection.channel()  # e.g. 405: another connection's
                except pika.exceptions.AMQPConnectionError:
                    connection = None  # a broker that dropped us: retry on a new one
        except pika.exceptions.AMQPError:
            pass
        finally:
            if connection is not None and connection.is_open:
                connection.close()


class Names:
    """Unique queue and exchange names for one test, registered for cleanup."""

    def __init__(self, cleanup: Cleanup, test_name: str) -> None:
        self._cleanup = cleanup
        self._prefix = test_name.removeprefix("test_")[:40]

    def queue(self, label: str = "q") -> str:
        name = unique(f"{self._prefix}.{label}")
        self._cleanup.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        name = unique(f"{self._prefix}.{label}")
        self._cleanup.exchanges.append(name)
        return name

    def track_queue(self, name: str) -> str:
        """Register a server-named queue for cleanup."""
        self._cleanup.queues.append(name)
        return name


@contextmanager
def channel_closed_with(reply_code: int, text: str | None = None) -> Iterator[None]:
    """Assert the block makes the broker close the channel with reply_code.

    With text, the reply text must also be exactly that (e.g. RabbitMQ's
    "ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused for user 'u'").
    """
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == reply_code, f"expected {reply_code}, got {exc!r}"
        if text is not None:
            assert exc.reply_text == text, f"expected reply text {text!r}, got {exc.reply_text!r}"
    else:
        raise AssertionError(f"expected the broker to close the channel with {reply_code}")


@contextmanager
def connection_closed_with(reply_code: int, text: str | None = None) -> Iterator[None]:
    """Assert the block makes the broker close the connection with reply_code (and text)."""
    try:
        yield
    except pika.exceptions.ConnectionClosedByBroker as exc:
        assert exc.reply_code == reply_code, f"expected {reply_code}, got {exc!r}"
        if text is not None:
            assert exc.reply_text == text, f"expected reply text {text!r}, got {exc.reply_text!r}"
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise AssertionError(
            f"expected connection.close {reply_code}, got channel.close {exc!r}"
        ) from exc
    else:
        raise AssertionError(f"expected the broker to close the connection with {reply_code}")
