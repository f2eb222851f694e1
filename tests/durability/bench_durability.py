"""Durability benchmarks (a script that prints numbers; not collected by pytest).

Two measurements, each against any AMQP 0-9-1 broker URL so that Warren and
RabbitMQ are measured the same way in the same session:

confirms: persistent messages to a durable queue with publisher confirms,
    one publisher keeping up to --window unconfirmed, one consumer acking
    each message. Prints messages/s published and consumed, confirm latency
    percentiles (publish written to the socket -> its confirm read back),
    and fsyncs/s of the broker process when --broker-pid is given (counted
    with `perf stat -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync`,
    kernel tracepoints: no slowdown of the broker).

        python tests/durability/bench_durability.py confirms --url URL [--broker-pid PID]

recovery: start `warren serve` on a fresh data directory, fill a durable
    queue with --count persistent messages of --size bytes (confirmed),
    report the broker's RSS, SIGKILL it, start it again and report the time
    until it accepts connections, the journal.recovered log line and RSS.

        python tests/durability/bench_durability.py recovery --count 1000000

`warren perf --persistent --confirms 1000` measures throughput as well but
does not report confirm latency or fsyncs, hence this script.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pika  # noqa: E402
from test_crash import start_broker  # noqa: E402  (this directory is on sys.path)

from protocol import methods as m  # noqa: E402
from protocol.constants import PROTOCOL_HEADER  # noqa: E402
from protocol.frames import (  # noqa: E402
    FrameReader,
    MethodFrame,
    encode_content_frames,
    encode_method_frame,
)
from protocol.properties import BasicProperties  # noqa: E402

PERSISTENT = BasicProperties(delivery_mode=2).encode()


class RawPublisher:
    """Publishes over a raw socket so that the client costs almost nothing."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 5672), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader(0)
        self.sock.sendall(PROTOCOL_HEADER)
        self._expect(m.ConnectionStart)
        user = parsed.username or "guest"
        password = parsed.password or "guest"
        self._method(
            0,
            m.ConnectionStartOk(
                client_properties={},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}".encode(),
                locale="en_US",
            ),
        )
        tune = self._expect(m.ConnectionTune)
        self.frame_max = tune.frame_max or 131072
        self._method(0, m.ConnectionTuneOk(channel_max=10, frame_max=self.frame_max, heartbeat=0))
        self._method(0, m.ConnectionOpen(virtual_host="/"))
        self._expect(m.ConnectionOpenOk)
        self._method(1, m.ChannelOpen())
        self._expect(m.ChannelOpenOk)
        self._method(1, m.ConfirmSelect())
        self._expect(m.ConfirmSelectOk)

    def _method(self, channel: int, method: Any) -> None:
        self.sock.sendall(encode_method_frame(channel, method))

    def _expect(self, kind: type) -> Any:
        while True:
            for frame in self.reader.read_frames():
                if isinstance(frame, MethodFrame) and isinstance(frame.method, kind):
                    return frame.method
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.reader.feed(data)

    def publish_frames(self, queue: str, body: bytes) -> bytes:
        return encode_content_frames(
            1, m.BasicPublish(exchange="", routing_key=queue), PERSISTENT, body, self.frame_max
        )

    def read_confirms(self) -> list[tuple[int, bool, bool]]:
        """(delivery_tag, multiple, nack) of the confirms in the next read."""
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.reader.feed(data)
        out = []
        for frame in self.reader.read_frames():
            if isinstance(frame, MethodFrame):
                method = frame.method
                if isinstance(method, m.BasicAck):
                    out.append((method.delivery_tag, method.multiple, False))
                elif isinstance(method, m.BasicNack):
                    out.append((method.delivery_tag, method.multiple, True))
        return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _consume(url: str, queue: str, prefetch: int, stop: Any, consumed: Any) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    channel.basic_qos(prefetch_count=prefetch)

    def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        with consumed.get_lock():
            consumed.value += 1

    channel.basic_consume(queue, on_message)
    while not stop.is_set():
        conn.process_data_events(time_limit=0.1)
    conn.close()


def run_confirms(args: argparse.Namespace) -> dict[str, Any]:
    queue = args.queue
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    setup = connection.channel()
    setup.queue_declare(queue, durable=True)
    setup.queue_purge(queue)
    connection.close()

    # The consumer runs in its own process: sharing the GIL with the
    # publisher would make the client, not the broker, the bottleneck.
    stop = multiprocessing.Event()
    consumed = multiprocessing.Value("q", 0)
    consumer = multiprocessing.Process(
        target=_consume, args=(args.url, queue, args.prefetch, stop, consumed), daemon=True
    )
    consumer.start()
    time.sleep(1.0)

    tracer = None
    trace_file = None
    if args.broker_pid:
        trace_file = tempfile.NamedTemporaryFile(suffix=".perf", delete=False)
        tracer = subprocess.Popen(
            [
                "perf",
                "stat",
                "-x",
                ",",
                "-o",
                trace_file.name,
                "-p",
                str(args.broker_pid),
                "-e",
                "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    publisher = RawPublisher(args.url)
    body = b"x" * args.size
    frames = publisher.publish_frames(queue, body)
    sent_at: dict[int, float] = {}  # unconfirmed publishes, in seq order
    latencies: list[float] = []
    next_seq = 1
    nacks = 0
    start = time.monotonic()
    consumed_start = consumed.value
    deadline = start + args.duration
    while time.monotonic() < deadline:
        room = args.window - len(sent_at)
        if room > 0:
            count = min(room, 200)
            now = time.monotonic()
            publisher.sock.sendall(frames * count)
            for seq in range(next_seq, next_seq + count):
                sent_at[seq] = now
            next_seq += count
        for tag, multiple, nack in publisher.read_confirms():
            now = time.monotonic()
            done = [t for t in sent_at if t <= tag] if multiple else [tag]
            for t in done:
                at = sent_at.pop(t, None)
                if at is None:
                    continue
                if nack:
                    nacks += 1
                else:
                    latencies.append(now - at)
    elapsed = time.monotonic() - start
    consumed_total = consumed.value - consumed_start
    fsyncs = None
    if tracer is not None:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        fsyncs = 0
        assert trace_file is not None
        for line in Path(trace_file.name).read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2].startswith("syscalls:") and parts[0].isdigit():
                fsyncs += int(parts[0])
        os.unlink(trace_file.name)
    stop.set()
    consumer.join(timeout=10)
    publisher.sock.close()
    result = {
        "url": args.url,
        "seconds": round(elapsed, 2),
        "published_per_s": round(len(latencies) / elapsed),
        "consumed_per_s": round(consumed_total / elapsed),
        "nacks": nacks,
        "confirm_latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 2),
            "p99": round(percentile(latencies, 99) * 1000, 2),
            "max": round(max(latencies, default=float("nan")) * 1000, 2),
            "mean": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        },
    }
    if fsyncs is not None:
        # perf counts from attach to detach (0.5 s longer than the traffic).
        result["fsyncs"] = fsyncs
        result["fsyncs_per_s"] = round(fsyncs / elapsed)
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_warren(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """A broker subprocess as the crash test starts it; its URL and how long
    it took until it accepted connections (recovery included)."""
    started = time.monotonic()
    process, url = start_broker(data_dir, log)
    return process, url, time.monotonic() - started


def run_recovery(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="warren-recovery-"))
    data_dir = work / "data"
    log = work / "broker.log"
    process, url, _ = start_warren(data_dir, log)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_declare(args.queue, durable=True)
    connection.close()
    publisher = RawPublisher(url)
    frames = publisher.publish_frames(args.queue, b"x" * args.size)
    sent = confirmed = 0
    fill_start = time.monotonic()
    while confirmed < args.count:
        if sent - confirmed < args.window and sent < args.count:
            count = min(args.window - (sent - confirmed), args.count - sent, 500)
            publisher.sock.sendall(frames * count)
            sent += count
        for tag, _multiple, nack in publisher.read_confirms():
            assert not nack
            confirmed = max(confirmed, tag)
    fill_seconds = time.monotonic() - fill_start
    publisher.sock.close()
    time.sleep(1.0)
    rss_full = rss_mb(process.pid)
    journal_bytes = sum(p.stat().st_size for p in (data_dir / "journal").iterdir())
    process.send_signal(signal.SIGKILL)
    process.wait()
    process, url, start_seconds = start_warren(data_dir, log)
    rss_recovered = rss_mb(process.pid)
    recovered = None
    for line in log.read_text().splitlines():
        if '"journal.recovered"' in line:
            recovered = json.loads(line)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    count = connection.channel().queue_declare(args.queue, passive=True).method.message_count
    connection.close()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return {
        "messages": args.count,
        "size": args.size,
        "fill_seconds": round(fill_seconds, 1),
        "fill_per_s": round(args.count / fill_seconds),
        "journal_mb": round(journal_bytes / 2**20, 1),
        "rss_mb_full_queue": round(rss_full, 1),
        "restart_to_accepting_s": round(start_seconds, 2),
        "rss_mb_after_recovery": round(rss_recovered, 1),
        "messages_after_recovery": count,
        "journal.recovered": recovered,
        "work_dir": str(work),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    confirms = sub.add_parser("confirms")
    confirms.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    confirms.add_argument("--broker-pid", type=int, default=0)
    confirms.add_argument("--duration", type=float, default=15.0)
    confirms.add_argument("--size", type=int, default=1024)
    confirms.add_argument("--window", type=int, default=1000)
    confirms.add_argument("--prefetch", type=int, default=1000)
    confirms.add_argument("--queue", default="bench-durable")
    recovery = sub.add_parser("recovery")
    recovery.add_argument("--count", type=int, default=1_000_000)
    recovery.add_argument("--size", type=int, default=1024)
    recovery.add_argument("--window", type=int, default=1000)
    recovery.add_argument("--queue", default="bench-recovery")
    args = parser.parse_args()
    result = run_confirms(args) if args.mode == "confirms" else run_recovery(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
