"""A small HTTP/1.1 server on trio and h11, for the management API.

    router = Router()

    @router.route("/api/whoami")
    def whoami(request: Request) -> Response:
        return Response.json({"name": request.user.name, "tags": request.user.tags})

    app = HttpApp(router, authenticate=check_password)   # (user, password, request) -> user | None
    await serve_http_listeners(app, await trio.open_tcp_listeners(15672, host="127.0.0.1"))

`serve_http(stream, app, limits)` serves one connection over any
`trio.abc.Stream`: TLS is `trio.SSLListener(listener, context,
https_compatible=True)` around the TCP listener, not a branch in here.

Theory of operation
-------------------

h11 does the parsing and framing; this module does the I/O, the deadlines
and the answers. One task per connection (the listener's handler nursery
owns it) runs the connection's requests one after another: pipelined
requests are answered in order, since h11 hands out the next request only
after the current response is complete (`start_next_cycle`). A handler runs
in its connection's task, so a slow client or a slow handler holds only its
own connection; CPU-heavy work (gzip of a large body, reading a static file)
goes to a worker thread.

Per request, in the order RabbitMQ (cowboy_rest) decides:

1. the head (request line and headers), within `request_timeout`; a
   malformed one is 400 (431 too large, 505 another HTTP version, 501 a
   transfer-coding other than chunked) with `connection: close` and an
   empty body, as cowboy answers;
2. the path: no route is 404 `{"error":"Object Not Found","reason":"Not Found"}`,
   even without credentials;
3. the method: unknown is 501, not served here is 405 with `Allow`;
   OPTIONS is answered 200 with `Allow`, without credentials;
4. credentials (Basic): none is 401 with an empty body and
   `WWW-Authenticate: Basic realm="RabbitMQ Management"`; wrong ones are 401
   `{"error":"not_authorized","reason":"Login failed"}`; a Basic header that
   does not decode is 400;
5. Accept: an endpoint's media type refused is 406;
6. the body, only now: a declared or received length over `max_body_bytes`
   is 413; `Expect: 100-continue` is answered 100 first, another
   expectation is 417;
7. the handler: its `Response`, or its `HttpError` as RabbitMQ's JSON error;
   any other exception is a 500 with an empty body (what RabbitMQ sends when
   a handler crashes) and a log line.

A response sent before the body was read (401, 404, 413...) leaves the body
on the wire: a small declared body (up to `max_skip_body_bytes`) is read and
dropped so the connection can carry on; otherwise the answer says
`connection: close`. Closing lingers (`linger_timeout`) so the client reads
the last answer before the socket goes (RFC 9112 section 9.6).
"""

from __future__ import annotations

import binascii
import email.utils
import enum
import gzip
import http
import inspect
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

import h11
import trio

from broker.logging import get_logger
from broker.management.messages import (
    Headers,
    HttpError,
    Request,
    Response,
    json_body,
)
from broker.management.router import (
    KNOWN_METHODS,
    BadTarget,
    Endpoint,
    Router,
    accepts,
    decode_segments,
    parse_query,
    split_target,
)

__all__ = [
    "DEFAULT_LIMITS",
    "REALM",
    "Authenticate",
    "HttpApp",
    "HttpError",
    "HttpLimits",
    "HttpServer",
    "Request",
    "Response",
    "Router",
    "parse_basic_auth",
    "serve_http",
    "serve_http_listeners",
]

log = get_logger("warren.http")

#: RabbitMQ's realm, in every `WWW-Authenticate` it sends.
REALM: Final = "RabbitMQ Management"

#: RabbitMQ's default management.content_security_policy, on its every answer.
CONTENT_SECURITY_POLICY: Final = "script-src 'self' 'unsafe-eval' 'unsafe-inline'; object-src 'self'"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Every resource a client can make the server spend, bounded.

    The precedents are RabbitMQ 3.10.8's (cowboy 2.8, ranch 2.1) as the
    reference node is configured, observed with `ranch:info()`, `rabbitmqctl
    environment` and raw sockets, unless said otherwise.
    """

    #: Request line + headers. h11's default max_incomplete_event_size (16 KiB),
    #: also enforced on a head that arrives whole (h11 only checks incomplete
    #: ones). Over it: 431. cowboy: request line 8000, a header value 4096
    #: (observed: a 5000-byte value is 431), 100 headers; nginx: 4 x 8 KiB.
    max_header_bytes: int = 16 * 1024
    #: Request body. rabbitmq_management's max_http_body_size default (10 MB,
    #: `rabbitmqctl environment`). Over it: 413 and close. (RabbitMQ 3.10.8
    #: itself answers a 500 with an empty body past about 8 MB: its check runs
    #: after cowboy's first 8 MB read and then crashes.)
    max_body_bytes: int = 10_000_000
    #: A kept-alive connection waiting for its next request: closed silently
    #: after this. cowboy idle_timeout 60000 ms (observed: 60.0 s).
    idle_timeout: float = 60.0
    #: From a request's first byte (a new connection's opening, for its first
    #: request) to the last byte of its body: 408 and close after this, or a
    #: silent close if nothing came at all. Against slowloris, headers or body
    #: dribbled a byte at a time. cowboy gives the head 5 s (request_timeout,
    #: observed: 408 at 5.0 s) then 60 s per body read with no total; Apache's
    #: mod_reqtimeout 20-40 s for the head. 30 s leaves a 10 MB body 333 kB/s.
    request_timeout: float = 30.0
    #: Writing one response: a client that does not read is dropped after
    #: this. cowboy: idle_timeout (60 s) covers sends too.
    send_timeout: float = 60.0
    #: Connections at once per server; the next ones get a 503 and are closed.
    #: ranch's max_connections default, 1024 (ranch:info() on the reference's
    #: management listener), where ranch stops accepting instead.
    max_connections: int = 1024
    #: Requests on one connection; the last one's answer says `connection: close`.
    #: cowboy max_keepalive, 1000.
    max_requests_per_connection: int = 1000
    #: A body left unread by an early answer (401, 404...) is read and dropped
    #: up to this size to keep the connection; a larger one closes it.
    #: cowboy max_skip_body_length, 1000000.
    max_skip_body_bytes: int = 1_000_000
    #: Closing: how long to drain what the client still sends, so our last
    #: answer is not lost to a TCP reset. cowboy linger_timeout, 1000 ms.
    linger_timeout: float = 1.0
    #: One read from the socket.
    receive_bytes: int = 64 * 1024
    #: Smallest body worth gzipping. cowboy_compress_h: 300 bytes.
    gzip_min_bytes: int = 300
    #: Bodies over this are gzipped in a worker thread, off the trio loop.
    gzip_thread_bytes: int = 256 * 1024


DEFAULT_LIMITS: Final = HttpLimits()

#: `authenticate(username, password, request)` returns the user (any object, handed to
#: handlers as `request.user`) or None (`request.peer` tells where from); it
#: may be async, and may raise
#: `HttpError` to refuse a known user otherwise (RabbitMQ's "Not management
#: user" is a 401 not_authorised after a successful password check).
Authenticate = Callable[[str, str, Request], Any]


@dataclass(slots=True)
class HttpApp:
    """What a server serves: routes, how to check a password, headers for all."""

    router: Router
    #: None asks no route for credentials (for tests and tools); `request.user` is None.
    authenticate: Authenticate | None = None
    realm: str = REALM
    server: str = "Warren"
    #: Added to every answer to a request that reached routing.
    default_headers: Sequence[tuple[str, str]] = field(
        default_factory=lambda: [("content-security-policy", CONTENT_SECURITY_POLICY)]
    )


#: Reason phrases for the codes this server writes itself; others from http.HTTPStatus.
_PHRASES: Final = {
    408: "Request Timeout",
    413: "Payload Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
}


def _phrase(status: int) -> bytes:
    text = _PHRASES.get(status)
    if text is None:
        try:
            text = http.HTTPStatus(status).phrase
        except ValueError:
            text = ""
    return text.encode("ascii")


#: Response headers the server writes itself, dropped from a handler's Response.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})

_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header (RFC 9110 section 6.6.1), formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class BadCredentials(ValueError):
    """An Authorization: Basic header that does not decode: the answer is 400."""


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(username, password) from an Authorization header, None if not Basic.

    RFC 7617: `Basic base64(user-id ":" password)`, the scheme in any case,
    split at the first colon (a password may hold colons, a user-id not).
    Credentials are UTF-8 (RFC 7617 section 2.1's charset; what curl sends).
    Raises `BadCredentials` when the scheme is Basic but the rest does not
    decode, which RabbitMQ answers with 400.
    """
    if header is None:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = binascii.a2b_base64(rest.strip().encode("ascii"), strict_mode=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadCredentials("Authorization: Basic credentials do not decode") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise BadCredentials("Authorization: Basic credentials have no ':'")
    return username, password


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class _Received(enum.Enum):
    DATA = "data"
    TIMEOUT = "timeout"
    BROKEN = "broken"


class _Close(Exception):
    """Stop serving this connection (after whatever answer was due)."""


def _raw_response(status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """An answer written without h11, for when there is no request to answer
    (a timeout before the head was complete, a refused connection)."""
    lines = [b"HTTP/1.1 %d %s" % (status, _phrase(status))]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    lines += [b"connection: close", b"content-length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _peer_of(stream: trio.abc.Stream) -> str:
    """host:port of the other end, through any wrapper streams, or ""."""
    seen = 0
    current: Any = stream
    while current is not None and seen < 8:
        sock = getattr(current, "socket", None)
        if sock is not None:
            try:
                peer = sock.getpeername()
            except OSError:
                return ""
            if isinstance(peer, tuple) and len(peer) >= 2:
                host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
                return f"{host}:{peer[1]}"
            return str(peer)
        current = getattr(current, "transport_stream", None)
        seen += 1
    return ""


def _head_size(request: h11.Request) -> int:
    """The size of a request head on the wire, near enough (h11 keeps no count)."""
    size = len(request.method) + len(request.target) + 12
    for name, value in request.headers:
        size += len(name) + len(value) + 4
    return size


def _gzip(body: bytes) -> bytes:
    # Level 6, zlib's default, as cowboy_compress_h; mtime 0 for stable bytes.
    return gzip.compress(body, compresslevel=6, mtime=0)


def _gzip_chunks(chunks: Sequence[bytes]) -> bytes:
    """`_gzip` of the chunks joined, without joining them (zlib lets other
    threads run while it compresses)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = [compressor.compress(chunk) for chunk in chunks]
    out.append(compressor.flush())
    return b"".join(out)


def _wants_gzip(accept_encoding: str | None) -> bool:
    if not accept_encoding:
        return False
    for item in accept_encoding.split(","):
        fields = [f.strip() for f in item.split(";")]
        if fields[0].lower() not in ("gzip", "x-gzip"):
            continue
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return True
        return True
    return False


class _Connection:
    """One client connection: its h11 state, its deadlines, its requests."""

    def __init__(self, stream: trio.abc.Stream, app: HttpApp, limits: HttpLimits, peer: str):
        self.stream = stream
        self.app = app
        self.limits = limits
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.requests = 0
        self.opened = trio.current_time()
        #: The client closed its side (or the stream broke): nothing to linger for.
        self.eof = False
        self.broken = False
        #: The head of the request being answered.
        self.head: h11.Request | None = None

    # -- I/O ---------------------------------------------------------------

    async def _receive(self, deadline: float) -> _Received:
        """One read into h11, by `deadline`."""
        with trio.move_on_at(deadline):
            try:
                data = bytes(await self.stream.receive_some(self.limits.receive_bytes))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.broken = self.eof = True
                return _Received.BROKEN
            if not data:
                self.eof = True
            elif self.h11.their_state is h11.IDLE and not self.h11.trailing_data[0]:
                # RFC 9112 section 2.2: a server SHOULD ignore at least one
                # empty line before a request line (some clients send CRLF
                # after a POST body). h11 does not, so they stop here; the
                # deadline still runs, so CRLFs alone keep no one connected.
                data = data.lstrip(b"\r\n")
                if not data:
                    return _Received.DATA
            self.h11.receive_data(data)
            return _Received.DATA
        return _Received.TIMEOUT

    async def _send(self, data: bytes) -> None:
        with trio.move_on_after(self.limits.send_timeout) as scope:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.broken = self.eof = True
                raise _Close from None
        if scope.cancelled_caught:
            log.info("http.send_timeout", peer=self.peer)
            self.broken = True
            raise _Close

    async def _send_raw_and_close(
        self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> NoReturn:
        """An answer outside h11's state machine (no complete request to answer), then close."""
        if not self.eof:
            try:
                await self._send(_raw_response(status, body, [*headers, ("date", _http_date())]))
            except _Close:
                pass
        raise _Close

    # -- the connection ------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                await self._one_request()
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                else:
                    return
        except _Close:
            return

    async def _read_head(self) -> tuple[h11.Request, float]:
        """The next request's head; its deadline for the whole request."""
        now = trio.current_time()
        if self.requests == 0:
            # A new connection's clock starts when it opened: one that never
            # sends a byte is closed after request_timeout, not idle_timeout.
            started = True
            deadline = self.opened + self.limits.request_timeout
        elif self.h11.trailing_data[0]:
            started = True  # pipelined: the next request is already here
            deadline = now + self.limits.request_timeout
        else:
            started = False
            deadline = now + self.limits.idle_timeout
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                log.debug("http.bad_request", peer=self.peer, error=str(error))
                await self._send_raw_and_close(error.error_status_hint)
            if isinstance(event, h11.Request):
                return event, deadline
            if event is not h11.NEED_DATA:
                raise _Close  # ConnectionClosed: the client is done
            received = await self._receive(deadline)
            if received is _Received.BROKEN:
                raise _Close
            if received is _Received.TIMEOUT:
                if self.h11.trailing_data[0]:
                    # Part of a head came, not all of it: cowboy's 408.
                    log.info("http.request_timeout", peer=self.peer)
                    await self._send_raw_and_close(408)
                raise _Close
            if not started and self.h11.trailing_data[0]:
                started = True
                deadline = trio.current_time() + self.limits.request_timeout

    async def _one_request(self) -> None:
        head, deadline = await self._read_head()
        self.head = head
        self.requests += 1
        limits = self.limits
        if head.http_version not in (b"1.0", b"1.1"):
            await self._send_raw_and_close(505)
        if _head_size(head) > limits.max_header_bytes:
            await self._send_raw_and_close(431)
        headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers
        )
        if "transfer-encoding" in headers and "content-length" in headers:
            # RFC 9112 section 6.3: a sign of request smuggling; refuse and close.
            await self._send_raw_and_close(400)
        method = head.method.decode("latin-1")
        target = head.target.decode("latin-1")
        try:
            path, query = split_target(target)
            segments = decode_segments(path)
            query_items = parse_query(query)
        except BadTarget as error:
            log.debug("http.bad_target", peer=self.peer, error=str(error))
            await self._send_raw_and_close(400)
        request = Request(
            method=method,
            target=target,
            path=path,
            segments=segments,
            query={},
            query_items=query_items,
            headers=headers,
            peer=self.peer,
            http_version=head.http_version.decode("ascii"),
        )
        for name, value in query_items:
            request.query.setdefault(name, value)
        response = await self._dispatch(request, deadline)
        await self._respond(request, response)

    async def _dispatch(self, request: Request, deadline: float) -> Response:
        """Route, check, read the body, run the handler: the answer to send."""
        app = self.app
        expect = request.header("expect")
        if expect is not None and expect.strip().lower() != "100-continue":
            # RFC 9110 section 10.1.1: 100-continue is the only expectation.
            return HttpError(417).to_response()
        found = app.router.match(request.segments)
        if found is None:
            return HttpError.not_found().to_response()
        route = found.route
        request.params, request.tail = found.params, found.tail
        if request.method not in KNOWN_METHODS:
            return HttpError(501).to_response()
        endpoint = route.endpoint(request.method)
        if endpoint is None:
            if request.method == "OPTIONS":
                return Response(200, [("allow", route.allow())])
            return Response(405, [("allow", route.allow())])
        if endpoint.auth and app.authenticate is not None:
            refusal = await self._authenticate(request)
            if refusal is not None:
                return refusal
        if endpoint.produces is not None and not accepts(
            request.header("accept"), endpoint.produces
        ):
            return HttpError(406).to_response()
        request.body = await self._read_body(deadline)
        return await self._call(endpoint, request)

    async def _authenticate(self, request: Request) -> Response | None:
        """None when the credentials are good (request.user is set), else the refusal."""
        app = self.app
        try:
            credentials = parse_basic_auth(request.header("authorization"))
        except BadCredentials:
            return HttpError(400).to_response()
        if credentials is None:
            if request.header("authorization") is None:
                # No credentials at all: the browser's cue to ask for them.
                return HttpError(
                    401, headers=[("www-authenticate", f'Basic realm="{app.realm}"')]
                ).to_response()
            # Another scheme (Bearer...): what RabbitMQ answers a bad token.
            return HttpError.login_failed(app.realm).to_response()
        assert app.authenticate is not None
        try:
            user = await _maybe_await(app.authenticate(*credentials, request))
        except HttpError as error:
            return error.to_response()
        if user is None:
            return HttpError.login_failed(app.realm).to_response()
        request.user = user
        return None

    async def _read_body(self, deadline: float) -> bytes:
        """The request body, whole, by `deadline`, at most max_body_bytes."""
        limits = self.limits
        declared = self._body_length()
        if declared is not None and declared > limits.max_body_bytes:
            await self._refuse_body()
        if self.h11.client_is_waiting_for_100_continue:
            await self._send(self.h11.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")))
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                log.debug("http.bad_body", peer=self.peer, error=str(error))
                await self._send_error_and_close(HttpError(400).to_response())
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limits.max_body_bytes:
                    await self._refuse_body()
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            elif event is h11.NEED_DATA:
                received = await self._receive(deadline)
                if received is _Received.BROKEN:
                    raise _Close
                if received is _Received.TIMEOUT:
                    log.info("http.request_timeout", peer=self.peer, body_bytes=size)
                    await self._send_error_and_close(HttpError(408).to_response())
            else:
                raise _Close  # ConnectionClosed mid-body

    def _body_length(self) -> int | None:
        """The current request's body length: 0 without one, None when chunked.

        h11 has already refused a Content-Length that is not a number and a
        transfer-coding other than chunked.
        """
        assert self.head is not None
        length = 0
        for name, value in self.head.headers:
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                length = int(value)
        return length

    async def _refuse_body(self) -> NoReturn:
        response = HttpError(
            413, "bad_request", "Exceeded HTTP request body size limit"
        ).to_response()
        await self._send_error_and_close(response)

    async def _send_error_and_close(self, response: Response) -> NoReturn:
        """Answer the current request through h11 with `connection: close`, then stop."""
        try:
            await self._send(self._serialize(response, head_only=False, close=True))
        except (h11.LocalProtocolError, _Close):
            pass
        raise _Close

    async def _call(self, endpoint: Endpoint, request: Request) -> Response:
        try:
            response = await _maybe_await(endpoint.handler(request))
        except HttpError as error:
            return error.to_response()
        except Exception:
            # RabbitMQ answers a crashed handler with an empty 500; the
            # connection is sound (the request was read whole), so it stays.
            log.exception("http.handler_crashed", method=request.method, path=request.path)
            return Response(500)
        if not isinstance(response, Response):
            log.error(
                "http.handler_returned_non_response",
                method=request.method,
                path=request.path,
                returned=type(response).__name__,
            )
            return Response(500)
        return response

    # -- answers -------------------------------------------------------------

    def _serialize(self, response: Response, *, head_only: bool, close: bool) -> bytes:
        """The answer's bytes through h11: status line, headers, body."""
        return b"".join(self._serialize_parts(response, head_only=head_only, close=close))

    def _serialize_parts(
        self, response: Response, *, head_only: bool, close: bool
    ) -> list[bytes]:
        """The answer through h11 as pieces to send in turn: the head, each
        part of the body (never copied into one), the end."""
        status = response.status
        bodiless = status < 200 or status in (204, 304)
        headers: list[tuple[str, str]] = [("server", self.app.server), ("date", _http_date())]
        headers += self.app.default_headers
        # The framing is ours: a handler's own content-length could only disagree.
        headers += [h for h in response.headers if h[0].lower() not in _FRAMING_HEADERS]
        if not bodiless:
            headers.append(("content-length", str(response.length)))
        if close:
            headers.append(("connection", "close"))
        parts = [self.h11.send(
            h11.Response(
                status_code=status,
                headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
                reason=_phrase(status),
            )
        )]
        if response.length and not bodiless and not head_only:
            for chunk in response.chunks or (response.body,):
                if chunk:
                    parts += self.h11.send_with_data_passthrough(h11.Data(data=chunk)) or ()
        parts.append(self.h11.send(h11.EndOfMessage()))
        return parts

    async def _respond(self, request: Request, response: Response) -> None:
        limits = self.limits
        if (
            response.compress
            and response.length >= limits.gzip_min_bytes
            and response.header("content-encoding") is None
            and _wants_gzip(request.header("accept-encoding"))
        ):
            if response.chunks:
                body = await trio.to_thread.run_sync(_gzip_chunks, response.chunks)
            elif len(response.body) > limits.gzip_thread_bytes:
                body = await trio.to_thread.run_sync(_gzip, response.body)
            else:
                body = _gzip(response.body)
            response = Response(
                response.status,
                [*response.headers, ("content-encoding", "gzip")],
                body,
            )
        close = self.requests >= limits.max_requests_per_connection
        skip_body = False
        if self.h11.their_state is h11.SEND_BODY:
            # Answered before reading the body (401, 404, 405...).
            length = self._body_length()
            if length == 0:
                skip_body = True  # h11 still has to be told the (empty) body ended
            elif (
                length is not None
                and length <= limits.max_skip_body_bytes
                and not self.h11.client_is_waiting_for_100_continue
            ):
                skip_body = True
            else:
                close = True
        parts = self._serialize_parts(response, head_only=request.method == "HEAD", close=close)
        if len(parts) <= 3:
            await self._send(b"".join(parts))
        else:
            # A long body in parts: other tasks run between the sends.
            for part in parts:
                await self._send(part)
        if skip_body:
            await self._skip_body()

    async def _skip_body(self) -> None:
        """Read and drop the rest of a body nobody wanted, so the connection lives on."""
        deadline = trio.current_time() + self.limits.request_timeout
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                raise _Close from None
            if isinstance(event, h11.EndOfMessage):
                return
            if event is h11.NEED_DATA:
                if await self._receive(deadline) is not _Received.DATA:
                    raise _Close
            elif not isinstance(event, h11.Data):
                raise _Close


async def _close_gently(stream: trio.abc.Stream, limits: HttpLimits, *, linger: bool) -> None:
    """Close, first draining what the client still sends (for `linger_timeout`).

    RFC 9112 section 9.6: closing with unread data in the receive buffer
    sends a TCP reset, which can destroy our last answer in the client's
    buffer before it reads it. So: send our FIN, read until the client's
    (or the linger time is up), then close.
    """
    try:
        if linger:
            with trio.move_on_after(limits.linger_timeout):
                try:
                    if isinstance(stream, trio.abc.HalfCloseableStream):
                        await stream.send_eof()
                    drained = 0
                    while drained < limits.max_skip_body_bytes:
                        data = await stream.receive_some(limits.receive_bytes)
                        if not data:
                            break
                        drained += len(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
    finally:
        # Closes at once even when cancelled (the server stopping): no linger then.
        await trio.aclose_forcefully(stream)


async def serve_http(
    stream: trio.abc.Stream,
    app: HttpApp,
    limits: HttpLimits = DEFAULT_LIMITS,
    *,
    peer: str | None = None,
) -> None:
    """Serve HTTP/1.1 requests on `stream` until either side closes it.

    Never raises (but for cancellation): a bug answers 500 or drops this
    connection, with a log line, and leaves the others alone.
    """
    connection = _Connection(stream, app, limits, _peer_of(stream) if peer is None else peer)
    try:
        await connection.run()
    except Exception:
        log.exception("http.connection_crashed", peer=connection.peer)
    finally:
        await _close_gently(stream, limits, linger=not connection.eof)


#: The body of the 503 for a connection over max_connections.
_TOO_MANY: Final = json_body({"error": "service_unavailable", "reason": "Too many connections"})


class HttpServer:
    """Serves an app on listeners, counting connections against max_connections."""

    def __init__(self, app: HttpApp, limits: HttpLimits = DEFAULT_LIMITS) -> None:
        self.app = app
        self.limits = limits
        #: Connections being served now.
        self.active = 0
        #: Connections answered 503 because max_connections were being served.
        self.refused = 0

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """A listener's handler: serve the connection, or refuse it when full."""
        if self.active >= self.limits.max_connections:
            self.refused += 1
            await self._refuse(stream)
            return
        self.active += 1
        try:
            await serve_http(stream, self.app, self.limits)
        finally:
            self.active -= 1

    async def _refuse(self, stream: trio.abc.Stream) -> None:
        """503 without reading the request, then a short linger and close."""
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning(
                "http.too_many_connections",
                max_connections=self.limits.max_connections,
                refused=self.refused,
            )
        answer = _raw_response(
            503,
            _TOO_MANY,
            [
                ("server", self.app.server),
                ("date", _http_date()),
                ("content-type", "application/json"),
                ("retry-after", "1"),
            ],
        )
        sent = False
        with trio.move_on_after(self.limits.linger_timeout):
            try:
                await stream.send_all(answer)
                sent = True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await _close_gently(stream, self.limits, linger=sent)

    async def serve(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[trio.abc.Listener[Any]]] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Accept on `listeners` forever, one task per connection (trio.serve_listeners)."""
        await trio.serve_listeners(
            self.handle_stream,
            list(listeners),
            handler_nursery=handler_nursery,
            task_status=task_status,
        )


async def serve_http_listeners(
    app: HttpApp,
    listeners: Sequence[trio.abc.Listener[Any]],
    limits: HttpLimits = DEFAULT_LIMITS,
    *,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[list[trio.abc.Listener[Any]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve `app` on `listeners` (TCP, or trio.SSLListener around them) forever."""
    await HttpServer(app, limits).serve(
        listeners, handler_nursery=handler_nursery, task_status=task_status
    )

