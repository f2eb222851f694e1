"""Stream benchmark: the append rate, then the replay rate of many consumers from `first`.

    python -m broker.bench_streams --url amqp://guest:guest@127.0.0.1:5672/ \\
        --messages 1000000 --size 1024 --consumers 10

Against any broker with streams over AMQP 0-9-1 (Warren, RabbitMQ 3.9+), so
the two can be run side by side on the same machine:

1. declares a fresh stream (`x-queue-type: stream`);
2. append: one publisher, persistent messages of `--size` bytes, publisher
   confirms with `--window` in flight; the rate is messages confirmed per
   second (each confirm means fsynced, on both brokers);
3. replay: `--consumers` consumers, each in a process of its own (the
   client is Python: one process would measure the client), each reading
   the whole stream from `x-stream-offset: first` with prefetch
   `--prefetch`, acking with `multiple` every half prefetch. The rate is
   all deliveries over the wall-clock time from the first consume to the
   last consumer done; per consumer rates are printed too;
4. deletes the stream (unless `--keep`).

With `--broker-pid PID` (the broker's process on this machine: Warren's
`warren serve`, RabbitMQ's `beam.smp`) it also prints the broker's CPU time
(user + system, from /proc) per message appended and per message delivered:
on a small machine the ten client processes compete with the broker for the
CPU, and the wall-clock rates measure the clients as much as the broker.

Prints one JSON object. The client is `broker.client` (trio).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
import uuid
from typing import Any

import trio

from broker.client import open_connection

STREAM = {"x-queue-type": "stream"}


async def _declare(url: str, queue: str) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(queue, durable=True, arguments=STREAM)


async def _delete(url: str, queue: str) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        await ch.queue_delete(queue)


async def _append(url: str, queue: str, count: int, size: int, window: int) -> float:
    body = b"x" * size
    async with open_connection(url) as conn:
        async with conn.open_channel(confirms=True, max_in_flight=window) as ch:
            start = time.perf_counter()
            for _ in range(count):
                await ch.publish("", queue, body, persistent=True, wait=False)
            await ch.wait_for_confirms()
            return time.perf_counter() - start


async def _replay(url: str, queue: str, count: int, prefetch: int) -> tuple[float, float, int]:
    """(start, end) wall-clock times and the deliveries read."""
    async with open_connection(url) as conn:
        ch = await conn.channel()
        start = time.time()
        consumer = await ch.start_consumer(
            queue, prefetch=prefetch, arguments={"x-stream-offset": "first"}
        )
        received = 0
        step = max(1, prefetch // 2)
        async for message in consumer:
            received += 1
            if received % step == 0 or received == count:
                # Acks only give credit back on a stream.
                await ch.basic_ack(message.delivery_tag, multiple=True)
            if received == count:
                break
        end = time.time()
        # No consumer.cancel(): the client nacks (requeue) what it holds back,
        # which a stream refuses; closing the connection settles everything.
        return start, end, received


def _replay_process(url: str, queue: str, count: int, prefetch: int,
                    results: Any) -> None:  # fmt: skip
    results.put(trio.run(_replay, url, queue, count, prefetch))


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` so far (0 without one)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, messages: int, size: int, consumers: int, window: int, prefetch: int,
        keep: bool, broker_pid: int | None = None) -> dict[str, Any]:  # fmt: skip
    queue = f"bench.stream.{uuid.uuid4().hex[:8]}"
    trio.run(_declare, url, queue)
    try:
        cpu0 = _cpu_seconds(broker_pid)
        append_seconds = trio.run(_append, url, queue, messages, size, window)
        cpu1 = _cpu_seconds(broker_pid)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        processes = [
            context.Process(target=_replay_process, args=(url, queue, messages, prefetch, results))
            for _ in range(consumers)
        ]
        for process in processes:
            process.start()
        done = [results.get() for _ in processes]
        for process in processes:
            process.join()
        cpu2 = _cpu_seconds(broker_pid)
    finally:
        if not keep:
            trio.run(_delete, url, queue)
    start = min(d[0] for d in done)
    end = max(d[1] for d in done)
    total = sum(d[2] for d in done)
    result: dict[str, Any] = {
        "url": url.split("@")[-1],
        "messages": messages,
        "size": size,
        "append_msgs_per_s": round(messages / append_seconds),
        "append_mib_per_s": round(messages * size / append_seconds / 2**20, 1),
        "consumers": consumers,
        "replay_seconds": round(end - start, 2),
        "replay_total_msgs_per_s": round(total / (end - start)),
        "replay_per_consumer_msgs_per_s": sorted(round(d[2] / (d[1] - d[0])) for d in done),
        "all_read_everything": all(d[2] == messages for d in done),
    }
    if broker_pid is not None:
        result["broker_cpu_us_per_append"] = round((cpu1 - cpu0) / messages * 1e6, 1)
        result["broker_cpu_us_per_delivery"] = round((cpu2 - cpu1) / max(total, 1) * 1e6, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--consumers", type=int, default=10)
    parser.add_argument("--window", type=int, default=1000, help="confirms in flight")
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="do not delete the stream")
    parser.add_argument("--broker-pid", type=int, default=None,
                        help="the broker's process id: also print its CPU time per message")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.url, args.messages, args.size, args.consumers, args.window,
                         args.prefetch, args.keep, args.broker_pid)))  # fmt: skip


if __name__ == "__main__":
    main()
