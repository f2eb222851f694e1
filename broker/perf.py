"""`warren perf`: a load generator in the spirit of RabbitMQ's PerfTest.

It works against any AMQP 0-9-1 broker URL (Warren or RabbitMQ): it declares
an exchange and queues, runs publishers and consumers on `broker.client` for
``--duration`` seconds, and prints each second the messages per second sent
and received and the latency percentiles, then a summary (or one JSON object
with ``--json``).

Latency is measured from a timestamp the publisher writes in the first 8
bytes of every body (``time.monotonic_ns()``, which is system-wide on Linux,
so it also works with ``--processes``) to the moment the consumer reads it.

A Python load generator can be the bottleneck on a small machine, so it
reports its own CPU time, and ``--processes`` runs the publishers and the
consumers in two separate processes. ``--broker-pid`` reads the broker's
CPU time from /proc before and after, to give the broker's CPU per message.

    warren perf --url amqp://guest:guest@127.0.0.1:5672/ --duration 10 \\
        --size 16 --prefetch 100
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import queue as queue_module
import struct
import sys
import time
from array import array
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PerfConfig", "add_parser", "main", "priority_spread", "queue_argument", "run"]

_TIMESTAMP = struct.Struct(">q")
_STAMP_SIZE = _TIMESTAMP.size


@dataclass
class PerfConfig:
    """What one run does (the command-line options)."""

    url: str = "amqp://guest:guest@localhost:5672/"
    publishers: int = 1
    consumers: int = 1
    queues: int = 1
    exchange: str = "warren-perf"
    exchange_type: str = "direct"
    queue_prefix: str = "warren-perf"
    size: int = 16
    confirms: int = 0
    persistent: bool = False
    prefetch: int = 100
    no_ack: bool = False
    multi_ack: int = 1
    rate: float = 0.0
    duration: float = 10.0
    processes: bool = False
    broker_pid: int | None = None
    json: bool = False
    quiet: bool = False
    #: queue.declare arguments (--queue-arg), e.g. {"x-max-priority": 10}.
    queue_arguments: dict[str, Any] | None = None
    #: Message priorities, used in turn (--priority N or LOW-HIGH); None: no property.
    priorities: list[int] | None = None
    #: basic.consume x-priority per consumer, in turn (--consumer-priority).
    consumer_priorities: list[int] | None = None

    def queue_names(self) -> list[str]:
        return [f"{self.queue_prefix}-{i}" for i in range(self.queues)]


# --------------------------------------------------------------------------
# statistics


class Counters:
    """What one process's publishers and consumers did; read by the reporter."""

    def __init__(self) -> None:
        self.sent = 0
        self.confirmed = 0
        self.received = 0
        self.failed = 0
        self.latencies = array("q")  # nanoseconds, one per received message
        self._reported = 0

    def take_latencies(self) -> array:
        """The latencies recorded since the last call."""
        new = self.latencies[self._reported :]
        self._reported = len(self.latencies)
        return new


def percentile(sorted_values: Any, fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 if empty)."""
    if not len(sorted_values):
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def latency_summary(values_ns: Any) -> dict[str, float]:
    """min/p50/p99/p99.9/max in microseconds."""
    ordered = sorted(values_ns)
    return {
        "min": round(ordered[0] / 1000, 1) if ordered else 0.0,
        "p50": round(percentile(ordered, 0.50) / 1000, 1),
        "p99": round(percentile(ordered, 0.99) / 1000, 1),
        "p99.9": round(percentile(ordered, 0.999) / 1000, 1),
        "max": round(ordered[-1] / 1000, 1) if ordered else 0.0,
    }


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # After the ")" that ends the command name: state is field 3, utime 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / ticks


# --------------------------------------------------------------------------
# the workers (trio)


async def _declare_topology(cfg: PerfConfig) -> None:
    from broker.client import open_connection

    async with open_connection(cfg.url) as conn, conn.open_channel() as ch:
        await ch.exchange_declare(cfg.exchange, cfg.exchange_type, durable=cfg.persistent)
        for name in cfg.queue_names():
            await ch.queue_declare(name, durable=cfg.persistent,
                                   arguments=cfg.queue_arguments or None)
            await ch.queue_purge(name)
            await ch.queue_bind(name, cfg.exchange,
                                "" if cfg.exchange_type == "fanout" else name)


async def _delete_topology(cfg: PerfConfig) -> None:
    from broker.client import open_connection

    async with open_connection(cfg.url) as conn, conn.open_channel() as ch:
        for name in cfg.queue_names():
            await ch.queue_delete(name)
        await ch.exchange_delete(cfg.exchange)


async def _publisher(cfg: PerfConfig, index: int, counters: Counters, start: float,
                     deadline: float) -> None:
    import trio

    from broker.client import open_connection

    if cfg.exchange_type == "fanout":
        keys = itertools.cycle([""])
    else:
        names = cfg.queue_names()
        # Spread the publishers over the queues, then round-robin per message.
        keys = itertools.cycle(names[index % len(names):] + names[: index % len(names)])
    padding = b"\x00" * max(0, cfg.size - _STAMP_SIZE)
    pack = _TIMESTAMP.pack
    now_ns = time.monotonic_ns
    clock = time.monotonic
    rate = cfg.rate / cfg.publishers if cfg.rate else 0.0
    exchange = cfg.exchange
    persistent = True if cfg.persistent else None
    # Message priorities in turn, their properties encoded once each.
    properties = None
    if cfg.priorities:
        from protocol.properties import BasicProperties

        mode = 2 if cfg.persistent else None
        properties = itertools.cycle(
            [BasicProperties(priority=p, delivery_mode=mode) for p in cfg.priorities]
        )
    async with open_connection(cfg.url) as conn:
        async with conn.open_channel(confirms=cfg.confirms > 0,
                                     max_in_flight=cfg.confirms or None) as ch:
            publish = ch.publish
            await trio.sleep_until(_trio_deadline(start))
            sent = 0
            began = clock()
            while True:
                now = clock()
                if now >= deadline:
                    break
                if rate:
                    # Send what the rate allows up to now, then sleep a tick:
                    # batches keep the per-message cost low at any rate.
                    due = int(rate * (now - began)) - sent
                    if due <= 0:
                        await trio.sleep(min(0.005, deadline - now))
                        continue
                    batch = min(due, 1000)
                else:
                    batch = 200
                if properties is None:
                    for _ in range(batch):
                        await publish(exchange, next(keys), pack(now_ns()) + padding,
                                      persistent=persistent, wait=False)
                else:
                    for _ in range(batch):
                        await publish(exchange, next(keys), pack(now_ns()) + padding,
                                      properties=next(properties), wait=False)
                sent += batch
                counters.sent += batch
            if cfg.confirms:
                with trio.move_on_after(5):
                    try:
                        await ch.wait_for_confirms()
                    except Exception:
                        counters.failed += 1


async def _consumer(cfg: PerfConfig, queues: list[str], counters: Counters,
                    deadline: float, index: int = 0) -> None:
    import trio

    from broker.client import open_connection

    async def consume_one(ch: Any, queue: str) -> None:
        unpack = _TIMESTAMP.unpack_from
        now_ns = time.monotonic_ns
        record = counters.latencies.append
        multi = cfg.multi_ack
        arguments = None
        if cfg.consumer_priorities:
            priorities = cfg.consumer_priorities
            arguments = {"x-priority": priorities[index % len(priorities)]}
        async with ch.consume(queue, no_ack=cfg.no_ack, arguments=arguments) as messages:
            n = 0
            async for message in messages:
                record(now_ns() - unpack(message.body)[0])
                counters.received += 1
                if not cfg.no_ack:
                    n += 1
                    if n >= multi:
                        await message.ack(multiple=multi > 1)
                        n = 0

    async with open_connection(cfg.url) as conn, conn.open_channel() as ch:
        if cfg.prefetch and not cfg.no_ack:
            await ch.qos(prefetch_count=cfg.prefetch)
        with trio.move_on_at(_trio_deadline(deadline)):
            async with trio.open_nursery() as nursery:
                for queue in queues:
                    nursery.start_soon(consume_one, ch, queue)


def _trio_deadline(monotonic_deadline: float) -> float:
    """A time.monotonic() instant as a trio clock instant."""
    import trio

    return trio.current_time() + (monotonic_deadline - time.monotonic())


def _consumer_queues(cfg: PerfConfig) -> list[list[str]]:
    """Queue k goes to consumer k % consumers; with more consumers than
    queues, consumers share queues (each queue then has several)."""
    names = cfg.queue_names()
    if cfg.consumers >= len(names):
        return [[names[i % len(names)]] for i in range(cfg.consumers)]
    groups: list[list[str]] = [[] for _ in range(cfg.consumers)]
    for k, name in enumerate(names):
        groups[k % cfg.consumers].append(name)
    return groups


async def _run_role(cfg: PerfConfig, role: str, counters: Counters, start: float,
                    deadline: float, tick: Any) -> None:
    """Run publishers ("publish"), consumers ("consume") or both ("both") and
    call ``tick(counters)`` every second."""
    import trio

    async def ticker() -> None:
        next_tick = start + 1.0
        while next_tick <= deadline + 0.01:
            await trio.sleep_until(_trio_deadline(next_tick))
            tick(counters)
            next_tick += 1.0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        async with trio.open_nursery() as workers:
            if role in ("consume", "both"):
                for index, queues in enumerate(_consumer_queues(cfg)):
                    workers.start_soon(_consumer, cfg, queues, counters, deadline, index)
            if role in ("publish", "both"):
                for index in range(cfg.publishers):
                    workers.start_soon(_publisher, cfg, index, counters, start, deadline)
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------
# reporting


class Report:
    """Collects per-second snapshots (from one or two processes) and prints."""

    def __init__(self, cfg: PerfConfig, sources: int) -> None:
        self.cfg = cfg
        self.sources = sources
        self.seconds: dict[int, list[tuple[int, int, array]]] = {}
        self.last: dict[int, tuple[int, int]] = {}
        self.latencies = array("q")
        self.sent = 0
        self.received = 0
        self.confirmed = 0
        self.failed = 0
        self.cpu_seconds = 0.0

    def add_tick(self, source: int, second: int, sent: int, received: int,
                 latencies: array) -> None:
        last_sent, last_received = self.last.get(source, (0, 0))
        self.last[source] = (sent, received)
        self.latencies.extend(latencies)
        entry = self.seconds.setdefault(second, [])
        entry.append((sent - last_sent, received - last_received, latencies))
        if len(entry) == self.sources:
            self._print_second(second, entry)
            del self.seconds[second]

    def _print_second(self, second: int, entry: list[tuple[int, int, array]]) -> None:
        if self.cfg.json or self.cfg.quiet:
            return
        sent = sum(e[0] for e in entry)
        received = sum(e[1] for e in entry)
        lat = array("q")
        for e in entry:
            lat.extend(e[2])
        s = latency_summary(lat)
        print(f"time {second:3d}s  sent {sent:8d} msg/s  received {received:8d} msg/s  "
              f"latency p50 {s['p50']:9.1f} us  p99 {s['p99']:9.1f} us  "
              f"p99.9 {s['p99.9']:9.1f} us", flush=True)

    def add_final(self, counters: dict[str, Any]) -> None:
        self.sent += counters["sent"]
        self.received += counters["received"]
        self.confirmed += counters["confirmed"]
        self.failed += counters["failed"]
        self.cpu_seconds += counters["cpu_seconds"]
        self.latencies.extend(counters["latencies"])

    def result(self, elapsed: float, broker_cpu: float | None) -> dict[str, Any]:
        cfg = self.cfg
        messages = max(self.sent, self.received, 1)
        result: dict[str, Any] = {
            "url": _redact(cfg.url),
            "config": {k: v for k, v in asdict(cfg).items()
                       if k not in ("url", "json", "quiet")},
            "duration_s": round(elapsed, 3),
            "sent": self.sent,
            "received": self.received,
            "sent_per_s": round(self.sent / elapsed, 1),
            "received_per_s": round(self.received / elapsed, 1),
            "latency_us": latency_summary(self.latencies),
            "client_cpu_s": round(self.cpu_seconds, 3),
            "client_cpu_us_per_msg": round(self.cpu_seconds / messages * 1e6, 2),
            "client_cpu_utilisation": round(self.cpu_seconds / elapsed, 2),
        }
        if self.failed:
            result["failed_confirms"] = self.failed
        if broker_cpu is not None:
            result["broker_cpu_s"] = round(broker_cpu, 3)
            result["broker_cpu_s_per_100k_msgs"] = round(broker_cpu / messages * 100_000, 3)
        return result


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _print_summary(result: dict[str, Any]) -> None:
    lat = result["latency_us"]
    print(f"sent {result['sent']} in {result['duration_s']}s: "
          f"{result['sent_per_s']:.0f} msg/s; received {result['received']}: "
          f"{result['received_per_s']:.0f} msg/s")
    print(f"latency min {lat['min']} us, p50 {lat['p50']} us, p99 {lat['p99']} us, "
          f"p99.9 {lat['p99.9']} us, max {lat['max']} us")
    print(f"client CPU {result['client_cpu_s']} s "
          f"({result['client_cpu_us_per_msg']} us/msg, "
          f"{result['client_cpu_utilisation'] * 100:.0f}% of one core)")
    if "broker_cpu_s" in result:
        print(f"broker CPU {result['broker_cpu_s']} s "
              f"({result['broker_cpu_s_per_100k_msgs']} s per 100,000 messages)")
    if result.get("failed_confirms"):
        print(f"{result['failed_confirms']} publishers saw failed confirms")


# --------------------------------------------------------------------------
# running


def _final(counters: Counters, cpu_seconds: float) -> dict[str, Any]:
    return {"sent": counters.sent, "received": counters.received,
            "confirmed": counters.confirmed, "failed": counters.failed,
            "cpu_seconds": cpu_seconds, "latencies": counters.take_latencies()}


def _child(cfg: PerfConfig, role: str, source: int, start: float, deadline: float,
           out: Any) -> None:
    """One process of a --processes run: publishers or consumers."""
    import trio

    counters = Counters()
    second = itertools.count(1)

    def tick(c: Counters) -> None:
        out.put(("tick", source, next(second), c.sent, c.received, c.take_latencies()))

    cpu0 = time.process_time()
    try:
        trio.run(_run_role, cfg, role, counters, start, deadline, tick)
    except BaseException as exc:  # reported to the parent, which prints one line
        out.put(("error", source, _one_line(exc)))
        return
    out.put(("final", source, _final(counters, time.process_time() - cpu0)))


def run(cfg: PerfConfig) -> dict[str, Any]:
    """Run the load and return the result (the --json object)."""
    import trio

    trio.run(_declare_topology, cfg)
    broker_cpu0 = process_cpu_seconds(cfg.broker_pid) if cfg.broker_pid else None
    if cfg.processes:
        report = Report(cfg, sources=2)
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        # Leave the children time to start (spawn imports trio and the client).
        start = time.monotonic() + 2.0
        deadline = start + cfg.duration
        procs = [
            context.Process(target=_child, args=(cfg, "consume", 0, start, deadline, out)),
            context.Process(target=_child, args=(cfg, "publish", 1, start, deadline, out)),
        ]
        for proc in procs:
            proc.start()
        finals = 0
        errors: list[str] = []
        while finals + len(errors) < len(procs):
            try:
                item = out.get(timeout=cfg.duration + 30)
            except queue_module.Empty:
                errors.append("a worker process stopped answering")
                break
            if item[0] == "tick":
                report.add_tick(*item[1:])
            elif item[0] == "final":
                report.add_final(item[2])
                finals += 1
            else:
                errors.append(item[2])
        for proc in procs:
            proc.join(timeout=10)
        if errors:
            raise RuntimeError(errors[0])
        elapsed = cfg.duration
    else:
        report = Report(cfg, sources=1)
        counters = Counters()
        second = itertools.count(1)

        def tick(c: Counters) -> None:
            report.add_tick(0, next(second), c.sent, c.received, c.take_latencies())

        cpu0 = time.process_time()
        start = time.monotonic() + 0.2
        deadline = start + cfg.duration
        trio.run(_run_role, cfg, "both", counters, start, deadline, tick)
        report.add_final(_final(counters, time.process_time() - cpu0))
        elapsed = cfg.duration
    broker_cpu = None
    if cfg.broker_pid and broker_cpu0 is not None:
        broker_cpu = process_cpu_seconds(cfg.broker_pid) - broker_cpu0
    trio.run(_delete_topology, cfg)
    return report.result(elapsed, broker_cpu)


def _one_line(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------
# command line


def add_parser(subparsers: Any) -> None:
    """Register `warren perf` (see broker/cli.py)."""
    parser = subparsers.add_parser(
        "perf",
        help="load generator (like RabbitMQ's PerfTest), for any AMQP broker",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n"
            "  warren perf --url amqp://guest:guest@127.0.0.1:5672/ --duration 10 \\\n"
            "      --size 16 --prefetch 100\n"
            "  warren perf --url ... --queues 10 --exchange-type fanout --json\n"
            "  warren perf --url ... --queue-arg x-max-priority=10 --priority 0-9\n"
            "  warren perf --url ... --consumers 2 --consumer-priority 1,5\n"
        ),
    )
    parser.add_argument("--url", default="amqp://guest:guest@localhost:5672/",
                        help="broker URL (default: %(default)s)")
    parser.add_argument("--publishers", "-x", type=int, default=1, help="publisher connections")
    parser.add_argument("--consumers", "-y", type=int, default=1, help="consumer connections")
    parser.add_argument("--queues", type=int, default=1, help="queues (default 1)")
    parser.add_argument("--exchange", default="warren-perf", help="exchange name")
    parser.add_argument("--exchange-type", choices=("direct", "fanout"), default="direct",
                        help="direct: messages go round-robin to the queues; "
                             "fanout: every message to every queue")
    parser.add_argument("--queue-prefix", default="warren-perf",
                        help="queues are PREFIX-0, PREFIX-1, ...")
    parser.add_argument("--size", "-s", type=int, default=16,
                        help="body size in bytes (at least 8: the timestamp)")
    parser.add_argument("--confirms", "-c", type=int, default=0, metavar="N",
                        help="publisher confirms with at most N unconfirmed (0: no confirms)")
    parser.add_argument("--persistent", action="store_true",
                        help="persistent messages, durable exchange and queues")
    parser.add_argument("--prefetch", "-q", type=int, default=100,
                        help="consumer prefetch count (0: unlimited)")
    parser.add_argument("--no-ack", action="store_true", help="consume without acks")
    parser.add_argument("--multi-ack", type=int, default=1, metavar="N",
                        help="ack every N messages with multiple=true (default 1)")
    parser.add_argument("--rate", "-r", type=float, default=0.0,
                        help="total publish rate in msg/s (0: as fast as possible)")
    parser.add_argument("--duration", "-z", type=float, default=10.0, help="seconds")
    parser.add_argument("--processes", action="store_true",
                        help="run publishers and consumers in two separate processes")
    parser.add_argument("--broker-pid", type=int, default=None,
                        help="read this broker process's CPU time from /proc before and after")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--queue-arg", action="append", default=[], metavar="KEY=VALUE",
                        type=queue_argument,
                        help="declare the queues with this argument (repeatable); VALUE is "
                        "an integer, true/false, or else a string: x-max-priority=10")
    parser.add_argument("--priority", type=priority_spread, default=None, metavar="N|LOW-HIGH",
                        help="publish with message priority N, or LOW..HIGH in turn")
    parser.add_argument("--consumer-priority", type=int_list, default=None, metavar="P[,P...]",
                        help="consume with x-priority P (consumer k takes the k-th, in turn)")
    parser.set_defaults(func=main)


def queue_argument(text: str) -> tuple[str, Any]:
    """--queue-arg KEY=VALUE: VALUE as an int, a bool (true/false) or a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    value: Any = raw
    if raw in ("true", "false"):
        value = raw == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            pass
    return key, value


def priority_spread(text: str) -> list[int]:
    """--priority N or LOW-HIGH: the message priorities used in turn (0..255)."""
    low, sep, high = text.partition("-")
    try:
        values = list(range(int(low), int(high) + 1)) if sep else [int(low)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LOW-HIGH, got {text!r}") from None
    if not values or min(values) < 0 or max(values) > 255:
        raise argparse.ArgumentTypeError(f"priorities are 0..255 (LOW <= HIGH), got {text!r}")
    return values


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,5, got {text!r}") from None


def main(args: argparse.Namespace) -> int:
    """Run `warren perf` with parsed arguments; return the exit status."""
    if args.size < _STAMP_SIZE:
        print(f"warren perf: --size must be at least {_STAMP_SIZE} (the timestamp)",
              file=sys.stderr)
        return 2
    if min(args.publishers, args.consumers, args.queues) < 0 or args.queues < 1:
        print("warren perf: --publishers/--consumers must be >= 0, --queues >= 1",
              file=sys.stderr)
        return 2
    cfg = PerfConfig(
        url=args.url, publishers=args.publishers, consumers=args.consumers,
        queues=args.queues, exchange=args.exchange, exchange_type=args.exchange_type,
        queue_prefix=args.queue_prefix, size=args.size, confirms=args.confirms,
        persistent=args.persistent, prefetch=args.prefetch, no_ack=args.no_ack,
        multi_ack=max(1, args.multi_ack), rate=args.rate, duration=args.duration,
        processes=args.processes, broker_pid=args.broker_pid, json=args.json,
        queue_arguments=dict(args.queue_arg) or None, priorities=args.priority,
        consumer_priorities=args.consumer_priority,
    )
    try:
        result = run(cfg)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # one clear line, never a traceback; 2 as every command
        print(f"warren perf: {_one_line(exc)}", file=sys.stderr)
        return 2
    if cfg.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    return 0
