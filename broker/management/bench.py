"""Benchmark: what statistics and the management API cost (prints numbers; not a test).

    .venv/bin/python -m broker.management.bench [--queues 10000] [--duration 15] [--rate 1000]

Three measurements, each against a fresh `warren serve` in its own process:

1. /api/queues with `--queues` queues: the answer's latency (median and
   worst of several calls, plain and gzipped) and size; and, in this
   process, the longest the event loop is held by one step of building that
   answer and of one statistics sampling round (what can delay a delivery).
2. S5-style delivery latency: `warren perf --rate R` (one publisher, one
   consumer, 16-byte messages, manual acks) with the same queues present,
   once alone and once while /api/queues is polled every second; the p50
   and p99 latency of both runs, side by side.
3. S1 with statistics on: `warren perf --size 16 --prefetch 100` as fast as
   possible, and the broker's CPU seconds per 100,000 messages (compare
   with the same on a tree without statistics; see CONTRIBUTING.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio

__all__ = ["main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    management: int

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.management}"


@contextmanager
def serve(interval_ms: int = 5000) -> Iterator[Server]:
    """`warren serve` in a process of its own, statistics every `interval_ms`."""
    port, management, prometheus = _free_port(), _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as directory:
        conf = os.path.join(directory, "rabbitmq.conf")
        with open(conf, "w") as f:
            f.write(f"collect_statistics_interval = {interval_ms}\n")
        process = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve", "--settings", conf, "--host", "127.0.0.1",
             "--port", str(port), "--management-port", str(management),
             "--prometheus-port", str(prometheus), "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", management), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("warren serve did not start") from None
                    time.sleep(0.05)
            yield Server(process, port, management)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def _get(url: str, gzip: bool = False) -> tuple[float, int]:
    """(seconds, bytes) of one GET with guest's credentials."""
    request = urllib.request.Request(url)
    request.add_header("authorization", "Basic " + b64encode(b"guest:guest").decode())
    if gzip:
        request.add_header("accept-encoding", "gzip")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


def declare_queues(url: str, count: int) -> None:
    """`count` queues, declared with pika over one channel."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for n in range(count):
        channel.queue_declare(f"bench-{n:05d}")
    connection.close()


def perf(url: str, *args: str, broker_pid: int | None = None) -> dict[str, Any]:
    command = [sys.executable, "-m", "broker", "perf", "--url", url, "--json", *args]
    if broker_pid is not None:
        command += ["--broker-pid", str(broker_pid)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class Poller:
    """GET /api/queues every `period` seconds in a thread; keeps the latencies."""

    def __init__(self, url: str, period: float = 1.0) -> None:
        self.url = url
        self.period = period
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            seconds, _size = _get(self.url)
            self.latencies.append(seconds)
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(130)


def loop_stalls(queues: int) -> dict[str, float]:
    """In this process: the longest single hold of the event loop (ms) while a
    sampling round and a /api/queues answer run over `queues` queues."""
    from broker.auth.access import AccessControl
    from broker.core.vhosts import VHostRegistry
    from broker.logging import configure_logging
    from broker.management.app import management_app
    from broker.management.context import ManagementContext
    from broker.management.messages import Headers, Request
    from broker.management.stats import Statistics

    configure_logging(level=logging.WARNING)  # no line per queue declared
    vhosts = VHostRegistry()
    vhost, _ = vhosts.create("/")
    for n in range(queues):
        vhost.declare_queue(None, f"bench-{n:05d}")
    statistics_ = Statistics(vhosts)
    context = ManagementContext(vhosts=vhosts, access=AccessControl.with_default_user(),
                                stats=statistics_)
    app = management_app(context)
    found = app.router.match(("api", "queues"))
    assert found is not None
    endpoint = found.route.endpoint("GET")
    assert endpoint is not None

    results: dict[str, float] = {}

    async def measure(label: str, work: Any) -> None:
        # CPU time of this thread between two turns of a ticker task: how
        # long our code held the loop (the machine's other load excluded).
        worst = 0.0
        done = trio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.thread_time()
            while not done.is_set():
                await trio.sleep(0)
                now = time.thread_time()
                worst = max(worst, now - last)
                last = now

        started = time.thread_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await work()
            results[f"{label} CPU ms"] = round((time.thread_time() - started) * 1000, 1)
            done.set()
        results[f"{label} longest loop hold, CPU ms"] = round(worst * 1000, 2)

    async def list_queues() -> None:
        from broker.management.authz import ApiUser

        request = Request("GET", "/api/queues", "/api/queues", ("api", "queues"), {}, [],
                          Headers(), user=ApiUser("guest", ("administrator",)))
        await endpoint.handler(request)  # type: ignore[misc]

    async def main() -> None:
        await measure("sampling round", statistics_.sample)
        await measure("sampling round 2", statistics_.sample)
        await measure("GET /api/queues", list_queues)
        await measure("GET /api/queues again", list_queues)

    trio.run(main)
    return results


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of each perf run")
    parser.add_argument("--rate", type=float, default=1000.0, help="S5 publish rate, msg/s")
    parser.add_argument("--calls", type=int, default=5, help="GET /api/queues calls to time")
    parser.add_argument("--rounds", type=int, default=1,
                        help="S5 runs without and with polling, alternated")
    parser.add_argument("--skip-s1", action="store_true", help="skip the S1 run")
    args = parser.parse_args(argv)

    print(f"in-process, {args.queues} queues:")
    for label, value in loop_stalls(args.queues).items():
        print(f"  {label}: {value}")

    with serve() as server:
        started = time.perf_counter()
        declare_queues(server.url, args.queues)
        print(f"declared {args.queues} queues in {time.perf_counter() - started:.1f} s")
        url = server.api + "/api/queues"
        time.sleep(6)  # a sampling round with every queue in it
        for gzip in (False, True):
            timings = [_get(url, gzip) for _ in range(args.calls)]
            seconds = [t for t, _ in timings]
            print(f"GET /api/queues{' (gzip)' if gzip else ''}: median {_ms(statistics.median(seconds))}, "
                  f"max {_ms(max(seconds))}, {timings[0][1] / 1e6:.1f} MB")
        s5 = ["--rate", str(args.rate), "--size", "16", "--prefetch", "100",
              "--duration", str(args.duration)]
        print(f"S5 (--rate {args.rate:g}, {args.queues} queues present), latency us:")
        p99: dict[str, list[float]] = {"no polling": [], "polling": []}
        polls: list[float] = []
        for _round in range(args.rounds):
            alone = perf(server.url, *s5)
            with Poller(url) as poller:
                polled = perf(server.url, *s5)
            polls += poller.latencies
            for label, result in (("no polling", alone), ("polling", polled)):
                lat = result["latency_us"]
                p99[label].append(lat["p99"])
                print(f"  {label + ':':12} p50 {lat['p50']}, p99 {lat['p99']}, "
                      f"p99.9 {lat['p99.9']}, max {lat['max']}; received {result['received']}")
        if args.rounds > 1:
            print("  median p99: " + ", ".join(
                f"{label} {statistics.median(values):.0f}" for label, values in p99.items()))
        if polls:
            print(f"  polls of /api/queues meanwhile: {len(polls)}, median "
                  f"{_ms(statistics.median(polls))}, max {_ms(max(polls))}")

    if not args.skip_s1:
        with serve() as server:
            result = perf(server.url, "--size", "16", "--prefetch", "100",
                          "--duration", str(args.duration), broker_pid=server.process.pid)
        print(f"S1 with statistics on: sent {result['sent_per_s']:.0f}/s, received "
              f"{result['received_per_s']:.0f}/s, broker CPU {result['broker_cpu_s_per_100k_msgs']} s "
              "per 100k messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
