"""Three real Warren processes led through a real etcd cluster, for the failover tests.

Each node reaches etcd through its own `EtcdProxy`, a TCP relay in the test
process, so that a test can cut one node off from etcd (and only that node)
while everything else goes on: a real network cut seen from that node.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-replication-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdProxy:
    """A TCP relay to one etcd member; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._open = True
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self._open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._open:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for each in (source, sink):
            try:
                each.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self._open = False
        with self._lock:
            for each in self._sockets:
                try:
                    each.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()

    def restore(self) -> None:
        self._open = True

    def close(self) -> None:
        self.cut()
        self.server.close()


@dataclass
class Node:
    index: int
    name: str
    amqp: int
    management: int
    prometheus: int
    replication: int
    data: Path
    settings: Path
    log: Path
    proxies: list[EtcdProxy]
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp}/%2F"

    def health(self, timeout: float = 0.5) -> dict[str, Any] | None:
        """/api/cluster/health, with its status as "status"; None if no answer."""
        url = f"http://127.0.0.1:{self.management}/api/cluster/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                body = json.loads(answer.read())
                body["status"] = answer.status
                return body  # type: ignore[no-any-return]
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            body["status"] = error.code
            return body  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None


@dataclass
class WarrenCluster:
    """N Warren nodes on loopback; `etcd_endpoints` are the real members' client URLs."""

    tmp: Path
    etcd_endpoints: list[str]
    size: int = 3
    lease_ttl: int = 2
    min_followers: int = 1
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        for index in range(self.size):
            name = f"warren-{index + 1}"
            directory = self.tmp / name
            directory.mkdir(parents=True, exist_ok=True)
            proxies = []
            for endpoint in self.etcd_endpoints:
                host, port = endpoint.removeprefix("http://").rsplit(":", 1)
                proxies.append(EtcdProxy((host, int(port))))
            node = Node(index, name, free_port(), free_port(), free_port(), free_port(),
                        directory / "data", directory / "rabbitmq.conf", directory / "log", proxies)
            node.settings.write_text("\n".join([
                f"listeners.tcp.default = 127.0.0.1:{node.amqp}",
                f"management.tcp.port = {node.management}",
                "management.tcp.ip = 127.0.0.1",
                f"prometheus.tcp.port = {node.prometheus}",
                "prometheus.tcp.ip = 127.0.0.1",
                f"warren.data_dir = {node.data}",
                "cluster.name = test",
                f"cluster.node_name = {name}",
                "cluster.etcd.endpoints = " + ", ".join(p.url for p in proxies),
                f"cluster.etcd.lease_ttl = {self.lease_ttl}",
                f"replication.listener = 127.0.0.1:{node.replication}",
                f"replication.secret = {SECRET}",
                f"replication.min_followers = {self.min_followers}",
                "",
            ]))
            self.nodes.append(node)

    def start(self, index: int) -> None:
        node = self.nodes[index]
        with open(node.log, "ab") as out:
            node.process = subprocess.Popen(
                [sys.executable, "-m", "broker", "serve", "--settings", str(node.settings),
                 "--log-format", "json"],
                cwd=ROOT, stdout=out, stderr=out,
            )
        node.stopped = False

    def start_all(self) -> None:
        for index in range(self.size):
            self.start(index)

    def signal(self, index: int, sig: int) -> None:
        process = self.nodes[index].process
        assert process is not None
        process.send_signal(sig)
        if sig == signal.SIGKILL:
            process.wait(10)
        self.nodes[index].stopped = sig == signal.SIGSTOP

    def cut_from_etcd(self, index: int) -> None:
        for proxy in self.nodes[index].proxies:
            proxy.cut()

    def restore_etcd(self, index: int) -> None:
        for proxy in self.nodes[index].proxies:
            proxy.restore()

    def leaders(self) -> list[tuple[int, dict[str, Any]]]:
        """Every node whose health endpoint answers 200 (should be one)."""
        found = []
        for node in self.nodes:
            if node.stopped or node.process is None or node.process.poll() is not None:
                continue
            health = node.health()
            if health is not None and health["status"] == 200:
                found.append((node.index, health))
        return found

    def wait_leader(self, timeout: float = 30.0, exclude: int | None = None) -> tuple[int, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [x for x in self.leaders() if x[0] != exclude]
            if len(leaders) == 1:
                index = leaders[0][0]
                try:  # and it serves AMQP
                    socket.create_connection(("127.0.0.1", self.nodes[index].amqp), timeout=0.5).close()
                    return leaders[0]
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"no single leader within {timeout} s:\n{self.logs_tail()}")

    def logs_tail(self, size: int = 3000) -> str:
        parts = []
        for node in self.nodes:
            text = node.log.read_text(errors="replace") if node.log.exists() else ""
            parts.append(f"--- {node.name} ---\n{text[-size:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for node in self.nodes:
            process = node.process
            if process is None:
                continue
            if node.stopped:
                process.send_signal(signal.SIGCONT)
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for proxy in node.proxies:
                proxy.close()
