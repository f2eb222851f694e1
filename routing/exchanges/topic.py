"""The topic exchange, over a trie of binding-key words.

AMQP 0-9-1 section 3.1.3.3 and RabbitMQ's rules (rabbit_exchange_type_topic.erl):

- keys and patterns are split into words on ``.``; empty words are words
  (``a..b`` is ``a``, ``""``, ``b``) and the empty key has *no* words at all;
- ``*`` in a pattern matches exactly one word, ``#`` zero or more words;
- anything else matches the identical word.

The trie has one edge per literal word plus a ``*`` edge and a ``#`` edge per
node. A key walks the trie once; the work depends on the key and on the
patterns that share a prefix with it, never on bindings that cannot match (a
linear scan, as in LavinMQ, costs one comparison per binding per message).

``#`` may absorb any number of words, so a pattern with several ``#`` can reach
the same (node, word position) pair many ways; a visited set, made only when the
walk meets a ``#`` (and a new one per ``#`` that is not itself below a ``#``),
keeps the walk polynomial instead of exponential.
Consecutive ``#`` words (``#.#``) are one ``#`` in the trie: they match the same
keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import EMPTY, Binding, Destination, Exchange, _Leaf

__all__ = ["CACHE_SIZE", "TopicExchange", "split_words", "trie_words"]

#: Routing keys whose result a topic exchange remembers. Real publishers reuse a
#: handful of keys (``order.eu.created``...), so most routes are one dict hit;
#: the cache is emptied whenever a binding changes, and when it is full.
CACHE_SIZE = 4096


def split_words(key: str) -> list[str]:
    """Split a routing key or binding key into words the way RabbitMQ does."""
    return key.split(".") if key else []


def trie_words(pattern: str) -> list[str]:
    """The words of ``pattern`` as stored in the trie (``#.#`` collapsed)."""
    out: list[str] = []
    for word in split_words(pattern):
        if word == "#" and out and out[-1] == "#":
            continue
        out.append(word)
    return out


class _Node:
    __slots__ = ("children", "star", "hash", "leaf")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.leaf: _Leaf | None = None

    def is_empty(self) -> bool:
        return not self.children and self.star is None and self.hash is None and self.leaf is None


def _collect(
    node: _Node,
    words: list[str],
    i: int,
    n: int,
    out: list[_Leaf],
    seen: set[tuple[int, int]] | None,
) -> None:
    """Append to ``out`` the leaf of every pattern matching ``words[i:]`` from ``node``.

    ``seen`` is None until the walk has passed a ``#``: only below one can the
    same (node, position) pair be reached twice.
    """
    while True:
        h = node.hash
        if h is not None:
            # '#' absorbs words[i:j] for every j from i (nothing) to n (all the rest).
            if seen is None:
                inner: set[tuple[int, int]] = set()
                for j in range(i, n + 1):
                    _collect(h, words, j, n, out, inner)
            else:
                hid = id(h)
                for j in range(i, n + 1):
                    state = (hid, j)
                    if state not in seen:
                        seen.add(state)
                        _collect(h, words, j, n, out, seen)
        if i == n:
            if node.leaf is not None:
                out.append(node.leaf)
            return
        s = node.star
        if s is not None:
            _collect(s, words, i + 1, n, out, seen)
        child = node.children.get(words[i])
        if child is None:
            return
        node = child
        i += 1


class TopicExchange(Exchange):
    TYPE = "topic"
    __slots__ = ("_root", "_cache")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._root = _Node()
        self._cache: dict[str, frozenset[Destination]] = {}

    def _index_add(self, binding: Binding) -> None:
        self._cache.clear()
        node = self._root
        for word in trie_words(binding.routing_key):
            if word == "*":
                if node.star is None:
                    node.star = _Node()
                node = node.star
            elif word == "#":
                if node.hash is None:
                    node.hash = _Node()
                node = node.hash
            else:
                child = node.children.get(word)
                if child is None:
                    child = node.children[word] = _Node()
                node = child
        if node.leaf is None:
            node.leaf = _Leaf()
        node.leaf.add(binding)

    def _index_remove(self, binding: Binding) -> None:
        self._cache.clear()
        # Walk down remembering the path, then prune nodes left empty.
        path: list[tuple[_Node, str]] = []
        node = self._root
        for word in trie_words(binding.routing_key):
            path.append((node, word))
            if word == "*":
                nxt = node.star
            elif word == "#":
                nxt = node.hash
            else:
                nxt = node.children.get(word)
            assert nxt is not None, "binding present but not in the trie"
            node = nxt
        leaf = node.leaf
        assert leaf is not None
        leaf.remove(binding)
        if leaf:
            return
        node.leaf = None
        for parent, word in reversed(path):
            if not node.is_empty():
                break
            if word == "*":
                parent.star = None
            elif word == "#":
                parent.hash = None
            else:
                del parent.children[word]
            node = parent

    def _leaves(self, routing_key: str) -> list[_Leaf]:
        words = routing_key.split(".") if routing_key else []
        out: list[_Leaf] = []
        _collect(self._root, words, 0, len(words), out, None)
        return out

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        cache = self._cache
        hit = cache.get(routing_key)
        if hit is not None:
            return hit
        leaves = self._leaves(routing_key)
        if not leaves:
            result = EMPTY
        elif len(leaves) == 1:
            result = leaves[0].destinations
        else:
            result = frozenset().union(*[leaf.destinations for leaf in leaves])
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[routing_key] = result
        return result

    def route_uncached(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> frozenset[Destination]:
        """``route`` without the result cache: the trie walk alone (benchmarks, tests)."""
        leaves = self._leaves(routing_key)
        if not leaves:
            return EMPTY
        if len(leaves) == 1:
            return leaves[0].destinations
        return frozenset().union(*[leaf.destinations for leaf in leaves])

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        found: dict[Binding, None] = {}
        for leaf in self._leaves(routing_key):
            found.update(leaf.bindings)
        return list(found)
