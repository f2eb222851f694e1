"""The pieces of Erlang's runtime the consistent-hash exchange must reproduce.

RabbitMQ's ``x-consistent-hash`` plugin (rabbit_exchange_type_consistent_hash.erl,
3.10.8) picks a bucket with ``erlang:phash2/1`` of a term and a jump consistent
hash driven by ``rand``'s ``exs1024`` generator, and words its binding error
with io_lib's ``~p`` of the binding key. Routing the same keys to the same
queues as RabbitMQ means computing exactly what those compute:

- ``phash2(term)``: ERTS ``make_hash2`` (erts/emulator/beam/utils.c) on the
  terms the plugin hashes: binaries (a routing key, a property), atoms
  (``undefined``), integers, floats, tuples and lists (a header's
  ``{Type, Value}``, tables and arrays), reduced to 27 bits as ``phash2/1``
  does. Atoms are ``Atom``, binaries ``bytes``, tuples ``tuple``, lists ``list``.
- ``jump_consistent_hash(key, buckets)``: the plugin's loop over
  ``rand:uniform_s`` of an ``exs1024`` state seeded with ``{Key, Key, Key}``
  (Xorshift1024*, seeded through Xorshift64*; ``uniform_s`` of this legacy
  algorithm is ``V / 2^64``).
- ``format_binary(raw, column)``: ``io_lib:format("~p", [Binary])`` for the
  binding-key error text, including the line breaks ``io_lib_pretty`` puts in
  a long run of bytes.

Every function here was checked against ``erl`` (OTP 25, the runtime of the
reference RabbitMQ 3.10.8): ``tests/routing/test_consistent_hash_erlang.py``
holds the vectors, and recomputes them with ``erl`` when it is installed.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = [
    "PHASH2_RANGE",
    "Atom",
    "format_binary",
    "jump_consistent_hash",
    "phash2",
]

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_M21 = 0x1FFFFF

#: ``erlang:phash2/1`` answers in 0 .. 2^27 - 1.
PHASH2_RANGE = 1 << 27

#: The golden ratio constant of make_hash2, and its multiples HCONST_n.
_HCONST = 0x9E3779B9


def _hconst(n: int) -> int:
    return (_HCONST * n) & _M32


_HCONST_2 = _hconst(2)
_HCONST_3 = _hconst(3)
_HCONST_4 = _hconst(4)
_HCONST_9 = _hconst(9)
_HCONST_10 = _hconst(10)
_HCONST_11 = _hconst(11)
_HCONST_12 = _hconst(12)
_HCONST_13 = _hconst(13)
#: make_hash2's value for [] as the whole term.
_NIL_HASH = 3468870702
_NIL_DEF = 0x2


class Atom(str):
    """An Erlang atom (a ``str`` subclass, so it prints and compares by name)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str(self)!r})"


UNDEFINED = Atom("undefined")


def _mix(a: int, b: int, c: int) -> int:
    """Bob Jenkins' 96-bit mix (lookup2), as make_hash2's MIX; returns c."""
    a = ((a - b - c) & _M32) ^ (c >> 13)
    b = ((b - c - a) & _M32) ^ ((a << 8) & _M32)
    c = ((c - a - b) & _M32) ^ (b >> 13)
    a = ((a - b - c) & _M32) ^ (c >> 12)
    b = ((b - c - a) & _M32) ^ ((a << 16) & _M32)
    c = ((c - a - b) & _M32) ^ (b >> 5)
    a = ((a - b - c) & _M32) ^ (c >> 3)
    b = ((b - c - a) & _M32) ^ ((a << 10) & _M32)
    return ((c - a - b) & _M32) ^ (b >> 15)


def _hash2(x: int, y: int, const: int, h: int) -> int:
    """UINT32_HASH_2(x, y, const) applied to the running hash ``h``."""
    return _mix((const + x) & _M32, (const + y) & _M32, h)


_BLOCK = struct.Struct("<3I")


def block_hash(data: bytes, initval: int) -> int:
    """make_hash2's ``block_hash``: lookup2 over the bytes, seeded with ``initval``."""
    length = len(data)
    a = b = _HCONST
    c = initval
    end = length - length % 12
    unpack = _BLOCK.unpack_from
    for off in range(0, end, 12):
        x, y, z = unpack(data, off)
        a = (a + x) & _M32
        b = (b + y) & _M32
        c = (c + z) & _M32
        # MIX(a, b, c), keeping all three (the loop carries them).
        a = ((a - b - c) & _M32) ^ (c >> 13)
        b = ((b - c - a) & _M32) ^ ((a << 8) & _M32)
        c = ((c - a - b) & _M32) ^ (b >> 13)
        a = ((a - b - c) & _M32) ^ (c >> 12)
        b = ((b - c - a) & _M32) ^ ((a << 16) & _M32)
        c = ((c - a - b) & _M32) ^ (b >> 5)
        a = ((a - b - c) & _M32) ^ (c >> 3)
        b = ((b - c - a) & _M32) ^ ((a << 10) & _M32)
        c = ((c - a - b) & _M32) ^ (b >> 15)
    c = (c + length) & _M32
    tail = data[end:]
    n = len(tail)
    # The fall-through switch of block_hash: bytes 8..10 go to c (from bit 8:
    # its low byte holds the length), 4..7 to b, 0..3 to a, little-endian.
    if n > 8:
        c = (c + (int.from_bytes(tail[8:], "little") << 8)) & _M32
    if n > 4:
        b = (b + int.from_bytes(tail[4:8], "little")) & _M32
    if n:
        a = (a + int.from_bytes(tail[:4], "little")) & _M32
    return _mix(a, b, c)


def _atom_hash(name: str) -> int:
    """The atom table's hash of an atom's name (hashpjw, atom.c ``atom_hash``)."""
    raw = name.encode("utf-8")
    h = 0
    i = 0
    n = len(raw)
    while i < n:
        v = raw[i]
        i += 1
        # "latin1 clutch for r16": a two-byte UTF-8 sequence of a latin1
        # character is hashed as that character.
        if i < n and (v & 0xFE) == 0xC2 and (raw[i] & 0xC0) == 0x80:
            v = ((v << 6) | (raw[i] & 0x3F)) & 0xFF
            i += 1
        h = ((h << 4) + v) & _M32
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
            h ^= g
    return h


def _hash_integer(value: int, h: int) -> int:
    if -(1 << 27) <= value < (1 << 27):
        # SINT32_HASH: negative numbers are mixed twice (a quirk of make_hash2).
        if value < 0:
            h = _hash2((-value) & _M32, 0, _HCONST, h)
        return _hash2(value & _M32, 0, _HCONST, h)
    # Wider integers are hashed as bignums: 64-bit digits of the magnitude,
    # low half then high half, with the sign in the constant.
    const = _HCONST_10 if value < 0 else _HCONST_11
    magnitude = -value if value < 0 else value
    while True:
        digit = magnitude & _M64
        h = _hash2(digit & _M32, digit >> 32, const, h)
        magnitude >>= 64
        if not magnitude:
            return h


_DOUBLE = struct.Struct("<d")
_WORDS = struct.Struct("<II")


def _hash_float(value: float, h: int) -> int:
    if value == 0.0:
        value = 0.0  # -0.0 hashes as 0.0
    low, high = _WORDS.unpack(_DOUBLE.pack(value))
    return _hash2(high, low, _HCONST_12, h)


def phash2(term: Any) -> int:
    """``erlang:phash2(Term)``: a hash in 0 .. 2^27 - 1, the same on every node.

    ``term`` is built from ``Atom``, ``bytes`` (binaries), ``int``, ``float``,
    ``tuple`` and ``list``. A ``str`` that is not an ``Atom`` is refused: say
    whether it is an atom or a binary (``text.encode()``).
    """
    if isinstance(term, Atom):
        return _atom_hash(term) & (PHASH2_RANGE - 1)
    if isinstance(term, bytes) and term:
        return block_hash(term, _HCONST_13) & (PHASH2_RANGE - 1)
    return _make_hash2(term) & (PHASH2_RANGE - 1)


_POP = object()


def _make_hash2(term: Any) -> int:
    """make_hash2 with an explicit stack, in the C code's order."""
    h = 0
    stack: list[Any] = []
    while True:
        if isinstance(term, list) and term:
            # [H|T]: a run of small integers 0..255 (a string) is hashed four
            # at a time; otherwise H is hashed, then T.
            i = 0
            n = len(term)
            if _is_byte(term[0]):
                shifted = 0
                count = 0
                while i < n and _is_byte(term[i]):
                    shifted = ((shifted << 8) + term[i]) & _M32
                    i += 1
                    if count == 3:
                        h = _hash2(shifted, 0, _HCONST_4, h)
                        count = shifted = 0
                    else:
                        count += 1
                if count:
                    h = _hash2(shifted, 0, _HCONST_4, h)
                if i == n:
                    term = []
                    continue
            stack.append(term[i + 1 :])
            term = term[i]
            continue
        if isinstance(term, tuple):
            h = _hash2(len(term), 0, _HCONST_9, h)
            if term:
                stack.extend(reversed(term[1:]))
                term = term[0]
                continue
        elif isinstance(term, Atom):
            ah = _atom_hash(term)
            h = ah if h == 0 else _hash2(ah, 0, _HCONST_3, h)
        elif isinstance(term, list):  # []
            h = _NIL_HASH if h == 0 else _hash2(_NIL_DEF, 0, _HCONST_2, h)
        elif isinstance(term, bytes | bytearray):
            const = (_HCONST_13 + h) & _M32
            h = block_hash(bytes(term), const) if term else const
        elif isinstance(term, bool):
            raise TypeError("booleans are the atoms true and false: use Atom('true')")
        elif isinstance(term, int):
            h = _hash_integer(term, h)
        elif isinstance(term, float):
            h = _hash_float(term, h)
        else:
            raise TypeError(f"phash2 of {type(term).__name__} is not implemented")
        if not stack:
            return h
        term = stack.pop()


def _is_byte(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 255


# -- rand:seed_s(exs1024, {K, K, K}) and uniform_s/1 -----------------------------------


def _exs1024_state(key: int) -> list[int]:
    """The 16 words of ``rand:seed_s(exs1024, {Key, Key, Key})``, first word first.

    rand.erl: three 21-bit values from the seed triple make a 64-bit seed for
    Xorshift64*, whose first 16 outputs (last generated first) are the state.
    """
    k = (key & _M21) + 1
    r = (
        ((k * 2097131) & _M21) << 43
        | ((k * 2097133) & _M21) << 22
        | ((k * 2097143) & _M21) << 1
        | 1
    )
    out = []
    for _ in range(16):
        r ^= r >> 12
        r ^= (r << 25) & _M64
        r ^= r >> 27
        out.append((r * 2685821657736338717) & _M64)
    out.reverse()
    return out


def jump_consistent_hash(key: int, buckets: int) -> int:
    """The plugin's ``jump_consistent_hash(Key, NumberOfBuckets)``: 0 .. buckets - 1.

    Lamping and Veach's jump hash, with the plugin's random source: each
    candidate bucket ``j = trunc((b + 1) / r)``, ``r`` the next
    ``rand:uniform_s`` float of an ``exs1024`` state seeded with the key.
    Growing ``buckets`` only ever moves a key to one of the new buckets.
    """
    if buckets <= 1:
        return 0
    state = _exs1024_state(key)
    p = 0
    b = -1
    j = 0
    while j < buckets:
        b = j
        # exs1024_next: Xorshift1024* over the 16 words as a ring.
        s0 = state[p]
        p = (p + 1) & 15
        s1 = state[p]
        s1 ^= (s1 << 31) & _M64
        s1 ^= s1 >> 11
        s1 ^= s0 ^ (s0 >> 30)
        state[p] = s1
        r = ((s1 * 1181783497276652981) & _M64) / 18446744073709551616.0
        # r == 0.0 would need a zero word; Erlang would crash (badarith) there.
        j = int((b + 1) / r)
    return b


# -- io_lib:format("~p", [Binary]) -----------------------------------------------------

#: Escapes ``~p`` writes inside a printable string.
_ESCAPES = {
    0x22: '\\"',
    0x5C: "\\\\",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x08: "\\b",
    0x0C: "\\f",
    0x1B: "\\e",
}

#: The line length io_lib_pretty fills to.
_LINE = 80


def _printable_latin1(raw: bytes) -> bool:
    """io_lib:printable_latin1_list/1 over the bytes."""
    return all(32 <= c <= 126 or 160 <= c or c in _ESCAPES for c in raw)


def format_binary(raw: bytes, column: int = 0) -> str:
    """``io_lib:format("~p", [Raw])`` for a binary printed at ``column``.

    Printable bytes (latin1) give ``<<"...">>`` with Erlang's escapes, each byte
    one character (so UTF-8 text reads back as the same bytes); anything else
    gives ``<<1,2,3>>``, broken into lines that io_lib_pretty fills to 80
    columns, continuation lines indented under the first byte.
    """
    if not raw:
        return "<<>>"
    if _printable_latin1(raw):
        text = "".join(_ESCAPES.get(c) or chr(c) for c in raw)
        return f'<<"{text}">>'
    indent = column + 2
    lines: list[str] = []
    line = ""
    last = len(raw) - 1
    for i, byte in enumerate(raw):
        item = str(byte) if i == last else f"{byte},"
        # A byte goes on the line if it ends by column 79 (its comma included,
        # the closing ">>" not), which is what io_lib_pretty does.
        if line and indent + len(line) + len(item) > _LINE - 1:
            lines.append(line)
            line = ""
        line += item
    lines.append(line)
    return "<<" + ("\n" + " " * indent).join(lines) + ">>"
