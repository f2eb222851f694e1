"""Two thousand sockets that connect and say nothing: bounded, dropped, harmless.

Each is dropped after `handshake_timeout` (here 5 s), the broker serves a
real client while they all still hold their sockets (no time bound: the
order is the point), and once they are gone nothing of them is left (no
connection objects, no file descriptors).
"""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path

import pika
import pytest
from structlog.testing import capture_logs

from broker.settings import Listener, Settings
from broker.testing import BrokerThread

SOCKETS = 2000


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds in /proc (Linux)")
def test_silent_sockets_are_dropped_after_the_handshake_timeout(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * SOCKETS + 256  # both ends live in this process
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    settings = Settings(listeners_tcp=(Listener("127.0.0.1", 0),), handshake_timeout=5000)
    thread = BrokerThread(settings=settings)
    thread.start()
    silent: list[socket.socket] = []
    try:
        fds_before = _open_fds()
        port = thread.broker.port
        for _ in range(SOCKETS):
            silent.append(socket.create_connection(("127.0.0.1", port)))
        # A real client is served while they sit there.
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        connection.channel().queue_declare("", exclusive=True)
        still_open = 0
        for sock in silent:
            sock.setblocking(False)
            try:
                sock.recv(1)
            except BlockingIOError:
                still_open += 1
        assert still_open == SOCKETS, "served only after silent sockets were dropped"
        # Every silent socket is closed by the broker after the timeout.
        deadline = time.monotonic() + 30
        for sock in silent:
            sock.setblocking(True)
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            assert sock.recv(1) == b"", "the broker did not close a silent socket"
        # Each is forgotten once its task has finished closing (just after the EOF).
        deadline = time.monotonic() + 5
        while thread.run_sync(lambda: len(thread.broker.connections)) > 1:
            assert time.monotonic() < deadline, "silent connections are still tracked"
            time.sleep(0.05)
        connection.close()
        for sock in silent:
            sock.close()
        silent.clear()
        time.sleep(0.5)
        assert _open_fds() <= fds_before + 8
        assert thread.run_sync(lambda: thread.broker.crashed_connections) == 0
    finally:
        for sock in silent:
            sock.close()
        thread.stop()


def test_a_connection_dropped_by_the_handshake_timeout_is_logged_with_its_peer() -> None:
    # One warning per dropped socket, as connection.tls_timeout for TLS: one
    # socket says nothing, the other sends the protocol header and then does
    # not answer connection.start.
    settings = Settings(listeners_tcp=(Listener("127.0.0.1", 0),), handshake_timeout=300)
    thread = BrokerThread(settings=settings)
    thread.start()
    try:
        port = thread.broker.port
        with capture_logs() as logs:
            silent = socket.create_connection(("127.0.0.1", port))
            header_only = socket.create_connection(("127.0.0.1", port))
            header_only.sendall(b"AMQP\x00\x00\x09\x01")
            for sock in (silent, header_only):
                sock.settimeout(5)
                while sock.recv(4096):  # connection.start, then the broker's close
                    pass
            deadline = time.monotonic() + 5
            while len([e for e in logs if e["event"] == "connection.handshake_timeout"]) < 2:
                assert time.monotonic() < deadline, logs
                time.sleep(0.02)
        timeouts = {
            event["peer"]: event for event in logs
            if event["event"] == "connection.handshake_timeout"
        }
        silent_peer = f"127.0.0.1:{silent.getsockname()[1]}"
        header_peer = f"127.0.0.1:{header_only.getsockname()[1]}"
        assert set(timeouts) == {silent_peer, header_peer}
        assert timeouts[silent_peer]["log_level"] == "warning"
        assert timeouts[silent_peer]["listener"] == "amqp"
        assert timeouts[silent_peer]["local"] == f"127.0.0.1:{port}"
        assert timeouts[silent_peer]["stage"] == "protocol header"
        assert timeouts[silent_peer]["received_bytes"] == 0
        assert timeouts[header_peer]["stage"] == "connection.start-ok"
        assert timeouts[header_peer]["received_bytes"] == 8
        silent.close()
        header_only.close()
    finally:
        thread.stop()
