"""Stream queues (`x-queue-type: stream`) over real sockets with pika: the
declare rules, consumer offsets, the `x-stream-offset` header, credit, the
refusals with RabbitMQ 3.10.8's codes, retention by whole segments; on the
session broker (a data directory: the file-backed log) and on a broker
without one (the in-memory log). Restart and SIGKILL: tests/durability/test_stream_restart.py.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from broker.testing import BrokerThread

STREAM = {"x-queue-type": "stream"}


def _connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A broker without a data directory: streams keep their logs in memory."""
    thread = BrokerThread(host="127.0.0.1", port=0, data_dir=None)
    thread.start()
    try:
        yield thread.url
    finally:
        thread.stop()


def _declare(url: str, name: str, **arguments: Any) -> None:
    with _connect(url) as connection:
        connection.channel().queue_declare(name, durable=True, arguments={**STREAM, **arguments})


def _publish(url: str, name: str, bodies: list[bytes], headers: dict[str, Any] | None = None) -> None:
    with _connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                "", name, body, pika.BasicProperties(delivery_mode=2, headers=headers)
            )


def _read(
    url: str, name: str, count: int, offset: Any = None, prefetch: int = 100, wait: float = 3.0
) -> list[tuple[bytes, int]]:
    """(body, x-stream-offset) of up to `count` deliveries, acking each."""
    with _connect(url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        got: list[tuple[bytes, int]] = []

        def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
            got.append((body, props.headers["x-stream-offset"]))
            ch.basic_ack(method.delivery_tag)

        arguments = {} if offset is None else {"x-stream-offset": offset}
        channel.basic_consume(name, on_message, arguments=arguments)
        deadline = time.monotonic() + wait
        while len(got) < count and time.monotonic() < deadline:
            connection.process_data_events(0.05)
        return got


def _refused(url: str, action: Any) -> tuple[int, str]:
    connection = _connect(url)
    try:
        channel = connection.channel()
        action(connection, channel)
        connection.process_data_events(0.5)
        channel.basic_qos(prefetch_count=1)  # a round trip: the refusal has come by now
    except (ChannelClosedByBroker, ConnectionClosedByBroker) as closed:
        return closed.reply_code, closed.reply_text
    finally:
        if connection.is_open:
            connection.close()
    raise AssertionError("not refused")


# -- declare ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "word"),
    [({"durable": False}, "non-durable"), ({"durable": True, "exclusive": True}, "exclusive-owner"),
     ({"durable": True, "auto_delete": True}, "auto-delete")],
)  # fmt: skip
def test_a_stream_is_durable_not_exclusive_not_auto_delete(warren_url, unique, options, word):
    name = unique("s")
    code, text = _refused(
        warren_url, lambda c, ch: ch.queue_declare(name, arguments=STREAM, **options)
    )
    assert (code, text) == (
        406, f"PRECONDITION_FAILED - invalid property '{word}' for queue '{name}' in vhost '/'"
    )


@pytest.mark.parametrize(
    "arguments",
    [{"x-max-length-bytes": 1000}, {"x-max-age": "7D"}, {"x-max-age": "1h"},
     {"x-stream-max-segment-size-bytes": 1000}, {"x-initial-cluster-size": 1},
     {"x-queue-leader-locator": "balanced"}],
)  # fmt: skip
def test_the_stream_arguments_are_taken(warren_url, unique, arguments):
    _declare(warren_url, unique("s"), **arguments)


@pytest.mark.parametrize(
    "key, value",
    [("x-max-length", 10), ("x-message-ttl", 10), ("x-dead-letter-exchange", "x"),
     ("x-expires", 1000), ("x-max-priority", 5), ("x-single-active-consumer", True),
     ("x-overflow", "drop-head"), ("x-delivery-limit", 1), ("x-queue-mode", "lazy")],
)  # fmt: skip
def test_classic_and_quorum_arguments_are_refused(warren_url, unique, key, value):
    name = unique("s")
    code, text = _refused(
        warren_url,
        lambda c, ch: ch.queue_declare(name, durable=True, arguments={**STREAM, key: value}),
    )
    assert code == 406
    assert text == (
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{name}' in vhost '/' "
        "of queue type rabbit_stream_queue"
    )


def test_bad_max_age_is_a_406(warren_url, unique):
    name = unique("s")
    code, text = _refused(
        warren_url,
        lambda c, ch: ch.queue_declare(name, durable=True, arguments={**STREAM, "x-max-age": 5}),
    )
    assert code == 406 and text.endswith("{unacceptable_type,signedint}")
    code, text = _refused(
        warren_url,
        lambda c, ch: ch.queue_declare(name, durable=True, arguments={**STREAM, "x-max-age": "1w"}),
    )
    assert code == 406 and "invalid max age '1w'" in text


def test_declare_ok_counts_the_log(warren_url, unique):
    name = unique("s")
    _declare(warren_url, name)
    _publish(warren_url, name, [b"a", b"b", b"c"])
    with _connect(warren_url) as connection:
        ok = connection.channel().queue_declare(name, passive=True)
    assert ok.method.message_count == 3


# -- offsets and the x-stream-offset header --------------------------------------


@pytest.fixture
def ten(warren_url: str, unique: Any) -> str:
    name = unique("s")
    _declare(warren_url, name)
    _publish(warren_url, name, [b"m%d" % i for i in range(10)])
    return name


def test_first_reads_everything_with_offsets(warren_url, ten):
    assert _read(warren_url, ten, 10, "first") == [(b"m%d" % i, i) for i in range(10)]


def test_consuming_removes_nothing(warren_url, ten):
    assert len(_read(warren_url, ten, 10, "first")) == 10
    assert len(_read(warren_url, ten, 10, "first")) == 10
    with _connect(warren_url) as connection:
        assert connection.channel().queue_declare(ten, passive=True).method.message_count == 10


def test_last_next_and_numbers(warren_url, ten):
    assert _read(warren_url, ten, 10, "last", wait=1) == [(b"m9", 9)]
    assert _read(warren_url, ten, 10, "next", wait=0.5) == []
    assert _read(warren_url, ten, 10, None, wait=0.5) == []  # next is the default
    assert _read(warren_url, ten, 10, 7, wait=1) == [(b"m7", 7), (b"m8", 8), (b"m9", 9)]
    assert [o for _, o in _read(warren_url, ten, 10, -1)] == list(range(10))  # clamped to first
    assert _read(warren_url, ten, 10, 100, wait=0.5) == []


def test_next_gets_what_is_published_after(warren_url, ten):
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=10)
        got: list[tuple[bytes, int]] = []
        channel.basic_consume(
            ten, lambda ch, m, p, b: got.append((b, p.headers["x-stream-offset"])),
            arguments={"x-stream-offset": "next"},
        )  # fmt: skip
        connection.process_data_events(0.3)
        _publish(warren_url, ten, [b"new"])
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            connection.process_data_events(0.05)
    assert got == [(b"new", 10)]


def test_timestamp_and_interval_offsets(warren_url, unique):
    name = unique("s")
    _declare(warren_url, name)
    _publish(warren_url, name, [b"old"])
    time.sleep(3.1)
    since = datetime.datetime.fromtimestamp(int(time.time()), tz=datetime.UTC)
    _publish(warren_url, name, [b"new1", b"new2"])
    assert [b for b, _ in _read(warren_url, name, 3, "2s", wait=1)] == [b"new1", b"new2"]
    assert [b for b, _ in _read(warren_url, name, 3, since, wait=1)] == [b"new1", b"new2"]
    assert [b for b, _ in _read(warren_url, name, 3, "1h", wait=1)] == [b"old", b"new1", b"new2"]
    future = datetime.datetime.fromtimestamp(int(time.time()) + 100, tz=datetime.UTC)
    assert _read(warren_url, name, 3, future, wait=0.5) == []


def test_a_publisher_s_x_stream_offset_header_is_replaced(warren_url, unique):
    name = unique("s")
    _declare(warren_url, name)
    _publish(warren_url, name, [b"a"], headers={"x-stream-offset": 999, "keep": "me"})
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        got: list[Any] = []
        channel.basic_consume(name, lambda ch, m, p, b: got.append(p.headers),
                              arguments={"x-stream-offset": "first"})  # fmt: skip
        while not got:
            connection.process_data_events(0.05)
    assert got == [{"x-stream-offset": 0, "keep": b"me"}] or got == [
        {"x-stream-offset": 0, "keep": "me"}
    ]


def test_a_bad_offset_is_a_406(warren_url, ten):
    def consume(c: Any, ch: Any) -> None:
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(ten, lambda *a: None, arguments={"x-stream-offset": "banana"})

    code, text = _refused(warren_url, consume)
    assert code == 406 and "invalid x-stream-offset 'banana'" in text


# -- credit -----------------------------------------------------------------------


def test_the_prefetch_is_the_credit_and_an_ack_gives_it_back(warren_url, ten):
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=3)
        got: list[Any] = []
        channel.basic_consume(ten, lambda ch, m, p, b: got.append((m.delivery_tag, b, m.redelivered)),
                              arguments={"x-stream-offset": "first"})  # fmt: skip
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            connection.process_data_events(0.05)
        assert [b for _, b, _ in got] == [b"m0", b"m1", b"m2"]
        channel.basic_ack(got[-1][0], multiple=True)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            connection.process_data_events(0.05)
        assert [b for _, b, _ in got] == [b"m%d" % i for i in range(6)]
        assert not any(redelivered for _, _, redelivered in got)


def test_two_consumers_read_at_their_own_offsets(warren_url, ten):
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=100)
        a: list[int] = []
        b: list[int] = []
        channel.basic_consume(ten, lambda ch, m, p, body: a.append(p.headers["x-stream-offset"]),
                              arguments={"x-stream-offset": "first"})  # fmt: skip
        channel.basic_consume(ten, lambda ch, m, p, body: b.append(p.headers["x-stream-offset"]),
                              arguments={"x-stream-offset": 6})  # fmt: skip
        deadline = time.monotonic() + 3
        while (len(a) < 10 or len(b) < 4) and time.monotonic() < deadline:
            connection.process_data_events(0.05)
    assert a == list(range(10))
    assert b == [6, 7, 8, 9]


def test_a_closed_channel_s_deliveries_are_not_redelivered_elsewhere(warren_url, ten):
    # Nothing is requeued: the next consumer starts where its offset says.
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=5)
        channel.basic_consume(ten, lambda *a: None, arguments={"x-stream-offset": "first"})
        connection.process_data_events(0.5)
    assert [o for _, o in _read(warren_url, ten, 10, 8, wait=1)] == [8, 9]


# -- refusals ---------------------------------------------------------------------


def _consume_then(ten: str, then: Any) -> Any:
    def action(connection: Any, channel: Any) -> None:
        channel.basic_qos(prefetch_count=2)
        got: list[int] = []
        channel.basic_consume(ten, lambda ch, m, p, b: got.append(m.delivery_tag),
                              arguments={"x-stream-offset": "first"})  # fmt: skip
        while len(got) < 2:
            connection.process_data_events(0.05)
        then(channel, got[0])

    return action


@pytest.mark.parametrize(
    "then",
    [lambda ch, tag: ch.basic_nack(tag, requeue=True), lambda ch, tag: ch.basic_nack(tag, requeue=False),
     lambda ch, tag: ch.basic_reject(tag, requeue=True), lambda ch, tag: ch.basic_reject(tag, requeue=False)],
)  # fmt: skip
def test_nack_and_reject_are_540(warren_url, ten, then):
    assert _refused(warren_url, _consume_then(ten, then)) == (
        540, f"NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues "
        f"queue '{ten}' in vhost '/'",
    )  # fmt: skip


def test_recover_with_stream_deliveries_is_refused(warren_url, ten):
    code, _text = _refused(warren_url, _consume_then(ten, lambda ch, tag: ch.basic_recover(True)))
    assert code == 540


@pytest.mark.parametrize("no_ack", [False, True])
def test_basic_get_is_540(warren_url, ten, no_ack):
    assert _refused(warren_url, lambda c, ch: ch.basic_get(ten, auto_ack=no_ack)) == (
        540, f"NOT_IMPLEMENTED - basic.get not supported by stream queues queue '{ten}' in vhost '/'"
    )  # fmt: skip


def test_purge_is_540(warren_url, ten):
    assert _refused(warren_url, lambda c, ch: ch.queue_purge(ten)) == (
        540, f"NOT_IMPLEMENTED - queue.purge not supported by stream queues queue '{ten}' in vhost '/'"
    )  # fmt: skip


def test_no_ack_consumer_is_540(warren_url, ten):
    def consume(c: Any, ch: Any) -> None:
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(ten, lambda *a: None, auto_ack=True)

    assert _refused(warren_url, consume) == (
        540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues "
        f"queue '{ten}' in vhost '/'",
    )  # fmt: skip


@pytest.mark.parametrize("qos", [None, 0, "global"])
def test_a_consumer_needs_a_prefetch(warren_url, ten, qos):
    def consume(c: Any, ch: Any) -> None:
        if qos == "global":
            ch.basic_qos(prefetch_count=5, global_qos=True)
        elif qos is not None:
            ch.basic_qos(prefetch_count=qos)
        ch.basic_consume(ten, lambda *a: None)

    assert _refused(warren_url, consume) == (
        406, f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{ten}' in vhost '/''"
    )  # fmt: skip


@pytest.fixture
def regions(warren_url: str, unique: Any) -> str:
    """A stream of messages with filter values eu, us, none, eu, us, none..."""
    name = unique("s")
    _declare(warren_url, name)
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for i in range(12):
            region = ("eu", "us", None)[i % 3]
            headers = {"x-stream-filter-value": region} if region else None
            channel.basic_publish("", name, b"%d" % i, pika.BasicProperties(headers=headers))
    return name


def _filtered(url: str, name: str, arguments: dict[str, Any], wait: float = 1.0) -> list[int]:
    with _connect(url) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2)  # credit is not spent on filtered-out messages
        got: list[int] = []

        def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
            got.append(props.headers["x-stream-offset"])
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(name, on_message, arguments={"x-stream-offset": "first", **arguments})
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            connection.process_data_events(0.05)
        return got


def test_stream_filter_delivers_the_matching_values_only(warren_url, regions):
    assert _filtered(warren_url, regions, {"x-stream-filter": "eu"}) == [0, 3, 6, 9]
    assert _filtered(warren_url, regions, {"x-stream-filter": ["eu", "us"]}) == [0, 1, 3, 4, 6, 7, 9, 10]
    assert _filtered(warren_url, regions, {"x-stream-filter": "eu", "x-stream-match-unfiltered": True}) == [
        0, 2, 3, 5, 6, 8, 9, 11]  # fmt: skip
    assert _filtered(warren_url, regions, {"x-stream-filter": "asia"}, wait=0.5) == []
    assert len(_filtered(warren_url, regions, {})) == 12  # no filter: everything


def test_a_long_filtered_scan_goes_on_from_the_timer(warren_url, regions, monkeypatch):
    from broker.core import stream

    monkeypatch.setattr(stream, "MAX_SKIPPED", 2)  # the session broker runs in this process
    assert _filtered(warren_url, regions, {"x-stream-filter": "us"}) == [1, 4, 7, 10]


@pytest.mark.parametrize(
    ("arguments", "key"),
    [({"x-stream-filter": 5}, "x-stream-filter"), ({"x-stream-filter": []}, "x-stream-filter"),
     ({"x-stream-filter": "a", "x-stream-match-unfiltered": "yes"}, "x-stream-match-unfiltered")],
)  # fmt: skip
def test_bad_filter_arguments_are_406(warren_url, regions, arguments, key):
    def consume(c: Any, ch: Any) -> None:
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(regions, lambda *a: None, arguments=arguments)

    code, text = _refused(warren_url, consume)
    assert code == 406 and f"invalid arg '{key}' for queue '{regions}'" in text


def test_expiration_is_accepted_and_the_message_kept(warren_url, unique):
    name = unique("s")
    _declare(warren_url, name)
    with _connect(warren_url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", name, b"x", pika.BasicProperties(expiration="1"))
    time.sleep(0.1)
    assert _read(warren_url, name, 1, "first") == [(b"x", 0)]


def test_x_stream_offset_on_a_classic_queue_is_still_refused(warren_url, unique):
    name = unique("q")

    def consume(c: Any, ch: Any) -> None:
        ch.queue_declare(name, auto_delete=True)
        ch.basic_consume(name, lambda *a: None, arguments={"x-stream-offset": "first"})

    code, text = _refused(warren_url, consume)
    assert code == 406 and text.endswith("of queue type rabbit_classic_queue")


# -- retention: whole segments --------------------------------------------------------


@pytest.mark.parametrize("where", ["disk", "memory"])
def test_retention_by_bytes_drops_whole_oldest_segments(warren_url, memory_url, unique, where):
    url = warren_url if where == "disk" else memory_url
    name = unique("s")
    # ~1 KiB records, segments of ~10 of them, keep ~30 KiB: whole segments go.
    _declare(url, name, **{"x-max-length-bytes": 30_000, "x-stream-max-segment-size-bytes": 10_000})
    _publish(url, name, [b"%04d" % i + b"x" * 996 for i in range(100)])
    offsets = [o for _, o in _read(url, name, 100, "first", wait=1.5)]
    assert offsets, "retention must keep the newest segments"
    assert offsets[-1] == 99 and offsets == list(range(offsets[0], 100))
    assert 0 < offsets[0] <= 80
    assert offsets[0] % 9 == 0 or offsets[0] % 10 == 0  # a segment boundary
    with _connect(url) as connection:
        count = connection.channel().queue_declare(name, passive=True).method.message_count
    assert count == len(offsets)


@pytest.mark.parametrize("where", ["disk", "memory"])
def test_retention_by_age_drops_old_segments_when_one_rolls(warren_url, memory_url, unique, where):
    url = warren_url if where == "disk" else memory_url
    name = unique("s")
    _declare(url, name, **{"x-max-age": "1s", "x-stream-max-segment-size-bytes": 5_000})
    _publish(url, name, [b"old" + b"x" * 1000 for _ in range(10)])
    time.sleep(1.5)
    _publish(url, name, [b"new" + b"x" * 1000 for _ in range(10)])
    got = _read(url, name, 20, "first", wait=1.5)
    # ~4 records a segment: the segments wholly older than 1 s went; the one
    # that holds the last old messages and the first new ones stays whole.
    old = [offset for body, offset in got if body.startswith(b"old")]
    assert got[0][1] > 0 and len(old) < 4
    assert [offset for _, offset in got] == list(range(got[0][1], 20))


def test_deduplication_is_refused_on_a_stream(warren_url, unique):
    name = unique("s")
    code, text = _refused(
        warren_url,
        lambda c, ch: ch.queue_declare(
            name, durable=True, arguments={**STREAM, "x-message-deduplication": True}
        ),
    )
    assert code == 406 and "x-message-deduplication is not supported on streams" in text
