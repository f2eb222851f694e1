"""`python -m broker.perf_compare` runs both scenarios on real brokers and
prints the medians (one short round: the tool works, not a benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_perf_compare_measures_two_trees_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, "-m", "broker.perf_compare", "--tree", f"a={ROOT}", "--tree",
         f"b={ROOT}", "--rounds", "1", "--duration", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "broker CPU s / 100k msgs, median of 1 rounds" in done.stdout
    lines = [line for line in done.stdout.splitlines() if " x" in line and "vs a" in line]
    assert len(lines) == 4  # two scenarios, two trees
    assert out.exists() and "S1 16B prefetch100 manual-ack|b" in out.read_text()
