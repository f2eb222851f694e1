"""Benchmark: topic routing through the trie against a linear scan; consistent hash.

    python -m routing.bench [--bindings 10000] [--keys 100000] [--scan-keys 500]
    python -m routing.bench --only-consistent-hash [--chash-keys 20000]

Builds a topic exchange with ``--bindings`` random binding keys (3 to 5 words
from a 40-word vocabulary per level, about 15% ``*`` and 5% ``#``), bound to
1,000 queues (``--star`` and ``--hash`` change the wildcard shares), then routes ``--keys`` random routing keys through
``Topology.route`` (the broker's entry point: lookup, trie walk, list of queue
names) and through the bare exchange. A linear scan over the bindings (one
word-by-word match per binding, what LavinMQ's topic exchange does) runs on
the first ``--scan-keys`` keys only, because it costs about a second per hundred
keys at this size; its results are checked against the trie's.

Then the ``x-consistent-hash`` exchange next to a direct exchange: the same
routes through ``Topology.route`` over rings of 10, 100 and 1,000 buckets,
with random keys (each one hashed: ``erlang:phash2`` and the jump hash, in
Python), with 1,000 keys reused (the exchange's result cache), by a header,
and the two hash functions alone.

This is a measurement, not a test: it prints numbers and asserts nothing about
time.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from .exchanges import Destination
from .exchanges.erlang import jump_consistent_hash, phash2
from .topology import Topology

__all__ = ["linear_scan_match", "main"]


def linear_scan_match(pattern: list[str], words: list[str]) -> bool:
    """Match one split pattern against one split key, without a trie (the baseline)."""
    # Classic two-pointer wildcard match with backtracking to the last '#'.
    p = w = 0
    star_p = star_w = -1
    np, nw = len(pattern), len(words)
    while w < nw:
        if p < np and pattern[p] == "#":
            star_p, star_w = p, w
            p += 1
        elif p < np and (pattern[p] == "*" or pattern[p] == words[w]):
            p += 1
            w += 1
        elif star_p >= 0:
            p = star_p + 1
            star_w += 1
            w = star_w
        else:
            return False
    while p < np and pattern[p] == "#":
        p += 1
    return p == np


def _vocab(level: int) -> list[str]:
    return [f"w{level}x{i}" for i in range(40)]


def _pattern(rng: random.Random, star: float = 0.15, hash_: float = 0.05) -> str:
    words = []
    for level in range(rng.randint(3, 5)):
        r = rng.random()
        if r < star:
            words.append("*")
        elif r < star + hash_:
            words.append("#")
        else:
            words.append(rng.choice(_vocab(level)))
    return ".".join(words)


def _key(rng: random.Random) -> str:
    return ".".join(rng.choice(_vocab(level)) for level in range(rng.randint(3, 5)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--scan-keys", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--star", type=float, default=0.15, help="share of '*' words")
    parser.add_argument("--hash", type=float, default=0.05, help="share of '#' words")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling rounds")
    parser.add_argument("--chash-keys", type=int, default=20_000,
                        help="keys for the consistent-hash rounds")
    parser.add_argument("--only-consistent-hash", action="store_true",
                        help="run the consistent-hash rounds only")
    args = parser.parse_args(argv)
    if args.only_consistent_hash:
        consistent_hash(args.chash_keys, args.seed)
        return

    rng = random.Random(args.seed)
    topo = Topology()
    topo.declare_exchange("bench", "topic")
    for q in range(1000):
        topo.add_queue(f"q{q}")
    patterns: list[tuple[list[str], str]] = []
    while len(patterns) < args.bindings:
        pattern = _pattern(rng, args.star, args.hash)
        queue = f"q{rng.randrange(1000)}"
        if topo.bind("bench", Destination("queue", queue), pattern):
            patterns.append((pattern.split("."), queue))
    keys = [_key(rng) for _ in range(args.keys)]
    exchange = topo.get_exchange("bench")

    route = topo.route
    t0 = time.perf_counter()
    matched = 0
    for k in keys:
        matched += len(route("bench", k, None))
    t_topology = time.perf_counter() - t0

    walk = exchange.route_uncached  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for k in keys:
        walk(k)
    t_walk = time.perf_counter() - t0

    # Publishers reuse keys: the same number of routes over 1,000 distinct keys.
    pool = keys[:1000]
    repeated = [pool[i % len(pool)] for i in range(len(keys))]
    route("bench", "warm.up", None)
    t0 = time.perf_counter()
    for k in repeated:
        route("bench", k, None)
    t_repeated = time.perf_counter() - t0

    scan_keys = keys[: args.scan_keys]
    t0 = time.perf_counter()
    scan_results = []
    for k in scan_keys:
        words = k.split(".")
        scan_results.append({q for pat, q in patterns if linear_scan_match(pat, words)})
    t_scan = time.perf_counter() - t0
    for k, expected in zip(scan_keys, scan_results, strict=True):
        assert set(route("bench", k, None)) == expected, k

    n, s = len(keys), len(scan_keys)
    print(
        f"topic exchange: {len(patterns)} bindings ({args.star:.0%} '*', {args.hash:.0%} '#'), "
        f"{n} random keys (seed {args.seed})"
    )
    print(f"  average queues per message: {matched / n:.2f}")
    print(f"  Topology.route, random keys:        {t_topology / n * 1e6:8.2f} us/route")
    print(f"  trie walk alone (no result cache):  {t_walk / n * 1e6:8.2f} us/route")
    print(f"  Topology.route, 1,000 keys reused:  {t_repeated / n * 1e6:8.2f} us/route")
    print(f"  linear scan (first {s} keys):      {t_scan / s * 1e6:8.2f} us/route")
    print(f"  scan / Topology.route (random keys): {t_scan / s / (t_topology / n):.0f}x")
    if not args.no_scaling:
        scaling(keys[:20_000])
    consistent_hash(args.chash_keys, args.seed)


def scaling(keys: list[str], sizes: tuple[int, ...] = (0, 10_000, 50_000)) -> None:
    """Route the same keys while adding bindings that cannot match them.

    The extra binding keys start with a word no key has, so a trie never
    visits them: the cost per route should stay flat as they grow.
    """
    rng = random.Random(2)
    print("bindings that cannot match (first word never in a key), trie walk without cache:")
    for size in sizes:
        topo = Topology()
        topo.declare_exchange("bench", "topic")
        topo.add_queue("q")
        same = random.Random(7)
        for _ in range(1000):  # bindings that can match, the same in every round
            topo.bind("bench", Destination("queue", "q"), _pattern(same))
        for i in range(size):
            topo.bind("bench", Destination("queue", "q"), f"other{i % 97}.{_pattern(rng)}.{i}")
        walk = topo.get_exchange("bench").route_uncached  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for k in keys:
            walk(k)
        elapsed = time.perf_counter() - t0
        print(f"  {size:>7} extra bindings: {elapsed / len(keys) * 1e6:8.2f} us/route")


def _time_routes(
    route: Callable[..., object],
    exchange: str,
    keys: list[str],
    headers: list[dict[str, str]] | None = None,
) -> float:
    """Microseconds per ``route(exchange, key, headers)`` over ``keys``."""
    if headers is None:
        t0 = time.perf_counter()
        for k in keys:
            route(exchange, k, None)
    else:
        t0 = time.perf_counter()
        for k, h in zip(keys, headers, strict=True):
            route(exchange, k, h)
    return (time.perf_counter() - t0) / len(keys) * 1e6


def _ring_round(queues: int, keys: list[str], reused: list[str]) -> list[float]:
    topo = Topology()
    topo.declare_exchange("d", "direct")
    topo.declare_exchange("c", "x-consistent-hash")
    topo.declare_exchange("h", "x-consistent-hash", arguments={"hash-header": "user"})
    for q in range(queues):
        topo.add_queue(f"q{q}")
        for x in ("c", "h"):
            topo.bind(x, Destination.queue(f"q{q}"), "1")
    for i, k in enumerate(keys):  # every direct route finds its queue
        topo.bind("d", Destination.queue(f"q{i % queues}"), k)
    route = topo.route
    t_direct = _time_routes(route, "d", keys)
    t_random = _time_routes(route, "c", keys)
    route("c", "warm", None)
    t_reused = _time_routes(route, "c", reused)
    t_header = _time_routes(route, "h", keys, [{"user": k} for k in keys])
    bare = topo.get_exchange("c").route_uncached  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for k in keys:
        bare(k)
    t_bare = (time.perf_counter() - t0) / len(keys) * 1e6
    return [t_direct, t_random, t_reused, t_header, t_bare]


def consistent_hash(n: int, seed: int = 1) -> None:
    """x-consistent-hash next to direct, through Topology.route (us per route)."""
    rng = random.Random(seed)
    keys = [f"order-{rng.randrange(10**12)}" for _ in range(n)]
    reused = [keys[i % 1000] for i in range(n)]
    print(f"x-consistent-hash and direct: {n} routes through Topology.route (us/route)")
    print(f"  {'queues':>6}  {'direct':>7}  {'chash, random keys':>18}  {'chash, 1,000 reused':>19}"
          f"  {'chash by header':>15}  {'chash uncached':>14}")
    for queues in (10, 100, 1000):
        cells = "  ".join(
            f"{t:>{w}.2f}" for t, w in zip(_ring_round(queues, keys, reused),
                                           (7, 18, 19, 15, 14), strict=True)
        )
        print(f"  {queues:>6}  {cells}")
    raw = [k.encode() for k in keys]
    t0 = time.perf_counter()
    hashes = [phash2(r) for r in raw]
    t_phash2 = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for h in hashes:
        jump_consistent_hash(h, 100)
    t_jump = (time.perf_counter() - t0) / n * 1e6
    print(f"  the parts: phash2 of a {len(raw[0])}-byte key {t_phash2:.2f} us, "
          f"jump hash over 100 buckets {t_jump:.2f} us")


if __name__ == "__main__":
    main()
