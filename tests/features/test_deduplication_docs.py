"""docs/deduplication.md's worked example works as shown: the file is valid and
canonical, `warren route` prints what the page prints, and the pika script,
run against a Warren of its own, prints the page's lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from doc_examples import run_example

from routing import config
from routing.topology import Topology

DOC = Path(__file__).parents[2] / "docs" / "deduplication.md"
WARREN = Path(sys.executable).parent / "warren"
DOC_URL = "amqp://guest:guest@127.0.0.1:5672/"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", DOC.read_text(), re.S | re.M)


def test_the_file_is_valid_canonical_and_applies() -> None:
    (conf,) = blocks("conf")
    assert config.check(conf, "orders.conf") == []
    model = config.parse(conf)
    assert config.format(model) == conf
    topology = Topology()
    model.apply_to(topology)
    assert topology.dedup_exchanges == 1


def test_warren_route_prints_what_the_page_shows(tmp_path: Path) -> None:
    (conf,) = blocks("conf")
    (tmp_path / "orders.conf").write_text(conf)
    (console,) = blocks("console")
    line, _, expected = console.removeprefix("$ ").partition("\n")
    args = line.split()
    assert args[0] == "warren"
    result = subprocess.run(
        [str(WARREN), *args[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_the_client_example_prints_what_the_page_shows(fresh_warren_url: str) -> None:
    (script,) = blocks("python")
    assert DOC_URL in script
    outputs = re.findall(r"^prints, on Warren:\n\n```\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    assert len(outputs) == 1
    assert run_example(script, DOC_URL, fresh_warren_url) == outputs[0]
