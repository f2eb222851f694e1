"""Property tests: the topic trie against regular expressions, headers matching
against a literal port of RabbitMQ's merge algorithm, route against trace."""

from __future__ import annotations

import datetime
import decimal
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.exchanges import Destination, TopicExchange, headers_match
from routing.exchanges.base import Binding
from routing.topology import Topology

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- topic ------------------------------------------------------------------

# A small alphabet so random keys and patterns actually meet; "" is a word too.
WORDS = st.sampled_from(["a", "b", "c", "", "ab"])
PATTERN_WORDS = st.sampled_from(["a", "b", "c", "", "ab", "*", "#", "#", "*"])


def _join(words: list[str]) -> str:
    return ".".join(words)


keys = st.lists(WORDS, max_size=6).map(_join)
patterns = st.lists(PATTERN_WORDS, max_size=6).map(_join)


def reference_topic_match(pattern: str, key: str) -> bool:
    """The naive matcher: translate the pattern to a regular expression.

    Each word is written as "/word", so the empty key (no words) is "" and
    "a..b" is "/a//b"; "*" is one "/word", "#" any number of them.
    """
    words = pattern.split(".") if pattern else []
    parts = []
    for w in words:
        if w == "*":
            parts.append(r"/[^/]*")
        elif w == "#":
            parts.append(r"(?:/[^/]*)*")
        else:
            parts.append("/" + re.escape(w))
    subject = "".join("/" + w for w in (key.split(".") if key else []))
    return re.fullmatch("".join(parts), subject) is not None


@SETTINGS
@given(st.lists(patterns, max_size=25), st.lists(keys, min_size=1, max_size=10))
def test_topic_trie_matches_regex_reference(pats: list[str], ks: list[str]) -> None:
    x = TopicExchange("t")
    for i, p in enumerate(pats):
        x.add_binding(Binding("t", Destination("queue", f"q{i}"), p))
    for k in ks:
        expected = {f"q{i}" for i, p in enumerate(pats) if reference_topic_match(p, k)}
        assert {d.name for d in x.route_uncached(k)} == expected, k
        assert {d.name for d in x.route(k, None)} == expected, k
        assert {d.name for d in x.route(k, None)} == expected, k  # from the cache
        assert {b.destination.name for b in x.matching_bindings(k, None)} == expected


@SETTINGS
@given(st.lists(patterns, min_size=1, max_size=20), st.data())
def test_topic_unbind_restores_trie(pats: list[str], data: st.DataObject) -> None:
    x = TopicExchange("t")
    bindings = [Binding("t", Destination("queue", f"q{i}"), p) for i, p in enumerate(pats)]
    key = data.draw(keys)
    for b in bindings:
        x.route(key, None)  # fills the cache, which every change must empty
        x.add_binding(b)
    removed = data.draw(st.sets(st.integers(0, len(pats) - 1)))
    for i in removed:
        x.route(key, None)
        assert x.remove_binding(bindings[i])
    expected = {
        f"q{i}" for i, p in enumerate(pats) if i not in removed and reference_topic_match(p, key)
    }
    assert {d.name for d in x.route(key, None)} == expected
    assert {d.name for d in x.route_uncached(key)} == expected
    if len(removed) == len(pats):
        assert x._root.is_empty()  # pruned back to nothing


def test_topic_empty_key_rules_match_rabbitmq() -> None:
    # Observed on RabbitMQ 3.10.8: which of these patterns each key reaches.
    observed = {
        "": ["", "#", "#.#"],
        ".": ["#", "#.#", ".", "*.*", "*.#"],
        "a": ["*", "#", "#.#", "*.#"],
        "a.": ["#", "#.#", "*.*", "*.#"],
    }
    pats = ["", "*", "#", "#.#", ".", "*.*", "*.#"]
    x = TopicExchange("t")
    for p in pats:
        x.add_binding(Binding("t", Destination("queue", p), p))
    for key, expected in observed.items():
        assert sorted(d.name for d in x.route(key, None)) == sorted(expected), key
        assert sorted(p for p in pats if reference_topic_match(p, key)) == sorted(expected)


def test_many_hashes_stay_polynomial() -> None:
    x = TopicExchange("t")
    x.add_binding(Binding("t", Destination("queue", "q"), "#.a.#.a.#.a.#.a.#.b"))
    key = ".".join(["a"] * 120)
    assert x.route(key, None) == frozenset()  # returns at all: no exponential walk
    assert x.route(key + ".b", None) == {Destination("queue", "q")}


# -- headers ------------------------------------------------------------------


class _Atom(str):
    """An Erlang atom in the reference model (true, false, undefined)."""


def erl_term(value: object) -> object:
    """What RabbitMQ holds for a decoded value (rabbit_binary_parser)."""
    if isinstance(value, bool):
        return _Atom("true" if value else "false")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, decimal.Decimal):
        t = value.as_tuple()
        v = int("".join(map(str, t.digits))) * (-1 if t.sign else 1)
        return ("decimal", -t.exponent, v)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if value is None:
        return _Atom("undefined")
    if isinstance(value, dict):
        return [(k, erl_term(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [erl_term(v) for v in value]
    raise TypeError(value)


def erl_eq(a: object, b: object) -> bool:
    """Erlang ==: numbers compare by value across int/float, the rest structurally."""
    if isinstance(a, _Atom) or isinstance(b, _Atom):
        return isinstance(a, _Atom) and isinstance(b, _Atom) and str(a) == str(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(erl_eq(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


def reference_headers_match(args: dict, headers: dict) -> bool:
    """rabbit_exchange_type_headers:headers_match/5, clause by clause, on sorted lists."""
    mode = args.get("x-match", "all")
    if mode not in ("all", "any", "all-with-x", "any-with-x"):
        mode = "all"
    pattern = sorted(args.items())
    data = sorted(headers.items())
    all_match, any_match = True, False
    while True:
        if not all_match and mode.startswith("all"):
            return False
        if any_match and mode.startswith("any"):
            return True
        if not pattern:
            return all_match if mode.startswith("all") else any_match
        pk, pv = pattern[0]
        if pk == "x-match" or (pk.startswith("x-") and not mode.endswith("-with-x")):
            pattern = pattern[1:]
            continue
        if not data:
            all_match = False
            pattern = []
            continue
        dk, dv = data[0]
        if pk > dk:
            data = data[1:]
        elif pk < dk:
            all_match = False
            pattern = pattern[1:]
        elif pv is None:
            any_match = True
            pattern, data = pattern[1:], data[1:]
        elif erl_eq(erl_term(pv), erl_term(dv)):
            any_match = True
            pattern, data = pattern[1:], data[1:]
        else:
            all_match = False
            pattern, data = pattern[1:], data[1:]


HEADER_NAMES = st.sampled_from(["a", "b", "c", "x-a", "x-b", "format"])
SCALARS = st.one_of(
    st.sampled_from([0, 1, 2, True, False, 1.0, 2.5, "1", "a", "b", b"a", bytearray(b"b"), None]),
    st.sampled_from([decimal.Decimal("1"), decimal.Decimal("1.0"), decimal.Decimal("2.5")]),
    st.just(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)),
    st.just(int(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).timestamp())),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.sampled_from(["k", "l"]), SCALARS, max_size=2),
)
MODES = st.sampled_from([None, "all", "any", "all-with-x", "any-with-x"])


@SETTINGS
@given(
    MODES,
    st.dictionaries(HEADER_NAMES, VALUES, max_size=4),
    st.lists(st.dictionaries(HEADER_NAMES, VALUES, max_size=5), min_size=1, max_size=5),
)
def test_headers_match_equals_rabbitmq_algorithm(
    mode: str | None, args: dict, messages: list[dict]
) -> None:
    if mode is not None:
        args = {**args, "x-match": mode}
    for headers in messages:
        assert headers_match(args, headers) == reference_headers_match(args, headers), headers


@SETTINGS
@given(st.dictionaries(HEADER_NAMES, SCALARS, max_size=4), MODES)
def test_headers_binding_matches_its_own_values_in_all_mode(args: dict, mode: str | None) -> None:
    full = {**args, "x-match": mode or "all"}
    if full["x-match"].startswith("all"):
        assert headers_match(full, dict(args))


def test_headers_typed_equality_examples() -> None:
    assert headers_match({"n": 5}, {"n": 5.0})  # Erlang 5 == 5.0
    assert not headers_match({"n": 1}, {"n": True})  # an atom is not an integer
    assert headers_match({"s": "abc"}, {"s": b"abc"})  # longstr and binary are binaries
    assert headers_match({"s": "abc"}, {"s": bytearray(b"abc")})
    assert not headers_match({"d": decimal.Decimal("1.0")}, {"d": decimal.Decimal("1")})
    assert not headers_match({"d": decimal.Decimal("1")}, {"d": 1})
    ts = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert headers_match({"t": int(ts.timestamp())}, {"t": ts})
    assert headers_match({"p": None}, {"p": "anything"})  # void: presence
    assert not headers_match({"p": None}, {})
    assert headers_match({"x-match": "any", "x-a": 1}, {}) is False
    assert headers_match({"x-match": "all", "x-a": 1}, {}) is True
    assert headers_match({"x-match": "all-with-x", "x-a": 1}, {"x-a": 1})
    assert not headers_match({"x-match": "all-with-x", "x-a": 1}, {})


# -- route against trace on random topologies ---------------------------------

EXCHANGES = ["e0", "e1", "e2", "e3"]
QUEUES = ["q0", "q1", "q2"]


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    t = Topology(builtin_exchanges=False)
    for q in QUEUES:
        t.add_queue(q)
    for name in EXCHANGES:
        args = {}
        if draw(st.booleans()):
            args["alternate-exchange"] = draw(st.sampled_from([*EXCHANGES, "missing"]))
        t.declare_exchange(
            name, draw(st.sampled_from(["direct", "fanout", "topic", "headers"])), arguments=args
        )
    for _ in range(draw(st.integers(0, 12))):
        src = draw(st.sampled_from(EXCHANGES))
        if draw(st.booleans()):
            dest = Destination("queue", draw(st.sampled_from(QUEUES)))
        else:
            dest = Destination("exchange", draw(st.sampled_from(EXCHANGES)))
        key = draw(st.sampled_from(["a", "b", "a.b", "#", "*", "a.*"]))
        args = draw(st.sampled_from([{}, {"h": 1}, {"x-match": "any", "h": 1, "g": 2}]))
        t.bind(src, dest, key, args)
    return t


@SETTINGS
@given(
    topologies(),
    st.sampled_from(["", *EXCHANGES]),
    st.sampled_from(["a", "b", "a.b", "q1", "c"]),
    st.sampled_from([None, {"h": 1}, {"g": 2}, {"CC": ["b", "q2"]}, {"BCC": ["a.b"]}]),
)
def test_route_and_trace_agree(t: Topology, exchange: str, key: str, headers: dict | None) -> None:
    queues = t.route(exchange, key, headers)
    assert len(queues) == len(set(queues))
    tr = t.trace(exchange, key, headers)
    assert sorted(tr.queues) == sorted(queues)
    for q, hops in tr.paths.items():
        assert hops[0].source == exchange
        assert hops[-1].destination == Destination("queue", q)
        for a, b in zip(hops, hops[1:], strict=False):
            assert a.destination == Destination("exchange", b.source)
