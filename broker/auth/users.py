"""Users: a name, a password hash (RabbitMQ's), and tags.

Tags are RabbitMQ's: `administrator`, `monitoring`, `policymaker`,
`management` decide what a user may do in the management plane;
`impersonator` lets a user publish messages whose `user_id` property names
someone else. Other tags are kept (RabbitMQ allows arbitrary ones) and mean
nothing to Warren.

A user whose hash is empty has no password: it can log in only with a TLS
client certificate (the EXTERNAL mechanism).

A user may carry limits, RabbitMQ 3.10's user limits (`rabbitmqctl
set_user_limits`, /api/user-limits): `max-connections` and `max-channels`,
counted over all its connections in all vhosts. Any integer is accepted; a
negative one means no limit, 0 refuses every connection (or channel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from broker.auth.passwords import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    hash_password,
    validate_password_hash,
    verify_password,
)

__all__ = ["KNOWN_TAGS", "USER_LIMIT_NAMES", "User", "parse_tags", "validate_user_limits"]

#: The tags RabbitMQ gives a meaning to.
KNOWN_TAGS: Final = ("administrator", "monitoring", "policymaker", "management", "impersonator")
#: RabbitMQ 3.10's user limits (rabbit_auth_backend_internal:user_limit_validation).
USER_LIMIT_NAMES: Final = ("max-connections", "max-channels")


def _erlang_term(value: Any) -> str:
    """A decoded JSON value as RabbitMQ's texts print it (Erlang's ~p); the same
    as broker.core.policies.erlang_term, kept here so this module stays pure."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            return f"{mantissa}e{int(exponent)}"
        return text
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'<<"{escaped}">>'
    if isinstance(value, Mapping):
        inner = ",".join(f"{_erlang_term(k)} => {_erlang_term(v)}" for k, v in value.items())
        return "#{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_erlang_term(v) for v in value) + "]"
    return repr(value)


def validate_user_limits(term: Any) -> dict[str, int]:
    """User limits checked as rabbit_auth_backend_internal:validate_user_limits
    checks them; ValueError with RabbitMQ's text (the first problem) if not."""
    if not isinstance(term, Mapping):
        raise ValueError(f"user limits are a JSON object, got {_erlang_term(term)}")
    for name in USER_LIMIT_NAMES:
        if name in term:
            value = term[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} should be a number, actually was {_erlang_term(value)}")
    unknown = [(k, v) for k, v in term.items() if k not in USER_LIMIT_NAMES]
    if unknown:
        terms = ",".join(f"{{{_erlang_term(k)},{_erlang_term(v)}}}" for k, v in unknown)
        raise ValueError(f"Unrecognised terms [{terms}] in user-limits")
    return {str(k): int(v) for k, v in term.items()}


def parse_tags(tags: Any) -> tuple[str, ...]:
    """Tags as RabbitMQ accepts them: a list, or one comma-separated string."""
    if tags is None:
        return ()
    if isinstance(tags, str):
        items = tags.split(",")
    elif isinstance(tags, list | tuple):
        items = tags
    else:
        raise ValueError(f"tags are a list or a comma-separated string, got {tags!r}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"a tag is a string, got {item!r}")
        tag = item.strip()
        if tag and tag not in out:
            out.append(tag)
    return tuple(out)


@dataclass(frozen=True)
class User:
    """One user of the broker."""

    name: str
    password_hash: str = ""
    hashing_algorithm: str = DEFAULT_ALGORITHM
    tags: tuple[str, ...] = ()
    #: User limits by name ("max-connections", "max-channels"), as set.
    limits: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a user name must not be empty")
        if self.hashing_algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown hashing_algorithm {self.hashing_algorithm!r} "
                f"(known: {', '.join(ALGORITHMS)})"
            )
        validate_password_hash(self.password_hash, self.hashing_algorithm)
        object.__setattr__(self, "limits", validate_user_limits(self.limits))

    def limit(self, name: str) -> int | None:
        """The limit in force (None: none; a negative value is none, as in RabbitMQ)."""
        value = self.limits.get(name)
        return None if value is None or value < 0 else value

    @classmethod
    def with_password(cls, name: str, password: str, tags: tuple[str, ...] = ()) -> User:
        """A user whose hash is made now (SHA-256, a random salt), as RabbitMQ makes it."""
        return cls(name, hash_password(password), DEFAULT_ALGORITHM, tags)

    def check_password(self, password: str) -> bool:
        """Does `password` match? Never for a user without password, never for ""."""
        return verify_password(password, self.password_hash, self.hashing_algorithm)

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags

    def to_definition(self) -> dict[str, Any]:
        """As RabbitMQ 3.10 exports it in definitions JSON."""
        return {
            "name": self.name,
            "password_hash": self.password_hash,
            "hashing_algorithm": self.hashing_algorithm,
            "tags": list(self.tags),
            "limits": dict(sorted(self.limits.items())),
        }
