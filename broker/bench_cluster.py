"""What high availability costs: perf_compare's durable scenario on one node and on a 2-node cluster.

    python -m broker.bench_cluster --rounds 5 --duration 10

Three configurations, started as real processes on loopback, fresh every
round (new processes, new data directories in a temporary directory):

- single: `python -m broker serve` with a data directory, no cluster;
- follower-sync: one etcd member, a leader and one follower,
  `replication.min_followers = 1`: a publisher confirm waits for the leader's
  fsync and the follower's;
- leader-only: the same cluster with `replication.min_followers = 0`: confirms
  after the leader's fsync alone; the follower still receives every batch.

The load is perf_compare's "durable+confirms 1KiB" scenario (`SCENARIOS`:
persistent 1 KiB messages into a durable queue, publisher confirms with 100
in flight, prefetch 100, manual acks), run by the same command
(`warren perf --json --processes --broker-pid PID`) against the single node
or the leader, so its numbers compare with perf_compare's. `--size` changes
the body size only. The configurations take turns, and as perf_compare does
the order is reversed every other round (ABC CBA ABC ...), so that a drift in
the machine's load falls on all three alike. A run starts perf once `GET
/api/cluster/health` answers 200 and, in a cluster, `GET /api/cluster` shows
the follower caught up; during the run the leader's /api/cluster is read once
a second for the follower's lag (batches and bytes not yet acknowledged).

Reported per configuration: the medians of the publish and consume rates,
of perf's p50 and p99 latency and of the broker's CPU seconds per 100,000
messages (the leader's, from perf's `--broker-pid`; the follower's, from
/proc/PID/stat before and after), and the median of the per-round paired
ratios to "single", as perf_compare does. For the clusters, the leader's hub
counters from /api/cluster at the end of each round: `confirm_waits` (group
commits whose confirms waited for followers after the leader's own fsync),
`confirm_wait_seconds`, and the messages per replication batch (messages
published / batches shipped during the run).

This is a worst case for replication's cost: on one machine (this
repository's VM has 2 cores) the follower competes with the leader and the
load generator for the CPU, and its fsyncs go to the same disk. On separate
machines the follower costs the leader only the network and the wait for its
fsync.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from broker.perf import process_cpu_seconds
from broker.perf_compare import SCENARIOS
from broker.perf_compare import _run as run_perf

#: perf_compare's durable scenario, the one replication changes.
SCENARIO = "durable+confirms 1KiB"
CONFIGS = ("single", "follower-sync", "leader-only")
#: replication.min_followers per cluster configuration.
MIN_FOLLOWERS = {"follower-sync": 1, "leader-only": 0}
SECRET = "bench-cluster-replication-secret"
#: The default user of a fresh data directory (the management API's basic auth).
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()
#: Seconds a start may take (etcd, a node, a follower's catch-up).
START_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parent.parent

NOTE = (
    "One machine ({cores} cores): the follower competes with the leader and the load "
    "generator for the CPU (and shares the disk): a worst case for replication's cost. "
    "On separate machines the follower costs the leader only the network and the wait "
    "for its fsync."
)


# -- processes ------------------------------------------------------------------------------


#: libc, for prctl (Linux); loaded here, not in a freshly forked child.
_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child before exec: SIGKILL it if this tool dies (even by SIGKILL) first."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Processes:
    """Every process a round started; `stop()` ends them, last started first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = self.directory / f"{name}.log"
        with log.open("ab") as out:
            # A session of its own: a Ctrl-C reaches this tool alone, which stops
            # the nodes before etcd (a node without etcd takes a while to go).
            process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=_die_with_parent)
        self.started.append((name, process, log))
        return process

    def check(self) -> None:
        """Fail if a process has exited."""
        for name, process, _log in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}")

    def tails(self, size: int = 2000) -> str:
        parts = []
        for name, _process, log in self.started:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {name} ({log.name}) ---\n{text[-size:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for _name, process, _log in reversed(self.started):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.started.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, *, auth: bool = False, timeout: float = 1.0) -> tuple[int, Any] | None:
    """(status, body) of a GET, None when nothing answers."""
    request = urllib.request.Request(url, headers={"Authorization": AUTH} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, None
    except (OSError, ValueError):
        return None


def _wait(what: str, ready: Callable[[], bool], processes: Processes,
          timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        processes.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@dataclass
class Node:
    """A Warren process: a single node, or a cluster node."""

    name: str
    amqp: int = field(default_factory=_free_port)
    management: int = field(default_factory=_free_port)
    prometheus: int = field(default_factory=_free_port)
    replication: int = field(default_factory=_free_port)
    pid: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp}/"

    def health(self) -> tuple[int, Any] | None:
        return _get_json(f"http://127.0.0.1:{self.management}/api/cluster/health")

    def cluster(self) -> dict[str, Any]:
        answer = _get_json(f"http://127.0.0.1:{self.management}/api/cluster", auth=True,
                           timeout=5.0)
        if answer is None or answer[0] != 200:
            raise RuntimeError(f"GET /api/cluster on {self.name}: {answer}")
        body: dict[str, Any] = answer[1]
        return body

    def settings(self, data_dir: Path, cluster: dict[str, str] | None) -> str:
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{self.amqp}",
            f"management.tcp.port = {self.management}",
            "management.tcp.ip = 127.0.0.1",
            f"prometheus.tcp.port = {self.prometheus}",
            "prometheus.tcp.ip = 127.0.0.1",
            f"warren.data_dir = {data_dir}",
        ]
        lines += [f"{key} = {value}" for key, value in (cluster or {}).items()]
        return "\n".join(lines) + "\n"


def _start_node(processes: Processes, node: Node, directory: Path,
                cluster: dict[str, str] | None) -> None:
    settings = directory / f"{node.name}.conf"
    settings.write_text(node.settings(directory / node.name, cluster))
    process = processes.start(node.name, [sys.executable, "-m", "broker", "serve",
                                          "--settings", str(settings), "--log-format", "json"])
    node.pid = process.pid


def _leads(node: Node) -> bool:
    answer = node.health()
    return answer is not None and answer[0] == 200 and _listening(node.amqp)


def _start_etcd(processes: Processes, etcd: str, directory: Path) -> str:
    """One etcd member on free loopback ports; its client URL, once it is healthy."""
    client = f"http://127.0.0.1:{_free_port()}"
    peer = f"http://127.0.0.1:{_free_port()}"
    processes.start("etcd", [
        etcd, "--name", "bench", "--data-dir", str(directory / "etcd"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"bench={peer}", "--initial-cluster-state", "new",
        "--initial-cluster-token", f"warren-bench-{os.getpid()}-{time.monotonic_ns()}",
        "--heartbeat-interval", "100", "--election-timeout", "1000",
        "--logger", "zap", "--log-outputs", "stderr",
    ])  # fmt: skip

    def healthy() -> bool:
        answer = _get_json(f"{client}/health")
        return answer is not None and answer[0] == 200 and answer[1].get("health") == "true"

    _wait("etcd healthy", healthy, processes)
    return client


# -- one run ------------------------------------------------------------------------------


def _messages(data: dict[str, Any]) -> int:
    """What perf divides by: the larger of sent and received."""
    return max(int(data.get("sent", 0)), int(data.get("received", 0)), 1)


def _measure_single(processes: Processes, directory: Path, duration: str,
                    perf_args: list[str]) -> dict[str, Any]:
    node = Node("single")
    _start_node(processes, node, directory, None)
    _wait("single node serving", lambda: _leads(node), processes)
    return {"perf": run_perf(node.url, node.pid, duration, perf_args)}


def _replication(status: dict[str, Any]) -> dict[str, Any]:
    replication: dict[str, Any] = status.get("replication") or {}
    return replication


class LagSampler:
    """Reads the leader's /api/cluster once a second during a run: the follower's
    largest lag (batches shipped but not acknowledged, bytes queued for it)."""

    def __init__(self, leader: Node) -> None:
        self.leader = leader
        self.batches = 0
        self.queued_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                followers = _replication(self.leader.cluster()).get("followers") or []
            except RuntimeError:
                continue
            for follower in followers:
                self.batches = max(self.batches, int(follower.get("batches_behind") or 0))
                self.queued_bytes = max(self.queued_bytes, int(follower.get("queued_bytes") or 0))

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _measure_cluster(processes: Processes, directory: Path, etcd: str, duration: str,
                     perf_args: list[str], min_followers: int) -> dict[str, Any]:
    endpoint = _start_etcd(processes, etcd, directory)
    leader, follower = Node("warren-1"), Node("warren-2")

    def cluster_keys(node: Node) -> dict[str, str]:
        return {
            "cluster.name": "bench", "cluster.node_name": node.name,
            "cluster.etcd.endpoints": endpoint,
            "replication.listener": f"127.0.0.1:{node.replication}",
            "replication.secret": SECRET, "replication.min_followers": str(min_followers),
        }

    # The leader first, alone: it wins the election, and perf knows where to go.
    _start_node(processes, leader, directory, cluster_keys(leader))
    _wait("warren-1 leading", lambda: _leads(leader), processes)
    _start_node(processes, follower, directory, cluster_keys(follower))

    def caught_up() -> bool:
        followers = _replication(leader.cluster()).get("followers") or []
        return any(f.get("node") == follower.name and f.get("caught_up") for f in followers)

    _wait("warren-2 caught up", caught_up, processes)
    before = leader.cluster()
    follower_cpu0 = process_cpu_seconds(follower.pid)
    with LagSampler(leader) as lag:
        data = run_perf(leader.url, leader.pid, duration, perf_args)
    follower_cpu = process_cpu_seconds(follower.pid) - follower_cpu0
    after = leader.cluster()
    processes.check()
    if after.get("role") != "leader" or after.get("term") != before.get("term"):
        raise RuntimeError(f"warren-1 lost its leadership during the run: {after}")
    start, end = _replication(before), _replication(after)
    batches = int(end.get("batch", 0)) - int(start.get("batch", 0))
    followers = end.get("followers") or []
    return {
        "perf": data,
        "follower_cpu_s": round(follower_cpu, 3),
        "follower_cpu_s_per_100k_msgs": round(follower_cpu / _messages(data) * 100_000, 3),
        "replication": {
            # The hub's counters at the end of the round (from 0 at the leader's start).
            "confirm_waits": end.get("confirm_waits"),
            "confirm_wait_seconds": end.get("confirm_wait_seconds"),
            # During perf's run alone:
            "batches": batches,
            "messages_per_batch": round(int(data.get("sent", 0)) / max(batches, 1), 1),
            "waits_in_run": int(end.get("confirm_waits", 0)) - int(start.get("confirm_waits", 0)),
            "wait_seconds_in_run": round(float(end.get("confirm_wait_seconds", 0))
                                         - float(start.get("confirm_wait_seconds", 0)), 3),
            "follower_max_lag_batches": lag.batches,
            "follower_max_lag_bytes": lag.queued_bytes,
            "follower_at_end": followers[0] if followers else None,
        },
    }


def measure(config: str, etcd: str, duration: str, perf_args: list[str]) -> dict[str, Any]:
    """One run of `config` on fresh processes; every process is gone on return."""
    with tempfile.TemporaryDirectory(prefix=f"warren-bench-{config}-") as tmp:
        processes = Processes(Path(tmp))
        try:
            if config == "single":
                return _measure_single(processes, Path(tmp), duration, perf_args)
            return _measure_cluster(processes, Path(tmp), etcd, duration, perf_args,
                                    MIN_FOLLOWERS[config])
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as error:
            detail = getattr(error, "stderr", None) or ""
            raise RuntimeError(f"{config}: {error}\n{detail}\n{processes.tails()}") from error
        finally:
            processes.stop()


# -- the report ---------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _paired(runs: list[dict[str, Any]], base: list[dict[str, Any]],
            value: Callable[[dict[str, Any]], float]) -> float | None:
    """The median of the per-round ratios value(run) / value(single's run of the round)."""
    ratios = [value(r) / value(b) for r, b in zip(runs, base, strict=True) if value(b)]
    return round(statistics.median(ratios), 3) if ratios else None


def _leader_cpu(run: dict[str, Any]) -> float:
    return float(run["perf"].get("broker_cpu_s_per_100k_msgs", 0.0))


def _both_cpu(run: dict[str, Any]) -> float:
    return _leader_cpu(run) + float(run.get("follower_cpu_s_per_100k_msgs", 0.0))


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per configuration: medians, and the paired ratios to single."""
    base = results["single"]
    summary: dict[str, dict[str, Any]] = {}
    for config, runs in results.items():
        perf = [r["perf"] for r in runs]
        row: dict[str, Any] = {
            "runs": len(runs),
            "sent_per_s": _median([p["sent_per_s"] for p in perf]),
            "received_per_s": _median([p["received_per_s"] for p in perf]),
            "p50_ms": _median([p["latency_us"]["p50"] / 1000 for p in perf]),
            "p99_ms": _median([p["latency_us"]["p99"] / 1000 for p in perf]),
            "leader_cpu_s_per_100k_msgs": _median([_leader_cpu(r) for r in runs]),
            "sent_vs_single": _paired(runs, base, lambda r: float(r["perf"]["sent_per_s"])),
            "leader_cpu_vs_single": _paired(runs, base, _leader_cpu),
        }
        if config != "single":
            replication = [r["replication"] for r in runs]
            row.update({
                "follower_cpu_s_per_100k_msgs": _median(
                    [r["follower_cpu_s_per_100k_msgs"] for r in runs]),
                "leader_and_follower_cpu_vs_single": _paired(runs, base, _both_cpu),
                "confirm_waits": _median([x["confirm_waits"] for x in replication]),
                "confirm_wait_seconds": _median([x["confirm_wait_seconds"] for x in replication]),
                "messages_per_batch": _median([x["messages_per_batch"] for x in replication]),
                "follower_max_lag_batches": _median(
                    [x["follower_max_lag_batches"] for x in replication]),
            })  # fmt: skip
        summary[config] = row
    return summary


def _cell(value: Any, spec: str = "") -> str:
    if value is None:
        return "—"
    return format(value, spec)


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| configuration | publish msg/s | consume msg/s | p50 ms | p99 ms "
        "| leader CPU s/100k | follower CPU s/100k | publish vs single "
        "| leader CPU vs single | leader+follower CPU vs single "
        "| confirm waits | confirm wait s | msgs/batch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for config, row in summary.items():
        lines.append("| " + " | ".join([
            config, _cell(row["sent_per_s"], ".0f"), _cell(row["received_per_s"], ".0f"),
            _cell(row["p50_ms"], ".2f"), _cell(row["p99_ms"], ".2f"),
            _cell(row["leader_cpu_s_per_100k_msgs"], ".3f"),
            _cell(row.get("follower_cpu_s_per_100k_msgs"), ".3f"),
            "x" + _cell(row["sent_vs_single"], ".3f"),
            "x" + _cell(row["leader_cpu_vs_single"], ".3f"),
            "x" + _cell(row.get("leader_and_follower_cpu_vs_single",
                                row["leader_cpu_vs_single"]), ".3f"),
            _cell(row.get("confirm_waits"), "g"), _cell(row.get("confirm_wait_seconds"), "g"),
            _cell(row.get("messages_per_batch"), ".1f"),
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def _line(round_: int, config: str, run: dict[str, Any]) -> str:
    perf = run["perf"]
    text = (f"round {round_} {config:13} sent {perf['sent_per_s']:8.0f}/s "
            f"received {perf['received_per_s']:8.0f}/s p50 {perf['latency_us']['p50'] / 1000:7.2f} ms "
            f"p99 {perf['latency_us']['p99'] / 1000:7.2f} ms "
            f"leader CPU {_leader_cpu(run):6.3f} s/100k")
    if "replication" in run:
        rep = run["replication"]
        text += (f" follower CPU {run['follower_cpu_s_per_100k_msgs']:6.3f} s/100k"
                 f" | confirm_waits {rep['confirm_waits']} confirm_wait_seconds"
                 f" {rep['confirm_wait_seconds']} batches {rep['batches']}"
                 f" ({rep['messages_per_batch']} msgs/batch) follower lag max"
                 f" {rep['follower_max_lag_batches']} batches"
                 f" {rep['follower_max_lag_bytes'] / 1024:.0f} KiB")
    text += f" (load {run['load_average']:.1f})"
    if perf.get("failed_confirms"):
        text += f" FAILED CONFIRMS {perf['failed_confirms']}"
    return text


# -- command line ---------------------------------------------------------------------------


def _perf_args(size: int | None) -> list[str]:
    args = list(SCENARIOS[SCENARIO])
    if size is not None:
        args[args.index("--size") + 1] = str(size)
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM too: the processes are stopped on the way out


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.bench_cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of perf per run")
    parser.add_argument("--size", type=int, default=None,
                        help="body size in bytes (default: the scenario's, 1024)")
    parser.add_argument("--etcd", default=shutil.which("etcd"), help="the etcd binary (3.4+)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write every run and the summary as JSON to FILE; "
                             "without FILE, print it instead of the table")
    args = parser.parse_args(argv)
    if not args.etcd:
        print("bench_cluster: etcd is not installed (tools/ensure-etcd)", file=sys.stderr)
        return 2
    out: TextIO = sys.stderr if args.json == "-" else sys.stdout
    perf_args = _perf_args(args.size)
    duration = f"{args.duration:g}"
    cores = os.cpu_count() or 0
    print(f"scenario {SCENARIO!r}: warren perf --duration {duration} --processes "
          f"{' '.join(perf_args)}; {args.rounds} rounds of {', '.join(CONFIGS)} "
          "(reversed every other round); "
          f"load average {os.getloadavg()[0]:.2f}", file=out, flush=True)
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    with _sigterm_interrupts():
        try:
            for round_ in range(args.rounds):
                for config in CONFIGS if round_ % 2 == 0 else reversed(CONFIGS):
                    load = os.getloadavg()[0]
                    run = measure(config, args.etcd, duration, perf_args)
                    run.update(round=round_, config=config, load_average=load)
                    results[config].append(run)
                    print(_line(round_, config, run), file=out, flush=True)
        except KeyboardInterrupt:
            print("bench_cluster: interrupted", file=sys.stderr)
            return 130
        except RuntimeError as error:
            print(f"bench_cluster: {error}", file=sys.stderr)
            return 1
    summary = summarise(results)
    document = {"scenario": SCENARIO, "perf_args": perf_args, "duration": args.duration,
                "rounds": args.rounds, "cores": cores, "load_average": os.getloadavg()[0],
                "summary": summary, "runs": results}
    if args.json == "-":
        print(json.dumps(document))
    elif args.json:
        Path(args.json).write_text(json.dumps(document, indent=1))
    print(f"\nmedians of {args.rounds} rounds, ratios: median of the per-round ratios to single",
          file=out)
    print(table(summary), file=out)
    print("\n" + NOTE.format(cores=cores), file=out)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}", file=out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
