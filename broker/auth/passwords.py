"""RabbitMQ-compatible password hashes.

RabbitMQ's internal user database (``rabbit_password`` and the
``rabbit_password_hashing_*`` modules) stores, for each user, the bytes::

    salt + H(salt + utf8(password))

where ``salt`` is 4 random bytes and ``H`` is the algorithm the user was created
with (SHA-256 by default since RabbitMQ 3.6; SHA-512 and MD5 can be chosen). The
HTTP API, ``rabbitmqctl hash_password`` and definitions files show those bytes
in standard base64, next to the algorithm's module name::

    {"name": "alice", "password_hash": "Zb2n...", "hashing_algorithm": "rabbit_password_hashing_sha256"}

This module makes and checks such hashes, byte for byte as RabbitMQ does, so a
hash made here can be imported into RabbitMQ and the other way round
(``tests/auth`` holds vectors taken from a RabbitMQ 3.10 node).

An empty hash means the user has no password: RabbitMQ refuses every password
for such a user (they can still log in by other means, e.g. a TLS client
certificate with the EXTERNAL mechanism), and so does `verify_password`. An
empty password is refused too, whatever the hash: RabbitMQ's internal backend
rejects blank passwords before it looks at the hash (a user created with the
password "" gets a real hash of "", and still cannot log in).

Standard library only: no trio, no other broker module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "MD5",
    "SALT_LENGTH",
    "SHA256",
    "SHA512",
    "hash_password",
    "validate_password_hash",
    "verify_password",
]

#: RabbitMQ's names for the algorithms (the ``hashing_algorithm`` of definitions).
SHA256: Final = "rabbit_password_hashing_sha256"
SHA512: Final = "rabbit_password_hashing_sha512"
MD5: Final = "rabbit_password_hashing_md5"

#: RabbitMQ's default (``password_hashing_module``), since 3.6.0.
DEFAULT_ALGORITHM: Final = SHA256

#: algorithm name -> hashlib name.
ALGORITHMS: Final[dict[str, str]] = {SHA256: "sha256", SHA512: "sha512", MD5: "md5"}

#: RabbitMQ's salt: a random 32-bit integer, big-endian (``rabbit_password:generate_salt/0``).
SALT_LENGTH: Final = 4


def _hashlib_name(algorithm: str) -> str:
    try:
        return ALGORITHMS[algorithm]
    except (KeyError, TypeError):
        known = ", ".join(ALGORITHMS)
        raise ValueError(
            f"unknown password hashing algorithm {algorithm!r}: expected one of {known}"
        ) from None


def _encode(password: str | bytes) -> bytes:
    # AMQP hands the broker the password as bytes; a str is taken as UTF-8, as
    # RabbitMQ's HTTP API and rabbitmqctl do.
    return password if isinstance(password, bytes) else password.encode("utf-8")


def _salted_hash(name: str, salt: bytes, password: bytes) -> bytes:
    return salt + hashlib.new(name, salt + password).digest()


def hash_password(
    password: str | bytes,
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    salt: bytes | None = None,
) -> str:
    """``base64(salt + H(salt + utf8(password)))`` with 4 random salt bytes, as RabbitMQ.

    ``salt`` (4 bytes) is for tests that need a fixed result; leave it out
    otherwise. An unknown ``algorithm`` is a ValueError.

    >>> hash_password("guest", salt=bytes.fromhex("b6d1695d"))  # as RabbitMQ 3.10 made it
    'ttFpXR8Ha6VMd2aJcoNQ84laKAyOS8vZazudbK7P+9FLAjqU'
    """
    name = _hashlib_name(algorithm)
    if salt is None:
        salt = secrets.token_bytes(SALT_LENGTH)
    elif len(salt) != SALT_LENGTH:
        raise ValueError(f"a salt is {SALT_LENGTH} bytes, got {len(salt)}")
    return base64.b64encode(_salted_hash(name, salt, _encode(password))).decode("ascii")


def _decode(password_hash: str, name: str) -> bytes:
    """The stored bytes, or ValueError saying what is wrong with the text."""
    try:
        raw = base64.b64decode(password_hash.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"a password hash is base64, got {password_hash!r}") from None
    expected = SALT_LENGTH + hashlib.new(name).digest_size
    if len(raw) != expected:
        raise ValueError(
            f"a {name} password hash is {expected} bytes (4 of salt, then the digest), "
            f"got {len(raw)}"
        )
    return raw


def validate_password_hash(password_hash: str, algorithm: str = DEFAULT_ALGORITHM) -> None:
    """Raise ValueError unless ``password_hash`` can be a hash made with ``algorithm``.

    For importing users (definitions files, the HTTP API): it checks the form
    (base64, length of salt plus digest), not any password. The empty hash
    ("no password") is valid.
    """
    name = _hashlib_name(algorithm)
    if password_hash != "":
        _decode(password_hash, name)


def verify_password(
    password: str | bytes,
    password_hash: str,
    algorithm: str = DEFAULT_ALGORITHM,
) -> bool:
    """True if ``password`` matches ``password_hash`` (RabbitMQ's base64 form).

    The digests are compared in constant time (`hmac.compare_digest`). As in
    RabbitMQ's internal backend, an empty password never matches (RabbitMQ
    refuses blank passwords before it looks at the hash), nor does an empty
    hash ("no password") or a malformed one (not base64, wrong length): use `validate_password_hash` to reject malformed hashes where they
    are imported. An unknown ``algorithm`` is a ValueError: that is a
    configuration error, not a wrong password.
    """
    name = _hashlib_name(algorithm)
    if password_hash == "" or password in ("", b""):
        return False
    try:
        stored = _decode(password_hash, name)
    except ValueError:
        return False
    candidate = _salted_hash(name, stored[:SALT_LENGTH], _encode(password))
    return hmac.compare_digest(candidate, stored)
