"""The CLI with x-consistent-hash: `warren route` says which queue and why, the
config commands read and write the type. Runs the `warren` console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from routing import config
from routing.exchanges.erlang import Atom, jump_consistent_hash, phash2

WARREN = Path(sys.executable).parent / "warren"
DATA = Path(__file__).parent / "data"

FILE = """\
exchange orders.sharded type x-consistent-hash
    hash-header "customer"
exchange jobs type x-consistent-hash
exchange empty type x-consistent-hash
queue shard-a
queue shard-b
queue shard-c
bind shard-a to orders.sharded weight 1
bind shard-b to orders.sharded weight 1
bind shard-c to orders.sharded weight 2
bind shard-a to jobs weight 1
bind shard-b to jobs weight 3
"""


def warren(*args: str) -> subprocess.CompletedProcess[str]:
    assert WARREN.exists(), f"{WARREN} is missing: pip install -e . into the venv"
    result = subprocess.run([str(WARREN), *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "shards.conf"
    path.write_text(FILE)
    return path


def test_route_by_routing_key_shows_the_hash_and_the_bucket(topology: Path) -> None:
    key = "job-1234"
    key_hash = phash2(key.encode())
    bucket = jump_consistent_hash(key_hash, 4)
    queue, held = ("shard-a", "bucket 0") if bucket == 0 else ("shard-b", "buckets 1-3")
    weight = "1" if queue == "shard-a" else "3"
    result = warren("route", str(topology), "jobs", key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"exchange 'jobs' routing keys ['{key}']: 1 queue(s)\n"
        f"  queue '{queue}'\n"
        f"    exchange 'jobs' -> queue '{queue}' by consistent hash of routing key '{key}': "
        f"phash2 {key_hash}, bucket {bucket} of 4 (binding key '{weight}' holds {held})\n"
    )


def test_route_by_header(topology: Path) -> None:
    key_hash = phash2((Atom("longstr"), b"c-42"))
    bucket = jump_consistent_hash(key_hash, 4)
    queue = ["shard-a", "shard-b", "shard-c", "shard-c"][bucket]
    result = warren("route", str(topology), "orders.sharded", "ignored", "--header", "customer=c-42")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith(
        f"    exchange 'orders.sharded' -> queue '{queue}' by consistent hash of header "
        f"'customer' = 'c-42': phash2 {key_hash}, bucket {bucket} of 4 (binding key "
    )


def test_route_without_the_header_hashes_undefined(topology: Path) -> None:
    result = warren("route", str(topology), "orders.sharded", "k")
    assert result.returncode == 0
    assert f"header 'customer' (absent: undefined): phash2 {phash2(Atom('undefined'))}" in (
        result.stdout
    )


def test_route_to_an_exchange_with_nothing_bound(topology: Path) -> None:
    result = warren("route", str(topology), "empty", "k")
    assert result.returncode == 1
    assert "exchange 'empty' (x-consistent-hash, 0 bindings): nothing is bound to it" in (
        result.stdout
    )


def test_check_reports_a_key_that_is_not_a_weight(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text('exchange x type x-consistent-hash\nqueue q\nbind q to x key "one"\n')
    result = warren("config", "check", str(path))
    assert result.returncode != 0
    assert "needs a weight, a whole number of 1 or more, as its key, not 'one'" in (
        result.stdout + result.stderr
    )


def test_definitions_both_ways(topology: Path, tmp_path: Path) -> None:
    out = warren("config", "to-definitions", str(topology))
    assert out.returncode == 0, out.stderr
    assert '"type": "x-consistent-hash"' in out.stdout
    defs = tmp_path / "defs.json"
    defs.write_text(out.stdout)
    back = warren("config", "from-definitions", str(defs))
    assert back.returncode == 0, back.stderr
    assert config.parse(back.stdout).topology == config.parse(FILE).topology


def test_from_a_rabbitmq_export() -> None:
    export = DATA / "rabbitmq-3.10.8-consistent-hash-definitions.json"
    result = warren("config", "from-definitions", str(export))
    assert result.returncode == 0, result.stderr
    assert "exchange chdef.shards type x-consistent-hash durable\n" in result.stdout
    assert "bind chdef.b to chdef.shards weight 2\n" in result.stdout
