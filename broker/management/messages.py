"""Requests, responses and errors of the management HTTP server, without I/O.

Handlers take a `Request` and return a `Response` (or raise `HttpError`).
The shapes follow what RabbitMQ 3.10.8's management plugin answers, as
observed on a reference node (the notes are in /work/notes/management-api.md):

- JSON bodies are compact (`{"a":1}`), UTF-8, `content-type:
  application/json`; successful ones add `cache-control: no-cache` and
  `vary: accept, accept-encoding, origin`.
- Every JSON error is `{"error": ERROR, "reason": REASON}`
  (rabbit_mgmt_util:halt_response/5), with `content-type: application/json`
  and no `cache-control`. Errors raised by cowboy itself (405, 406, 501, 400
  on a malformed request...) have an empty body instead.
- Refusals for missing tags or permissions are 401, not 403: RabbitMQ's
  `not_authorised` (British spelling) with reasons such as "Not
  administrator user"; a failed login is 401 `not_authorized` (American
  spelling) "Login failed" plus `WWW-Authenticate`. Both spellings are
  RabbitMQ's own and clients match on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "JSON_CONTENT_TYPE",
    "Headers",
    "HttpError",
    "Request",
    "Response",
    "json_body",
    "NOT_MANAGEMENT_USER",
    "NOT_ADMINISTRATOR",
    "NOT_MONITOR",
    "NOT_AUTHORISED_VHOST",
    "NOT_AUTHORISED_OBJECT",
    "ACCESS_REFUSED",
]

JSON_CONTENT_TYPE: Final = "application/json"

#: What RabbitMQ puts on every successful JSON answer besides its type.
JSON_HEADERS: Final = (
    ("cache-control", "no-cache"),
    ("vary", "accept, accept-encoding, origin"),
)

# The `reason` texts of RabbitMQ's 401 not_authorised answers, as the
# reference node sends them (rabbit_mgmt_util:is_authorized_*).
#: A user without any of the management, policymaker, monitoring, administrator tags.
NOT_MANAGEMENT_USER: Final = "Not management user"
#: An endpoint for administrators (users, vhosts, permissions, definitions...).
NOT_ADMINISTRATOR: Final = "Not administrator user"
#: An endpoint for monitoring (nodes...).
NOT_MONITOR: Final = "Not monitor user"
#: A per-vhost endpoint and a user without permissions on that vhost.
NOT_AUTHORISED_VHOST: Final = "User not authorised to access virtual host"
#: Parameters and global parameters without the policymaker tag.
NOT_AUTHORISED_OBJECT: Final = "User not authorised to access object"
#: configure/write/read regexps refuse the resource (e.g. declaring a queue).
ACCESS_REFUSED: Final = "Access refused."


class Headers:
    """Request headers: names lowercase, values decoded as ISO-8859-1, in order.

    RFC 9110 section 5.5: field values are octets; ISO-8859-1 maps each octet
    to one character, so nothing a client sends can fail to decode.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(
            (name.lower(), value) for name, value in items
        )

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (any case), or `default`."""
        name = name.lower()
        for key, value in self._items:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name`, in the order received."""
        name = name.lower()
        return [value for key, value in self._items if key == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


def json_body(value: Any) -> bytes:
    """Compact UTF-8 JSON, as RabbitMQ's encoder writes it (no spaces, no \\u escapes)."""
    # allow_nan=False: NaN and Infinity are not JSON; a rate computed as 0/0
    # must be a bug found in a test, not a body some clients cannot parse.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


@dataclass(slots=True)
class Response:
    """What a handler returns: status, headers (name, value), body bytes.

    `compress=True` lets the server gzip the body when the client accepts it
    (RabbitMQ runs cowboy_compress_h: JSON over 300 bytes is gzipped; its
    static files are not). The server adds content-length, date, server and
    the app's default headers.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    compress: bool = False
    #: A long body in parts (a list of 10,000 queues): the server sends them
    #: one after the other, never copying them into one `body`.
    chunks: Sequence[bytes] = ()

    @property
    def length(self) -> int:
        """The body's length in bytes."""
        if self.chunks:
            return sum(len(chunk) for chunk in self.chunks)
        return len(self.body)

    @classmethod
    def json(
        cls, value: Any, status: int = 200, *, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """A JSON answer with RabbitMQ's headers (content-type, cache-control, vary)."""
        return cls(
            status,
            [("content-type", JSON_CONTENT_TYPE), *JSON_HEADERS, *headers],
            json_body(value),
            compress=True,
        )

    @classmethod
    def empty(cls, status: int = 204, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """No body: 204 after a DELETE, 201 after a PUT that created something."""
        return cls(status, list(headers))

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A text answer (Prometheus' exposition format is one)."""
        return cls(
            status, [("content-type", content_type), *headers], text.encode("utf-8"), compress=True
        )

    def header(self, name: str) -> str | None:
        """The first value of response header `name` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class HttpError(Exception):
    """Raised by a handler, or by the authenticate callback, to answer an error.

    `error` and `reason` become RabbitMQ's body `{"error": ..., "reason": ...}`;
    `error=None` answers with an empty body, as cowboy does for its own errors.
    """

    def __init__(
        self,
        status: int,
        error: str | None = None,
        reason: str | list[Any] = "",
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status} {error}: {reason}" if error is not None else str(status))
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = list(headers)

    def to_response(self) -> Response:
        """The answer: RabbitMQ's JSON error shape, or an empty body."""
        if self.error is None:
            return Response(self.status, list(self.headers))
        return Response(
            self.status,
            [("content-type", JSON_CONTENT_TYPE), *self.headers],
            json_body({"error": self.error, "reason": self.reason}),
        )

    @classmethod
    def not_found(cls) -> HttpError:
        """404 for an unknown path and for a missing object alike (RabbitMQ's words)."""
        return cls(404, "Object Not Found", "Not Found")

    @classmethod
    def bad_request(cls, reason: str) -> HttpError:
        """400 `bad_request`, e.g. reason "not_json" or "inequivalent arg 'durable' ..."."""
        return cls(400, "bad_request", reason)

    @classmethod
    def not_authorised(cls, reason: str) -> HttpError:
        """401 `not_authorised` (sic): authenticated, but tags or permissions refuse it."""
        return cls(401, "not_authorised", reason)

    @classmethod
    def login_failed(cls, realm: str) -> HttpError:
        """401 `not_authorized` "Login failed", asking for Basic credentials again."""
        return cls(
            401,
            "not_authorized",
            "Login failed",
            headers=[("www-authenticate", f'Basic realm="{realm}"')],
        )


@dataclass(slots=True)
class Request:
    """One HTTP request, its body read, as a handler sees it.

    `segments` are the path's segments, each percent-decoded on its own (so
    `/api/queues/%2F/a%2Fb` is `("api", "queues", "/", "a/b")`); `params` are
    the route's `{placeholders}` and `tail` what a trailing `{name*}` matched.
    `query` keeps the first value of each name, `query_items` every pair.
    `user` is what the app's authenticate callback returned (None on routes
    without authentication).
    """

    method: str
    target: str
    path: str
    segments: tuple[str, ...]
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    headers: Headers
    params: dict[str, str] = field(default_factory=dict)
    tail: tuple[str, ...] = ()
    body: bytes = b""
    user: Any = None
    peer: str = ""
    http_version: str = "1.1"

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (any case), or `default`."""
        return self.headers.get(name, default)

    def json(self) -> Any:
        """The body as JSON; an empty body is `{}`, as RabbitMQ reads it.

        Anything else that is not JSON answers 400 `{"error":"bad_request",
        "reason":"not_json"}`, RabbitMQ's words.
        """
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise HttpError.bad_request("not_json") from None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; RabbitMQ answers "not_json" to `[1]` as well."""
        value = self.json()
        if not isinstance(value, dict):
            raise HttpError.bad_request("not_json")
        return value
