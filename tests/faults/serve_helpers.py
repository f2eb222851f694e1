"""`warren serve` as a subprocess, for the fault tests that need a broker
process of their own (its RSS, its exit status, its data directory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(*options: str) -> list[str]:
    """`warren serve OPTIONS`; the management and Prometheus listeners on any
    free port unless OPTIONS name them (another broker may hold 15672/15692)."""
    command = [sys.executable, "-m", "broker", "serve", "--log-format", "json", *options]
    if "--management-port" not in options:
        command += ["--management-port", "0"]
    if "--prometheus-port" not in options:
        command += ["--prometheus-port", "0"]
    return command


def start_serve(log: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start `warren serve OPTIONS --port P` and wait until P accepts; the
    process and P. Its output goes to `log`."""
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            serve_command("--port", str(port), *options), cwd=ROOT, stdout=out, stderr=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"broker exited: {log.read_text()[-2000:]}") from None
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError("broker did not start") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
