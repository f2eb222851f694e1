"""`warren serve --settings FILE` end to end: a real process, real clients.

What the settings file and the environment set is checked where a client sees
it: `load_definitions` as a directory, `WARREN_DEFAULT_USER`/`_PASS` on a fresh
data directory, and the connection limits (`connection_max`, `channel_max`,
`frame_max`, `max_message_size`) with RabbitMQ 3.10's answers when they are
reached.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
import pytest
from cli_helpers import CONNECTION_VARIABLES, ROOT, WARREN
from pika.exceptions import (
    ProbableAuthenticationError,
)

from broker.auth.passwords import hash_password

BASE = """\
listeners.tcp.default = 127.0.0.1:0
management.tcp.ip = 127.0.0.1
management.tcp.port = 0
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = 0
"""


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in CONNECTION_VARIABLES and not k.startswith("WARREN_DEFAULT_")
    }
    return {**env, **(extra or {})}


def _write_conf(directory: Path, text: str) -> Path:
    conf = directory / "rabbitmq.conf"
    conf.write_text(BASE + text)
    return conf


@contextmanager
def serving(conf: Path, env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """`warren serve --settings conf` until the block is done: its started line and port."""
    process = subprocess.Popen(
        [str(WARREN), "serve", "--settings", str(conf), "--log-format", "json"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=_environment(env), start_new_session=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    started: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if '"broker.started"' in line:
                started = json.loads(line)
                break
        assert started, "".join(lines)
        amqp = next(text for text in started["listeners"] if text.startswith("amqp "))
        started["port"] = int(amqp.rsplit(":", 1)[1])
        started["lines"] = lines
        yield started
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()


def _serve_fails(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WARREN), "serve", "--settings", str(conf)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        check=False, env=_environment(), start_new_session=True,
    )


def _connect(port: int, user: str = "guest", password: str = "guest",
             vhost: str = "/", **options: Any) -> pika.BlockingConnection:
    credentials = pika.PlainCredentials(user, password)
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, credentials, connection_attempts=1, **options,
    ))


# -- load_definitions: a directory -------------------------------------------------------


def _definitions(directory: Path, files: dict[str, Any]) -> None:
    directory.mkdir()
    for name, document in files.items():
        (directory / name).write_text(
            document if isinstance(document, str) else json.dumps(document)
        )


def test_load_definitions_directory_applies_every_file_in_name_order(tmp_path: Path) -> None:
    # RabbitMQ 3.10 (rabbit_definitions_import_local_filesystem:load_from_files):
    # every entry of the directory, sorted by name, one import each; so a
    # later file may use the vhost and the user an earlier one made. The files
    # are written in the other order, so that the directory's own order
    # cannot pass for name order.
    _definitions(tmp_path / "definitions", {
        "20-queues.json": {
            "queues": [{"name": "orders", "vhost": "shop", "durable": True,
                        "auto_delete": False, "arguments": {}}],
            "permissions": [{"user": "app", "vhost": "shop", "configure": ".*",
                             "write": ".*", "read": ".*"}],
        },
        "10-vhosts.json": {
            "vhosts": [{"name": "shop"}],
            "users": [{"name": "app", "password_hash": hash_password("app-pw"), "tags": ""}],
        },
        "15-empty.json": "",  # an empty file imports nothing, as RabbitMQ's decode(<<"">>)
    })
    conf = _write_conf(tmp_path, "load_definitions = definitions\n")
    with serving(conf) as started:
        loaded = [json.loads(line)["path"] for line in started["lines"]
                  if '"definitions.loaded"' in line]
        assert [Path(path).name for path in loaded] == [
            "10-vhosts.json", "15-empty.json", "20-queues.json",
        ]
        connection = _connect(started["port"], "app", "app-pw", "shop")
        declared = connection.channel().queue_declare("orders", durable=True, passive=True)
        assert declared.method.message_count == 0
        connection.close()
        # load_definitions set: nothing is seeded, as RabbitMQ (no guest, no /).
        with pytest.raises(ProbableAuthenticationError):
            _connect(started["port"])


def test_load_definitions_directory_stops_the_start_at_a_bad_file_naming_it(
    tmp_path: Path,
) -> None:
    # RabbitMQ stops at the first file that cannot be imported
    # ({failed_to_import_definitions, File, E}); 3.10 then drops the error and
    # starts, later versions stop the boot. Warren stops, naming the file.
    _definitions(tmp_path / "definitions", {
        "a.json": {"vhosts": [{"name": "one"}]},
        "b.json": "{not json",
        "c.json": {"vhosts": [{"name": "three"}]},
    })
    conf = _write_conf(tmp_path, "load_definitions = definitions\n")
    done = _serve_fails(conf)
    assert done.returncode == 2, done.stderr
    assert f"load_definitions: {tmp_path / 'definitions' / 'b.json'} is not JSON" in done.stderr
    assert "c.json" not in done.stderr


def test_load_definitions_directory_with_a_subdirectory_names_it(tmp_path: Path) -> None:
    # RabbitMQ reads every entry; a subdirectory cannot be read (eisdir).
    _definitions(tmp_path / "definitions", {"a.json": {"vhosts": [{"name": "one"}]}})
    (tmp_path / "definitions" / "b.d").mkdir()
    conf = _write_conf(tmp_path, "load_definitions = definitions\n")
    done = _serve_fails(conf)
    assert done.returncode == 2, done.stderr
    assert f"load_definitions: cannot read {tmp_path / 'definitions' / 'b.d'}" in done.stderr


# -- WARREN_DEFAULT_USER / WARREN_DEFAULT_PASS ---------------------------------------------


def test_the_default_user_from_the_environment_replaces_guest_on_a_fresh_data_dir(
    tmp_path: Path,
) -> None:
    # As RabbitMQ with default_user set: that user is created on the first
    # start, and guest is not. The environment overrides the file's
    # default_user. Later starts seed nobody: the data directory says who exists.
    conf = _write_conf(tmp_path, "warren.data_dir = data\ndefault_user = from-file\n")
    env = {"WARREN_DEFAULT_USER": "bob", "WARREN_DEFAULT_PASS": "b0b-pw"}
    with serving(conf, env) as started:
        assert started["users"] == 1
        connection = _connect(started["port"], "bob", "b0b-pw")
        connection.channel().queue_declare("bobs", durable=True)
        connection.close()
        for user, password in (("guest", "guest"), ("from-file", "b0b-pw")):
            with pytest.raises(ProbableAuthenticationError):
                _connect(started["port"], user, password)
    env = {"WARREN_DEFAULT_USER": "carol", "WARREN_DEFAULT_PASS": "carol-pw"}
    with serving(conf, env) as started:
        with pytest.raises(ProbableAuthenticationError):
            _connect(started["port"], "carol", "carol-pw")
        connection = _connect(started["port"], "bob", "b0b-pw")
        connection.channel().queue_declare("bobs", durable=True, passive=True)
        connection.close()
