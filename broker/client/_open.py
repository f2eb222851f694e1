"""Opening one plain (not robust) connection, shared by `open_connection` and robust mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .connection import Connection
from .url import ConnectionParameters

__all__ = ["open_plain_connection", "single_error"]


@asynccontextmanager
async def open_plain_connection(
    params: ConnectionParameters,
    client_properties: dict[str, Any] | None,
    raise_unseen: bool = True,
) -> AsyncIterator[Connection]:
    with single_error():
        async with trio.open_nursery() as nursery:
            conn = Connection(params, nursery, client_properties)
            await conn._connect()
            body_failed = False
            try:
                yield conn
            except BaseException:
                body_failed = True
                raise
            finally:
                with trio.CancelScope(shield=True):
                    await conn.close()
            error = conn._closed
            if (raise_unseen and not body_failed and error is not None
                    and not conn._closed_by_us and error.__traceback__ is None):
                # The broker closed the connection and nothing in the block
                # ever raised that error: do not let it pass silently.
                raise error


class single_error:
    """Unwrap the one-exception groups trio's nurseries make (strict groups), so
    ``except ConnectionClosed`` works around ``open_connection``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: BaseException | None, tb: Any) -> bool:
        if isinstance(value, BaseExceptionGroup):
            leaf = value
            while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
                leaf = leaf.exceptions[0]
            if not isinstance(leaf, BaseExceptionGroup):
                raise leaf from value.__cause__
        return False
