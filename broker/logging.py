"""Structured logging for the broker (structlog).

One event per connection open/close, per declare/delete and per protocol
error, each carrying the peer address and, where there is one, the AMQP reply
code. On a terminal the lines are readable (`ConsoleRenderer`); anywhere else
(a service manager, a pipe, a file) they are JSON lines, one event per line,
so that log shippers need no parsing rules.

Event names are dotted and stable, so operators can grep and alert on them:
`broker.started`, `broker.stopping`, `connection.opened`, `connection.closed`,
`channel.error`, `protocol.error`, `exchange.declared`, `exchange.deleted`,
`queue.declared`, `queue.deleted`, `binding.created`, `binding.deleted`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "get_logger"]

_configured = False


def configure_logging(
    *, json: bool | None = None, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Configure structlog for the process.

    `json=None` chooses by the output: readable lines when `stream` is a TTY,
    JSON lines otherwise.
    """
    global _configured
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str = "warren") -> Any:
    """A structlog logger; configures JSON/console output on first use."""
    if not _configured:
        configure_logging()
    return structlog.get_logger(name)
