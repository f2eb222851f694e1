"""The fanout exchange: every binding matches, whatever the key.

AMQP 0-9-1 section 3.1.3.2. The destination set is kept ready, so routing is a
single attribute read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import Binding, Destination, Exchange, _Leaf

__all__ = ["FanoutExchange"]


class FanoutExchange(Exchange):
    TYPE = "fanout"
    __slots__ = ("_all",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all = _Leaf()

    def _index_add(self, binding: Binding) -> None:
        self._all.add(binding)

    def _index_remove(self, binding: Binding) -> None:
        self._all.remove(binding)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> frozenset[Destination]:
        return self._all.destinations

    def route_keys(
        self, routing_keys: Iterable[str], headers: Mapping[str, Any] | None
    ) -> frozenset[Destination]:
        return self._all.destinations

    def matching_bindings(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Binding]:
        return list(self._all.bindings)
