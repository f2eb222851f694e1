"""The README's first screen works as written: the pika example, the dashboard
and API addresses, and the two commands that let another user in.

Run against a real Warren on ephemeral ports: the README's port numbers
(5672, 15672) are rewritten to the test broker's, nothing else.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest

from broker.testing import BrokerThread

README = Path(__file__).resolve().parents[1] / "README.md"
WARREN = Path(sys.executable).parent / "warren"


def _first_screen() -> str:
    text = README.read_text()
    return text[: text.index("## What works today")]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=tmp_path_factory.mktemp("readme-data"))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def _ports(broker: BrokerThread) -> tuple[int, int]:
    assert broker.broker is not None
    amqp_port = urlsplit(broker.url).port
    management_port = urlsplit(broker.broker.management_url).port
    assert amqp_port and management_port
    return amqp_port, management_port


def test_the_pika_example_prints_hello(broker: BrokerThread) -> None:
    amqp_port, _ = _ports(broker)
    code = re.search(r"```python\n(.*?)```", _first_screen(), re.S)
    assert code is not None, "no python block on the README's first screen"
    script = code.group(1).replace("127.0.0.1:5672/", f"127.0.0.1:{amqp_port}/")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, Warren!\n"


def test_the_dashboard_and_the_api_answer_where_the_readme_says(broker: BrokerThread) -> None:
    _, management_port = _ports(broker)
    screen = _first_screen()
    assert "http://127.0.0.1:15672/" in screen
    base = f"http://127.0.0.1:{management_port}"
    with urllib.request.urlopen(base + "/", timeout=10) as response:
        page = response.read().decode()
    assert "<title>" in page and "Warren" in page
    request = urllib.request.Request(base + "/api/overview")
    request.add_header("authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "management_version" in json.loads(response.read())


def test_the_commands_for_another_user_let_it_in(broker: BrokerThread) -> None:
    amqp_port, management_port = _ports(broker)
    commands = re.findall(
        r"^    (printf .*|\.venv/bin/warren permissions .*)$", _first_screen(), re.M
    )
    assert len(commands) == 2, commands
    env_url = f"http://guest:guest@127.0.0.1:{management_port}/"
    for command in commands:
        command = command.replace(".venv/bin/warren", f"{WARREN} --management-url {env_url}", 1)
        # The management URL goes after the subcommand, where warren takes it.
        command = re.sub(
            rf"{re.escape(str(WARREN))} --management-url (\S+) (users add|permissions set)",
            rf"{WARREN} \2 --management-url \1",
            command,
        )
        result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
    password = re.search(r"printf '%s\\n' '([^']+)'", commands[0])
    assert password is not None
    params = pika.URLParameters(f"amqp://app:{password.group(1)}@127.0.0.1:{amqp_port}/")
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.queue_declare("readme-app", auto_delete=True)
    finally:
        connection.close()
