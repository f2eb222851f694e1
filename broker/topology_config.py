"""`warren serve --config FILE`: declare a configuration file's topology at start.

The file is in the binding-configuration language (`routing.config`,
docs/config-language.md). Everything is declared through the same `VHost`
methods clients reach with exchange.declare, queue.declare and queue.bind, so
the same rules and checks apply: exchanges first, then queues, then bindings,
whatever the order in the file (a binding may name a queue declared below it).
"""

from __future__ import annotations

from pathlib import Path

from broker.core.vhost import VHost
from broker.logging import get_logger
from routing import config
from routing.model import BindingDecl, ExchangeDecl, QueueDecl

__all__ = ["load_config", "apply_config"]

log = get_logger("warren.config")


def load_config(vhost: VHost, path: str | Path) -> None:
    """Parse `path` and declare its topology in `vhost`.

    Raises `routing.config.ConfigErrors` for a file that does not parse or
    validate, and `protocol.errors.AMQPError` if a declaration is refused
    (e.g. an `amq.` name); nothing after the failing declaration is applied.
    """
    path = Path(path)
    model = config.parse(path.read_text(encoding="utf-8"), str(path))
    apply_config(vhost, model)
    log.info("config.loaded", path=str(path), declarations=len(model.declarations))


def apply_config(vhost: VHost, model: config.TopologyConfig) -> None:
    """Declare every exchange, queue and binding of `model` in `vhost`."""
    declarations = model.declarations
    for decl in declarations:
        if isinstance(decl, ExchangeDecl):
            vhost.declare_exchange(
                decl.name,
                decl.type,
                durable=decl.durable,
                auto_delete=decl.auto_delete,
                internal=decl.internal,
                arguments=dict(decl.arguments),
            )
    for decl in declarations:
        if isinstance(decl, QueueDecl):
            vhost.declare_queue(
                None,
                decl.name,
                durable=decl.durable,
                auto_delete=decl.auto_delete,
                arguments=dict(decl.arguments),
            )
    for decl in declarations:
        if isinstance(decl, BindingDecl):
            if decl.destination_type == "exchange":
                vhost.bind_exchange(
                    decl.destination, decl.source, decl.routing_key, dict(decl.arguments)
                )
            else:
                vhost.bind_queue(
                    None, decl.destination, decl.source, decl.routing_key, dict(decl.arguments)
                )
