"""The operator's rough edges of issue 17, on real `warren` processes: each
message is one line that says what and where, with exit status 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from serve_helpers import ROOT, serve_command, start_serve, stop

from broker import __version__


def _warren(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_warren_version() -> None:
    done = _warren("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"warren {__version__}"


def test_serve_help_shows_examples_and_defaults() -> None:
    done = _warren("serve", "--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout and "warren serve --data-dir ./data" in done.stdout
    for default in ("default 5672", "default 15672", "default 15692", "default 50MB"):
        assert default in " ".join(done.stdout.split()), default


def test_serve_refuses_a_port_in_use_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(serve_command("--port", str(port)), cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert (f"warren serve: cannot listen on 127.0.0.1:{port} (amqp): Address already in use"
            in done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_data_directory_it_cannot_make(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("not a directory")
    done = subprocess.run(serve_command("--port", "0", "--data-dir", str(afile / "data")),
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"warren serve: data directory {afile / 'data'}: Not a directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_without_a_data_directory_warns_that_nothing_persists(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    process, _port = start_serve(log)
    stop(process)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [warning] = [e for e in events if e["event"] == "broker.no_data_dir"]
    assert warning["level"] == "warning"
    assert "nothing (messages, queues, users) survives a restart" in warning["note"]
    started = next(e for e in events if e["event"] == "broker.started")
    assert started["data_dir"] is None
