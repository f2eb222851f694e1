"""`warren cluster status`: who leads a Warren cluster, and how its followers keep up.

    warren cluster status [--url URL | --profile NAME] [--user U --password P] [--json]

Two requests, both over the management API (docs/cli.md):

1. the given node's `GET /api/cluster/health`, which needs no credentials and
   which every node serves, followers included (200 on the leader, 503
   elsewhere, both with a body naming the leader): the node, its role, the
   cluster, the leader's name, AMQP address and management URL, the term;
2. then the leader's `GET /api/cluster` (the monitoring tag) for its followers
   and the confirm mode: the node itself when it leads, else the management
   URL the leader advertises, with the same credentials, `--cacert` and
   `--timeout`. A follower serves nothing but the health route, so this is
   the only place the followers' state can be read.

A single broker (no `cluster.*` settings) answers the health route as its own
leader, with `"cluster": null`: "single node (no cluster)".

Exit status: 0 a leader is known; 1 the node answered and names no leader;
2 the command could not do its job (no answer, not Warren, a refused login on
the leader, the leader unreachable at the address it advertises).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from ._common import EXIT_NO, EXIT_OK, CommandError, run_command
from .admin import format_table
from .api_client import (
    PASSWORD_ENV,
    APIError,
    Endpoint,
    ManagementClient,
    add_management_arguments,
    resolve_endpoint,
)

__all__ = ["FOLLOWER_COLUMNS", "add_parser"]

_RAW = argparse.RawDescriptionHelpFormatter
PROG = "warren cluster status"
HEALTH = "/api/cluster/health"
STATUS = "/api/cluster"

#: The columns of the followers' table: the API's field names, as `warren list` shows them.
FOLLOWER_COLUMNS = ["node", "in_sync", "address", "acked_batch", "batches_behind", "caught_up"]


def add_parser(subparsers: Any) -> None:
    """Register `warren cluster status` (see broker/cli.py)."""
    parser = subparsers.add_parser(
        "cluster",
        help="a Warren cluster's state: the leader, the term, the followers",
        description="Commands about a Warren high-availability cluster (docs/cluster.md).",
    )
    commands = parser.add_subparsers(dest="cluster_command", metavar="COMMAND")
    commands.required = True
    status = commands.add_parser(
        "status",
        help="who leads, in which term, and how far behind each follower is",
        description="Ask one node of a cluster who leads (GET /api/cluster/health, no "
        "credentials needed, served by followers too), then ask the leader for its followers "
        "(GET /api/cluster, a user with the monitoring or administrator tag). Point it at any "
        "node's management API. Exit 0 when a leader is known, 1 when the node names no "
        "leader, 2 when it cannot tell (no answer, not Warren, a refused login).",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren cluster status --url http://node2:15672\n"
        "  cluster            prod\n"
        "  node               warren-2\n"
        "  role               follower\n"
        "  leader             warren-1\n"
        "  leader amqp        node1:5672\n"
        "  leader management  http://node1:15672\n"
        "  term               1234\n"
        "  confirms           leader fsync and 1 follower(s)\n"
        "  \n"
        "  node      in_sync  address        acked_batch  batches_behind  caught_up\n"
        "  warren-2  true     10.0.0.2:4711  5120         0               true\n"
        "  warren-3  true     10.0.0.3:4712  5120         0               true\n"
        "  $ warren cluster status --json | jq -r .health.leader_amqp\n",
    )
    status.add_argument(
        "--json", action="store_true",
        help='print {"health": what the node answered, "cluster": the leader\'s /api/cluster '
        "(null for a single node, or when the node names no leader)}",
    )
    add_management_arguments(
        status,
        url_help="the management API of any node of the cluster, "
        "http(s)://[USER:PASSWORD@]HOST:PORT; the credentials are used on the leader's (a "
        "password left out comes from $WARREN_MANAGEMENT_PASSWORD)",
        url_aliases=("--url",),
    )
    credentials = status.add_argument_group(
        "credentials", "for the leader's /api/cluster (a user with the monitoring or "
        "administrator tag); they replace the URL's or the profile's",
    )
    credentials.add_argument("--user", default=None, help="the user (default: guest)")
    credentials.add_argument(
        "--password", default=None,
        help="its password (default: $WARREN_MANAGEMENT_PASSWORD; prefer it: a password on "
        "the command line is in the process list and the shell's history)",
    )
    status.set_defaults(func=_command(_status))


def _command(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    return lambda args: run_command(PROG, lambda: body(args))


# -- the two requests ------------------------------------------------------------------------


def _health(api: ManagementClient) -> dict[str, Any]:
    """The node's /api/cluster/health answer (200 or 503, both with a body)."""
    try:
        _code, health = api.answer(HEALTH, accept=(503,))
    except APIError as error:
        if error.not_found:
            raise CommandError(
                f"the management API at {api.base} has no {HEALTH} (HTTP 404): it is not a "
                "Warren node (RabbitMQ has no such endpoint), or a Warren from before clusters"
            ) from None
        raise
    if not isinstance(health, dict) or not isinstance(health.get("role"), str):
        raise CommandError(f"{api.base}{HEALTH}: not a Warren cluster health answer")
    return health


def _leader_client(api: ManagementClient, health: dict[str, Any]) -> ManagementClient | None:
    """The client of the leader's management API: `api` itself when the node leads;
    None when the leader advertises no management URL."""
    if health.get("role") == "leader":
        return api
    url = health.get("leader_management")
    if not isinstance(url, str) or not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(f"the leader advertises {url!r} as its management API: not an "
                           "http(s) URL")
    given = api.endpoint
    if api.tls and parts.scheme == "http":
        # The credentials were given for https: never send them in clear text.
        raise CommandError(
            f"the leader advertises a plain-HTTP management API ({url}); not sending the "
            f"credentials given for {given.base} over it: ask the leader directly with "
            "--url"
        )
    endpoint = Endpoint(base=url.rstrip("/"), username=given.username, password=given.password,
                        cacert=given.cacert, timeout=given.timeout, source=given.source)
    return ManagementClient(endpoint, api.username, api.password, fallback=api.credentials_source)


def _replication(leader: ManagementClient, health: dict[str, Any]) -> dict[str, Any]:
    """The leader's /api/cluster, checked to be the leader's still."""
    name = health.get("leader")
    try:
        state = leader.get(STATUS)
    except APIError as error:
        if error.not_found:  # a follower's API has only the health route
            raise CommandError(
                f"{leader.base} has no {STATUS} (HTTP 404): is {name} still the leader? "
                "Run the command again"
            ) from None
        raise CommandError(f"asking the leader {name} for its followers: {error}") from None
    except CommandError as error:  # no answer: say that it was the leader's address
        raise CommandError(f"asking the leader {name} for its followers: {error}") from None
    if not isinstance(state, dict):
        raise CommandError(f"{leader.base}{STATUS}: not a Warren cluster status")
    if state.get("role") != "leader":
        raise CommandError(
            f"{state.get('node') or leader.base} is no longer the leader (it is "
            f"{state.get('role')}): run the command again"
        )
    return state


# -- output ------------------------------------------------------------------------------------


#: The keys of the text output, the followers' table apart.
_KEYS = ("cluster", "node", "role", "leader", "leader amqp", "leader management", "term",
         "confirms", "followers")
_WIDTH = max(len(key) for key in _KEYS)


def _line(key: str, value: Any) -> None:
    print(f"{key.ljust(_WIDTH)}  {'' if value is None else value}".rstrip())


def _print_health(health: dict[str, Any]) -> None:
    _line("cluster", health.get("cluster"))
    _line("node", health.get("node"))
    _line("role", health.get("role"))
    _line("leader", health.get("leader") or "(none)")
    _line("leader amqp", health.get("leader_amqp"))
    _line("leader management", health.get("leader_management"))
    _line("term", health.get("term"))


def _print_replication(state: dict[str, Any] | None) -> None:
    if state is None:
        _line("followers", "unknown: the leader advertises no management URL")
        return
    _line("confirms", state.get("confirms"))
    replication = state.get("replication")
    followers = replication.get("followers") if isinstance(replication, dict) else None
    rows = [f for f in followers or [] if isinstance(f, dict)]
    if not rows:
        _line("followers", "none connected")
        return
    print()
    for line in format_table(rows, FOLLOWER_COLUMNS):
        print(line)


def _print_json(health: dict[str, Any], state: dict[str, Any] | None) -> None:
    print(json.dumps({"health": health, "cluster": state}, indent=2, ensure_ascii=False))


def _endpoint(args: argparse.Namespace) -> Endpoint:
    """The node's API as "Which management API" finds it, with --user and --password."""
    endpoint = resolve_endpoint(args)
    if args.user is None and args.password is None:
        return endpoint
    user = args.user if args.user is not None else endpoint.username
    if args.password is not None:
        password: str | None = args.password
    elif user == endpoint.username and endpoint.password is not None:
        password = endpoint.password  # the URL's or the profile's, for the same user
    elif os.environ.get(PASSWORD_ENV) is not None:
        password = os.environ[PASSWORD_ENV]
    elif user in (None, "guest"):
        password = None  # guest's default, as everywhere
    else:
        raise CommandError(
            f"no password for user {user!r}: give --password, or set ${PASSWORD_ENV}"
        )
    source = " and ".join(flag for flag, given in (("--user", args.user), ("--password",
                          args.password)) if given is not None)
    return replace(endpoint, username=user, password=password, source=source)


def _status(args: argparse.Namespace) -> int:
    api = ManagementClient(_endpoint(args))
    health = _health(api)
    if health.get("cluster") is None:
        if args.json:
            _print_json(health, None)
        else:
            print(f"single node (no cluster): {health.get('node')}")
        return EXIT_OK
    if not health.get("leader"):
        if args.json:
            _print_json(health, None)
        else:
            _print_health(health)
        raise CommandError(
            f"cluster {health.get('cluster')!r} has no leader (node {health.get('node')} is "
            f"{health.get('role')})", EXIT_NO,
        )
    if not args.json:
        # First: what the node said stands even if the leader cannot be reached.
        _print_health(health)
    leader = _leader_client(api, health)
    state = _replication(leader, health) if leader is not None else None
    if args.json:
        _print_json(health, state)
    else:
        _print_replication(state)
    return EXIT_OK
