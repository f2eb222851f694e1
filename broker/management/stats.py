"""Statistics: totals summed from the model's counters, and rates from samples.

The model counts (`broker.core.stats`, `broker.session.counters`); this
module reads. Two kinds of readers:

- the API and Prometheus want counts *now*: `Totals` sums them on demand
  (per vhost and for the broker: what closed channels and connections left
  behind plus what the open ones have counted);
- the API wants RabbitMQ's `*_details.rate` too: `Statistics.run` samples
  every counter of every object each `interval` seconds (RabbitMQ's
  `collect_statistics_interval`, 5 s) and keeps, per object, the last sample
  and the per-second rates over the interval before it (rabbit_mgmt's
  `rates_mode = basic`: the rate is the change between the last two samples
  divided by the time between them). Each round builds new tables, so an
  object that is gone is forgotten after one round: memory is bounded by
  the objects that exist.

Sampling runs on the event loop (the counters are plain attributes, read
consistently between awaits) and yields to other tasks every `chunk`
objects, so 10,000 queues cost many short steps, never one long stall; the
hot path does no work for it at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from broker.core.queue import Queue
from broker.core.stats import MESSAGE_FIELDS, BrokerCounters, MessageTotals, QueueCounters
from broker.core.vhost import VHost
from broker.core.vhosts import VHostRegistry
from broker.session.channel import Channel
from broker.session.connection import ClientConnection
from broker.session.counters import ChannelCounters

__all__ = [
    "CHANNEL_FIELDS",
    "CONNECTION_FIELDS",
    "EXCHANGE_FIELDS",
    "OVERVIEW_FIELDS",
    "QUEUE_FIELDS",
    "Statistics",
    "Totals",
    "VHOST_FIELDS",
    "queue_values",
]

#: What is sampled per kind of object (a rate is kept for each).
QUEUE_FIELDS: Final = (
    "publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "redeliver",
    "ack", "deliver_get", "messages", "messages_ready", "messages_unacknowledged",
)
EXCHANGE_FIELDS: Final = ("publish_in", "publish_out")
CHANNEL_FIELDS: Final = (*MESSAGE_FIELDS, "deliver_get")
CONNECTION_FIELDS: Final = ("recv_oct", "send_oct")
VHOST_FIELDS: Final = (
    *CHANNEL_FIELDS, "recv_oct", "send_oct", "messages", "messages_ready",
    "messages_unacknowledged",
)
CHURN_FIELDS: Final = (
    "channel_closed", "channel_created", "connection_closed", "connection_created",
    "queue_created", "queue_declared", "queue_deleted",
)
OVERVIEW_FIELDS: Final = (*VHOST_FIELDS, *CHURN_FIELDS)

#: Objects sampled between two checkpoints (each costs a few microseconds).
DEFAULT_CHUNK: Final = 50


def deliver_get(totals: Any) -> int:
    """RabbitMQ's deliver_get: deliveries and gets, with and without acks."""
    return int(totals.deliver + totals.deliver_no_ack + totals.get + totals.get_no_ack)


def queue_values(queue: Queue, counters: QueueCounters | None = None) -> tuple[int, ...]:
    """A queue's `QUEUE_FIELDS` now."""
    c = counters if counters is not None else queue.counters()
    ready = len(queue.ready)
    unacked = queue.unacked_count
    return (
        c.publish, c.deliver, c.deliver_no_ack, c.get, c.get_no_ack, c.get_empty, c.redeliver,
        c.ack, c.deliver_get, ready + unacked, ready, unacked,
    )


def _message_values(totals: MessageTotals) -> tuple[int, ...]:
    return (*(getattr(totals, name) for name in MESSAGE_FIELDS), deliver_get(totals))


@dataclass
class Totals:
    """Counts summed over the broker now: per vhost and overall (changes nothing)."""

    #: Message counts and bytes per vhost (closed channels/connections + open ones).
    vhosts: dict[VHost, MessageTotals] = field(default_factory=dict)
    #: The same for the broker (deleted vhosts included).
    broker: MessageTotals = field(default_factory=MessageTotals)
    #: Per vhost, per exchange name: [publish_in, publish_out].
    exchanges: dict[VHost, dict[str, list[int]]] = field(default_factory=dict)
    #: Each open channel's counts, as summed here.
    channels: dict[Channel, ChannelCounters] = field(default_factory=dict)

    @classmethod
    def now(
        cls, vhosts: VHostRegistry, connections: Iterable[ClientConnection]
    ) -> Totals:
        per: dict[VHost, MessageTotals] = {}
        exchanges: dict[VHost, dict[str, list[int]]] = {}
        channels: dict[Channel, ChannelCounters] = {}
        for name in vhosts:
            vhost = vhosts[name]
            per[vhost] = vhost.retired.copy()
            exchanges[vhost] = {x: list(c) for x, c in vhost.retired_exchanges.items()}
        broker = vhosts.counters.retired.copy()
        for connection in connections:
            open_vhost = connection.vhost
            if open_vhost is None or not connection.live:
                continue  # a torn-down connection's counts are the vhost's already
            totals = per.get(open_vhost)
            by_exchange = exchanges.get(open_vhost)
            live = MessageTotals()
            live.recv_oct = connection.recv_oct
            live.send_oct = connection.output.send_oct
            for channel in list(connection.channels.values()):
                if channel.closing:  # a closing channel's counts are the vhost's already
                    continue
                counted = channels[channel] = channel.counters()
                live.add(counted.totals)
                if by_exchange is not None:
                    for exchange, use in counted.by_exchange.items():
                        counts = by_exchange.setdefault(exchange, [0, 0])
                        counts[0] += use.publish
                        counts[1] += use.publish_out
            if totals is not None:
                totals.add(live)
            broker.add(live)
        return cls(per, broker, exchanges, channels)

    def exchange(self, vhost: VHost, name: str) -> tuple[int, int]:
        """(publish_in, publish_out) of an exchange."""
        counts = self.exchanges.get(vhost, {}).get(name)
        return (counts[0], counts[1]) if counts is not None else (0, 0)


_ZEROS: dict[int, tuple[float, ...]] = {}


def _zeros(count: int) -> tuple[float, ...]:
    zeros = _ZEROS.get(count)
    if zeros is None:
        zeros = _ZEROS[count] = (0.0,) * count
    return zeros


def _rates(
    old: tuple[float, tuple[int, ...]] | None, now: float, values: tuple[int, ...]
) -> tuple[float, ...]:
    if old is None:
        return _zeros(len(values))
    then, before = old
    elapsed = now - then
    if elapsed <= 0 or values == before:  # most objects, most of the time
        return _zeros(len(values))
    # One decimal, as the management API shows rates.
    return tuple(round((v - b) / elapsed, 1) + 0.0 for v, b in zip(values, before, strict=True))


#: One object's last sample: (when, the values, the rates over the interval
#: before). Plain tuples of numbers, which the garbage collector stops
#: tracking: 10,000 queues' samples cost it nothing.
_Sample = tuple[float, tuple[int, ...], tuple[float, ...]]


class _Table:
    """The last sample of each object of one kind, replaced every round."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.samples: dict[Hashable, _Sample] = {}
        self._next: dict[Hashable, _Sample] = {}

    def begin(self) -> None:
        self._next = {}

    def record(self, key: Hashable, now: float, values: tuple[int, ...]) -> None:
        old = self.samples.get(key)
        rates = _rates((old[0], old[1]) if old is not None else None, now, values)
        self._next[key] = (now, values, rates)

    def end(self) -> None:
        # Objects not seen this round are gone: forgotten with the old table.
        self.samples, self._next = self._next, {}

    def rate_values(self, key: Hashable) -> tuple[float, ...] | None:
        """The rates of `key` as a tuple in `fields` order (None: not sampled yet)."""
        sample = self.samples.get(key)
        return sample[2] if sample is not None else None

    def rates(self, key: Hashable) -> dict[str, float]:
        sample = self.samples.get(key)
        if sample is None:
            return {}
        return dict(zip(self.fields, sample[2], strict=True))


class Statistics:
    """Samples every counter every `interval` seconds; keeps the rates of the last interval."""

    def __init__(
        self,
        vhosts: VHostRegistry,
        connections: Callable[[], Iterable[ClientConnection]] = lambda: (),
        interval: float = 5.0,
        *,
        chunk: int = DEFAULT_CHUNK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vhosts = vhosts
        self.connections = connections
        self.interval = interval
        self.chunk = max(1, chunk)
        self.clock = clock
        self.queues = _Table(QUEUE_FIELDS)
        self.exchanges = _Table(EXCHANGE_FIELDS)
        self.channels = _Table(CHANNEL_FIELDS)
        self.connection_table = _Table(CONNECTION_FIELDS)
        self.vhost_table = _Table(VHOST_FIELDS)
        self.overview = _Table(OVERVIEW_FIELDS)
        #: Rounds completed, and how long the last one took (seconds of wall time).
        self.rounds = 0
        self.last_duration = 0.0

    @property
    def counters(self) -> BrokerCounters:
        return self.vhosts.counters

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample now and every `interval` seconds after, until cancelled."""
        task_status.started()
        next_at = trio.current_time()
        while True:
            await self.sample()
            next_at += self.interval
            now = trio.current_time()
            if next_at < now:  # a round took longer than the interval: skip, do not pile up
                next_at = now + self.interval * math.ceil((now - next_at) / self.interval)
            await trio.sleep_until(next_at)

    async def wait_round(self) -> None:
        """Wait until the next sampling round has completed (tests)."""
        rounds = self.rounds
        while self.rounds == rounds:
            await trio.sleep(0.01)

    async def sample(self) -> None:
        """One round: every queue, exchange, channel, connection, vhost and the overview."""
        started = time.perf_counter()
        clock = self.clock
        chunk = self.chunk
        tables = (self.queues, self.exchanges, self.channels, self.connection_table,
                  self.vhost_table, self.overview)
        for table in tables:
            table.begin()
        connections = list(self.connections())
        totals = Totals.now(self.vhosts, connections)
        vhosts = [self.vhosts[name] for name in self.vhosts]
        done = 0
        queue_sums: dict[VHost, list[int]] = {}
        for vhost in vhosts:
            sums = queue_sums[vhost] = [0, 0, 0]
            for queue in list(vhost.queues.values()):
                if queue.deleted:
                    continue
                values = queue_values(queue)
                self.queues.record(queue, clock(), values)
                sums[0] += values[-3]
                sums[1] += values[-2]
                sums[2] += values[-1]
                done += 1
                if done % chunk == 0:
                    await trio.sleep(0)
            for exchange in list(vhost.topology.exchanges.values()):
                self.exchanges.record(exchange, clock(), totals.exchange(vhost, exchange.name))
                done += 1
                if done % chunk == 0:
                    await trio.sleep(0)
        for connection in connections:
            if not connection.live:
                continue
            self.connection_table.record(
                connection, clock(), (connection.recv_oct, connection.output.send_oct)
            )
        for channel, counted in totals.channels.items():
            self.channels.record(channel, clock(), _message_values(counted.totals))
        overall = [0, 0, 0]
        for vhost in vhosts:
            if vhost.name not in self.vhosts:
                continue
            sums = queue_sums[vhost]
            vhost_totals = totals.vhosts.get(vhost, MessageTotals())
            self.vhost_table.record(
                vhost, clock(),
                (*_message_values(vhost_totals), vhost_totals.recv_oct, vhost_totals.send_oct,
                 *sums),
            )
            overall = [a + b for a, b in zip(overall, sums, strict=True)]
        churn = self.counters.churn()
        broker = totals.broker
        self.overview.record(
            "overview", clock(),
            (*_message_values(broker), broker.recv_oct, broker.send_oct, *overall,
             *(churn[name] for name in CHURN_FIELDS)),
        )
        for table in tables:
            table.end()
        self.rounds += 1
        self.last_duration = time.perf_counter() - started
