"""routing.exchanges.erlang computes what Erlang/OTP computes.

The consistent-hash exchange routes as RabbitMQ's plugin only if ``phash2``,
the ``exs1024`` jump hash and the ``~p`` of a binding key are Erlang's to the
bit. ``data/chash-erlang-vectors.json`` holds answers computed by ``erl``
(OTP 25, the runtime of the reference RabbitMQ 3.10.8) for random terms, key
hashes and binding keys; the tests check every one. When ``erl`` is installed,
further random cases are computed by it on the spot. Regenerate the file with

    .venv/bin/python tests/routing/test_consistent_hash_erlang.py
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from routing.exchanges.erlang import (
    PHASH2_RANGE,
    Atom,
    format_binary,
    jump_consistent_hash,
    phash2,
)

VECTORS = Path(__file__).parent / "data" / "chash-erlang-vectors.json"
ERL = shutil.which("erl")
#: The error text whose ~p the binding-key vectors were made with.
PREFIX = "The binding key must be an integer: "


# -- terms: Python <-> JSON <-> Erlang text ---------------------------------------------


def to_json(term: Any) -> Any:
    if isinstance(term, Atom):
        return {"atom": str(term)}
    if isinstance(term, bytes):
        return {"bin": term.hex()}
    if isinstance(term, int):
        return {"int": str(term)}
    if isinstance(term, float):
        return {"float": term.hex()}
    if isinstance(term, tuple):
        return {"tuple": [to_json(t) for t in term]}
    assert isinstance(term, list)
    return {"list": [to_json(t) for t in term]}


def from_json(data: Any) -> Any:
    ((kind, value),) = data.items()
    if kind == "atom":
        return Atom(value)
    if kind == "bin":
        return bytes.fromhex(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float.fromhex(value)
    if kind == "tuple":
        return tuple(from_json(v) for v in value)
    return [from_json(v) for v in value]


def to_erlang(term: Any) -> str:
    """Erlang source text of a term (read back with file:consult)."""
    if isinstance(term, Atom):
        return "'" + str(term).replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(term, bytes):
        return "<<" + ",".join(map(str, term)) + ">>"
    if isinstance(term, int):
        return str(term)
    if isinstance(term, float):
        text = repr(term)
        if "e" in text:
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            return f"{mantissa}e{int(exponent)}"
        return text
    if isinstance(term, tuple):
        return "{" + ",".join(map(to_erlang, term)) + "}"
    return "[" + ",".join(map(to_erlang, term)) + "]"


def random_terms(rng: random.Random, n: int) -> list[Any]:
    ints = [0, 1, -1, 5, -5, 255, 256, 2**27 - 1, 2**27, -(2**27), -(2**27) - 1, 2**31,
            2**32, 2**59, -(2**59), 2**63 - 1, -(2**63), 2**64 - 1, 2**64, 2**70]  # fmt: skip
    atoms = ["undefined", "longstr", "signedint", "long", "true", "false", "table",
             "array", "void", "decimal", "timestamp", "double", "bool", "binary", "é"]  # fmt: skip

    def binary() -> bytes:
        size = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 16, 23, 24, 25, 40, 100])
        return bytes(rng.randrange(256) for _ in range(size))

    def term(depth: int) -> Any:
        kind = rng.randrange(8 if depth < 3 else 5)
        if kind == 0:
            return binary()
        if kind == 1:
            return Atom(rng.choice(atoms))
        if kind == 2:
            return rng.choice([*ints, rng.randrange(-(2**40), 2**40)])
        if kind == 3:
            return rng.choice([0.0, -0.0, 1.5, -2.25, 1e300, 3.141592653589793, rng.random()])
        if kind == 4:
            return (Atom("longstr"), binary())
        if kind == 5:
            return tuple(term(depth + 1) for _ in range(rng.randrange(4)))
        if kind == 6:
            return [term(depth + 1) for _ in range(rng.randrange(4))]
        return rng.choice([[1, 2, 3], [0, 255, 7, 300, 4], list(b"hello world"), [1, Atom("x")], []])

    return [term(0) for _ in range(n)]


def random_jumps(rng: random.Random, n: int) -> list[tuple[int, int]]:
    sizes = [1, 2, 3, 5, 10, 16, 17, 100, 1000, 10**6, 10**12, 2**40]
    return [(rng.randrange(PHASH2_RANGE), rng.choice(sizes)) for _ in range(n)]


def random_keys(rng: random.Random, n: int) -> list[bytes]:
    alphabet = [0, 1, 9, 10, 16, 27, 34, 48, 57, 92, 97, 126, 127, 128, 159, 160, 200, 255]
    return [bytes(rng.choice(alphabet) for _ in range(rng.randrange(70))) for _ in range(n)]


# -- asking erl ----------------------------------------------------------------------------

_JUMP = (
    "J = fun Loop(B, Jv, N, _S) when Jv >= N -> B; "
    "Loop(_B, Jv, N, S0) -> {R, S} = rand:uniform_s(S0), "
    "Loop(Jv, trunc((Jv + 1) / R), N, S) end, "
    "H = fun(_K, 1) -> 0; (K, N) -> J(-1, 0, N, rand:seed_s(exs1024, {K, K, K})) end, "
)


def erl_lines(items: list[str], expression: str) -> list[str]:
    """Run ``expression`` (over ``Items``, read from a file) in erl; its lines."""
    assert ERL is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.txt"
        path.write_text("%% coding: utf-8\n" + "".join(f"{i}.\n" for i in items), "utf-8")
        program = f'{{ok, Items}} = file:consult("{path}"), {expression}, halt().'
        result = subprocess.run(
            [ERL, "-noshell", "-eval", program], capture_output=True, text=True, cwd=tmp
        )
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    return result.stdout.splitlines()


def erl_phash2(terms: list[Any]) -> list[int]:
    out = erl_lines(
        [to_erlang(t) for t in terms],
        '[io:format("~w~n", [erlang:phash2(T)]) || T <- Items]',
    )
    return [int(line) for line in out]


def erl_jumps(pairs: list[tuple[int, int]]) -> list[int]:
    out = erl_lines(
        [f"{{{k},{n}}}" for k, n in pairs],
        _JUMP + '[io:format("~w~n", [H(K, N)]) || {K, N} <- Items]',
    )
    return [int(line) for line in out]


def erl_formats(keys: list[bytes]) -> list[str]:
    """io_lib:format's text for each key, as the bytes RabbitMQ would send (latin1)."""
    out = erl_lines(
        [to_erlang(k) for k in keys],
        f'[io:format("~w~n", [list_to_binary(io_lib:format("{PREFIX}~p", [K]))]) '
        "|| K <- Items]",
    )
    texts = []
    for line in out:
        assert line.startswith("<<") and line.endswith(">>"), line
        inner = line[2:-2]
        texts.append(bytes(int(b) for b in inner.split(",") if b).decode("latin-1"))
    return texts


def my_format(key: bytes) -> str:
    """Ours, as the same latin1 text (each byte of a printable binary is one char)."""
    return PREFIX + format_binary(key, len(PREFIX))


# -- the stored vectors ------------------------------------------------------------------------


def load() -> dict[str, Any]:
    return json.loads(VECTORS.read_text())


def test_phash2_matches_erlang_vectors() -> None:
    cases = load()["phash2"]
    assert len(cases) >= 1000
    for case in cases:
        term = from_json(case["term"])
        assert phash2(term) == case["phash2"], case


def test_phash2_of_the_terms_the_exchange_hashes() -> None:
    # A routing key, the atom for "no such header/property", a header pair.
    expected = {c["label"]: c["phash2"] for c in load()["named"]}
    assert phash2(b"") == expected["<<>>"]
    assert phash2(b"order-17") == expected['<<"order-17">>']
    assert phash2(Atom("undefined")) == expected["undefined"]
    assert phash2((Atom("longstr"), b"alice")) == expected['{longstr,<<"alice">>}']
    assert phash2((Atom("signedint"), 42)) == expected["{signedint,42}"]
    assert phash2((Atom("bool"), Atom("true"))) == expected["{bool,true}"]


def test_jump_consistent_hash_matches_erlang_vectors() -> None:
    cases = load()["jump"]
    assert len(cases) >= 1000
    for key, buckets, bucket in cases:
        assert jump_consistent_hash(key, buckets) == bucket, (key, buckets)


def test_binding_key_text_matches_io_lib_vectors() -> None:
    cases = load()["format"]
    assert len(cases) >= 200
    for case in cases:
        key = bytes.fromhex(case["key"])
        assert my_format(key) == case["text"], key


def test_phash2_refuses_a_str_that_is_not_an_atom() -> None:
    with pytest.raises(TypeError):
        phash2("text")
    with pytest.raises(TypeError):
        phash2(True)


def test_jump_stays_in_range_and_one_bucket_is_zero() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        key = rng.randrange(PHASH2_RANGE)
        buckets = rng.randrange(1, 500)
        assert 0 <= jump_consistent_hash(key, buckets) < buckets
    assert jump_consistent_hash(12345, 1) == 0


def test_growing_the_bucket_count_only_moves_keys_to_new_buckets() -> None:
    # The jump hash property the exchange's "adding a queue moves only its
    # share" rests on: from n to n + k buckets, a key stays or goes to >= n.
    for key in range(0, PHASH2_RANGE, PHASH2_RANGE // 3000):
        before = jump_consistent_hash(key, 10)
        after = jump_consistent_hash(key, 13)
        assert after == before or after >= 10


# -- against erl itself, when it is installed -------------------------------------------------

needs_erl = pytest.mark.skipif(ERL is None, reason="erl (Erlang/OTP) is not installed")


@needs_erl
def test_phash2_against_live_erl() -> None:
    terms = random_terms(random.Random(), 500)
    assert [phash2(t) for t in terms] == erl_phash2(terms)


@needs_erl
def test_jump_against_live_erl() -> None:
    pairs = random_jumps(random.Random(), 500)
    assert [jump_consistent_hash(k, n) for k, n in pairs] == erl_jumps(pairs)


@needs_erl
def test_format_against_live_erl() -> None:
    keys = random_keys(random.Random(), 200)
    assert [my_format(k) for k in keys] == erl_formats(keys)


def regenerate() -> None:
    rng = random.Random(20260101)
    terms = random_terms(rng, 1000)
    named = {
        "<<>>": b"",
        '<<"order-17">>': b"order-17",
        "undefined": Atom("undefined"),
        '{longstr,<<"alice">>}': (Atom("longstr"), b"alice"),
        "{signedint,42}": (Atom("signedint"), 42),
        "{bool,true}": (Atom("bool"), Atom("true")),
    }
    pairs = random_jumps(rng, 1000) + [(k, n) for k in range(40) for n in (2, 7, 64)]
    keys = random_keys(rng, 150)
    keys += [b"\x01" * n for n in range(1, 70)] + [b"\x7f" * n for n in range(1, 40)]
    keys += [b"", b"abc", b"x" * 255, "日本".encode() * 20, "é".encode(), b'a"b\\c\n\t\x1b']
    data = {
        "about": "answers of erl (OTP 25) for routing.exchanges.erlang; see "
        "tests/routing/test_consistent_hash_erlang.py",
        "phash2": [
            {"term": to_json(t), "phash2": h} for t, h in zip(terms, erl_phash2(terms), strict=True)
        ],
        "named": [
            {"label": label, "phash2": h}
            for label, h in zip(named, erl_phash2(list(named.values())), strict=True)
        ],
        "jump": [[k, n, b] for (k, n), b in zip(pairs, erl_jumps(pairs), strict=True)],
        "format": [
            {"key": k.hex(), "text": text} for k, text in zip(keys, erl_formats(keys), strict=True)
        ],
    }
    VECTORS.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {VECTORS}")


if __name__ == "__main__":
    regenerate()
