"""Real etcd clusters on loopback, for the cluster layer's tests.

    cluster = EtcdCluster(3, tmp_path)     # started, and answering through EtcdClient
    client = EtcdClient(cluster.endpoints)
    cluster.kill(0)                        # SIGKILL, like a crash
    cluster.start(0)                       # the same member again, on its data dir
    await cluster.wait_ready([0])          # (from a trio test) until it answers
    cluster.stop()                         # every member killed and reaped

Each member is Debian's `etcd` (3.4) with client and peer ports of its own
(free ports on 127.0.0.1), a data directory and a log file under `tmp_path`,
and short raft timings (heartbeat 100 ms, election timeout 1 s) so that
elections and failovers take about a second. A member that dies or a cluster
that does not answer in time fails with the tail of the members' logs.

Without `etcd` on the PATH the tests skip, saying so, unless
WARREN_REQUIRE_TOOLS is set (.ci/run sets it): then they fail.
`tools/ensure-etcd` installs it (`make test` runs it).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
import trio

from broker.cluster.etcd import EtcdClient, EtcdError, EtcdTLS

#: Processes still running, killed at exit if a teardown never ran.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_LIVE):
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def missing_tool(reason: str) -> NoReturn:
    """Skip (or, with WARREN_REQUIRE_TOOLS, fail) the test: `reason` says what is missing."""
    if os.environ.get("WARREN_REQUIRE_TOOLS"):
        pytest.fail(f"WARREN_REQUIRE_TOOLS is set but {reason}")
    pytest.skip(reason)


def etcd_binary() -> str:
    found = shutil.which("etcd")
    if found is None:
        missing_tool("etcd is not installed (apt-get install etcd-server, or tools/ensure-etcd)")
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerTLS:
    """TLS for the members' client port: etcd's --cert-file/--key-file, and
    with `client_ca` also --client-cert-auth --trusted-ca-file (mutual TLS)."""

    cert_file: Path
    key_file: Path
    client_ca: Path | None = None


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """`size` etcd members on 127.0.0.1, started and answering on return.

    Their data directories and logs go under `tmp_path` (made if missing).

    `tls` serves the client port over TLS (`client_tls` is then what the
    readiness check connects with). `ready_timeout` bounds the start.
    """

    def __init__(
        self, size: int, tmp_path: Path, *, tls: ServerTLS | None = None,
        client_tls: EtcdTLS | None = None, heartbeat_ms: int = 100, election_ms: int = 1000,
        ready_timeout: float = 30.0,
    ) -> None:
        self.binary = etcd_binary()
        self.tmp_path = Path(tmp_path)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.client_tls = client_tls
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.token = f"warren-test-{uuid.uuid4().hex[:12]}"
        scheme = "https" if tls else "http"
        self.members = [
            Member(f"m{i}", free_port(), free_port(), self.tmp_path / f"etcd-m{i}",
                   self.tmp_path / f"etcd-m{i}.log", scheme)
            for i in range(size)
        ]
        try:
            for index in range(size):
                self.start(index)
            trio.run(self.wait_ready, None, ready_timeout)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL, in member order."""
        return [member.client_url for member in self.members]

    def _command(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        command = [
            self.binary,
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url,
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap", "--log-outputs", "stderr",
        ]
        if self.tls is not None:
            command += ["--cert-file", str(self.tls.cert_file), "--key-file", str(self.tls.key_file)]
            if self.tls.client_ca is not None:
                command += ["--client-cert-auth", "--trusted-ca-file", str(self.tls.client_ca)]
        return command

    def start(self, index: int) -> None:
        """Start member `index` (again, on its data directory: etcd then
        ignores the --initial-* flags and rejoins). Returns at once; a trio
        test awaits `wait_ready([index])` when it needs the member answering."""
        member = self.members[index]
        if member.running():
            raise RuntimeError(f"{member.name} is already running")
        with member.log_path.open("ab") as log:
            log.write(f"--- warren test: starting {member.name} ---\n".encode())
            log.flush()
            member.process = subprocess.Popen(
                self._command(member), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.tmp_path,
            )
        _LIVE.add(member.process)

    def kill(self, index: int) -> None:
        """SIGKILL member `index` and reap it: a crash, no goodbye to its peers."""
        member = self.members[index]
        process = member.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        _LIVE.discard(process)
        member.process = None

    def freeze(self, index: int) -> None:
        """SIGSTOP member `index`: alive, its sockets open, answering nothing
        (a hung member, or one behind a partition)."""
        process = self.members[index].process
        assert process is not None
        process.send_signal(signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        process = self.members[index].process
        assert process is not None
        process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill every member and wait for each (safe to call twice)."""
        for index in range(len(self.members)):
            self.kill(index)

    def leader_index(self) -> int:
        """The member that is raft leader now, asked of a running member over
        the gateway's maintenance/status (blocking: from trio, via to_thread)."""
        statuses = {}
        for index, member in enumerate(self.members):
            if member.running():
                request = urllib.request.Request(
                    f"{member.client_url}/v3/maintenance/status", b"{}", method="POST"
                )
                with urllib.request.urlopen(request, timeout=5) as answer:
                    statuses[index] = json.loads(answer.read())
        leader = {status.get("leader") for status in statuses.values()}
        assert len(leader) == 1, f"the members disagree on the leader: {statuses}"
        (leader_id,) = leader
        for index, status in statuses.items():
            if status["header"]["member_id"] == leader_id:
                return index
        raise AssertionError(f"no running member leads: {statuses}")

    def log_tail(self, index: int, lines: int = 25) -> str:
        path = self.members[index].log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _failure(self, what: str, indices: Sequence[int]) -> AssertionError:
        tails = "\n".join(
            f"--- {self.members[i].name} ({self.members[i].log_path}):\n{self.log_tail(i)}"
            for i in indices
        )
        return AssertionError(f"{what}\n{tails}")

    async def wait_ready(self, indices: Sequence[int] | None = None, timeout: float = 30.0) -> None:
        """Until each member in `indices` (default: all) serves a linearizable
        put and get through EtcdClient on its own endpoint: it is up, part of
        the cluster, and the cluster has a leader. Fails with the logs' tails."""
        chosen = list(range(len(self.members))) if indices is None else list(indices)
        deadline = trio.current_time() + timeout
        for index in chosen:
            member = self.members[index]
            async with EtcdClient([member.client_url], tls=self.client_tls, timeout=1.0) as client:
                while True:
                    dead = [i for i in chosen if not self.members[i].running()]
                    if dead:
                        names = ", ".join(self.members[i].name for i in dead)
                        raise self._failure(f"etcd {names} exited during start", dead)
                    try:
                        key = f"warren-test/ready/{member.name}".encode()
                        await client.put(key, b"1")
                        if (await client.get(key)) is not None:
                            break
                    except EtcdError as exc:
                        if trio.current_time() > deadline:
                            raise self._failure(
                                f"etcd {member.name} did not answer within {timeout}s: {exc}", chosen
                            ) from exc
                    await trio.sleep(0.05)

