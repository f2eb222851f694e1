"""The `warren` command line: `warren <subcommand> ...`.

Each subcommand is a module-level function `add_parser(subparsers)` that
registers its parser and sets `func` (called with the parsed arguments,
returning the exit status). Adding a subcommand is one entry in
`SUBCOMMANDS`: `"module:function"` strings, imported lazily so that
`warren serve` does not import the load generator and vice versa, and a
subcommand whose module is not there yet is simply absent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "SUBCOMMANDS", "build_parser"]

#: "module:function" of every subcommand's `add_parser(subparsers)`.
SUBCOMMANDS: list[str] = [
    "broker.cli:add_serve_parser",
    "broker.perf:add_parser",
    "broker.commands.config:add_parser",
    "broker.commands.route:add_parser",
    "broker.commands.publish:add_parser",
]


def add_serve_parser(subparsers: Any) -> None:
    """`warren serve`: run the broker until SIGINT/SIGTERM."""
    parser = subparsers.add_parser(
        "serve",
        help="run the broker",
        description="Run the Warren AMQP 0-9-1 broker until SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5672, help="port to listen on (0: any)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data directory: durable definitions and the message journal "
        "(created; without it nothing survives a restart)",
    )
    parser.add_argument(
        "--disk-free-limit",
        default="50MB",
        metavar="SIZE",
        help="block publishers while the data directory's disk has less free space "
        "(RabbitMQ's disk_free_limit; e.g. 50MB, 2GB, 1GiB; default 50MB)",
    )
    parser.add_argument(
        "--config",
        dest="config_path",
        metavar="FILE",
        default=None,
        help="declare the topology in FILE (binding-configuration language) at start",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="JSON lines or readable lines (auto: readable on a terminal)",
    )
    parser.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from functools import partial

    import trio

    from broker.logging import configure_logging
    from broker.server import serve
    from protocol.errors import AMQPError
    from routing.config import ConfigErrors

    configure_logging(json={"auto": None, "json": True, "console": False}[args.log_format])
    try:
        from broker.alarms.disk import parse_size

        try:
            disk_free_limit = parse_size(args.disk_free_limit)
        except ValueError as error:
            print(f"warren serve: --disk-free-limit: {error}", file=sys.stderr)
            return 2
        trio.run(
            partial(serve, disk_free_limit=disk_free_limit),
            args.host,
            args.port,
            args.data_dir,
            args.config_path,
        )
    except ConfigErrors as errors:
        print(f"warren serve: {args.config_path} is not valid:\n{errors}", file=sys.stderr)
        return 2
    except AMQPError as error:
        print(f"warren serve: cannot apply {args.config_path}: {error.reply_text}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"warren serve: {error}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warren", description="Warren message broker")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for spec in SUBCOMMANDS:
        module_name, _, function = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # not built yet
            raise
        getattr(module, function)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `warren` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
