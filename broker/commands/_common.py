"""What every operator command shares: one-line errors, progress, `--header`.

The rule for errors (docs/cli.md): bad input or a broker that cannot be used
is one line on stderr, `warren <command>: <what happened>`, and a non-zero
exit status, never a traceback. `run_command` turns the exceptions the
commands can meet (unreadable files, invalid configuration, refused logins,
unreachable brokers, channel errors) into that line.

Exit statuses: 0 success; 1 the command ran and the answer is "no"
(errors found, files not canonical, conflicts, unroutable); 2 the command
could not do its job (bad input, unreachable broker, refused login); 130
interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_URL",
    "EXIT_FAILED",
    "EXIT_NO",
    "EXIT_OK",
    "CommandError",
    "Progress",
    "add_url_argument",
    "header_argument",
    "headers_dict",
    "name_argument",
    "read_config",
    "read_text",
    "redact_url",
    "run_command",
]

EXIT_OK = 0
EXIT_NO = 1
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130

#: The broker commands talk to when neither --url nor $WARREN_URL says otherwise.
DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


class CommandError(Exception):
    """A failure to report as one line (`warren <command>: <message>`)."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def redact_url(url: str) -> str:
    """`url` without its password, for messages (amqp://guest@host/)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}"))


def _describe(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception a command raised."""
    if isinstance(error, CommandError):
        return str(error), error.status
    from broker.client.errors import AMQPClosed, ClientError  # trio: only when needed

    if isinstance(error, AMQPClosed):
        if not error.reply_code:  # not the broker's words: socket, timeout
            return error.reply_text, EXIT_FAILED
        text = error.reply_text
        # RabbitMQ prefixes the text with the code name ("NOT_FOUND - no queue
        # 'x'"); add it when the broker did not, so every line names the code.
        if error.code_name and not text.startswith(error.code_name):
            text = f"{error.code_name} - {text}"
        return f"{text} (reply code {error.reply_code})", EXIT_FAILED
    if isinstance(error, ClientError):
        return str(error), EXIT_FAILED
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", EXIT_FAILED
    raise error


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run `body`; turn the failures a command can meet into one line on stderr."""
    try:
        return body()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`warren consume ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except BaseExceptionGroup as group:
        # A task group failing with one error: report that error.
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, BaseExceptionGroup):
            raise
        return _report(prog, leaf)
    except Exception as error:  # noqa: BLE001 - _report re-raises what it does not know
        return _report(prog, error)


def _report(prog: str, error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    message, status = _describe(error)
    print(f"{prog}: {message}", file=sys.stderr)
    return status


# -- files ---------------------------------------------------------------------


def read_text(path: str) -> str:
    """The text of `path` (`-` is stdin); `CommandError` if it cannot be read."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None


def read_config(path: str, vhost: str = "/") -> Any:
    """Parse the configuration file `path` into a `routing.model.TopologyConfig`.

    `vhost` is the vhost its topology is for (permissions and limits may name
    it without a vhost statement). A file that does not parse is one line: its
    first error, how many more, and the command that shows them all.
    """
    from routing import config

    text = read_text(path)
    errors = config.check(text, path, vhost)
    if errors:
        option = "" if vhost == "/" else f" --vhost {shell_quote(vhost)}"
        raise CommandError(
            f"{first_error(errors)}; run `warren config check{option} {path}` for details"
        )
    return config.parse(text, path, vhost)


def shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def first_error(errors: list[Any]) -> str:
    """`file:line:column: message`, with how many more errors there are."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first.filename}:{first.line}:{first.column}: {first.message}{more}"


# -- arguments -----------------------------------------------------------------


def add_url_argument(parser: argparse.ArgumentParser) -> None:
    """`--url URL`, defaulting to $WARREN_URL, then amqp://guest:guest@localhost:5672/."""
    parser.add_argument(
        "--url",
        default=os.environ.get("WARREN_URL") or DEFAULT_URL,
        help="the broker's AMQP URL, Warren or RabbitMQ (default: $WARREN_URL, "
        f"else {DEFAULT_URL})",
    )


def check_url(url: str) -> None:
    """`CommandError` for a URL that is not amqp:// or amqps://."""
    from broker.client import parse_url

    try:
        parse_url(url)
    except ValueError as error:
        raise CommandError(str(error)) from None


#: AMQP short strings (names, routing keys, most properties) are at most 255
#: bytes (spec 4.2.5.3).
SHORT_STRING_MAX = 255


def short_string(text: str, what: str = "a name") -> str:
    """`text`, or `argparse.ArgumentTypeError` if it is longer than a short string."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > SHORT_STRING_MAX:
        raise argparse.ArgumentTypeError(
            f"{what} is at most {SHORT_STRING_MAX} bytes, got {size}"
        )
    return text


def name_argument(text: str) -> str:
    """argparse `type=` for an exchange, queue or routing key (a short string)."""
    return short_string(text, "an AMQP name or routing key")


#: Headers whose value is a list of routing keys (RabbitMQ sender-selected distribution).
_ARRAY_HEADERS = ("CC", "BCC")


def header_argument(text: str) -> tuple[str, Any]:
    """argparse `type=` for `--header KEY=VALUE`.

    VALUE is read as the configuration language reads a header value, so
    `--header urgent=true` matches a binding written `urgent=true`: `true` and
    `false` are booleans, `5` an integer, `2.5` a float, a value in double
    quotes (`n='"5"'`) or anything else a string. `CC` and `BCC` take a
    comma-separated list of routing keys, sent as an array.
    """
    from routing.config.options import FIELD_INT_MAX, FIELD_INT_MIN, parse_generic

    name, eq, raw = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    short_string(name, "a header name")
    if name in _ARRAY_HEADERS:
        return name, [key for key in raw.split(",") if key]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return name, raw[1:-1]
    value = parse_generic(raw, quoted=False)
    if isinstance(value, int) and not isinstance(value, bool) \
            and not FIELD_INT_MIN <= value <= FIELD_INT_MAX:
        # The same range as the configuration language: signed 64-bit down,
        # unsigned 64-bit up (routing/config/options.py says why).
        raise argparse.ArgumentTypeError(f"{name}: {value} does not fit an AMQP field value")
    return name, value


def headers_dict(pairs: list[tuple[str, Any]] | None) -> dict[str, Any] | None:
    """The `--header` pairs as a table (later ones win), or None without any."""
    return dict(pairs) if pairs else None


# -- progress ------------------------------------------------------------------


class Progress:
    """`label: done/total` on one rewritten line of stderr, only on a terminal.

    Updates are throttled to ten a second, so calling `update` for every
    object or message costs a clock read. `close()` erases the line.
    """

    interval = 0.1

    def __init__(self, label: str, total: int | None = None, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.total = total
        try:
            self.enabled = self.stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False
        self._last = 0.0
        self._shown = False

    def update(self, done: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.total:
            text = f"{self.label}: {done}/{self.total} ({100 * done // self.total}%)"
        else:
            text = f"{self.label}: {done}"
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self._shown = True

    def echo(self, line: str, file: IO[str] | None = None) -> None:
        """Print `line` (to stdout by default) without garbling the progress line."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
            self._last = 0.0  # redraw at the next update
        out = file if file is not None else sys.stdout
        print(line, file=out, flush=self.enabled)

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
