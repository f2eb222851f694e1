"""Benchmark: how long ``routing.config.check`` takes on a large file.

    python -m routing.config.bench [--lines 4000] [--repeat 3] [--profile]

Writes a configuration of about ``--lines`` lines in the shape operators write
(groups of a topic exchange with an alternate exchange, queues with their
options one per continuation line, comments, bindings by key and by headers,
exchange-to-exchange bindings), checks that it is valid, then times ``check``
``--repeat`` times and prints the best, in CPU seconds and microseconds per
line. ``--profile`` prints cProfile's top functions for one more run.

This is a measurement, not a test: it prints numbers and asserts nothing about
time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

from . import check

__all__ = ["main", "sample_config"]


def _group(i: int) -> list[str]:
    """One tenant's topology: 40 lines."""
    p = f"tenant{i}"
    return [
        f"# Tenant {i}: orders, billing, shipping and audit.",
        f"exchange {p}.orders type topic durable",
        f"    alternate-exchange {p}.unrouted",
        f"exchange {p}.unrouted type fanout durable",
        f"exchange {p}.dlx type direct durable  # dead letters",
        f"exchange {p}.audit type headers durable internal",
        "",
        f"queue {p}.billing durable",
        "    message-ttl 30s",
        "    max-length 100000",
        "    overflow reject-publish",
        f"    dead-letter-exchange {p}.dlx",
        '    dead-letter-routing-key "billing"',
        f"queue {p}.billing.wait durable",
        "    message-ttl 5m",
        f"    dead-letter-exchange {p}.orders",
        f"queue {p}.shipping durable max-priority 10",
        "    max-length-bytes 64MiB",
        "    x-consumer-timeout 3600000",
        f"queue {p}.audit durable",
        "    expires 7d",
        f'    x-tenant "{p}"',
        f"queue {p}.unrouted durable message-ttl 1d",
        f"queue {p}.dead durable",
        "",
        f'bind {p}.billing to {p}.orders key "order.*.created"',
        f'bind {p}.billing to {p}.orders key "order.*.updated"',
        f'bind {p}.billing.wait to {p}.dlx key "billing"',
        f'bind {p}.shipping to {p}.orders key "order.*.paid"',
        f'bind {p}.shipping to {p}.orders key "order.#.express"',
        f"bind {p}.unrouted to {p}.unrouted",
        f"bind {p}.dead to {p}.dlx key dead",
        f'bind exchange {p}.audit to {p}.orders key "order.#"',
        f"bind {p}.audit to {p}.audit headers any priority=high urgent=true",
        f"bind {p}.audit to {p}.audit headers all-with-x region=eu x-source=web",
        f"bind {p}.audit to {p}.audit headers all tenant={i} flagged",
        "# Everything that failed for good lands here.",
        f"bind {p}.dead to {p}.dlx key final",
        f"bind {p}.billing to amq.topic key \"{p}.billing.#\"",
        "",
    ]


def sample_config(lines: int) -> str:
    """A valid configuration of about ``lines`` lines."""
    out: list[str] = []
    i = 0
    while len(out) < lines:
        out += _group(i)
        i += 1
    return "\n".join(out) + "\n"


def _cpu(text: str) -> float:
    start = time.process_time()
    errors = check(text, "bench.conf")
    elapsed = time.process_time() - start
    assert not errors, errors[0]
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    text = sample_config(args.lines)
    n = text.count("\n")
    best = min(_cpu(text) for _ in range(args.repeat))
    print(f"check: {n} lines, {len(text)} bytes: {best:.3f} s CPU (best of {args.repeat}), "
          f"{best / n * 1e6:.0f} us per line")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        check(text, "bench.conf")
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
