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
    "broker.commands.admin:add_parser",
    "broker.commands.cluster:add_parser",
]


def add_serve_parser(subparsers: Any) -> None:
    """`warren serve`: run the broker until SIGINT/SIGTERM."""
    parser = subparsers.add_parser(
        "serve",
        help="run the broker",
        description="Run the Warren AMQP 0-9-1 broker until SIGINT or SIGTERM. Settings come "
        "from --settings FILE (RabbitMQ's rabbitmq.conf format, docs/settings.md), then the "
        "environment (WARREN_DEFAULT_USER, WARREN_DEFAULT_PASS), then these options.",
        epilog="examples:\n"
        "  warren serve --data-dir ./data                 # 127.0.0.1:5672, guest/guest\n"
        "  warren serve --settings /etc/warren/rabbitmq.conf\n"
        "  warren serve --host 0.0.0.0 --port 5673 --data-dir /var/lib/warren",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--settings",
        metavar="FILE",
        default=None,
        help="a settings file in rabbitmq.conf syntax (listeners, TLS, users, limits...)",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address of the one plain AMQP listener (replaces the file's listeners.tcp; "
        "default without --settings: 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="its port (0: any free port; default 5672)"
    )
    parser.add_argument(
        "--management-port",
        type=int,
        default=None,
        help="port of the management HTTP API (replaces management.tcp.port; default 15672, "
        "on --host's address when there is no --settings)",
    )
    parser.add_argument(
        "--prometheus-port",
        type=int,
        default=None,
        help="port of the Prometheus endpoint (replaces prometheus.tcp.port; default 15692, "
        "on --host's address when there is no --settings)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data directory: durable definitions, users and the message journal "
        "(created; without it nothing survives a restart)",
    )
    parser.add_argument(
        "--disk-free-limit",
        default=None,
        metavar="SIZE",
        help="block publishers while the data directory's disk has less free space "
        "(RabbitMQ's disk_free_limit.absolute; e.g. 50MB, 2GB, 1GiB; default 50MB)",
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
        help="JSON lines or readable lines (default auto: readable on a terminal)",
    )
    parser.set_defaults(func=_run_serve)


#: RabbitMQ's `log.console.level` names -> Python logging levels.
LOG_LEVELS = {
    "debug": 10, "info": 20, "notice": 20, "warning": 30, "error": 40,
    "critical": 50, "alert": 50, "emergency": 50, "none": 100,
}


def _serve_settings(args: argparse.Namespace) -> Any:
    """The effective settings: the file, the environment, then the options."""
    from broker.settings import HTTPListener, Listener, Settings, apply_environment, load_settings

    settings = load_settings(args.settings) if args.settings else Settings()
    settings = apply_environment(settings)
    overrides: dict[str, Any] = {}
    host = args.host if args.host is not None else "127.0.0.1"
    if args.host is not None or args.port is not None or not args.settings:
        overrides["listeners_tcp"] = (Listener(host, args.port if args.port is not None else 5672),)
    if args.management_port is not None or not args.settings:
        port = args.management_port if args.management_port is not None else 15672
        ip = settings.management_tcp.ip if args.settings else host
        overrides["management_tcp"] = HTTPListener(port, ip)
    if args.prometheus_port is not None or not args.settings:
        port = args.prometheus_port if args.prometheus_port is not None else 15692
        ip = settings.prometheus_tcp.ip if args.settings else host
        overrides["prometheus_tcp"] = HTTPListener(port, ip)
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return settings.with_overrides(**overrides) if overrides else settings


def _run_serve(args: argparse.Namespace) -> int:
    from functools import partial

    import trio

    from broker.logging import configure_logging, get_logger
    from broker.server import StartupError, serve
    from broker.settings import SettingsError
    from protocol.errors import AMQPError
    from routing.config import ConfigErrors

    try:
        settings = _serve_settings(args)
    except SettingsError as error:
        print(f"warren serve: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # an option the settings refuse (a bad --host)
        print(f"warren serve: {error}", file=sys.stderr)
        return 2
    configure_logging(
        json={"auto": None, "json": True, "console": False}[args.log_format],
        level=LOG_LEVELS[settings.log_console_level],
    )
    disk_free_limit = None
    if args.disk_free_limit is not None:
        from broker.alarms.disk import parse_size

        try:
            disk_free_limit = parse_size(args.disk_free_limit)
        except ValueError as error:
            print(f"warren serve: --disk-free-limit: {error}", file=sys.stderr)
            return 2
    log = get_logger("warren.server")
    for line in settings.to_lines():
        log.info("settings", line=line)
    run: Any = serve
    if settings.cluster is not None:
        from broker.node import serve_cluster_node  # docs/cluster.md

        run = serve_cluster_node
    try:
        trio.run(
            partial(
                run, config_path=args.config_path, disk_free_limit=disk_free_limit,
                settings=settings,
            )
        )
    except StartupError as error:
        print(f"warren serve: {error}", file=sys.stderr)
        return 2
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
    from broker import __version__

    parser = argparse.ArgumentParser(prog="warren", description="Warren message broker")
    parser.add_argument("--version", action="version", version=f"warren {__version__}")
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
