"""Crash tests: SIGKILL a broker subprocess mid-traffic, restart it, check the journal.

Each round starts `python -m broker serve --data-dir D` (the `warren serve`
command), runs two publishers (confirmed persistent publishes, pipelined in
windows of up to 50) and one pika consumer (manual acks) against one durable
queue, and SIGKILLs the broker at a seeded random moment. After the restart
the queue is read (without consuming) and checked:

- every message whose confirm reached its publisher is there, unless the
  consumer acknowledged it (or was sending the ack when the broker died);
- per publisher, messages are in publish order;
- no message is there twice, and every body is intact (nothing torn or mixed);
- an acknowledged message may come back only if its ack had not reached the
  disk, and then with redelivered set; once a restart showed it gone, it
  never comes back.

`WARREN_CRASH_ROUNDS` sets the number of rounds (default 4, ~15 s);
`WARREN_CRASH_SEED` the seed. A soak: `WARREN_CRASH_ROUNDS=200 pytest tests/durability/test_crash.py`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pika
import pika.exceptions
from durability_helpers import PERSISTENT, Publisher

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("WARREN_CRASH_ROUNDS", "4"))
SEED = int(os.environ.get("WARREN_CRASH_SEED", "20261123"))
QUEUE = "crash"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker",
                "serve",
                "--port",
                str(port),
                "--management-port",
                "0",
                "--data-dir",
                str(data_dir),
                "--log-format",
                "json",
                # Other brokers on this machine may hold 15672 and 15692.
                "--management-port",
                "0",
                "--prometheus-port",
                "0",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"broker exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.02)  # fine enough for bench_durability's start-up time
    process.kill()
    raise RuntimeError("broker did not start")


def body_for(publisher: int, n: int) -> bytes:
    head = b"%d:%d:" % (publisher, n)
    filler = (b"%08x" % zlib.crc32(head)) * (1 + n % 40)
    return head + filler


def parse(body: bytes) -> tuple[int, int]:
    publisher, n, filler = body.split(b":", 2)
    key = (int(publisher), int(n))
    assert body == body_for(*key), f"corrupt body {body[:60]!r}"
    return key


class Traffic:
    """Two publishers and a consumer until the broker dies."""

    def __init__(self, url: str, rng: random.Random, next_n: dict[int, int]) -> None:
        self.url = url
        self.rng = random.Random(rng.random())
        self.next_n = next_n
        self.confirmed: set[tuple[int, int]] = set()
        self.acked: set[tuple[int, int]] = set()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._publish, args=(p, random.Random(self.rng.random())))
            for p in (0, 1)
        ] + [threading.Thread(target=self._consume)]

    def start(self) -> None:
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=20)
            assert not thread.is_alive(), "traffic thread stuck after the kill"

    def _publish(self, publisher: int, rng: random.Random) -> None:
        try:
            client = Publisher(self.url)
        except (OSError, EOFError):
            return
        sent: list[int] = []  # n of each publish seq (seq = index + 1)
        try:
            while True:
                window = rng.randint(1, 50)
                ns = list(range(self.next_n[publisher], self.next_n[publisher] + window))
                self.next_n[publisher] += window
                sent.extend(ns)
                seq = client.publish_many(QUEUE, [body_for(publisher, n) for n in ns], PERSISTENT)
                client.wait_confirms(seq)
                with self.lock:
                    self.confirmed.update((publisher, n) for n in ns)
        except (OSError, EOFError, TimeoutError):
            # Confirms that arrived before the kill count too.
            with self.lock:
                self.confirmed.update((publisher, n) for n in sent[: client.acked])
        finally:
            client.close()

    def _consume(self) -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.url))
            channel = connection.channel()
            channel.basic_qos(prefetch_count=20)
            for method, _props, body in channel.consume(QUEUE, inactivity_timeout=0.05):
                if method is None:
                    continue
                key = parse(body)
                # Recorded *before* the ack is sent: when the kill lands in
                # basic_ack, pika may have written the ack (the broker
                # journals it, the message is gone after the restart) and
                # still raise. Recorded after, such a message looked
                # "confirmed and lost" (seen about once in 300 rounds).
                with self.lock:
                    self.acked.add(key)
                channel.basic_ack(method.delivery_tag)
        except (pika.exceptions.AMQPError, OSError, AssertionError):
            return


def read_queue(url: str) -> list[tuple[tuple[int, int], bool]]:
    """Every message in the queue (key, redelivered), without consuming it."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    out = []
    while True:
        method, _props, body = channel.basic_get(QUEUE, auto_ack=False)
        if method is None:
            break
        out.append((parse(body), method.redelivered))
    connection.close()  # unacked: requeued
    return out


def check(
    found: list[tuple[tuple[int, int], bool]],
    confirmed: set[tuple[int, int]],
    acked: set[tuple[int, int]],
    gone: set[tuple[int, int]],
) -> None:
    keys = [key for key, _ in found]
    assert len(keys) == len(set(keys)), "a message came back twice"
    present = set(keys)
    missing = confirmed - present - acked
    assert not missing, f"confirmed messages lost: {sorted(missing)[:10]} ({len(missing)})"
    for publisher in (0, 1):
        ns = [n for p, n in keys if p == publisher]
        assert ns == sorted(ns), f"publisher {publisher} out of order"
    for key, redelivered in found:
        if key in acked:
            assert redelivered, f"acked {key} came back without redelivered"
        assert key not in gone, f"{key} came back after a restart showed it acknowledged"


def test_sigkill_never_loses_a_confirmed_message(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    log = tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    read_queue(url)  # declares the durable queue
    next_n = {0: 0, 1: 0}
    confirmed: set[tuple[int, int]] = set()
    acked: set[tuple[int, int]] = set()
    gone: set[tuple[int, int]] = set()
    total_confirmed = 0
    try:
        for _round in range(ROUNDS):
            traffic = Traffic(url, rng, next_n)
            traffic.start()
            time.sleep(rng.uniform(0.3, 1.5))
            process.send_signal(signal.SIGKILL)
            process.wait()
            traffic.join()
            confirmed |= traffic.confirmed
            acked |= traffic.acked
            total_confirmed += len(traffic.confirmed)
            process, url = start_broker(data_dir, log)
            found = read_queue(url)
            check(found, confirmed, acked, gone)
            gone |= acked - {key for key, _ in found}
        assert total_confirmed > 100 * ROUNDS, "too little traffic to prove anything"
        assert gone, "the consumer never got an ack journalled"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    text = log.read_text()
    assert "journal.recovered" in text
    assert "Traceback" not in text, text[-3000:]
