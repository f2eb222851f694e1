"""`warren perf` end to end against a real broker (short runs)."""

from __future__ import annotations

import json
import subprocess
import sys

from broker.perf import PerfConfig, latency_summary, percentile, run


def test_percentiles_nearest_rank() -> None:
    values = list(range(1, 1001))
    assert percentile(values, 0.5) == 500
    assert percentile(values, 0.99) == 990
    assert percentile(values, 0.999) == 999
    assert percentile([], 0.5) == 0.0
    assert latency_summary([1000, 2000, 3000])["p50"] == 2.0


def test_rate_limited_run_delivers_everything(amqp_url: str, name: str) -> None:
    cfg = PerfConfig(url=amqp_url, duration=1.5, rate=2000, size=64, prefetch=50,
                     exchange=name, queue_prefix=name, quiet=True)
    result = run(cfg)
    # 2000 msg/s for 1.5 s, give or take the first tick.
    assert 2500 <= result["sent"] <= 3100
    assert result["received"] >= result["sent"] - 200
    lat = result["latency_us"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert result["client_cpu_s"] > 0


def test_fanout_confirms_json_cli(amqp_url: str, name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "broker", "perf", "--url", amqp_url, "--duration", "1",
         "--rate", "500", "--queues", "3", "--exchange-type", "fanout", "--confirms", "50",
         "--consumers", "3", "--exchange", name, "--queue-prefix", name, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["sent"] > 0
    # Fanout: every message reaches all three queues.
    assert result["received"] >= 3 * result["sent"] - 150


def test_unreachable_url_is_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "broker", "perf", "--url", "amqp://127.0.0.1:1/",
         "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2  # as every warren command (docs/cli.md)
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("warren perf: cannot connect to 127.0.0.1:1")
