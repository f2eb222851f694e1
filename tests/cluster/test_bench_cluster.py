"""`python -m broker.bench_cluster` starts a single node and two 2-node clusters
(real etcd, real Warren processes), runs the durable scenario on each and
prints the table (one short round: the tool works, not a benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from etcd_cluster import etcd_binary

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("single", "follower-sync", "leader-only")


def test_bench_cluster_measures_the_three_configurations(tmp_path: Path) -> None:
    etcd = etcd_binary()  # skips without etcd (fails with WARREN_REQUIRE_TOOLS)
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, "-m", "broker.bench_cluster", "--rounds", "1", "--duration", "1",
         "--etcd", etcd, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in CONFIGS}
    assert set(rows) == set(CONFIGS), done.stdout
    for row in rows.values():
        publish, consume = (float(cell) for cell in row.split("|")[2:4])
        assert publish > 0 and consume > 0, row
    assert "the follower competes with the leader and the load generator" in done.stdout
    document = json.loads(out.read_text())
    for config in CONFIGS:
        summary = document["summary"][config]
        assert summary["sent_per_s"] > 0 and summary["received_per_s"] > 0
    for config in ("follower-sync", "leader-only"):
        (run,) = document["runs"][config]
        assert run["follower_cpu_s"] > 0  # the follower did receive the messages
        assert run["replication"]["batches"] > 0
    # Only the configuration whose confirms wait for the follower waits for it.
    assert document["runs"]["leader-only"][0]["replication"]["confirm_waits"] == 0
