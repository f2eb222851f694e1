"""The administration commands, over the management HTTP API (Warren's or RabbitMQ's).

    warren list queues|exchanges|bindings|connections|channels|consumers
                [--vhost V | --all-vhosts] [--columns A,B] [--json]
    warren purge QUEUE [--vhost V]
    warren delete queue NAME [--vhost V] [--if-empty] [--if-unused]
    warren delete exchange NAME [--vhost V] [--if-unused]
    warren close-connection NAME [--reason TEXT]
    warren users list|add|delete|set-tags|set-password ...
    warren vhosts list|add|delete ...
    warren permissions list|set|clear ...
    warren definitions export [FILE] [--vhost V] | import FILE [--vhost V]

Each takes the management API's address as `api_client` resolves it
(--management-url, --profile, $WARREN_MANAGEMENT_URL, $WARREN_PROFILE, the
[default] profile, http://guest:guest@localhost:15672/). Tables have
rabbitmqctl's default columns (`LISTS`), `--json` prints what the API
answered. Passwords are read from the terminal or stdin, never from the
command line, and hashed here (RabbitMQ's salted hash): the API receives a
`password_hash`, never the password. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._common import EXIT_NO, EXIT_OK, CommandError, run_command
from .api_client import (
    APIError,
    ManagementClient,
    add_management_arguments,
    resolve_endpoint,
    segment,
)

__all__ = ["LISTS", "add_parser", "format_table"]

_RAW = argparse.RawDescriptionHelpFormatter


@dataclass(frozen=True)
class ListKind:
    """One `warren list KIND`: its API path and default columns."""

    path: str
    columns: tuple[str, ...]
    #: True: per vhost, `/` by default (rabbitmqctl's -p); False: every vhost by default.
    per_vhost: bool


#: rabbitmqctl's default columns for each list, by the API's field names; where
#: rabbitmqctl shows an Erlang pid (channels, consumers) the API's name stands in,
#: and connections start with the name `close-connection` takes.
LISTS: dict[str, ListKind] = {
    "queues": ListKind("queues", ("name", "messages"), True),
    "exchanges": ListKind("exchanges", ("name", "type"), True),
    "bindings": ListKind(
        "bindings",
        ("source", "destination", "destination_type", "routing_key", "arguments"),
        True,
    ),
    "connections": ListKind(
        "connections", ("name", "user", "peer_host", "peer_port", "state"), False
    ),
    "channels": ListKind(
        "channels", ("name", "user", "consumer_count", "messages_unacknowledged"), False
    ),
    "consumers": ListKind(
        "consumers",
        ("queue.name", "channel_details.name", "consumer_tag", "ack_required", "prefetch_count",
         "active", "arguments"),
        True,
    ),
}


def _client(args: argparse.Namespace) -> ManagementClient:
    return ManagementClient(resolve_endpoint(args))


def _command(prog: str, body: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    return lambda args: run_command(prog, lambda: body(args))


def add_parser(subparsers: Any) -> None:
    """Register list, purge, delete, close-connection, users, vhosts, permissions and
    definitions (see broker/cli.py)."""
    _add_list(subparsers)
    _add_purge(subparsers)
    _add_delete(subparsers)
    _add_close_connection(subparsers)
    _add_users(subparsers)
    _add_vhosts(subparsers)
    _add_permissions(subparsers)
    _add_definitions(subparsers)


# -- tables ----------------------------------------------------------------------------------


def _field(item: Any, column: str) -> Any:
    """`item`'s value at the dotted path `column` (None if it is missing)."""
    for key in column.split("."):
        if not isinstance(item, dict) or key not in item:
            return None
        item = item[key]
    return item


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # One line per row, whatever a name holds.
        if any(ord(c) < 0x20 or c == "\x7f" for c in value):
            return json.dumps(value, ensure_ascii=False)
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"  # tags, as rabbitmqctl shows them
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """A header line and one line per row, columns aligned (the last one not padded)."""
    cells = [columns] + [[_cell(_field(row, c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    out = []
    for line in cells:
        padded = [text.ljust(widths[i]) for i, text in enumerate(line[:-1])] + [line[-1]]
        out.append("  ".join(padded).rstrip())
    return out


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _columns_argument(text: str) -> list[str]:
    columns = [c.strip() for c in text.split(",") if c.strip()]
    if not columns:
        raise argparse.ArgumentTypeError("expected column names separated by commas")
    return columns


# -- 404s: which thing is missing --------------------------------------------------------------


def _vhost_exists(api: ManagementClient, vhost: str) -> bool:
    vhosts = api.get("/api/vhosts")
    return any(isinstance(v, dict) and v.get("name") == vhost for v in vhosts or [])


def _endpoint_exists(api: ManagementClient, path: str) -> bool:
    try:
        api.get(path)
    except APIError as error:
        if error.not_found:
            return False
        raise
    return True


def _explain_404(
    api: ManagementClient, error: APIError, what: str, vhost: str | None, probe: str
) -> CommandError:
    """The line for a 404: no such vhost, no such endpoint (an API that does not
    offer it yet), or no such object (`what`, e.g. "queue 'q' in vhost '/'")."""
    if vhost is not None and not _vhost_exists(api, vhost):
        return CommandError(f"no vhost {vhost!r}")
    if not _endpoint_exists(api, probe):
        return CommandError(
            f"the management API at {api.base} has no {probe} (HTTP 404 for {error.method} "
            f"{error.path}): this broker does not offer it"
        )
    return CommandError(f"no {what}")


# -- list ---------------------------------------------------------------------------------------


def _add_list(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list queues, exchanges, bindings, connections, channels or consumers",
        description="List objects through the management API, as a table with rabbitmqctl's "
        "default columns (--columns picks others, by the API's field names; dotted paths "
        "reach into objects), or as the API's JSON (--json). Queues, exchanges, bindings and "
        "consumers are listed for one vhost, / by default, as rabbitmqctl does "
        "(--all-vhosts: every vhost, with a vhost column); connections and channels for "
        "every vhost unless --vhost.",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren list queues\n"
        "  name     messages\n"
        "  billing  125\n"
        "  $ warren list queues --vhost prod --columns name,messages_ready,consumers\n"
        "  $ warren list connections --json | jq -r '.[].name'\n"
        "default columns:\n"
        + "".join(f"  {kind:<12} {' '.join(k.columns)}\n" for kind, k in LISTS.items()),
    )
    parser.add_argument("kind", choices=list(LISTS), metavar="KIND",
                        help="one of: " + ", ".join(LISTS))
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--vhost", default=None,
                       help="only this vhost (default: / for queues, exchanges, bindings and "
                       "consumers; every vhost for connections and channels)")
    where.add_argument("--all-vhosts", action="store_true", help="every vhost")
    parser.add_argument("--columns", type=_columns_argument, default=None, metavar="A,B,...",
                        help="the columns (the API's field names, e.g. "
                        "name,messages_ready,messages_unacknowledged,consumers)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    add_management_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(
        f"warren list {args.kind}", lambda: _list(args)))


def _list(args: argparse.Namespace) -> int:
    kind = LISTS[args.kind]
    api = _client(args)
    if kind.per_vhost:
        vhost = None if args.all_vhosts else (args.vhost if args.vhost is not None else "/")
    else:
        vhost = args.vhost  # None: every vhost
    columns = list(args.columns or kind.columns)
    if vhost is None and "vhost" not in columns and not args.columns:
        columns.insert(0, "vhost")
    wanted = list(columns)
    filter_here = not kind.per_vhost and vhost is not None
    if filter_here and "vhost" not in wanted:
        wanted.append("vhost")
    query = {"columns": ",".join(wanted)} if (args.columns or not args.json) else None
    path = f"/api/{kind.path}"
    if kind.per_vhost and vhost is not None:
        path += f"/{segment(vhost)}"
    try:
        items = api.get(path, query)
    except APIError as error:
        if not error.not_found:
            raise
        raise _explain_404(api, error, f"{args.kind} in vhost {vhost!r}", vhost,
                           f"/api/{kind.path}") from None
    if not isinstance(items, list):
        raise CommandError(f"{api.base}{path}: expected a JSON list, got {type(items).__name__}")
    if filter_here:
        items = [i for i in items if isinstance(i, dict) and i.get("vhost") == vhost]
    if args.json:
        _print_json(items)
        return EXIT_OK
    for line in format_table([i for i in items if isinstance(i, dict)], columns):
        print(line)
    return EXIT_OK


# -- purge, delete, close-connection -------------------------------------------------------------


def _vhost_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vhost", default="/", help="the vhost (default: /)")


def _add_purge(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "purge",
        help="delete every ready message of a queue",
        description="Purge a queue: delete its ready messages (DELETE "
        "/api/queues/VHOST/QUEUE/contents). Messages delivered and not yet acknowledged "
        "stay, as with queue.purge.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren purge billing --vhost prod\n  purged queue 'billing' in "
        "vhost 'prod'",
    )
    parser.add_argument("queue", metavar="QUEUE")
    _vhost_option(parser)
    add_management_arguments(parser)
    parser.set_defaults(func=_command("warren purge", _purge))


def _purge(args: argparse.Namespace) -> int:
    api = _client(args)
    path = f"/api/queues/{segment(args.vhost)}/{segment(args.queue)}/contents"
    try:
        api.delete(path)
    except APIError as error:
        if not error.not_found:
            raise
        what = f"queue {args.queue!r} in vhost {args.vhost!r}"
        raise _explain_404(api, error, what, args.vhost, "/api/queues") from None
    print(f"purged queue {args.queue!r} in vhost {args.vhost!r}")
    return EXIT_OK


def _add_delete(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "delete",
        help="delete a queue or an exchange",
        description="Delete a queue (with its messages) or an exchange (with its bindings).",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren delete queue billing.old --if-empty\n"
        "  deleted queue 'billing.old' in vhost '/'\n"
        "  $ warren delete exchange orders.v1 --vhost prod --if-unused\n"
        "  warren delete exchange: not deleted: exchange 'orders.v1' in vhost 'prod' in use",
    )
    kinds = parser.add_subparsers(dest="delete_kind", metavar="queue|exchange")
    kinds.required = True
    queue = kinds.add_parser(
        "queue", help="delete a queue",
        description="Delete a queue and its messages (DELETE /api/queues/VHOST/NAME). Exit 1 "
        "when --if-empty or --if-unused kept it.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren delete queue billing.old --if-empty",
    )
    queue.add_argument("name", metavar="NAME")
    _vhost_option(queue)
    queue.add_argument("--if-empty", action="store_true",
                       help="only if it holds no messages")
    queue.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
    add_management_arguments(queue)
    queue.set_defaults(func=_command("warren delete queue", _delete))
    exchange = kinds.add_parser(
        "exchange", help="delete an exchange",
        description="Delete an exchange and the bindings from and to it (DELETE "
        "/api/exchanges/VHOST/NAME). Exit 1 when --if-unused kept it.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren delete exchange orders.v1 --if-unused",
    )
    exchange.add_argument("name", metavar="NAME")
    _vhost_option(exchange)
    exchange.add_argument("--if-unused", action="store_true",
                          help="only if no binding has it as its source")
    add_management_arguments(exchange)
    exchange.set_defaults(func=_command("warren delete exchange", _delete), if_empty=False)


def _delete(args: argparse.Namespace) -> int:
    kind = args.delete_kind
    if kind == "exchange" and (args.name == "" or args.name == "amq.default"):
        raise CommandError("the default exchange cannot be deleted")
    api = _client(args)
    query = {}
    if args.if_empty:
        query["if-empty"] = "true"
    if args.if_unused:
        query["if-unused"] = "true"
    what = f"{kind} {args.name!r} in vhost {args.vhost!r}"
    try:
        api.delete(f"/api/{kind}s/{segment(args.vhost)}/{segment(args.name)}", query or None)
    except APIError as error:
        if error.not_found:
            raise _explain_404(api, error, what, args.vhost, f"/api/{kind}s") from None
        if error.http_status == 400 and query:
            # "queue 'q' in vhost '/' not empty", "... in use": the condition kept it.
            raise CommandError(f"not deleted: {error.reason or error}", EXIT_NO) from None
        raise
    print(f"deleted {what}")
    return EXIT_OK


def _add_close_connection(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "close-connection",
        help="close a client connection",
        description="Close a client connection by its name (as `warren list connections` shows "
        "it): the client gets connection.close 320 CONNECTION_FORCED with the reason.",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ warren close-connection '127.0.0.1:42926 -> 127.0.0.1:5672' --reason 'maintenance'\n"
        "  closed connection '127.0.0.1:42926 -> 127.0.0.1:5672'",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--reason", default=None,
                        help="sent to the client (default: the broker's, 'Closed via management "
                        "plugin')")
    add_management_arguments(parser)
    parser.set_defaults(func=_command("warren close-connection", _close_connection))


def _close_connection(args: argparse.Namespace) -> int:
    api = _client(args)
    headers = {"X-Reason": args.reason} if args.reason is not None else None
    try:
        api.delete(f"/api/connections/{segment(args.name)}", headers=headers)
    except APIError as error:
        if not error.not_found:
            raise
        raise _explain_404(api, error, f"connection named {args.name!r}", None,
                           "/api/connections") from None
    print(f"closed connection {args.name!r}")
    return EXIT_OK


# -- users --------------------------------------------------------------------------------------

_ALGORITHMS = {
    "sha256": "rabbit_password_hashing_sha256",
    "sha512": "rabbit_password_hashing_sha512",
    "md5": "rabbit_password_hashing_md5",
}


def _tags_argument(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def read_new_password() -> str:
    """A password typed twice at a terminal (not echoed), else stdin's first line."""
    import getpass

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the two passwords differ; nothing changed")
    else:
        raw = sys.stdin.buffer.readline().removesuffix(b"\n").removesuffix(b"\r")
        try:
            password = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CommandError(
                f"the password is not UTF-8 text ({error.reason} at byte {error.start})"
            ) from None
    if not password:
        raise CommandError("the password is empty, and RabbitMQ refuses empty passwords "
                           "(--no-password makes a user without one)")
    return password


def _add_users(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "users",
        help="list, add and delete users; set their tags and passwords",
        description="Users of the broker's internal database (administrator only).",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren users list\n"
        "  $ printf '%s\\n' \"$PASSWORD\" | warren users add billing --tags management\n"
        "  $ warren users set-tags billing monitoring management\n"
        "  $ warren users set-password billing         # typed twice at the terminal\n"
        "  $ warren users delete billing",
    )
    commands = parser.add_subparsers(dest="users_command", metavar="SUBCOMMAND")
    commands.required = True

    list_ = commands.add_parser("list", help="list users (name, tags)",
                                description="List users: name and tags (GET /api/users).",
                                formatter_class=_RAW,
                                epilog="example:\n  $ warren users list\n  name   tags\n"
                                "  guest  [administrator]")
    list_.add_argument("--json", action="store_true", help="print the API's JSON")
    add_management_arguments(list_)
    list_.set_defaults(func=_command("warren users list", _users_list))

    add = commands.add_parser(
        "add", help="add a user",
        description="Add a user. The password is typed twice at the terminal, or else read "
        "from stdin's first line; never from the command line. It is hashed here, as "
        "RabbitMQ hashes (a 4-byte salt and SHA-256 by default), and the API receives only "
        "the hash. A user that exists is not changed (exit 2).",
        formatter_class=_RAW,
        epilog="example:\n  $ printf '%s\\n' \"$PASSWORD\" | warren users add billing --tags "
        "management\n  added user 'billing' (tags: management)",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--tags", type=_tags_argument, default=[], metavar="TAG,...",
                     help="e.g. administrator, monitoring, management, policymaker")
    add.add_argument("--no-password", action="store_true",
                     help="no password (the user can log in only with a TLS certificate, "
                     "EXTERNAL)")
    add.add_argument("--algorithm", choices=list(_ALGORITHMS), default="sha256",
                     help="the password hash's algorithm (default: sha256, RabbitMQ's)")
    add_management_arguments(add)
    add.set_defaults(func=_command("warren users add", _users_add))

    delete = commands.add_parser("delete", help="delete a user (and its permissions)",
                                 description="Delete a user, its permissions and limits.",
                                 formatter_class=_RAW,
                                 epilog="example:\n  $ warren users delete billing")
    delete.add_argument("name", metavar="NAME")
    add_management_arguments(delete)
    delete.set_defaults(func=_command("warren users delete", _users_delete))

    set_tags = commands.add_parser(
        "set-tags", help="replace a user's tags",
        description="Replace a user's tags (none: no tags). The password is kept.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren users set-tags billing monitoring management",
    )
    set_tags.add_argument("name", metavar="NAME")
    set_tags.add_argument("tags", nargs="*", metavar="TAG")
    add_management_arguments(set_tags)
    set_tags.set_defaults(func=_command("warren users set-tags", _users_set_tags))

    set_password = commands.add_parser(
        "set-password", help="change a user's password",
        description="Change a user's password: typed twice at the terminal, or else stdin's "
        "first line; hashed here with the user's algorithm (or --algorithm). Tags are kept.",
        formatter_class=_RAW,
        epilog="example:\n  $ printf '%s\\n' \"$NEW\" | warren users set-password billing",
    )
    set_password.add_argument("name", metavar="NAME")
    set_password.add_argument("--algorithm", choices=list(_ALGORITHMS), default=None,
                              help="hash with this algorithm (default: the user's)")
    add_management_arguments(set_password)
    set_password.set_defaults(func=_command("warren users set-password", _users_set_password))


def _user(api: ManagementClient, name: str) -> dict[str, Any] | None:
    try:
        user = api.get(f"/api/users/{segment(name)}")
    except APIError as error:
        if error.not_found:
            return None
        raise
    return user if isinstance(user, dict) else None


def _tag_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [t for t in (p.strip() for p in value.split(",")) if t]
    return [t for t in value or [] if isinstance(t, str)]


def _users_list(args: argparse.Namespace) -> int:
    users = _client(args).get("/api/users")
    if args.json:
        _print_json(users)
    else:
        for line in format_table(users or [], ["name", "tags"]):
            print(line)
    return EXIT_OK


def _users_add(args: argparse.Namespace) -> int:
    from broker.auth.passwords import hash_password

    api = _client(args)
    if _user(api, args.name) is not None:
        raise CommandError(
            f"user {args.name!r} already exists (warren users set-password and set-tags change it)"
        )
    algorithm = _ALGORITHMS[args.algorithm]
    password_hash = "" if args.no_password else hash_password(read_new_password(), algorithm)
    api.put(f"/api/users/{segment(args.name)}", {
        "password_hash": password_hash, "hashing_algorithm": algorithm,
        "tags": ",".join(args.tags),
    })
    shown = ", ".join(args.tags) if args.tags else "none"
    print(f"added user {args.name!r} (tags: {shown})"
          + (", without a password" if args.no_password else ""))
    return EXIT_OK


def _delete_named(args: argparse.Namespace, path: str, missing: str, done: str) -> int:
    """DELETE `path`; a 404 is the one-line error `missing`, success prints `done`."""
    try:
        _client(args).delete(path)
    except APIError as error:
        if error.not_found:
            raise CommandError(missing) from None
        raise
    print(done)
    return EXIT_OK


def _users_delete(args: argparse.Namespace) -> int:
    return _delete_named(args, f"/api/users/{segment(args.name)}", f"no user {args.name!r}",
                   f"deleted user {args.name!r}")


def _existing_user(api: ManagementClient, name: str) -> dict[str, Any]:
    user = _user(api, name)
    if user is None:
        raise CommandError(f"no user {name!r}")
    return user


def _users_set_tags(args: argparse.Namespace) -> int:
    api = _client(args)
    user = _existing_user(api, args.name)
    tags = [t for tag in args.tags for t in _tags_argument(tag)]
    # PUT replaces the user: send its hash back, or it would lose its password.
    api.put(f"/api/users/{segment(args.name)}", {
        "password_hash": user.get("password_hash", ""),
        "hashing_algorithm": user.get("hashing_algorithm") or _ALGORITHMS["sha256"],
        "tags": ",".join(tags),
    })
    before = ", ".join(_tag_list(user.get("tags"))) or "none"
    print(f"set the tags of user {args.name!r}: {', '.join(tags) or 'none'} (were: {before})")
    return EXIT_OK


def _users_set_password(args: argparse.Namespace) -> int:
    from broker.auth.passwords import hash_password

    api = _client(args)
    user = _existing_user(api, args.name)
    if args.algorithm is not None:
        algorithm = _ALGORITHMS[args.algorithm]
    else:
        current = user.get("hashing_algorithm")
        algorithm = current if current in _ALGORITHMS.values() else _ALGORITHMS["sha256"]
    password_hash = hash_password(read_new_password(), algorithm)
    api.put(f"/api/users/{segment(args.name)}", {
        "password_hash": password_hash, "hashing_algorithm": algorithm,
        "tags": ",".join(_tag_list(user.get("tags"))),
    })
    print(f"changed the password of user {args.name!r}")
    return EXIT_OK


# -- vhosts -------------------------------------------------------------------------------------


def _add_vhosts(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vhosts",
        help="list, add and delete vhosts",
        description="Virtual hosts (adding and deleting needs an administrator).",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren vhosts list\n"
        "  $ warren vhosts add prod --description 'production, EU' --tags eu,production\n"
        "  $ warren vhosts delete staging",
    )
    commands = parser.add_subparsers(dest="vhosts_command", metavar="SUBCOMMAND")
    commands.required = True

    list_ = commands.add_parser("list", help="list vhosts (name, description, tags)",
                                description="List vhosts: name, description, tags "
                                "(GET /api/vhosts).",
                                formatter_class=_RAW,
                                epilog="example:\n  $ warren vhosts list")
    list_.add_argument("--json", action="store_true", help="print the API's JSON")
    add_management_arguments(list_)
    list_.set_defaults(func=_command("warren vhosts list", _vhosts_list))

    add = commands.add_parser(
        "add", help="add a vhost",
        description="Add a vhost (PUT /api/vhosts/NAME). The user who adds it gets every "
        "permission in it, as RabbitMQ gives them. A vhost that exists is not changed (exit 2).",
        formatter_class=_RAW,
        epilog="example:\n  $ warren vhosts add prod --description 'production, EU'\n"
        "  added vhost 'prod'",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--description", default=None)
    add.add_argument("--tags", type=_tags_argument, default=None, metavar="TAG,...")
    add.add_argument("--default-queue-type", choices=("classic", "quorum", "stream"),
                     default=None, help="RabbitMQ's default queue type for the vhost")
    add_management_arguments(add)
    add.set_defaults(func=_command("warren vhosts add", _vhosts_add))

    delete = commands.add_parser(
        "delete", help="delete a vhost and everything in it",
        description="Delete a vhost with its exchanges, queues, messages and permissions.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren vhosts delete staging",
    )
    delete.add_argument("name", metavar="NAME")
    add_management_arguments(delete)
    delete.set_defaults(func=_command("warren vhosts delete", _vhosts_delete))


def _vhosts_list(args: argparse.Namespace) -> int:
    vhosts = _client(args).get("/api/vhosts")
    if args.json:
        _print_json(vhosts)
    else:
        for line in format_table(vhosts or [], ["name", "description", "tags"]):
            print(line)
    return EXIT_OK


def _vhosts_add(args: argparse.Namespace) -> int:
    api = _client(args)
    if _vhost_exists(api, args.name):
        raise CommandError(f"vhost {args.name!r} already exists")
    body: dict[str, Any] = {}
    if args.description is not None:
        body["description"] = args.description
    if args.tags is not None:
        body["tags"] = ",".join(args.tags)
    if args.default_queue_type is not None:
        body["default_queue_type"] = args.default_queue_type
    api.put(f"/api/vhosts/{segment(args.name)}", body)
    print(f"added vhost {args.name!r}")
    return EXIT_OK


def _vhosts_delete(args: argparse.Namespace) -> int:
    return _delete_named(args, f"/api/vhosts/{segment(args.name)}", f"no vhost {args.name!r}",
                   f"deleted vhost {args.name!r}")


# -- permissions --------------------------------------------------------------------------------


def _add_permissions(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "permissions",
        help="list, set and clear users' permissions on vhosts",
        description="Users' configure, write and read permissions (regular expressions), per "
        "vhost (administrator only).",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren permissions list --vhost prod\n"
        "  $ warren permissions set billing '^billing' '^orders$' '^billing' --vhost prod\n"
        "  $ warren permissions clear billing --vhost prod",
    )
    commands = parser.add_subparsers(dest="permissions_command", metavar="SUBCOMMAND")
    commands.required = True

    list_ = commands.add_parser(
        "list", help="list permissions (every vhost unless --vhost)",
        description="List permissions: user, vhost, configure, write, read. Every vhost's "
        "unless --vhost; --user keeps one user's.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren permissions list --user guest\n"
        "  user   vhost  configure  write  read\n  guest  /      .*         .*     .*",
    )
    list_.add_argument("--vhost", default=None, help="only this vhost's")
    list_.add_argument("--user", default=None, help="only this user's")
    list_.add_argument("--json", action="store_true", help="print the API's JSON")
    add_management_arguments(list_)
    list_.set_defaults(func=_command("warren permissions list", _permissions_list))

    set_ = commands.add_parser(
        "set", help="set a user's permissions on a vhost",
        description="Set a user's permissions on a vhost, as rabbitmqctl set_permissions: three "
        "regular expressions matched against resource names ('.*' all, '' none).",
        formatter_class=_RAW,
        epilog="example:\n  $ warren permissions set billing '^billing' '^orders$' '^billing' "
        "--vhost prod\n  set the permissions of user 'billing' on vhost 'prod': configure "
        "'^billing' write '^orders$' read '^billing'",
    )
    set_.add_argument("user", metavar="USER")
    set_.add_argument("configure", metavar="CONFIGURE")
    set_.add_argument("write", metavar="WRITE")
    set_.add_argument("read", metavar="READ")
    _vhost_option(set_)
    add_management_arguments(set_)
    set_.set_defaults(func=_command("warren permissions set", _permissions_set))

    clear = commands.add_parser(
        "clear", help="remove a user's permissions on a vhost",
        description="Remove a user's permissions on a vhost.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren permissions clear billing --vhost prod",
    )
    clear.add_argument("user", metavar="USER")
    _vhost_option(clear)
    add_management_arguments(clear)
    clear.set_defaults(func=_command("warren permissions clear", _permissions_clear))


_PERMISSION_COLUMNS = ["user", "vhost", "configure", "write", "read"]


def _permissions_list(args: argparse.Namespace) -> int:
    items = _client(args).get("/api/permissions") or []
    items = [
        p for p in items
        if isinstance(p, dict)
        and (args.vhost is None or p.get("vhost") == args.vhost)
        and (args.user is None or p.get("user") == args.user)
    ]
    if args.json:
        _print_json(items)
    else:
        for line in format_table(items, _PERMISSION_COLUMNS):
            print(line)
    return EXIT_OK


def _permissions_set(args: argparse.Namespace) -> int:
    api = _client(args)
    body = {"configure": args.configure, "write": args.write, "read": args.read}
    try:
        api.put(f"/api/permissions/{segment(args.vhost)}/{segment(args.user)}", body)
    except APIError as error:
        # RabbitMQ: 400 vhost_or_user_not_found; say which.
        if error.not_found or "not_found" in error.reason or "no_such" in error.reason:
            if not _vhost_exists(api, args.vhost):
                raise CommandError(f"no vhost {args.vhost!r}") from None
            if _user(api, args.user) is None:
                raise CommandError(f"no user {args.user!r}") from None
        raise
    print(f"set the permissions of user {args.user!r} on vhost {args.vhost!r}: configure "
          f"{args.configure!r} write {args.write!r} read {args.read!r}")
    return EXIT_OK


def _permissions_clear(args: argparse.Namespace) -> int:
    return _delete_named(
        args, f"/api/permissions/{segment(args.vhost)}/{segment(args.user)}",
        f"user {args.user!r} has no permissions on vhost {args.vhost!r}",
        f"cleared the permissions of user {args.user!r} on vhost {args.vhost!r}",
    )


# -- definitions --------------------------------------------------------------------------------


def _add_definitions(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "definitions",
        help="export or import the broker's definitions JSON",
        description="RabbitMQ's definitions JSON (users, vhosts, permissions, parameters, "
        "policies, exchanges, queues, bindings) from and to a running broker "
        "(administrator only). `warren config from-definitions` turns an export into the "
        "configuration language.",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren definitions export defs.json\n"
        "  $ warren definitions export --vhost prod > prod.json\n"
        "  $ warren definitions import defs.json --management-url http://other:15672",
    )
    commands = parser.add_subparsers(dest="definitions_command", metavar="SUBCOMMAND")
    commands.required = True
    export = commands.add_parser(
        "export", help="write the broker's definitions (to FILE, or stdout)",
        description="GET /api/definitions (or /api/definitions/VHOST: that vhost's topology, "
        "policies and parameters, without vhost keys) into FILE, replaced atomically, or "
        "stdout.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren definitions export defs.json\n  exported 3 users, "
        "2 vhosts, 3 permissions, 12 exchanges, 20 queues, 31 bindings to defs.json",
    )
    export.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="where to write (default: - , stdout)")
    export.add_argument("--vhost", default=None, help="only this vhost's definitions")
    add_management_arguments(export)
    export.set_defaults(func=_command("warren definitions export", _export))
    import_ = commands.add_parser(
        "import", help="load definitions into the broker",
        description="POST a definitions file to /api/definitions (or /api/definitions/VHOST: "
        "its topology into that vhost). What exists is left as it is, as RabbitMQ does.",
        formatter_class=_RAW,
        epilog="example:\n  $ warren definitions import defs.json\n  imported defs.json: 3 "
        "users, 2 vhosts, 3 permissions, 12 exchanges, 20 queues, 31 bindings",
    )
    import_.add_argument("file", metavar="FILE", help="a definitions JSON file (- for stdin)")
    import_.add_argument("--vhost", default=None, help="import the topology into this vhost")
    add_management_arguments(import_)
    import_.set_defaults(func=_command("warren definitions import", _import))


_COUNTED = ("users", "vhosts", "permissions", "topic_permissions", "parameters", "policies",
            "exchanges", "queues", "bindings")


def _counts(document: dict[str, Any]) -> str:
    parts = []
    for key in _COUNTED:
        items = document.get(key)
        if isinstance(items, list) and items:
            word = key.replace("_", " ")
            parts.append(f"{len(items)} {word[:-1] if len(items) == 1 else word}")
    return ", ".join(parts) or "nothing"


def _vhost_missing(error: APIError) -> bool:
    return error.not_found or "vhost_not_found" in error.reason


def _export(args: argparse.Namespace) -> int:
    api = _client(args)
    path = "/api/definitions" + (f"/{segment(args.vhost)}" if args.vhost is not None else "")
    try:
        document = api.get(path)
    except APIError as error:
        if args.vhost is not None and _vhost_missing(error):
            raise CommandError(f"no vhost {args.vhost!r}") from None
        raise
    if not isinstance(document, dict):
        raise CommandError(f"{api.base}{path}: expected a JSON object")
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
        return EXIT_OK
    _write_atomically(args.file, text)
    print(f"exported {_counts(document)} to {args.file}")
    return EXIT_OK


def _write_atomically(path: str, text: str) -> None:
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".warren-export-", dir=directory)
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)  # password hashes: not for everyone's eyes
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _import(args: argparse.Namespace) -> int:
    from ._common import read_text

    name = "<stdin>" if args.file == "-" else args.file
    text = read_text(args.file)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{name}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}") \
            from None
    if not isinstance(document, dict):
        raise CommandError(f"{name}: expected a JSON object (a definitions export)")
    api = _client(args)
    path = "/api/definitions" + (f"/{segment(args.vhost)}" if args.vhost is not None else "")
    try:
        api.post(path, document)
    except APIError as error:
        if args.vhost is not None and _vhost_missing(error):
            raise CommandError(f"no vhost {args.vhost!r}") from None
        if error.http_status == 400:
            raise CommandError(f"{name} was refused: {error.reason or error}") from None
        raise
    where = f" into vhost {args.vhost!r}" if args.vhost is not None else ""
    print(f"imported {name}{where}: {_counts(document)}")
    return EXIT_OK
