"""RabbitMQ definitions JSON, both ways.

The shape is what RabbitMQ 3.10's management API exports from
``GET /api/definitions`` (and imports with ``POST``)::

    {"exchanges": [{"name", "vhost", "type", "durable", "auto_delete",
                    "internal", "arguments"}],
     "queues":    [{"name", "vhost", "durable", "auto_delete", "arguments"}],
     "bindings":  [{"source", "vhost", "destination", "destination_type",
                    "routing_key", "arguments"}]}

Users, permissions, policies and parameters are not topology and are ignored.
A whole-broker export holds every vhost; ``from_definitions`` keeps one (items
without a ``vhost`` field, as in a per-vhost export, belong to any). It also
accepts ``null`` argument values as void, which RabbitMQ's import refuses.
Items with nested (table or array) arguments, which the language cannot
write, are left out with a warning rather than refusing the whole export.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ..model import BindingDecl, ExchangeDecl, QueueDecl, TopologyConfig
from .options import OPTION_BY_ARGUMENT, ValueProblem, check_generic, read_value

__all__ = [
    "VOID_IN_JSON",
    "DefinitionsError",
    "DefinitionsWarning",
    "from_definitions",
    "to_definitions",
]


class DefinitionsError(ValueError):
    """Definitions JSON that does not describe a valid topology; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


#: What RabbitMQ 3.10 exports for a void (``V``) argument value: the string
#: "undefined" (its import refuses ``null`` with ``null_not_allowed``). A binding
#: that matches on a header's presence therefore does not survive a trip through
#: RabbitMQ's JSON; we write what RabbitMQ writes, so the output imports there.
VOID_IN_JSON = "undefined"


def _json_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    return {k: VOID_IN_JSON if v is None else v for k, v in arguments.items()}


def to_definitions(config: TopologyConfig, vhost: str = "/") -> dict[str, list[dict[str, Any]]]:
    """The definitions JSON (as Python data) for ``config`` in ``vhost``.

    Void argument values become the string ``"undefined"``, as in RabbitMQ's
    own export (see ``VOID_IN_JSON``).
    """
    return {
        "exchanges": [
            {
                "name": x.name,
                "vhost": vhost,
                "type": x.type,
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": _json_arguments(x.arguments),
            }
            for x in config.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": q.durable,
                "auto_delete": q.auto_delete,
                "arguments": _json_arguments(q.arguments),
            }
            for q in config.queues
        ],
        "bindings": [
            {
                "source": b.source,
                "vhost": vhost,
                "destination": b.destination,
                "destination_type": b.destination_type,
                "routing_key": b.routing_key,
                "arguments": _json_arguments(b.arguments),
            }
            for b in config.bindings
        ],
    }


_SCALARS = (str, int, float, bool, type(None))


class DefinitionsWarning(UserWarning):
    """An item of a definitions export that ``from_definitions`` left out."""


def _warn(message: str) -> None:
    # _warn <- skip <- from_definitions <- its caller, which the warning names.
    warnings.warn(message, DefinitionsWarning, stacklevel=4)


def _nested_argument(item: dict[str, Any]) -> str | None:
    """Why ``item`` cannot be written in the language (an argument that is a
    table or an array), or None."""
    args = item.get("arguments")
    if not isinstance(args, dict):
        return None  # reported as malformed by the reader below
    for name, value in args.items():
        if isinstance(value, dict):
            return f"argument {name!r} is a table, which the configuration language cannot write"
        if isinstance(value, list):
            return f"argument {name!r} is an array, which the configuration language cannot write"
    return None


def from_definitions(
    data: dict[str, Any],
    vhost: str = "/",
    *,
    warn: Callable[[str], None] | None = None,
) -> TopologyConfig:
    """The topology of ``vhost`` in a definitions export.

    The built-in exchanges (``""``, ``amq.*``) are skipped: they always exist.
    An exchange, queue or binding with a nested (table or array) argument is
    skipped too, since the language cannot write one, and so is every binding
    to or from a skipped exchange or queue; each skipped item is passed to
    ``warn`` as a message naming it (without ``warn``, it is issued as a
    ``DefinitionsWarning`` through the ``warnings`` module). The rest is kept.
    Raises ``DefinitionsError`` listing every malformed item.
    """
    problems: list[str] = []
    config = TopologyConfig()
    report = warn if warn is not None else _warn
    skipped_exchanges: set[str] = set()
    skipped_queues: set[str] = set()

    def mine(item: Any, where: str) -> bool:
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object, got {type(item).__name__}")
            return False
        return bool(item.get("vhost", vhost) == vhost)

    def text(item: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = item.get(key, default)
        if not isinstance(value, str):
            problems.append(f"{where}.{key}: expected a string, got {value!r}")
            return ""
        return value

    def flag(item: dict[str, Any], key: str, where: str) -> bool:
        value = item.get(key, False)
        if not isinstance(value, bool):
            problems.append(f"{where}.{key}: expected true or false, got {value!r}")
            return False
        return value

    def arguments(item: dict[str, Any], where: str) -> dict[str, Any]:
        args = item.get("arguments") or {}
        if not isinstance(args, dict):
            problems.append(f"{where}.arguments: expected an object, got {args!r}")
            return {}
        out: dict[str, Any] = {}
        for name, value in args.items():
            if not isinstance(value, _SCALARS):  # not JSON (tables, arrays were skipped)
                problems.append(f"{where}.arguments.{name}: unsupported value {value!r}")
                continue
            option = OPTION_BY_ARGUMENT.get(name)
            try:
                if option is not None and value is not None:
                    value = read_value(option, value)
                else:
                    value = check_generic(value)
            except ValueProblem as problem:
                problems.append(f"{where}.arguments.{name}: {problem.message}")
                continue
            out[name] = value
        return out

    def skip(where: str, what: str, why: str) -> None:
        report(f"{where}: skipped {what}: {why}")

    for i, item in enumerate(data.get("exchanges") or []):
        where = f"exchanges[{i}]"
        if not mine(item, where):
            continue
        name = text(item, "name", where)
        if name == "" or name.startswith("amq."):
            continue
        nested = _nested_argument(item)
        if nested is not None:
            skip(where, f"exchange {name!r}", nested)
            skipped_exchanges.add(name)
            continue
        type_ = text(item, "type", where)
        if type_ not in ("direct", "fanout", "topic", "headers"):
            problems.append(f"{where}.type: unknown exchange type {type_!r}")
        config.declarations.append(
            ExchangeDecl(
                name,
                type_,
                durable=flag(item, "durable", where),
                auto_delete=flag(item, "auto_delete", where),
                internal=flag(item, "internal", where),
                arguments=arguments(item, where),
            )
        )
    for i, item in enumerate(data.get("queues") or []):
        where = f"queues[{i}]"
        if not mine(item, where):
            continue
        name = text(item, "name", where)
        nested = _nested_argument(item)
        if nested is not None:
            skip(where, f"queue {name!r}", nested)
            skipped_queues.add(name)
            continue
        config.declarations.append(
            QueueDecl(
                name,
                durable=flag(item, "durable", where),
                auto_delete=flag(item, "auto_delete", where),
                arguments=arguments(item, where),
            )
        )
    for i, item in enumerate(data.get("bindings") or []):
        where = f"bindings[{i}]"
        if not mine(item, where):
            continue
        dest_type = text(item, "destination_type", where, "queue")
        if dest_type not in ("queue", "exchange"):
            problems.append(f"{where}.destination_type: expected queue or exchange")
        source = text(item, "source", where)
        destination = text(item, "destination", where)
        what = f"binding of {dest_type} {destination!r} to exchange {source!r}"
        nested = _nested_argument(item)
        if nested is not None:
            skip(where, what, nested)
            continue
        # A binding cannot outlive its ends: it goes with a skipped one.
        if source in skipped_exchanges:
            skip(where, what, f"exchange {source!r} was skipped")
            continue
        skipped_ends = skipped_queues if dest_type == "queue" else skipped_exchanges
        if destination in skipped_ends:
            skip(where, what, f"{dest_type} {destination!r} was skipped")
            continue
        config.declarations.append(
            BindingDecl(
                source=source,
                destination=destination,
                destination_type=dest_type,
                routing_key=text(item, "routing_key", where, ""),
                arguments=arguments(item, where),
            )
        )
    if problems:
        raise DefinitionsError(problems)
    return config
