"""`warren perf` side by side: two (or more) Warren trees, and optionally RabbitMQ.

Before/after numbers for a change on the message path (docs/perf.md,
"Before and after ..."): each round starts a fresh `python -m broker serve`
of every tree (a fresh data directory each run), runs the same `warren perf`
scenarios against it with `--broker-pid`, and swaps the order of the trees
every round, so that a drift in the machine's load falls on both. A
RabbitMQ node already running (`../shared/tools/reference-rabbitmq start
PORT`) can be measured beside them: its pid is read from its pid file.

    python -m broker.perf_compare --tree before=/path/to/old/checkout \\
        --tree after=. --rabbitmq 5695 --rounds 5 --duration 10

A tree is a checkout of this repository; it is run with this interpreter
from its own directory (so its `broker` package is the one imported), which
needs the tree's dependencies to be installed here. It prints one line per
run and, at the end, the median broker CPU seconds per 100,000 messages per
tree and scenario, and the median of the per-round ratios to the first tree.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The reference scenarios (issue 13): S1 and durable with confirms.
SCENARIOS: dict[str, list[str]] = {
    "S1 16B prefetch100 manual-ack": ["--size", "16", "--prefetch", "100"],
    "durable+confirms 1KiB": [
        "--size", "1024", "--persistent", "--confirms", "100", "--prefetch", "100",
    ],
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def _run(url: str, pid: int, duration: str, args: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "broker", "perf", "--url", url, "--duration", duration,
               "--broker-pid", str(pid), "--json", "--processes", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _measure_tree(tree: Path, duration: str, args: list[str]) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        serve = [sys.executable, "-m", "broker", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--data-dir", data_dir]
        help_text = subprocess.run([*serve[:4], "--help"], cwd=tree, capture_output=True,
                                   text=True).stdout
        for option in ("--management-port", "--prometheus-port"):
            if option in help_text:  # older trees have neither listener
                serve += [option, "0"]
        proc = subprocess.Popen(serve, cwd=tree, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            _wait_for(port)
            return _run(f"amqp://guest:guest@127.0.0.1:{port}/", proc.pid, duration, args)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _measure_rabbitmq(port: int, duration: str, args: list[str]) -> dict[str, Any]:
    pid = int(Path(f"/tmp/reference-rabbitmq-{port}/pid").read_text().strip())
    return _run(f"amqp://guest:guest@127.0.0.1:{port}/", pid, duration, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.perf_compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH",
                        help="a Warren checkout to measure (repeat; the first is the baseline)")
    parser.add_argument("--rabbitmq", type=int, metavar="PORT",
                        help="also measure the reference RabbitMQ node on this port")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", default="10")
    parser.add_argument("--json", metavar="FILE", help="write every run's JSON here")
    args = parser.parse_args(argv)
    trees: dict[str, Path] = {}
    for spec in args.tree:
        name, _, path = spec.partition("=")
        trees[name] = Path(path).resolve()
    names = list(trees) + (["rabbitmq"] if args.rabbitmq else [])
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else list(reversed(names))
        for scenario, scenario_args in SCENARIOS.items():
            for name in order:
                if name == "rabbitmq":
                    data = _measure_rabbitmq(args.rabbitmq, args.duration, scenario_args)
                else:
                    data = _measure_tree(trees[name], args.duration, scenario_args)
                results.setdefault((scenario, name), []).append(data)
                print(round_, scenario, name, data.get("sent_per_s"),
                      data.get("broker_cpu_s_per_100k_msgs"), data["latency_us"]["p99"],
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {f"{s}|{n}": runs for (s, n), runs in results.items()}, indent=1))
    baseline = names[0]
    print("\nbroker CPU s / 100k msgs, median of", args.rounds, "rounds")
    for scenario in SCENARIOS:
        base = [r["broker_cpu_s_per_100k_msgs"] for r in results[(scenario, baseline)]]
        for name in names:
            cpu = [r["broker_cpu_s_per_100k_msgs"] for r in results[(scenario, name)]]
            ratio = statistics.median(c / b for c, b in zip(cpu, base, strict=True))
            rate = statistics.median(r["sent_per_s"] for r in results[(scenario, name)])
            print(f"  {scenario:32} {name:10} {statistics.median(cpu):7.3f} "
                  f"x{ratio:5.3f} vs {baseline}   sent {rate:8.0f} msg/s   runs {cpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
