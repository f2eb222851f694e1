"""The binding-configuration language: parse, check, format, and convert.

::

    from routing import config
    model = config.parse(text, "orders.conf")       # raises config.ConfigErrors
    errors = config.check(text, "orders.conf")      # every error, never raises
    text = config.format(model)                     # canonical text
    defs = config.to_definitions(model)             # RabbitMQ definitions JSON
    model = config.from_definitions(defs)
    model.apply_to(topology)                        # declare it all in a Topology

A file holds one vhost's topology (the vhost it is applied to, ``vhost=``,
``/`` by default) and broker-wide access statements: vhosts, users,
permissions, topic permissions, vhost limits. The language is described in
``docs/config-language.md``.
"""

from __future__ import annotations

from ..model import (
    BindingDecl,
    ExchangeDecl,
    PermissionDecl,
    QueueDecl,
    TopicPermissionDecl,
    TopologyConfig,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)
from .definitions import DefinitionsError, DefinitionsWarning, from_definitions, to_definitions
from .errors import ConfigError, ConfigErrors
from .formatter import format_config
from .parser import parse_config

__all__ = [
    "BindingDecl",
    "ConfigError",
    "ConfigErrors",
    "DefinitionsError",
    "DefinitionsWarning",
    "ExchangeDecl",
    "PermissionDecl",
    "QueueDecl",
    "TopicPermissionDecl",
    "TopologyConfig",
    "UserDecl",
    "VHostDecl",
    "VHostLimitDecl",
    "check",
    "format",
    "from_definitions",
    "parse",
    "to_definitions",
]


def parse(text: str, filename: str = "<config>", vhost: str = "/") -> TopologyConfig:
    """Parse and validate configuration text; raise ``ConfigErrors`` listing every error.

    ``vhost`` is the vhost the file's topology is for: permissions and limits
    may name it (and ``/``) without a ``vhost`` statement.
    """
    config, errors = parse_config(text, filename, vhost)
    if errors:
        raise ConfigErrors(errors)
    return config


def check(text: str, filename: str = "<config>", vhost: str = "/") -> list[ConfigError]:
    """Every error in ``text`` (an empty list when it is valid), in file order."""
    _, errors = parse_config(text, filename, vhost)
    return sorted(errors, key=lambda e: (e.line, e.column))


def format(config: TopologyConfig) -> str:  # noqa: A001 - the public name the CLI uses
    """The canonical text of ``config``: stable, and parses back to the same model."""
    return format_config(config)
