"""A small client of RabbitMQ's management HTTP API (and Warren's, which is the same).

    endpoint = resolve_endpoint(args)        # --management-url, $WARREN_MANAGEMENT_URL, a profile...
    api = ManagementClient(endpoint)
    queues = api.get("/api/queues/" + segment("/"))
    api.delete(f"/api/connections/{segment(name)}", headers={"X-Reason": "maintenance"})

Standard library only (`http.client`, which `urllib.request` is built on, used
directly so that no proxy from the environment and no redirect is ever
followed with the credentials). One new connection per request, as
rabbitmqadmin does; HTTP Basic authentication; JSON both ways; a timeout on
every request; `https://` with the system's CA store or `--cacert FILE`.

Every failure is one line (docs/cli.md, "Errors are one line"), never a
traceback, and never shows a password:

- not reaching the API at all (refused, unknown host, timeout, an AMQP port,
  TLS spoken to a plain port or plain HTTP to a TLS port, a certificate that
  is not trusted) is a `CommandError` saying which and what to do;
- an HTTP error status is an `APIError` (a `CommandError`) carrying the
  status and RabbitMQ's `{"error": ..., "reason": ...}` turned into one line
  (its reasons may be Erlang terms: lists of code points, tuples as arrays).

Where the URL comes from, first found wins (docs/cli.md, "Which management API"):

1. `--management-url URL`;
2. `--profile NAME`: that section of the profiles file;
3. `$WARREN_MANAGEMENT_URL`;
4. `$WARREN_PROFILE`: that section of the profiles file;
5. the `[default]` section of the profiles file, if the file exists;
6. `http://guest:guest@localhost:15672/`.

The profiles file is `$WARREN_PROFILES`, else `$XDG_CONFIG_HOME/warren/profiles.toml`
(`~/.config/warren/profiles.toml`); `PROFILE_KEYS` lists what a section may hold.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from ._common import EXIT_FAILED, CommandError, redact_url

__all__ = [
    "DEFAULT_MANAGEMENT_URL",
    "DEFAULT_TIMEOUT",
    "APIError",
    "Endpoint",
    "ManagementClient",
    "add_management_arguments",
    "erlang_text",
    "profiles_path",
    "resolve_endpoint",
    "segment",
]

#: The API used when nothing else names one (RabbitMQ's and Warren's default port).
DEFAULT_MANAGEMENT_URL = "http://guest:guest@localhost:15672/"
#: Seconds a request may take (connecting, then each read) unless told otherwise.
DEFAULT_TIMEOUT = 30.0

URL_ENV = "WARREN_MANAGEMENT_URL"
PASSWORD_ENV = "WARREN_MANAGEMENT_PASSWORD"
CACERT_ENV = "WARREN_MANAGEMENT_CACERT"
PROFILE_ENV = "WARREN_PROFILE"
PROFILES_ENV = "WARREN_PROFILES"

#: What a profile section may hold (anything else is refused: a typo must not
#: silently fall back to guest/guest).
PROFILE_KEYS = ("url", "user", "password", "password-env", "cacert", "timeout")


def segment(name: str) -> str:
    """`name` as one path segment: every reserved byte escaped (`/` is `%2F`)."""
    return quote(name, safe="")


# -- where the API is --------------------------------------------------------------------


@dataclass
class Endpoint:
    """A management API and how to log in to it."""

    #: scheme://host:port[/prefix], without credentials and without a trailing slash.
    base: str
    #: None: not given by the source (the caller picks: guest, or the AMQP URL's).
    username: str | None
    password: str | None
    cacert: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    #: Where it came from, for messages: "--management-url", "$WARREN_MANAGEMENT_URL",
    #: "profile 'prod'", "the default".
    source: str = "the default"

    @property
    def configured(self) -> bool:
        """True unless this is the built-in default (nothing named an API)."""
        return self.source != "the default"


def profiles_path() -> Path:
    """The profiles file: $WARREN_PROFILES, else $XDG_CONFIG_HOME/warren/profiles.toml."""
    explicit = os.environ.get(PROFILES_ENV)
    if explicit:
        return Path(explicit).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "warren" / "profiles.toml"


def _load_profiles(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    return data


def _profile(name: str, path: Path, required: bool) -> dict[str, Any] | None:
    """The section `name` of the profiles file, checked; None if absent and not required."""
    if not path.exists():
        if required:
            raise CommandError(f"profile {name!r}: there is no profiles file ({path})")
        return None
    profiles = _load_profiles(path)
    section = profiles.get(name)
    if section is None:
        if required:
            known = ", ".join(sorted(k for k, v in profiles.items() if isinstance(v, dict)))
            raise CommandError(
                f"{path}: no profile {name!r}" + (f" (it has: {known})" if known else "")
            )
        return None
    if not isinstance(section, dict):
        raise CommandError(f"{path}: [{name}] must be a table of settings")
    unknown = sorted(set(section) - set(PROFILE_KEYS))
    if unknown:
        raise CommandError(
            f"{path}: [{name}]: unknown setting {unknown[0]!r} (known: {', '.join(PROFILE_KEYS)})"
        )
    for key in ("url", "user", "password", "password-env", "cacert"):
        if key in section and not isinstance(section[key], str):
            raise CommandError(f"{path}: [{name}] {key} must be a string")
    if "timeout" in section and (
        isinstance(section["timeout"], bool)
        or not isinstance(section["timeout"], int | float)
        or section["timeout"] <= 0
    ):
        raise CommandError(f"{path}: [{name}] timeout must be a positive number of seconds")
    if "url" not in section:
        raise CommandError(f"{path}: [{name}] has no url")
    return section


def _split_url(url: str, what: str) -> tuple[str, str | None, str | None]:
    """(base without credentials, user, password) of an http(s) URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise CommandError(f"{what}: not a valid URL: {redact_url(url)!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise CommandError(
            f"{what} must be an http:// or https:// URL (the management API, e.g. "
            f"http://localhost:15672), got {redact_url(url)!r}"
        )
    netloc = parts.netloc.rpartition("@")[2]
    base = f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return base, user, password


def resolve_endpoint(args: argparse.Namespace) -> Endpoint:
    """Where the management API is and how to log in, from the options, the
    environment and the profiles file (first found wins; see the module's docstring)."""
    flag_url = getattr(args, "management_url", None)
    flag_profile = getattr(args, "profile", None)
    flag_cacert = getattr(args, "cacert", None)
    flag_timeout = getattr(args, "timeout", None)
    env_url = os.environ.get(URL_ENV)
    env_profile = os.environ.get(PROFILE_ENV)
    path = profiles_path()

    section: dict[str, Any] | None = None
    profile_name = ""
    if flag_url:
        url, source = flag_url, "--management-url"
    elif flag_profile:
        section = _profile(flag_profile, path, required=True)
        profile_name = flag_profile
    elif env_url:
        url, source = env_url, f"${URL_ENV}"
    elif env_profile:
        section = _profile(env_profile, path, required=True)
        profile_name = env_profile
    else:
        section = _profile("default", path, required=False)
        profile_name = "default"
        if section is None:
            url, source = DEFAULT_MANAGEMENT_URL, "the default"

    cacert = flag_cacert or os.environ.get(CACERT_ENV) or None
    timeout = flag_timeout
    if section is not None:
        url, source = section["url"], f"profile {profile_name!r} ({path})"
        base, user, password = _split_url(url, f"{path}: [{profile_name}] url")
        user = section.get("user", user)
        if "password" in section:
            password = section["password"]
        elif "password-env" in section:
            variable = section["password-env"]
            password = os.environ.get(variable)
            if password is None:
                raise CommandError(
                    f"profile {profile_name!r}: its password-env names ${variable}, which is not set"
                )
        cacert = flag_cacert or section.get("cacert") or cacert
        if timeout is None:
            timeout = section.get("timeout")
    else:
        what = "--management-url" if source == "--management-url" else f"${URL_ENV}"
        base, user, password = _split_url(url, what)
        if password is None and os.environ.get(PASSWORD_ENV) is not None:
            password = os.environ[PASSWORD_ENV]
    if cacert:
        cacert = str(Path(cacert).expanduser())
    return Endpoint(
        base=base,
        username=user,
        password=password,
        cacert=cacert,
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        source=source,
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def add_management_arguments(
    parser: argparse.ArgumentParser, *, timeout: bool = True, url_help: str | None = None,
    url_aliases: tuple[str, ...] = (),
) -> None:
    """--management-url, --profile, --cacert (and --timeout) on a command's parser.

    `url_aliases` are other spellings of --management-url, for a command that
    has no AMQP URL to confuse it with (`warren cluster status --url`)."""
    group = parser.add_argument_group(
        "management API",
        "first found wins: --management-url, --profile, $WARREN_MANAGEMENT_URL, "
        "$WARREN_PROFILE, the [default] profile, http://guest:guest@localhost:15672/",
    )
    source = group.add_mutually_exclusive_group()
    source.add_argument(
        "--management-url",
        *url_aliases,
        dest="management_url",
        metavar="URL",
        default=None,
        help=url_help or "the management HTTP API, http(s)://[USER:PASSWORD@]HOST:PORT "
        "(a password left out comes from $WARREN_MANAGEMENT_PASSWORD)",
    )
    source.add_argument(
        "--profile",
        metavar="NAME",
        default=None,
        help="a section of the profiles file ($WARREN_PROFILES, else "
        "~/.config/warren/profiles.toml)",
    )
    group.add_argument(
        "--cacert",
        metavar="FILE",
        default=None,
        help="CA certificates (PEM) to trust for an https:// API, instead of the system's "
        "(default: the profile's cacert when the API comes from a profile, else "
        "$WARREN_MANAGEMENT_CACERT)",
    )
    if timeout:
        group.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=_positive_seconds,
            default=None,
            help=f"give up on a request after this long (default: the profile's, else "
            f"{DEFAULT_TIMEOUT:g})",
        )


# -- errors -------------------------------------------------------------------------------


def erlang_text(value: Any) -> str:
    """RabbitMQ's reason as text: it may be an Erlang term, where a string is a
    list of code points (an invalid regular expression's reason is
    ["invalid_regexp", "(", ["missing )", 1]], each string as numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if value and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 < c < 0x110000 for c in value
        ):
            return "".join(map(chr, value))
        if len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], list):
            return f"{erlang_text(value[0])} at {value[1]}"  # PCRE's message and offset
        return ": ".join(erlang_text(v) for v in value)
    return json.dumps(value)


class APIError(CommandError):
    """The management API answered with an error status (exit status 2 unless a
    command decides otherwise)."""

    def __init__(
        self, status: int, error: str, reason: str, method: str, path: str,
        message: str | None = None,
    ) -> None:
        self.http_status = status
        self.error = error
        self.reason = reason
        self.method = method
        self.path = path
        if message is None:
            text = http.client.responses.get(status, "")
            said = reason or error
            message = f"HTTP {status} {text}" + (f": {said}" if said else "") \
                + f" ({method} {path})"
        super().__init__(message, EXIT_FAILED)

    @property
    def not_found(self) -> bool:
        return self.http_status == 404


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- the client ---------------------------------------------------------------------------


class ManagementClient:
    """Requests to one management API (see the module's docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        username: str = "guest",
        password: str = "guest",
        fallback: str = "the default guest/guest",
    ) -> None:
        """`username`/`password` are used when the endpoint does not give them
        (`fallback` says where those come from, for messages)."""
        self.endpoint = endpoint
        self.username = endpoint.username if endpoint.username is not None else username
        if endpoint.password is not None:
            self.password = endpoint.password
        elif self.username == username:
            self.password = password
        else:
            raise CommandError(
                f"no password for user {self.username!r} ({endpoint.source}): put it in the "
                f"URL, in ${PASSWORD_ENV}, or in the profile (password-env)"
            )
        given = endpoint.username is not None or endpoint.password is not None
        self.credentials_source = endpoint.source if given else fallback
        parts = urlsplit(endpoint.base)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self._context: ssl.SSLContext | None = None

    @property
    def base(self) -> str:
        """The API's URL for messages: no credentials."""
        return self.endpoint.base

    # -- verbs -----------------------------------------------------------------------------

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body if body is not None else {})

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def delete(
        self, path: str, query: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        return self.request("DELETE", path, query=query, headers=headers)

    def answer(self, path: str, accept: tuple[int, ...] = ()) -> tuple[int, Any]:
        """GET `path`: (status, decoded JSON). A status in `accept` is an answer,
        not an error (`/api/cluster/health` answers 503 with a body on a follower)."""
        return self._send("GET", path, None, accept=accept)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer (None when it has no body).

        An error status raises `APIError`; anything that keeps an HTTP answer
        from arriving raises `CommandError`, one line saying what to do.
        """
        return self._send(method, path, body, query=query, headers=headers)[1]

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        target = self.prefix + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        sent: dict[str, Any] = {
            "Authorization": "Basic " + base64.b64encode(
                f"{self.username}:{self.password}".encode()
            ).decode("ascii"),
            "User-Agent": "warren-cli",
        }
        if data is not None:
            sent["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value:
                raise CommandError(f"{name} must be one line")
            sent[name] = value.encode("utf-8")  # RabbitMQ reads header values as UTF-8
        connection = self._connection()
        try:
            try:
                connection.request(method, target, body=data, headers=sent)
                response = connection.getresponse()
                raw = response.read()
            except BaseException as error:  # noqa: BLE001 - translated or re-raised
                raise self._transport_error(error) from None
        finally:
            connection.close()
        if response.status >= 400 and response.status not in accept:
            raise self._api_error(response, raw, method, path)
        if 300 <= response.status < 400:
            location = response.getheader("location", "")
            raise CommandError(
                f"{self.base}{path}: HTTP {response.status} redirect to {location!r}, not "
                "followed: is this the management API's address?"
            )
        if not raw:
            return response.status, None
        try:
            return response.status, json.loads(raw)
        except ValueError:
            kind = response.getheader("content-type", "no content type")
            raise CommandError(
                f"{self.base}{path} answered HTTP {response.status} with {kind}, not JSON: is "
                "this the RabbitMQ (or Warren) management API?"
            ) from None

    # -- transport ------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            cacert = self.endpoint.cacert
            if cacert is not None and not os.path.exists(cacert):
                raise CommandError(f"--cacert {cacert}: no such file")
            try:
                self._context = ssl.create_default_context(cafile=cacert)
            except (ssl.SSLError, OSError) as error:
                raise CommandError(
                    f"cannot use {cacert} as CA certificates: {getattr(error, 'reason', None) or error}"
                ) from None
        return self._context

    def _connection(self) -> http.client.HTTPConnection:
        timeout = self.endpoint.timeout
        if self.tls:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._ssl_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _transport_error(self, error: BaseException) -> BaseException:
        """The one-line `CommandError` for what kept an answer from arriving."""
        where = self.base
        default_port = "15671 for https" if self.tls else "15672"
        if isinstance(error, KeyboardInterrupt):
            return error
        if isinstance(error, ssl.SSLCertVerificationError):
            hint = "pass --cacert FILE with the CA that signed it" if not self.endpoint.cacert \
                else f"{self.endpoint.cacert} does not hold the CA that signed it"
            return CommandError(
                f"{where}: the server's TLS certificate is not trusted: "
                f"{error.verify_message or error.reason} ({hint})"
            )
        if isinstance(error, ssl.SSLError):
            reason = (error.reason or str(error)).replace("_", " ").lower()
            hint = ""
            if error.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL",
                                "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
                hint = " (is this port plain HTTP? then use http://)"
            return CommandError(f"{where}: TLS handshake failed: {reason}{hint}")
        if isinstance(error, TimeoutError):
            return CommandError(
                f"{where}: no answer within {self.endpoint.timeout:g}s (--timeout)"
            )
        if isinstance(error, http.client.BadStatusLine) and not isinstance(
            error, http.client.RemoteDisconnected
        ):
            line = str(error.args[0] if error.args else "")
            if line.startswith("AMQP"):
                return CommandError(
                    f"{where} answered in AMQP, not HTTP: that is the broker's AMQP port; "
                    f"the management API listens on another (by default {default_port})"
                )
            if line[:1] in ("\x15", "\x16"):  # a TLS alert or handshake record
                return CommandError(
                    f"{where} answered in TLS, not plain HTTP: use https://"
                )
            return CommandError(
                f"{where} did not answer in HTTP (it sent {line[:20]!r}): is it the "
                f"management API's port? (by default {default_port})"
            )
        if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError
                      | BrokenPipeError):
            other = "the broker's AMQP port" + ("" if self.tls else ", or a TLS port")
            return CommandError(
                f"{where} closed the connection without an HTTP answer: is it {other}? (the "
                f"management API listens on {default_port} by default)"
            )
        if isinstance(error, http.client.HTTPException):
            return CommandError(f"{where}: not a valid HTTP answer ({type(error).__name__})")
        if isinstance(error, socket.gaierror):
            return CommandError(
                f"{where}: cannot resolve {self.host!r}: {error.strerror or error}"
            )
        if isinstance(error, ConnectionRefusedError):
            return CommandError(
                f"cannot connect to the management API at {where}: connection refused (is the "
                "broker running, with its management API on that port?)"
            )
        if isinstance(error, OSError):
            return CommandError(
                f"cannot connect to the management API at {where}: {error.strerror or error}"
            )
        return error

    def _api_error(
        self, response: http.client.HTTPResponse, raw: bytes, method: str, path: str
    ) -> APIError:
        error = ""
        reason = ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = _one_line(erlang_text(body.get("error", "")))
            reason = _one_line(erlang_text(body.get("reason", "")))
        message = None
        if response.status == 401:
            if error == "not_authorized" or not raw:  # the login itself failed
                message = (
                    f"the management API at {self.base} refused the login of user "
                    f"{self.username!r}" + (f": {reason}" if reason else "")
                    + f" (HTTP 401; credentials from {self.credentials_source})"
                )
            else:  # logged in, but not allowed (RabbitMQ never answers 403)
                message = f"user {self.username!r} may not do this: {reason or error} (HTTP 401)"
        return APIError(response.status, error, reason, method, path, message)
