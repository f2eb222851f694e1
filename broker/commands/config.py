"""`warren config`: check, format, convert and apply configuration files.

    warren config check FILE... [--vhost VHOST]
    warren config fmt FILE... [--check | --diff] [--vhost VHOST]
    warren config from-definitions DEFS.json [--vhost VHOST]
    warren config to-definitions FILE [--vhost VHOST]
    warren config apply FILE [--url URL] [--dry-run] [--management-url URL]
                             [--replace-passwords] [--json]
    warren config hash-password [--algorithm sha256|sha512|md5]

A file describes one vhost's topology (the --vhost, or the AMQP URL's) and
may declare vhosts, users, permissions and limits, which name their vhost.

Files are in the binding-configuration language (docs/config-language.md);
the language itself is `routing.config`. See docs/cli.md for each command's
output.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    EXIT_FAILED,
    EXIT_NO,
    EXIT_OK,
    CommandError,
    add_url_argument,
    run_command,
)

__all__ = ["add_parser"]

_RAW = argparse.RawDescriptionHelpFormatter


def add_parser(subparsers: Any) -> None:
    """Register `warren config` and its subcommands (see broker/cli.py)."""
    parser = subparsers.add_parser(
        "config",
        help="check, format, convert and apply topology files",
        description="Work with files in the binding-configuration language "
        "(docs/config-language.md).",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  warren config check topology/*.conf\n"
        "  warren config fmt --check topology/*.conf\n"
        "  warren config apply orders.conf --url amqp://guest:guest@rabbit:5672/ --dry-run",
    )
    commands = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    commands.required = True

    check = commands.add_parser(
        "check",
        help="report every error in the files",
        description="Check configuration files. Exit 0 when every file is valid; otherwise "
        "print every error with file:line:column, the line, a caret under the problem and a "
        "hint, and exit 1.",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ warren config check orders.conf\n"
        "  orders.conf:1:22: unknown exchange type 'topik': did you mean 'topic'?\n"
        "      exchange orders type topik durable\n"
        "                           ^^^^^\n"
        "  1 error in 1 file",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="files to check (- for stdin)")
    _vhost_argument(check)
    check.set_defaults(func=lambda args: run_command("warren config check", lambda: _check(args)))

    fmt = commands.add_parser(
        "fmt",
        help="rewrite files in canonical form",
        description="Rewrite configuration files in canonical form (flags on the statement's "
        "line, one valued option per indented line, units normalised, comments kept). "
        "With --check, change nothing and list the files that are not canonical (exit 1 if "
        "any): for CI.",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ warren config fmt orders.conf\n"
        "  reformatted orders.conf\n"
        "  $ warren config fmt --check topology/*.conf\n"
        "  topology/billing.conf",
    )
    fmt.add_argument("files", nargs="+", metavar="FILE", help="files to format (- : stdin to stdout)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="list the files that are not canonical; change none"
    )
    mode.add_argument(
        "--diff", action="store_true", help="print what would change as a unified diff; change none"
    )
    _vhost_argument(fmt)
    fmt.set_defaults(func=lambda args: run_command("warren config fmt", lambda: _fmt(args)))

    from_defs = commands.add_parser(
        "from-definitions",
        help="RabbitMQ definitions JSON -> configuration language, on stdout",
        description="Convert a RabbitMQ definitions export (GET /api/definitions, or "
        "rabbitmqctl export_definitions) to the configuration language, in canonical form, on "
        "stdout: the topology and the policies of one vhost (--vhost), and every user, vhost, "
        "permission, topic permission and vhost limit. What the language cannot write (a "
        "policy with a setting Warren does not implement, other parameters, global "
        "parameters, items with nested arguments) is left out with a line on stderr naming "
        "it, and the exit status is 1; the other vhosts' topology and policies and the node's "
        "cluster id are left out with a note.",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ curl -su guest:guest http://rabbit:15672/api/definitions > defs.json\n"
        "  $ warren config from-definitions defs.json > topology.conf",
    )
    from_defs.add_argument("definitions", metavar="DEFS.json", help="the export (- for stdin)")
    from_defs.add_argument(
        "--vhost", default="/", help="the vhost whose topology to convert (default: /)"
    )
    from_defs.set_defaults(
        func=lambda args: run_command(
            "warren config from-definitions", lambda: _from_definitions(args)
        )
    )

    to_defs = commands.add_parser(
        "to-definitions",
        help="configuration language -> RabbitMQ definitions JSON, on stdout",
        description="Convert a configuration file to RabbitMQ's definitions JSON on stdout "
        "(importable with POST /api/definitions or rabbitmqctl import_definitions).",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ warren config to-definitions orders.conf > defs.json\n"
        "  $ curl -su guest:guest -H 'content-type: application/json' \\\n"
        "        -d @defs.json http://rabbit:15672/api/definitions",
    )
    to_defs.add_argument("file", metavar="FILE", help="the configuration file (- for stdin)")
    to_defs.add_argument(
        "--vhost", default="/", help="the vhost of the file's topology (default: /)"
    )
    to_defs.set_defaults(
        func=lambda args: run_command("warren config to-definitions", lambda: _to_definitions(args))
    )

    apply = commands.add_parser(
        "apply",
        help="declare a file's topology on a running broker (Warren or RabbitMQ)",
        description="Declare every exchange, queue and binding in FILE on a running broker, "
        "Warren or RabbitMQ, over AMQP, in the URL's vhost. Idempotent, and deletes nothing. "
        "Each object is reported created, present, or conflict (with the property that "
        "differs); bindings are reported bound (AMQP cannot ask whether a binding exists) "
        "unless --management-url lets apply read the existing bindings. Vhosts, users, "
        "permissions, topic permissions and limits need --management-url (RabbitMQ's HTTP "
        "API): they are applied first, and reported created, present, changed or conflict. "
        "Policies and operator policies (of the URL's vhost) are applied through the "
        "management API too, before the topology, and reported created, present or changed. "
        "Exit 1 if anything conflicted or failed.",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ warren config apply orders.conf --url amqp://guest:guest@localhost:5672/\n"
        "  created      exchange orders\n"
        "  present      exchange orders.retry\n"
        "  conflict     queue billing: durable is 'false' on the broker, 'true' in the file\n"
        "  bound        bind billing to orders key \"order.*.created\"\n"
        "  1 created, 1 present, 1 bound, 1 conflicting",
    )
    apply.add_argument("file", metavar="FILE", help="the configuration file (- for stdin)")
    add_url_argument(apply)
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="create nothing: report what exists, what conflicts and what would be created",
    )
    apply.add_argument(
        "--management-url",
        metavar="URL",
        default=None,
        help="RabbitMQ's management API (e.g. http://localhost:15672): read existing bindings "
        "so each is reported created or present, and apply vhosts, users, permissions and "
        "limits (credentials: the URL's, else the AMQP URL's)",
    )
    apply.add_argument(
        "--replace-passwords",
        action="store_true",
        help="replace a user's password hash that differs from the file's (by default a "
        "conflict, and the user is left as it is)",
    )
    apply.add_argument("--json", action="store_true", help="one JSON object per line")
    apply.set_defaults(func=lambda args: run_command("warren config apply", lambda: _apply(args)))

    hash_password = commands.add_parser(
        "hash-password",
        help="print a RabbitMQ password hash for a user statement's password-hash",
        description="Read a password (typed twice at a terminal, else the first line of "
        "stdin) and print RabbitMQ's hash of it: base64 of a random 4-byte salt and "
        "H(salt + UTF-8 password), as RabbitMQ 3.10 makes them (broker.auth.passwords). "
        "The password is never an argument (it would show in the process list and the "
        "shell history).",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ warren config hash-password\n"
        "  Password: \n"
        "  Again: \n"
        "  ttFpXR8Ha6VMd2aJcoNQ84laKAyOS8vZazudbK7P+9FLAjqU\n"
        "  $ printf '%s\\n' \"$PASSWORD\" | warren config hash-password --algorithm sha512",
    )
    hash_password.add_argument(
        "--algorithm",
        choices=("sha256", "sha512", "md5"),
        default="sha256",
        help="the user's hashing-algorithm (default: sha256, RabbitMQ's)",
    )
    hash_password.set_defaults(
        func=lambda args: run_command("warren config hash-password", lambda: _hash_password(args))
    )


def _vhost_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vhost",
        default="/",
        help="the vhost the file's topology is for: permissions and limits may name it "
        "without a vhost statement (default: /)",
    )


# -- check ---------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _check(args: argparse.Namespace) -> int:
    from routing import config

    from ._common import read_text

    errors_total = 0
    bad_files = 0
    unreadable = 0
    for path in args.files:
        try:
            text = read_text(path)
        except CommandError as error:
            print(f"warren config check: {error}", file=sys.stderr)
            unreadable += 1
            continue
        name = "<stdin>" if path == "-" else path
        errors = config.check(text, name, args.vhost)
        if errors:
            bad_files += 1
            errors_total += len(errors)
            for error in errors:
                print(error)
        else:
            model = config.parse(text, name, args.vhost)
            print(f"{name}: ok ({_plural(len(model.declarations), 'declaration')})")
    if errors_total:
        print(f"{_plural(errors_total, 'error')} in {_plural(bad_files, 'file')}")
    if unreadable:
        return EXIT_FAILED
    return EXIT_NO if errors_total else EXIT_OK


# -- fmt -----------------------------------------------------------------------------


def _fmt(args: argparse.Namespace) -> int:
    import difflib

    from routing import config

    from ._common import first_error, read_text, shell_quote

    changed: list[str] = []
    failed = 0
    for path in args.files:
        name = "<stdin>" if path == "-" else path
        try:
            text = read_text(path)
            errors = config.check(text, name, args.vhost)
            if errors:
                option = "" if args.vhost == "/" else f" --vhost {shell_quote(args.vhost)}"
                raise CommandError(f"{first_error(errors)}; not formatted "
                                   f"(run `warren config check{option} {path}`)")
            canonical = config.format(config.parse(text, name, args.vhost))
        except CommandError as error:
            print(f"warren config fmt: {error}", file=sys.stderr)
            failed += 1
            continue
        if path == "-" and not (args.check or args.diff):
            sys.stdout.write(canonical)
            continue
        if canonical == text:
            continue
        changed.append(name)
        if args.check:
            print(name)
        elif args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    canonical.splitlines(keepends=True),
                    fromfile=name,
                    tofile=f"{name} (canonical)",
                )
            )
        else:
            _rewrite(path, canonical)
            print(f"reformatted {name}")
    if failed:
        return EXIT_FAILED
    if (args.check or args.diff) and changed:
        return EXIT_NO
    return EXIT_OK


def _rewrite(path: str, text: str) -> None:
    """Replace `path`'s content atomically, keeping its permissions."""
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".warren-fmt-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- definitions ---------------------------------------------------------------------

#: How deeply nested a definitions file may be (recursion frames while decoding).
JSON_DEPTH_LIMIT = 10_000


def _from_definitions(args: argparse.Namespace) -> int:
    import json

    from routing import config

    from ._common import read_text

    name = "<stdin>" if args.definitions == "-" else args.definitions
    text = read_text(args.definitions)
    # An export may hold argument tables nested deeper than the interpreter's
    # default limit (1000): allow more, and refuse what is deeper still.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, JSON_DEPTH_LIMIT))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(
            f"{name}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}"
        ) from None
    except RecursionError:
        raise CommandError(f"{name}: JSON nested too deeply to read") from None
    finally:
        sys.setrecursionlimit(limit)
    if not isinstance(data, dict):
        raise CommandError(f"{name}: expected a JSON object (a definitions export)")
    skipped: list[str] = []
    notes: list[str] = []

    try:
        model = config.from_definitions(
            data, args.vhost, warn=skipped.append, note=notes.append
        )
    except config.DefinitionsError as error:
        problems = error.problems
        raise CommandError(
            f"{name}: {_plural(len(problems), 'problem')}: " + "; ".join(problems)
        ) from None
    if not model.declarations:
        raise CommandError(
            f"{name}: nothing to convert: no exchanges, queues or bindings in vhost "
            f"{args.vhost!r}, and no users, vhosts, permissions or limits"
        )
    # What was left out, and why: never silently. Printed once the export is
    # known to be readable (a malformed one is one line, above).
    for message in skipped:
        print(f"warren config from-definitions: {name}: warning: {message}", file=sys.stderr)
    for message in notes:
        print(f"warren config from-definitions: {name}: note: {message}", file=sys.stderr)
    text = config.format(model)
    sys.stdout.write(text)
    # The export may name what it does not hold (an exchange of another vhost,
    # a dead-letter exchange never declared): say so, the text is still printed.
    errors = config.check(text, f"{name} (converted)", args.vhost)
    for error in errors:
        print(error, file=sys.stderr)
    # Skipped items: the text is printed, but it is not the whole export.
    return EXIT_NO if errors or skipped else EXIT_OK


def _to_definitions(args: argparse.Namespace) -> int:
    import json

    from routing import config

    from ._common import read_config

    model = read_config(args.file, args.vhost)
    print(json.dumps(config.to_definitions(model, args.vhost), indent=2, ensure_ascii=False))
    return EXIT_OK


# -- hash-password -------------------------------------------------------------------


def _hash_password(args: argparse.Namespace) -> int:
    import getpass

    from broker.auth.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the two passwords differ; nothing printed")
    else:
        raw = sys.stdin.buffer.readline().removesuffix(b"\n").removesuffix(b"\r")
        try:
            password = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CommandError(
                f"the password is not UTF-8 text ({error.reason} at byte {error.start}); "
                "RabbitMQ hashes a password's UTF-8 bytes"
            ) from None
    if not password:
        raise CommandError(
            "the password is empty, and RabbitMQ refuses empty passwords (a user without a "
            "password has no password-hash in the file)"
        )
    print(hash_password(password, f"rabbit_password_hashing_{args.algorithm}"))
    return EXIT_OK


# -- apply ---------------------------------------------------------------------------


def _apply(args: argparse.Namespace) -> int:
    import json

    import trio

    from broker.client import open_connection, parse_url

    from ._common import Progress, check_url, read_config
    from .apply import (
        CONFLICT,
        FAILED,
        ManagementAPI,
        Outcome,
        apply_access,
        apply_topology,
        needs_management,
        plan_access,
        plan_policies,
        summary,
        would_create,
    )

    check_url(args.url)
    params = parse_url(args.url)
    # The topology goes to the URL's vhost: the file may name it without a vhost statement.
    model = read_config(args.file, params.vhost)
    name = "<stdin>" if args.file == "-" else args.file
    if (model.access or model.policies) and not args.management_url:
        raise CommandError(needs_management(name, model))
    management = None
    if args.management_url:
        management = ManagementAPI(
            args.management_url, params.username, params.password, params.vhost
        )
    # Read everything before writing anything.
    actions = []
    creates_vhost = False
    if management is not None and model.access:
        state = management.access_state()
        actions = plan_access(
            model, state, dry_run=args.dry_run, replace_passwords=args.replace_passwords
        )
        creates_vhost = params.vhost not in state.vhosts and any(
            v.name == params.vhost for v in model.vhosts
        )
    if management is not None and model.policies:
        # After the access statements (the file may create the vhost), before
        # the topology: queues and exchanges are declared with their policies.
        actions += plan_policies(model, management.policy_state(), params.vhost,
                                 dry_run=args.dry_run)
    topology = bool(model.topology)
    progress = Progress("applying" if not args.dry_run else "checking",
                        len(model.declarations))

    reported = 0

    def report(outcome: Outcome) -> None:
        nonlocal reported
        progress.echo(json.dumps(outcome.as_json()) if args.json else outcome.line())
        reported += 1
        progress.update(reported)

    async def declare(conn: Any, existing: set[tuple] | None) -> list[Outcome]:
        return await apply_topology(
            conn, model, dry_run=args.dry_run, existing_bindings=existing, report=report
        )

    async def main() -> list[Outcome]:
        outcomes: list[Outcome] = []
        if not topology:
            return apply_access(management, actions, report) if management else []
        if creates_vhost:
            # The URL's vhost is one the file creates: no AMQP connection to it
            # before the management API has made it, and none at all in a dry run.
            assert management is not None
            outcomes += await trio.to_thread.run_sync(apply_access, management, actions, report)
            if args.dry_run:
                for outcome in would_create(model):
                    report(outcome)
                    outcomes.append(outcome)
                return outcomes
            existing: set[tuple] | None = set()  # a new vhost has no bindings
            async with open_connection(
                args.url, client_properties={"connection_name": "warren config apply"}
            ) as conn:
                return outcomes + await declare(conn, existing)
        existing = None
        if management is not None:
            existing = await trio.to_thread.run_sync(management.binding_keys)
        # Connect (and log in) before the management API writes anything.
        async with open_connection(
            args.url, client_properties={"connection_name": "warren config apply"}
        ) as conn:
            if management is not None and actions:
                outcomes += await trio.to_thread.run_sync(
                    apply_access, management, actions, report
                )
            return outcomes + await declare(conn, existing)

    try:
        outcomes = trio.run(main)
    finally:
        progress.close()
    if not args.json:
        print(summary(outcomes, args.dry_run))
    bad = any(o.status in (CONFLICT, FAILED) for o in outcomes)
    return EXIT_NO if bad else EXIT_OK
