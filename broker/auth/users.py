"""Users: a name, a password hash (RabbitMQ's), and tags.

Tags are RabbitMQ's: `administrator`, `monitoring`, `policymaker`,
`management` decide what a user may do in the management plane;
`impersonator` lets a user publish messages whose `user_id` property names
someone else. Other tags are kept (RabbitMQ allows arbitrary ones) and mean
nothing to Warren.

A user whose hash is empty has no password: it can log in only with a TLS
client certificate (the EXTERNAL mechanism).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from broker.auth.passwords import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    hash_password,
    validate_password_hash,
    verify_password,
)

__all__ = ["KNOWN_TAGS", "User", "parse_tags"]

#: The tags RabbitMQ gives a meaning to.
KNOWN_TAGS: Final = ("administrator", "monitoring", "policymaker", "management", "impersonator")


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

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a user name must not be empty")
        if self.hashing_algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown hashing_algorithm {self.hashing_algorithm!r} "
                f"(known: {', '.join(ALGORITHMS)})"
            )
        validate_password_hash(self.password_hash, self.hashing_algorithm)

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
            "limits": {},
        }
