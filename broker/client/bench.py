"""Client benchmark: `broker.client` side by side with aio-pika and pika.

    python -m broker.client.bench --url amqp://guest:guest@127.0.0.1:5673/

Three paths, each against the same broker in the same run, each client on a
fresh queue:

- ``confirm-1``: confirmed publishing, one message at a time (publish, wait
  for its basic.ack, next);
- ``confirm-window``: confirmed publishing with many in flight (a window of
  ``--window`` unconfirmed publishes, then wait for them all);
- ``consume``: consuming a pre-filled queue with prefetch 1,000 and one
  basic.ack per message.

``--rounds N`` runs everything N times, rotating which client goes first, and
prints medians; the "vs aio-pika" columns are then the median of the ratios
measured within each round (the machine's load drifts between rounds).

For each: messages per second (wall clock) and the client's CPU
microseconds per message (``time.process_time``, so the broker's CPU is not
counted when it runs in another process). pika runs on BlockingConnection,
except for ``confirm-window``, which needs its SelectConnection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import trio

from broker.client import open_connection

BODY = b"x" * 16


class Measure:
    """Wall-clock and process CPU time of one block.

    ``cpu`` is ``time.process_time()`` (user + system). On loopback the
    kernel charges the TCP delivery of every send to the sender, so the
    system part is mostly the same for every client; ``user`` is what the
    client library itself costs.
    """

    def __enter__(self) -> Measure:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.user0 = os.times().user
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        self.user = os.times().user - self.user0

    def result(self, count: int) -> dict[str, float]:
        return {
            "msgs_per_s": round(count / self.wall),
            "cpu_us_per_msg": round(self.cpu / count * 1e6, 1),
            "user_cpu_us_per_msg": round(self.user / count * 1e6, 1),
            "messages": count,
        }


# --------------------------------------------------------------- helpers


async def _declare(url: str, queue: str) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(queue, auto_delete=False)
        await ch.queue_purge(queue)


async def _delete(url: str, queue: str) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        await ch.queue_delete(queue)


async def _fill(url: str, queue: str, count: int) -> None:
    async with open_connection(url) as conn, conn.open_channel(confirms=True) as ch:
        for _ in range(count):
            await ch.publish("", queue, BODY, wait=False)
        await ch.wait_for_confirms()


# --------------------------------------------------------------- warren


async def warren_confirm_one(url: str, queue: str, count: int) -> dict[str, float]:
    async with open_connection(url) as conn, conn.open_channel(confirms=True) as ch:
        with Measure() as m:
            for _ in range(count):
                await ch.publish("", queue, BODY)
    return m.result(count)


async def warren_confirm_window(url: str, queue: str, count: int,
                                window: int) -> dict[str, float]:
    async with open_connection(url) as conn:
        async with conn.open_channel(confirms=True, max_in_flight=window) as ch:
            with Measure() as m:
                for _ in range(count):
                    await ch.publish("", queue, BODY, wait=False)
                await ch.wait_for_confirms()
    return m.result(count)


async def warren_consume(url: str, queue: str, count: int) -> dict[str, float]:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        with Measure() as m:
            received = 0
            async with ch.consume(queue, prefetch=1000) as messages:
                async for message in messages:
                    await message.ack()
                    received += 1
                    if received == count:
                        break
    return m.result(count)


# --------------------------------------------------------------- aio-pika


def aio_pika_confirm_one(url: str, queue: str, count: int) -> dict[str, float]:
    import aio_pika

    async def main() -> dict[str, float]:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            exchange = ch.default_exchange
            with Measure() as m:
                for _ in range(count):
                    await exchange.publish(aio_pika.Message(BODY), routing_key=queue)
        return m.result(count)

    return asyncio.run(main())


def aio_pika_confirm_window(url: str, queue: str, count: int, window: int) -> dict[str, float]:
    import aio_pika

    async def main() -> dict[str, float]:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            exchange = ch.default_exchange
            with Measure() as m:
                for start in range(0, count, window):
                    n = min(window, count - start)
                    await asyncio.gather(*(exchange.publish(aio_pika.Message(BODY),
                                                            routing_key=queue)
                                           for _ in range(n)))
        return m.result(count)

    return asyncio.run(main())


def aio_pika_consume(url: str, queue: str, count: int) -> dict[str, float]:
    import aio_pika

    async def main() -> dict[str, float]:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1000)
            q = await ch.declare_queue(queue, passive=True)
            with Measure() as m:
                received = 0
                async with q.iterator() as messages:
                    async for message in messages:
                        await message.ack()
                        received += 1
                        if received == count:
                            break
        return m.result(count)

    return asyncio.run(main())


# --------------------------------------------------------------- pika


def pika_confirm_one(url: str, queue: str, count: int) -> dict[str, float]:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        with Measure() as m:
            for _ in range(count):
                ch.basic_publish("", queue, BODY)
    finally:
        conn.close()
    return m.result(count)


def pika_confirm_window(url: str, queue: str, count: int, window: int) -> dict[str, float]:
    """pika's asynchronous SelectConnection, the only pika adapter that can
    keep confirms in flight (BlockingConnection waits for each)."""
    import pika

    state = {"sent": 0, "confirmed": 0}
    measure = Measure()
    channel: Any = None

    def publish_more() -> None:
        while state["sent"] < count and state["sent"] - state["confirmed"] < window:
            channel.basic_publish("", queue, BODY)
            state["sent"] += 1

    def on_confirm(frame: Any) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            raise RuntimeError("pika: publish nacked")
        if method.multiple:
            state["confirmed"] = method.delivery_tag
        else:
            state["confirmed"] += 1
        if state["confirmed"] >= count:
            measure.__exit__()
            connection.close()
        else:
            publish_more()

    def on_confirm_mode(_frame: Any) -> None:
        measure.__enter__()
        publish_more()

    def on_channel(ch: Any) -> None:
        nonlocal channel
        channel = ch
        ch.confirm_delivery(on_confirm, callback=on_confirm_mode)

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda conn: conn.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda conn, exc: conn.ioloop.stop(),
        on_close_callback=lambda conn, exc: conn.ioloop.stop(),
    )
    connection.ioloop.start()
    if state["confirmed"] < count:
        raise RuntimeError("pika: the connection closed before every confirm came")
    return measure.result(count)


def pika_consume(url: str, queue: str, count: int) -> dict[str, float]:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        with Measure() as m:
            received = 0
            for method, _properties, _body in ch.consume(queue):
                ch.basic_ack(method.delivery_tag)
                received += 1
                if received == count:
                    break
            ch.cancel()
    finally:
        conn.close()
    return m.result(count)


# --------------------------------------------------------------- driver


def run(url: str, counts: dict[str, int], window: int,
        clients: tuple[str, ...] = ("warren", "aio-pika", "pika")) -> dict[str, Any]:
    """Run every path for every client; return {path: {client: result}}."""
    queue = f"warren-bench-{uuid.uuid4().hex[:8]}"
    trio.run(_declare, url, queue)
    results: dict[str, dict[str, Any]] = {"confirm-1": {}, "confirm-window": {}, "consume": {}}

    def publish_path(path: str, client: str, fn: Callable[[], dict[str, float]]) -> None:
        trio.run(_declare, url, queue)  # purges
        results[path][client] = fn()

    n1, nw, nc = counts["confirm-1"], counts["confirm-window"], counts["consume"]
    try:
        for client in clients:
            if client == "warren":
                publish_path("confirm-1", client,
                             lambda: trio.run(warren_confirm_one, url, queue, n1))
                publish_path("confirm-window", client,
                             lambda: trio.run(warren_confirm_window, url, queue, nw, window))
            elif client == "aio-pika":
                publish_path("confirm-1", client, lambda: aio_pika_confirm_one(url, queue, n1))
                publish_path("confirm-window", client,
                             lambda: aio_pika_confirm_window(url, queue, nw, window))
            elif client == "pika":
                publish_path("confirm-1", client, lambda: pika_confirm_one(url, queue, n1))
                publish_path("confirm-window", client,
                             lambda: pika_confirm_window(url, queue, nw, window))
        for client in clients:
            trio.run(_declare, url, queue)
            trio.run(_fill, url, queue, nc)
            if client == "warren":
                results["consume"][client] = trio.run(warren_consume, url, queue, nc)
            elif client == "aio-pika":
                results["consume"][client] = aio_pika_consume(url, queue, nc)
            elif client == "pika":
                results["consume"][client] = pika_consume(url, queue, nc)
    finally:
        trio.run(_delete, url, queue)
    return results


def median_results(rounds: list[dict[str, Any]], clients: tuple[str, ...]) -> dict[str, Any]:
    """Per path and client, the median of each number over the rounds."""
    merged: dict[str, dict[str, Any]] = {}
    for path in rounds[0]:
        merged[path] = {}
        for client in clients:
            runs = [r[path][client] for r in rounds if r[path].get(client)]
            if not runs:
                continue
            merged[path][client] = {key: statistics.median(run[key] for run in runs)
                                    for key in runs[0]}
            merged[path][client]["rounds"] = len(runs)
            # The ratio to aio-pika within each round, then its median: both
            # clients of a round ran minutes apart at most, on the same load.
            for key in ("cpu_us_per_msg", "user_cpu_us_per_msg"):
                ratios = [r[path][client][key] / r[path]["aio-pika"][key] for r in rounds
                          if r[path].get(client) and (r[path].get("aio-pika") or {}).get(key)]
                if ratios:
                    merged[path][client][f"{key}_vs_aio_pika"] = round(
                        statistics.median(ratios), 3)
    return merged


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    """The table of `median_results`."""
    print(f"{'path':16} {'client':10} {'msgs/s':>10} {'CPU us/msg':>11} {'vs aio-pika':>12}"
          f" {'user us/msg':>12} {'vs aio-pika':>12}")
    for path, by_client in results.items():
        for client, r in by_client.items():
            ratios = [f"{r[key]:.2f}x" if key in r else ""  # without aio-pika: no ratio
                      for key in ("cpu_us_per_msg_vs_aio_pika", "user_cpu_us_per_msg_vs_aio_pika")]
            print(f"{path:16} {client:10} {r['msgs_per_s']:>10} {r['cpu_us_per_msg']:>11} "
                  f"{ratios[0]:>12} {r['user_cpu_us_per_msg']:>12} {ratios[1]:>12}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.client.bench",
                                     description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="amqp://guest:guest@localhost:5672/")
    parser.add_argument("--confirm-one", type=int, default=3000,
                        help="messages for confirm-1 (default %(default)s)")
    parser.add_argument("--confirm-window", type=int, default=30000,
                        help="messages for confirm-window (default %(default)s)")
    parser.add_argument("--consume", type=int, default=30000,
                        help="messages for consume (default %(default)s)")
    parser.add_argument("--window", type=int, default=1000, help="publishes in flight")
    parser.add_argument("--clients", default="warren,aio-pika,pika",
                        help="comma-separated subset of warren,aio-pika,pika")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run everything this many times, print medians (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    counts = {"confirm-1": args.confirm_one, "confirm-window": args.confirm_window,
              "consume": args.consume}
    clients = tuple(args.clients.split(","))
    rounds: list[dict[str, Any]] = []
    try:
        for i in range(args.rounds):
            # Rotate the order, so no client always runs first (or last).
            k = i % len(clients)
            rounds.append(run(args.url, counts, args.window, clients[k:] + clients[:k]))
    except Exception as exc:
        print(f"bench: {exc}")
        return 1
    results = median_results(rounds, clients)
    if args.json:
        print(json.dumps(results))
    else:
        _print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
