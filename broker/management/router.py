"""A tiny router: path patterns with placeholders, per-segment decoding, the query.

    router = Router()
    router.add("/api/queues/{vhost}/{name}", get_queue)                     # GET (and HEAD)
    router.add("/api/queues/{vhost}/{name}", delete_queue, methods=["DELETE"])
    router.add("/js/{path*}", static_files, auth=False, produces=None)

Theory of operation:

- The raw path is split on "/" *before* percent-decoding, then each segment
  is decoded on its own: RabbitMQ's default vhost "/" travels as `%2F`, and
  a queue may be called "a/b" (`a%2Fb`). A malformed escape (`%ZZ`) or
  escaped bytes that are not UTF-8 are a 400, as cowboy answers. "+" stays
  "+" in a path (it means a space only in a query string).
- One trailing slash is ignored (`/api/queues/` is `/api/queues`, as
  RabbitMQ answers); other empty segments are kept, and a placeholder never
  matches an empty segment, so `/api/queues//x` is a 404.
- A pattern is literal segments, `{name}` placeholders (one non-empty
  segment) and at most one `{name*}`, last, matching the rest (zero or more
  segments). When several patterns match, the most specific wins, segment by
  segment: literal before placeholder before rest (so
  `/api/users/without-permissions` beats `/api/users/{name}` whatever the
  order they were added in). Two patterns of the same shape are refused
  when added.
- Each pattern has one endpoint per method. HEAD is served by the GET
  endpoint; OPTIONS is answered by the server from the methods there are;
  the `Allow` header lists them in RabbitMQ's order.
- The query string is parsed with `urllib.parse.parse_qsl` ("+" and `%20`
  are spaces, blank values kept); `Request.query` keeps the *first* value of
  a repeated name (RabbitMQ reads them with proplists:get_value).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote_to_bytes

from broker.management.messages import JSON_CONTENT_TYPE, Request, Response

__all__ = [
    "Handler",
    "KNOWN_METHODS",
    "Endpoint",
    "Route",
    "RouteMatch",
    "Router",
    "BadTarget",
    "split_target",
    "decode_segments",
    "parse_query",
    "accepts",
]

#: A handler is a plain or an async function of the request.
Handler = Callable[[Request], Awaitable[Response] | Response]

#: cowboy_rest's known_methods: any other method is 501 Not Implemented
#: (observed: `FOO /api/overview` answers 501 with an empty body).
KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The order of the `Allow` header, as RabbitMQ writes it
#: ("HEAD, GET, PUT, DELETE, OPTIONS", "HEAD, GET, POST, OPTIONS", "POST, OPTIONS").
_ALLOW_ORDER: Final = ("HEAD", "GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\*?)\}")

# Segment kinds, in order of precedence (lower is more specific).
_LITERAL, _PARAM, _REST = 0, 1, 2


class BadTarget(ValueError):
    """A request target that cannot be decoded: the server answers 400."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method of one route: the handler and what it requires.

    `auth=False` serves without credentials (static files, /api/auth, the
    Prometheus scrape). `produces` is the media type the endpoint answers in:
    a request whose Accept header refuses it gets 406, as from RabbitMQ
    (`Accept: text/html` on /api/overview); None skips the check.
    """

    handler: Handler
    auth: bool = True
    produces: str | None = JSON_CONTENT_TYPE


@dataclass(slots=True)
class Route:
    """A path pattern and its endpoints by method."""

    pattern: str
    kinds: tuple[int, ...]
    names: tuple[str, ...]
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def endpoint(self, method: str) -> Endpoint | None:
        """The endpoint serving `method`; HEAD is served by GET."""
        found = self.endpoints.get(method)
        if found is None and method == "HEAD":
            found = self.endpoints.get("GET")
        return found

    def allow(self) -> str:
        """The `Allow` header: the methods served, HEAD with GET, OPTIONS always."""
        methods = set(self.endpoints) | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        ordered = [m for m in _ALLOW_ORDER if m in methods]
        return ", ".join(ordered + sorted(methods - set(_ALLOW_ORDER)))


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route that matched a path, with its decoded placeholders."""

    route: Route
    params: dict[str, str]
    tail: tuple[str, ...]


def _compile(pattern: str) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """(literal-or-name per segment, kind per segment, placeholder names)."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts = [p for p in pattern.split("/")[1:]]
    if parts and parts[-1] == "":
        parts.pop()
    texts: list[str] = []
    kinds: list[int] = []
    names: list[str] = []
    for index, part in enumerate(parts):
        placeholder = _PLACEHOLDER.fullmatch(part)
        if placeholder is not None:
            name, star = placeholder.groups()
            if name in names:
                raise ValueError(f"placeholder {{{name}}} twice in {pattern!r}")
            if star and index != len(parts) - 1:
                raise ValueError(f"{{{name}*}} must be the last segment of {pattern!r}")
            texts.append(name)
            kinds.append(_REST if star else _PARAM)
            names.append(name)
        elif "{" in part or "}" in part or part == "":
            raise ValueError(f"bad segment {part!r} in route pattern {pattern!r}")
        else:
            texts.append(part)
            kinds.append(_LITERAL)
    return tuple(texts), tuple(kinds), tuple(names)


class Router:
    """Routes by path pattern; `match()` finds the most specific one for a path."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        # (texts, kinds) per route, literal texts only where kind is literal.
        self._compiled: list[tuple[tuple[str, ...], tuple[int, ...], Route]] = []
        self._shapes: dict[tuple[tuple[str | None, ...], tuple[int, ...]], str] = {}

    @property
    def routes(self) -> list[Route]:
        """Every route, in the order their patterns were first added."""
        return list(self._routes.values())

    def add(
        self,
        pattern: str,
        handler: Handler,
        *,
        methods: Iterable[str] = ("GET",),
        auth: bool = True,
        produces: str | None = JSON_CONTENT_TYPE,
    ) -> None:
        """Serve `methods` on `pattern` with `handler`.

        The same pattern may be added again for other methods; a method
        already served, HEAD (served by GET) or an unknown method is an error.
        """
        route = self._routes.get(pattern)
        if route is None:
            texts, kinds, names = _compile(pattern)
            shape = (tuple(t if k == _LITERAL else None for t, k in zip(texts, kinds, strict=True)), kinds)
            if shape in self._shapes:
                raise ValueError(
                    f"route {pattern!r} has the same shape as {self._shapes[shape]!r}"
                )
            self._shapes[shape] = pattern
            route = Route(pattern, kinds, names)
            self._routes[pattern] = route
            self._compiled.append((texts, kinds, route))
        for method in methods:
            method = method.upper()
            if method not in KNOWN_METHODS or method in ("HEAD", "OPTIONS"):
                raise ValueError(f"cannot route method {method!r} (HEAD and OPTIONS are implied)")
            if method in route.endpoints:
                raise ValueError(f"{method} {pattern} is already routed")
            route.endpoints[method] = Endpoint(handler, auth, produces)

    def route(
        self,
        pattern: str,
        *methods: str,
        auth: bool = True,
        produces: str | None = JSON_CONTENT_TYPE,
    ) -> Callable[[Handler], Handler]:
        """Decorator form of `add`: `@router.route("/api/whoami")`."""

        def register(handler: Handler) -> Handler:
            self.add(pattern, handler, methods=methods or ("GET",), auth=auth, produces=produces)
            return handler

        return register

    def match(self, segments: tuple[str, ...]) -> RouteMatch | None:
        """The most specific route matching the decoded `segments`, or None."""
        best: tuple[tuple[int, ...], tuple[str, ...], Route] | None = None
        for texts, kinds, route in self._compiled:
            if not _matches(texts, kinds, segments):
                continue
            if best is None or kinds < best[0]:
                best = (kinds, texts, route)
        if best is None:
            return None
        kinds, texts, route = best
        params: dict[str, str] = {}
        tail: tuple[str, ...] = ()
        for index, (text, kind) in enumerate(zip(texts, kinds, strict=True)):
            if kind == _PARAM:
                params[text] = segments[index]
            elif kind == _REST:
                tail = segments[index:]
                params[text] = "/".join(tail)
        return RouteMatch(route, params, tail)


def _matches(texts: tuple[str, ...], kinds: tuple[int, ...], segments: tuple[str, ...]) -> bool:
    rest = bool(kinds) and kinds[-1] == _REST
    fixed = len(kinds) - 1 if rest else len(kinds)
    if len(segments) < fixed or (not rest and len(segments) != fixed):
        return False
    for index in range(fixed):
        segment = segments[index]
        if kinds[index] == _LITERAL:
            if segment != texts[index]:
                return False
        elif segment == "":
            return False
    return True


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target: origin-form, or absolute-form from a proxy.

    RFC 9112 section 3.2: a server must accept the absolute-form
    (`GET http://host/api/overview`); the asterisk-form (`OPTIONS *`) names no
    resource and gets the 404 every unknown path gets.
    """
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep or not scheme.isalpha():
            raise BadTarget(f"unsupported request target {target[:100]!r}")
        slash = rest.find("/")
        query_mark = rest.find("?")
        if slash == -1 or (query_mark != -1 and query_mark < slash):
            target = "/" + (rest[query_mark:] if query_mark != -1 else "")
        else:
            target = rest[slash:]
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    return path, query.partition("#")[0]


def decode_segments(path: str) -> tuple[str, ...]:
    """The path's segments, each percent-decoded on its own (see the module doc)."""
    parts = path.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()
    decoded = []
    for part in parts:
        if "%" not in part:
            decoded.append(part)
            continue
        if _BAD_ESCAPE.search(part):
            raise BadTarget(f"malformed percent-escape in {part[:100]!r}")
        try:
            decoded.append(unquote_to_bytes(part).decode("utf-8"))
        except UnicodeDecodeError:
            raise BadTarget(f"escaped bytes are not UTF-8 in {part[:100]!r}") from None
    return tuple(decoded)


def parse_query(query: str, max_fields: int = 1000) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, decoded as form data, in order."""
    if not query:
        return []
    try:
        return parse_qsl(
            query, keep_blank_values=True, errors="strict", max_num_fields=max_fields
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise BadTarget(f"bad query string: {error}") from None


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an Accept header allows `media_type` (RFC 9110 section 12.5.1).

    No header accepts anything. Otherwise the most specific range matching
    the type decides (exact, then `type/*`, then `*/*`): it accepts unless its
    q is 0. A q that does not parse counts as 1 rather than refusing a client
    over its syntax.
    """
    if accept is None or not accept.strip():
        return True
    wanted_type, _, wanted_sub = media_type.partition(";")[0].strip().lower().partition("/")
    best_specificity = -1
    best_q = 0.0
    for item in accept.split(","):
        fields = [f.strip() for f in item.split(";")]
        kind, _, sub = fields[0].lower().partition("/")
        if kind == wanted_type and sub == wanted_sub:
            specificity = 2
        elif kind == wanted_type and sub == "*":
            specificity = 1
        elif kind == "*" and sub == "*":
            specificity = 0
        else:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 1.0
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_specificity >= 0 and best_q > 0
