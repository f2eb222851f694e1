"""docs/delayed.md's retry-with-backoff example works as shown: the file is
valid and canonical, the `warren route` command prints what the page prints,
and the pika worker, run against a Warren of its own, prints the page's output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from routing import config
from routing.topology import Topology

DOC = Path(__file__).parents[2] / "docs" / "delayed.md"
WARREN = Path(sys.executable).parent / "warren"
DOC_URL = "amqp://guest:guest@127.0.0.1:5672/"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", DOC.read_text(), re.S | re.M)


def test_the_file_is_valid_canonical_and_applies() -> None:
    (conf,) = blocks("conf")
    assert config.check(conf, "retry.conf") == []
    model = config.parse(conf)
    assert config.format(model) == conf
    topology = Topology()
    model.apply_to(topology)
    assert topology.exchanges["retry"].type == "x-delayed-message"


def test_the_warren_route_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    (conf,) = blocks("conf")
    (tmp_path / "retry.conf").write_text(conf)
    (console,) = blocks("console")
    commands = re.split(r"^\$ ", console, flags=re.M)[1:]
    assert len(commands) == 1
    for command in commands:
        line, _, expected = command.partition("\n")
        args = line.split()
        assert args[0] == "warren"
        result = subprocess.run(
            [str(WARREN), *args[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected


def test_the_worker_prints_what_the_page_shows(fresh_warren_url: str) -> None:
    scripts = [b for b in blocks("python") if DOC_URL in b]
    assert len(scripts) == 1
    outputs = re.findall(r"^prints, on Warren:\n\n```\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    assert len(outputs) == 1
    result = subprocess.run(
        [sys.executable, "-c", scripts[0].replace(DOC_URL, fresh_warren_url)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == outputs[0]
