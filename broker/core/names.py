"""Server-made names, as RabbitMQ makes them."""

from __future__ import annotations

import base64
import os

__all__ = ["new_name"]


def new_name(prefix: str) -> str:
    """`prefix` + 22 url-safe base64 characters (16 random bytes): `amq.gen-...`, `amq.ctag-...`."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
