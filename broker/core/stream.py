"""Stream queues (`x-queue-type: stream`), as RabbitMQ 3.10's streams behave over AMQP 0-9-1.

A stream is an append-only log: every message routed to it gets the next
offset (0, 1, 2...) and stays until retention removes the oldest whole
segment (`x-max-length-bytes`, `x-max-age`; segments roll at
`x-stream-max-segment-size-bytes`, 500 MB by default, and retention is
looked at when one rolls, as osiris does). Consuming removes nothing: each
consumer has its own read position, chosen by `x-stream-offset` on
basic.consume (`first`, `last`, `next`, a number, a timestamp, an interval
such as `1h`), and its own credit, the channel's prefetch; an ack only gives
the credit back. Every delivery carries the header `x-stream-offset` (long),
written into the message's properties once, when it is appended (RabbitMQ
overwrites a header of that name a publisher set, and so does Warren).

The log itself is a `StreamLog`: the storage layer's file-backed one
(broker.storage.streams: one directory of segment files per stream,
fsynced before confirms) with a data directory, else `MemoryStreamLog`
here (same offsets and retention, gone at restart). Many consumers at
different offsets read the same one copy.

Filtering is RabbitMQ 3.13's (`x-stream-filter`, `x-stream-match-unfiltered`
on basic.consume, `x-stream-filter-value` on messages: `StreamFilter`), done
exactly per message where 3.13 uses a Bloom filter per chunk.

The refusals (RabbitMQ 3.10.8's codes and texts, checked against the
reference): basic.get, queue.purge, basic.nack / basic.reject (any requeue)
and a no-ack consumer are 540 NOT_IMPLEMENTED (connection errors); a
consumer without a prefetch is 406 (`stream_refusal`, `check_consume`).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
from collections import deque
from typing import Any, ClassVar, Protocol

from broker.core import errors
from broker.core.headers import Long, raw_header_fields, with_headers
from broker.core.message import Message, QueuedMessage
from broker.core.queue import Queue, QueueConsumer, QueueOwner
from broker.core.snapshots import QueueSnapshot
from protocol.errors import AMQPError

__all__ = [
    "segments_to_drop",
    "DEFAULT_SEGMENT_SIZE",
    "MemoryStreamLog",
    "OFFSET_HEADER",
    "StreamCursor",
    "StreamLog",
    "StreamLogs",
    "StreamFilter",
    "StreamQueue",
    "check_consume",
    "filter_value",
    "stream_filter_of",
    "parse_duration",
    "stamp_offset",
    "start_offset",
    "stream_refusal",
]

#: RabbitMQ's default `x-stream-max-segment-size-bytes` (500 MB).
DEFAULT_SEGMENT_SIZE = 500_000_000
#: The header each delivery carries (and consumers' basic.consume argument).
OFFSET_HEADER = "x-stream-offset"

# RabbitMQ's duration units (rabbit_amqqueue:check_max_age, and the
# x-stream-offset interval): Y, M, D, h, m, s.
_UNITS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^([0-9]+)([YMDhms])$")


def parse_duration(value: str) -> int | None:
    """A duration such as "7D" or "1h" in seconds, None when it is not one."""
    match = _DURATION.match(value)
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


def segments_to_drop(
    segments: list[tuple[int, float | None]], max_bytes: int | None, max_age_s: int | None,
    now_ms: float,
) -> int:
    """How many of the oldest segments a stream's retention removes, for both
    logs (in memory here, on disk in broker.storage.streams). `segments` is
    (bytes, newest message's timestamp in ms or None) per segment, oldest
    first. As RabbitMQ's streams, whole segments only, never the one being
    written: the oldest goes while the log is over `max_bytes` or its newest
    message is older than `max_age_s`."""
    total = sum(size for size, _newest in segments)
    cutoff = None if max_age_s is None else now_ms - max_age_s * 1000
    drop = 0
    while len(segments) - drop > 1:
        size, newest = segments[drop]
        too_big = max_bytes is not None and total > max_bytes
        too_old = cutoff is not None and newest is not None and newest < cutoff
        if not (too_big or too_old):
            break
        total -= size
        drop += 1
    return drop

class StreamCursor(Protocol):
    """A consumer's read position in a log."""

    #: The offset `read` returns next (it moves past retention's cuts).
    offset: int

    def read(self) -> Message | None:
        """The message at `offset` (then one further), or None at the end."""
        ...


class StreamLog(Protocol):
    """The append-only log of one stream (offsets from 0, retention by segment)."""

    #: The oldest offset still kept, and the one the next append gets.
    first_offset: int
    next_offset: int
    #: Bytes of message bodies kept (statistics).
    body_bytes: int

    def append(self, message: Message, timestamp_ms: int) -> None:
        """Add `message` (its properties already carry its offset) at `next_offset`."""
        ...

    def cursor(self, offset: int) -> StreamCursor:
        """A read position at `offset` (clamped to what is kept)."""
        ...

    def offset_at(self, timestamp_ms: int) -> int:
        """The first offset appended at or after `timestamp_ms` (`next_offset` if none)."""
        ...

    def set_retention(self, max_bytes: int | None, max_age_s: int | None) -> None:
        """Retention: whole oldest segments go while over either limit (checked when one rolls)."""
        ...

    def delete(self) -> None:
        """The stream was deleted: its messages may never come back."""
        ...


class StreamLogs(Protocol):
    """Where a vhost's streams keep their logs (the storage layer's `StreamFiles`)."""

    def open_log(self, vhost: str, name: str, segment_size: int) -> StreamLog:
        """The log of stream `name` in `vhost`, recovered from disk if it exists."""
        ...


class _Segment:
    __slots__ = ("first", "messages", "stamps", "nbytes", "opened")

    def __init__(self, first: int, opened: float) -> None:
        self.first = first
        self.messages: list[Message] = []
        self.stamps: list[int] = []
        self.nbytes = 0
        self.opened = opened


class _MemoryCursor:
    __slots__ = ("log", "offset")

    def __init__(self, log: MemoryStreamLog, offset: int) -> None:
        self.log = log
        self.offset = offset

    def read(self) -> Message | None:
        log = self.log
        if self.offset < log.first_offset:
            self.offset = log.first_offset
        if self.offset >= log.next_offset:
            return None
        for segment in log.segments:  # few segments: a scan is fine
            if self.offset < segment.first + len(segment.messages):
                message = segment.messages[self.offset - segment.first]
                self.offset += 1
                return message
        return None  # pragma: no cover (offsets are contiguous)


class MemoryStreamLog:
    """A stream's log without a data directory: the same offsets, segments and
    retention as on disk, kept in memory (nothing survives a restart)."""

    def __init__(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self.segment_size = segment_size
        self.segments: deque[_Segment] = deque([_Segment(0, time.time())])
        self.first_offset = 0
        self.next_offset = 0
        self.body_bytes = 0
        self.max_bytes: int | None = None
        self.max_age_s: int | None = None

    def append(self, message: Message, timestamp_ms: int) -> None:
        size = len(message.body) + len(message.envelope.properties)
        current = self.segments[-1]
        if current.messages and current.nbytes + size > self.segment_size:
            current = _Segment(self.next_offset, time.time())
            self.segments.append(current)
            self._retain()
        current.messages.append(message)
        current.stamps.append(timestamp_ms)
        current.nbytes += size
        self.body_bytes += len(message.body)
        self.next_offset += 1

    def _retain(self) -> None:
        segments = self.segments
        drop = segments_to_drop(
            [(s.nbytes, s.stamps[-1] if s.stamps else None) for s in segments],
            self.max_bytes, self.max_age_s, time.time() * 1000,
        )
        for _ in range(drop):
            oldest = segments.popleft()
            self.body_bytes -= sum(len(m.body) for m in oldest.messages)
        if drop:
            self.first_offset = segments[0].first

    def cursor(self, offset: int) -> _MemoryCursor:
        return _MemoryCursor(self, max(offset, self.first_offset))

    def offset_at(self, timestamp_ms: int) -> int:
        for segment in self.segments:
            for index, stamp in enumerate(segment.stamps):
                if stamp >= timestamp_ms:
                    return segment.first + index
        return self.next_offset

    def set_retention(self, max_bytes: int | None, max_age_s: int | None) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s

    def delete(self) -> None:
        self.segments.clear()
        self.segments.append(_Segment(self.next_offset, time.time()))
        self.first_offset = self.next_offset
        self.body_bytes = 0


def stamp_offset(message: Message, offset: int) -> Message:
    """`message` with the header `x-stream-offset` (a long) set to `offset`
    (replacing one the publisher set, as RabbitMQ does)."""
    envelope = message.envelope
    fields = raw_header_fields(envelope.properties)
    fields[OFFSET_HEADER] = Long(offset)
    raw = with_headers(message.decoded_properties, fields)
    return Message(envelope.exchange, envelope.routing_key, raw, message.body)


#: RabbitMQ 3.13's stream filtering over AMQP 0-9-1: the message header and
#: the consumer arguments.
FILTER_VALUE_HEADER = "x-stream-filter-value"
FILTER_ARGUMENT = "x-stream-filter"
MATCH_UNFILTERED_ARGUMENT = "x-stream-match-unfiltered"
#: Messages a filtering consumer may pass over in one dispatch before the
#: rest of its scan is left to a timer (the event loop is not held for long).
MAX_SKIPPED = 5_000


class StreamFilter:
    """A consumer's `x-stream-filter` (the filter values it wants) and
    `x-stream-match-unfiltered` (also the messages without one).

    RabbitMQ 3.13 filters with a Bloom filter per chunk, so its consumers may
    get messages that do not match and must filter again themselves; Warren
    filters each message exactly (a subset of what RabbitMQ delivers)."""

    __slots__ = ("values", "match_unfiltered")

    def __init__(self, values: frozenset[str], match_unfiltered: bool) -> None:
        self.values = values
        self.match_unfiltered = match_unfiltered

    def matches(self, message: Message) -> bool:
        value = filter_value(message)
        if value is None:
            return self.match_unfiltered
        return value in self.values


def filter_value(message: Message) -> str | None:
    """A message's `x-stream-filter-value` header (a string), or None."""
    raw = raw_header_fields(message.envelope.properties).get(FILTER_VALUE_HEADER)
    if raw is None or raw[:1] not in (b"S", b"x"):
        return None
    return bytes(raw[5:]).decode("utf-8", "replace")


def stream_filter_of(queue: Queue, arguments: dict[str, Any]) -> StreamFilter | None:
    """The filter of a consumer's arguments (None without `x-stream-filter`);
    a 406 for values that are not a string or a non-empty list of strings, or
    a non-boolean `x-stream-match-unfiltered`."""
    values = arguments.get(FILTER_ARGUMENT)
    unfiltered = arguments.get(MATCH_UNFILTERED_ARGUMENT, False)
    if not isinstance(unfiltered, bool):
        raise _bad_consumer_arg(queue, MATCH_UNFILTERED_ARGUMENT, "a boolean")
    if values is None:
        return None
    if isinstance(values, str | bytes):
        values = [values]
    if not isinstance(values, list | tuple) or not values or not all(
        isinstance(value, str | bytes) for value in values
    ):
        raise _bad_consumer_arg(queue, FILTER_ARGUMENT, "a string or a list of strings")
    decoded = frozenset(
        value.decode("utf-8", "replace") if isinstance(value, bytes) else value for value in values
    )
    return StreamFilter(decoded, unfiltered)


def _bad_consumer_arg(queue: Queue, key: str, expected: str) -> AMQPError:
    return errors.precondition_failed(
        f"invalid arg '{key}' for queue '{queue.name}' in vhost '{queue.vhost_name}': "
        f'"expected {expected}"'
    )


def _queue_text(queue: Queue) -> str:
    return f"queue '{queue.name}' in vhost '{queue.vhost_name}'"


def stream_refusal(queue: Queue, operation: str) -> AMQPError:
    """RabbitMQ 3.10's 540 for an operation streams do not have:
    "basic.get", "queue.purge", "basic.nack and basic.reject", "basic.recover"."""
    return errors.not_implemented(f"{operation} not supported by stream queues {_queue_text(queue)}")


def check_consume(queue: Queue, no_ack: bool, prefetch_count: int) -> None:
    """basic.consume on a stream, RabbitMQ 3.10.8's checks in its order (after
    the consumer arguments and `x-stream-offset`): a consumer without a
    prefetch (basic.qos, per consumer; a global prefetch does not count) is
    406, then a no-ack one 540."""
    if not prefetch_count:
        raise errors.precondition_failed(
            f"consumer prefetch count is not set for '{_queue_text(queue)}'"
        )
    if no_ack:
        raise errors.not_implemented(
            f"automatic acknowledgement not supported by stream queues {_queue_text(queue)}"
        )


def start_offset(log: StreamLog, spec: Any, now: float | None = None) -> int:
    """Where a consumer with `x-stream-offset: spec` starts (RabbitMQ's forms):
    "first", "last" (the last message; "next" on an empty stream), "next"
    (the default), an offset (clamped to what is kept), a timestamp (the
    first message appended at or after it), an interval such as "1h" (that
    long ago). Anything else is a 406."""
    if spec is None or spec == "next" or spec == b"next":
        return log.next_offset
    if isinstance(spec, bytes):
        spec = spec.decode("utf-8", "replace")
    if spec == "first":
        return log.first_offset
    if spec == "last":
        return max(log.first_offset, log.next_offset - 1)
    if isinstance(spec, bool):
        raise _bad_offset(spec)
    if isinstance(spec, int):
        return min(max(spec, log.first_offset), log.next_offset)
    if isinstance(spec, datetime.datetime):
        if spec.tzinfo is None:
            spec = spec.replace(tzinfo=datetime.UTC)
        return log.offset_at(int(spec.timestamp() * 1000))
    if hasattr(spec, "seconds") and isinstance(spec.seconds, int):  # fields.Timestamp
        return log.offset_at(spec.seconds * 1000)
    if isinstance(spec, str):
        seconds = parse_duration(spec)
        if seconds is not None:
            now = time.time() if now is None else now
            return log.offset_at(int((now - seconds) * 1000))
    raise _bad_offset(spec)


def _bad_offset(spec: Any) -> AMQPError:
    # RabbitMQ 3.10.8 answers an unknown string with 541 INTERNAL_ERROR (a
    # crash); Warren says what is wrong (docs/compatibility.md).
    return errors.precondition_failed(
        f"invalid x-stream-offset {spec!r}: expected first, last, next, an offset, "
        "a timestamp or an interval such as 1h"
    )


class StreamQueue(Queue):
    """A stream: an append-only `StreamLog` and one read position per consumer.

    Routing enqueues into it through `enqueue` like any queue; `ready` stays
    empty (nothing waits to be taken: everything kept is readable).
    """

    __slots__ = ("log", "cursors", "filters", "retention_bytes", "retention_age", "_resume_at")

    pageable: ClassVar[bool] = False
    is_stream: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        vhost: QueueOwner | None = None,
        logs: StreamLogs | None = None,
    ) -> None:
        super().__init__(
            name, durable=durable, exclusive_owner=exclusive_owner,
            auto_delete=auto_delete, arguments=arguments, vhost=vhost,
        )  # fmt: skip
        args = self.arguments
        segment_size = args.get("x-stream-max-segment-size-bytes", DEFAULT_SEGMENT_SIZE)
        self.log: StreamLog = (
            logs.open_log(self.vhost_name, name, segment_size)
            if logs is not None
            else MemoryStreamLog(segment_size)
        )
        self.cursors: dict[QueueConsumer, StreamCursor] = {}
        #: The consumers with an `x-stream-filter` (3.13's filtering).
        self.filters: dict[QueueConsumer, StreamFilter] = {}
        self._resume_at: float | None = None
        self.retention_bytes: int | None = args.get("x-max-length-bytes")
        age = args.get("x-max-age")
        self.retention_age: int | None = parse_duration(age) if isinstance(age, str) else None
        self.log.set_retention(self.retention_bytes, self.retention_age)
        # The queue's own limits are retention here, not drop-head.
        self.max_length_bytes = None

    def configure(self, effective: dict[str, Any]) -> None:
        """Policies: `max-length-bytes` is retention (the lower of the
        argument and the policy, as `effective` says). `max-age` comes from
        the argument only: the policy key is refused (broker.core.policies).
        The other keys do not apply to streams (RabbitMQ ignores them too)."""
        self.effective = dict(effective)
        self.retention_bytes = effective.get("max-length-bytes")
        self.log.set_retention(self.retention_bytes, self.retention_age)

    # -- counts ------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        """Messages kept in the log (RabbitMQ counts these as ready)."""
        log = self.log
        return log.next_offset - log.first_offset

    def state_key(self) -> tuple[Any, ...]:
        return (*super().state_key(), self.log.next_offset, self.log.first_offset)

    def snapshot(self) -> QueueSnapshot:
        return dataclasses.replace(
            super().snapshot(),
            messages_ready=self.message_count,
            message_bytes_ready=self.log.body_bytes,
        )

    # -- messages in -----------------------------------------------------------

    def enqueue(self, message: Message) -> bool:
        """Append `message` at the next offset (expiration and TTLs do not
        apply to streams: RabbitMQ keeps the message too), then deliver."""
        log = self.log
        log.append(stamp_offset(message, log.next_offset), int(time.time() * 1000))
        self.arrived += 1
        if self.consumers:
            self.dispatch()
        return True

    # -- consumers ---------------------------------------------------------------

    def add_consumer(
        self,
        consumer: QueueConsumer,
        exclusive: bool,
        priority: int = 0,
        offset: Any = None,
        stream_filter: StreamFilter | None = None,
    ) -> None:
        """A consumer reading from `offset` (its `x-stream-offset`, checked by
        `start_offset` before the consumer is made), given only the messages
        `stream_filter` matches if it has one."""
        self.cursors[consumer] = self.log.cursor(start_offset(self.log, offset))
        if stream_filter is not None:
            self.filters[consumer] = stream_filter
        super().add_consumer(consumer, exclusive, priority)

    def remove_consumer(self, consumer: QueueConsumer) -> None:
        self.cursors.pop(consumer, None)
        self.filters.pop(consumer, None)
        super().remove_consumer(consumer)

    def dispatch(self) -> None:
        """Each consumer reads on from its own position while it has credit
        (a filtering consumer passes over the messages its filter does not
        match, at most `MAX_SKIPPED` per dispatch: a timer goes on)."""
        end = self.log.next_offset
        cursors = self.cursors
        filters = self.filters
        for consumer in list(self.consumers):
            cursor = cursors.get(consumer)
            if cursor is None or cursor.offset >= end:
                continue
            stream_filter = filters.get(consumer) if filters else None
            skipped = 0
            while consumer.has_credit():
                offset = cursor.offset
                message = cursor.read()
                if message is None:
                    break
                if cursor.offset != offset + 1:
                    offset = cursor.offset - 1  # retention moved it on
                if stream_filter is not None and not stream_filter.matches(message):
                    skipped += 1
                    if skipped >= MAX_SKIPPED:
                        self._resume_soon()
                        break
                    continue
                self.unacked_count += 1
                consumer.deliver(self, QueuedMessage(offset, message))
                consumer.delivered += 1

    def _resume_soon(self) -> None:
        """Go on with a long filtered scan from the timer task, not now."""
        timers = self.vhost.timers if self.vhost is not None else None
        if timers is None or self._resume_at is not None:
            return
        self._resume_at = now = time.monotonic()
        timers.call_at(now, self._resume)

    def _resume(self, now: float) -> None:
        self._resume_at = None
        if not self.deleted and self.consumers:
            self.dispatch()

    def _deliver_ready(self, now: float | None = None, consumers: Any = None) -> None:
        self.dispatch()

    # -- settling: an ack, or a channel closing, only gives credit back ----------

    def ack(self, entry: QueuedMessage) -> None:
        self.unacked_count -= 1

    def requeue(self, entries: list[QueuedMessage]) -> None:
        """A channel closed (or recovered) with deliveries out: nothing goes
        back, the consumers' credit does (the session counts it)."""
        self.unacked_count -= len(entries)
        if self.consumers:
            self.dispatch()

    def reject(self, entries: list[QueuedMessage]) -> None:
        self.unacked_count -= len(entries)

    def get(self) -> QueuedMessage | None:
        raise stream_refusal(self, "basic.get")

    def purge(self) -> int:
        """Only when the stream is deleted (queue.purge is refused): how many it held."""
        return self.message_count

    def drop_log(self) -> None:
        """The stream was deleted: its log goes with it."""
        self.log.delete()

    def expire(self, now: float | None = None) -> None:
        return  # nothing in a stream expires
