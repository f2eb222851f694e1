"""The direct exchange: a binding matches when its key equals the routing key.

AMQP 0-9-1 section 3.1.3.1. One dict lookup per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import EMPTY, Binding, Destination, Exchange, _Leaf

__all__ = ["DirectExchange"]


class DirectExchange(Exchange):
    TYPE = "direct"
    __slots__ = ("_by_key",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_key: dict[str, _Leaf] = {}

    def _index_add(self, binding: Binding) -> None:
        leaf = self._by_key.get(binding.routing_key)
        if leaf is None:
            leaf = self._by_key[binding.routing_key] = _Leaf()
        leaf.add(binding)

    def _index_remove(self, binding: Binding) -> None:
        leaf = self._by_key[binding.routing_key]
        leaf.remove(binding)
        if not leaf:
            del self._by_key[binding.routing_key]

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        leaf = self._by_key.get(routing_key)
        return EMPTY if leaf is None else leaf.destinations

    def route_keys(
        self, routing_keys: Iterable[str], headers: Mapping[str, Any] | None
    ) -> frozenset[Destination] | set[Destination]:
        out: set[Destination] = set()
        get = self._by_key.get
        for key in routing_keys:
            leaf = get(key)
            if leaf is not None:
                out.update(leaf.destinations)
        return out

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        leaf = self._by_key.get(routing_key)
        return [] if leaf is None else list(leaf.bindings)
