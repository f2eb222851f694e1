"""`warren serve --config FILE`: declare a configuration file's contents at start.

The file is in the binding-configuration language (`routing.config`,
docs/config-language.md). Its broker-wide statements come first: vhosts,
users (with their password hashes), permissions, topic permissions and vhost
limits, through the same access control the HTTP API uses; then the
policies and operator policies of the default vhost, validated as the
management API validates them (broker.core.policies); then its topology,
through the same `VHost` methods clients reach with exchange.declare,
queue.declare and queue.bind, so the same rules and checks apply: exchanges
first, then queues, then bindings, whatever the order in the file (a binding
may name a queue declared below it). User limits (`max-connections`/
`max-channels` on a user) are set on the user, as RabbitMQ's
`rabbitmqctl set_user_limits` sets them (merged into those it has).
"""

from __future__ import annotations

from pathlib import Path

from broker.auth.access import AccessControl
from broker.auth.permissions import Permission, TopicPermission
from broker.auth.users import User
from broker.core.policies import PolicyInvalid, validate_policy
from broker.core.vhost import VHost
from broker.core.vhosts import VHostRegistry
from broker.logging import get_logger
from routing import config
from routing.model import (
    BindingDecl,
    ExchangeDecl,
    PermissionDecl,
    PolicyDecl,
    QueueDecl,
    TopicPermissionDecl,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)

__all__ = ["ConfigRefused", "apply_access", "apply_config", "load_config"]


class ConfigRefused(ValueError):
    """A statement Warren cannot apply (file:line: why)."""

log = get_logger("warren.config")


def load_config(
    vhosts: VHostRegistry, access: AccessControl, path: str | Path, vhost: str = "/"
) -> None:
    """Parse `path`, apply its broker-wide statements, declare its topology in `vhost`.

    Raises `routing.config.ConfigErrors` for a file that does not parse or
    validate, `ConfigRefused` for a statement Warren cannot apply, and
    `protocol.errors.AMQPError` if a declaration is refused (e.g. an `amq.`
    name); nothing after the failing declaration is applied.
    """
    path = Path(path)
    model = config.parse(path.read_text(encoding="utf-8"), str(path))
    apply_access(vhosts, access, model, str(path))
    apply_config(vhosts[vhost], model, str(path))
    log.info("config.loaded", path=str(path), declarations=len(model.declarations))


def apply_access(
    vhosts: VHostRegistry,
    access: AccessControl,
    model: config.TopologyConfig,
    source: str = "config",
) -> None:
    """Make the file's vhosts, users, permissions, topic permissions and limits."""
    declarations = model.declarations
    for decl in declarations:
        if isinstance(decl, VHostDecl):
            existing = vhosts.get(decl.name)
            vhosts.create(
                decl.name,
                decl.description if decl.description is not None
                else (existing.description if existing else ""),
                tuple(decl.tags) if decl.tags is not None else (existing.tags if existing else ()),
            )
    for decl in declarations:
        if isinstance(decl, UserDecl):
            try:
                user = User(decl.name, decl.password_hash, decl.hashing_algorithm,
                            tuple(decl.tags), dict(decl.limits))
            except ValueError as error:
                raise ConfigRefused(
                    f"{source}:{decl.origin.line}: user {decl.name!r}: {error}"
                ) from None
            access.put_user(user)
    for decl in declarations:
        if isinstance(decl, PermissionDecl):
            access.set_permission(decl.user, decl.vhost,
                                  Permission(decl.configure, decl.write, decl.read))
        elif isinstance(decl, TopicPermissionDecl):
            access.set_topic_permission(decl.user, decl.vhost,
                                        TopicPermission(decl.exchange, decl.write, decl.read))
        elif isinstance(decl, VHostLimitDecl):
            target = vhosts[decl.vhost]
            setattr(target.limits, decl.name.replace("-", "_"), decl.value)
            target.stored()


def apply_config(vhost: VHost, model: config.TopologyConfig, source: str = "config") -> None:
    """Set `model`'s policies in `vhost`, then declare its exchanges, queues and bindings.

    Every policy is validated before any is set (`ConfigRefused` names the
    first one the broker refuses, with its reason).
    """
    declarations = model.declarations
    policies = []
    for decl in declarations:
        if isinstance(decl, PolicyDecl):
            try:
                policies.append(validate_policy(
                    vhost.name, decl.name, pattern=decl.pattern,
                    definition=dict(decl.definition), priority=decl.priority,
                    apply_to=decl.apply_to, operator=decl.operator,
                ))
            except PolicyInvalid as invalid:
                raise ConfigRefused(
                    f"{source}:{decl.origin.line}: {decl.keyword} {decl.name!r}: "
                    + "; ".join(invalid.problems)
                ) from None
    for policy in policies:
        vhost.set_policy(policy)
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
