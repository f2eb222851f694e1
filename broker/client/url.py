"""AMQP URIs as RabbitMQ's URI specification reads them.

``amqp://user:pass@host:port/vhost?heartbeat=10&frame_max=131072`` — see
https://www.rabbitmq.com/uri-spec.html and https://www.rabbitmq.com/uri-query-parameters.html.

- scheme ``amqp`` (default port 5672) or ``amqps`` (TLS, default port 5671);
- user, password, host and vhost are percent-decoded, so vhost ``/`` is
  written ``%2f``;
- no path means the default vhost ``/``. The spec reads ``amqp://host/`` as the
  empty vhost ``""``; like pika and aio-pika we read it as the default vhost too,
  since RabbitMQ has no vhost named ``""`` and URLs ending in ``/`` are common;
- IPv6 literals in brackets (``amqp://[::1]:5672``);
- query options: ``heartbeat`` (seconds, 0 disables), ``frame_max`` (bytes),
  ``channel_max``, ``connection_timeout`` (milliseconds, as in the spec's
  query-parameter table), and for amqps ``cacertfile``, ``certfile``,
  ``keyfile``, ``verify`` (``verify_peer`` or ``verify_none``) and
  ``server_name_indication``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 5672
DEFAULT_TLS_PORT = 5671

# What we propose when the URL says nothing; the broker's tune may lower them.
DEFAULT_HEARTBEAT = 60  # seconds, RabbitMQ's server default since 3.5.5
DEFAULT_FRAME_MAX = 131072  # RabbitMQ's default frame_max
DEFAULT_CHANNEL_MAX = 2047  # RabbitMQ's default channel_max
DEFAULT_CONNECTION_TIMEOUT = 10.0  # seconds


@dataclass
class ConnectionParameters:
    """Everything needed to open one connection, as parsed from a URL."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    username: str = "guest"
    password: str = "guest"
    vhost: str = "/"
    tls: bool = False
    heartbeat: int = DEFAULT_HEARTBEAT
    frame_max: int = DEFAULT_FRAME_MAX
    channel_max: int = DEFAULT_CHANNEL_MAX
    connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    tls_options: dict[str, str] = field(default_factory=dict)

    def make_ssl_context(self) -> ssl.SSLContext:
        """The TLS context for amqps: the one given, or one built from the query options."""
        if self.ssl_context is not None:
            return self.ssl_context
        opts = self.tls_options
        context = ssl.create_default_context(cafile=opts.get("cacertfile"))
        if "certfile" in opts:
            context.load_cert_chain(opts["certfile"], opts.get("keyfile"))
        if opts.get("verify") == "verify_none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


_INT_OPTIONS = {"heartbeat", "frame_max", "channel_max"}
_TLS_OPTIONS = {"cacertfile", "certfile", "keyfile", "verify", "server_name_indication"}


def parse_url(url: str) -> ConnectionParameters:
    """Parse an ``amqp://`` or ``amqps://`` URL; raise ``ValueError`` if it is not one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URL (scheme must be amqp or amqps): {url!r}")
    params = ConnectionParameters(tls=scheme == "amqps")
    params.port = DEFAULT_TLS_PORT if params.tls else DEFAULT_PORT
    # urlsplit lowercases hostname and strips IPv6 brackets; the spec keeps
    # the host as written (percent-decoded), which only matters for case.
    if parts.hostname:
        params.host = unquote(parts.hostname)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in AMQP URL {url!r}") from exc
    if port is not None:
        params.port = port
    if parts.username is not None:
        params.username = unquote(parts.username)
    if parts.password is not None:
        params.password = unquote(parts.password)
    path = parts.path
    if path.startswith("/"):
        path = path[1:]
    if "/" in path:
        # Spec: the vhost is one path segment; a literal "/" must be %2f.
        raise ValueError(f"vhost in AMQP URL must be one segment (use %2f for '/'): {url!r}")
    if path:
        params.vhost = unquote(path)
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        value = values[-1]
        if key in _INT_OPTIONS:
            try:
                setattr(params, key, int(value))
            except ValueError as exc:
                raise ValueError(f"query option {key} must be an integer, got {value!r}") from exc
        elif key == "connection_timeout":
            try:
                params.connection_timeout = int(value) / 1000.0
            except ValueError as exc:
                raise ValueError(f"connection_timeout must be milliseconds, got {value!r}") from exc
        elif key in _TLS_OPTIONS:
            params.tls_options[key] = value
            if key == "server_name_indication":
                params.server_hostname = value
        # Unknown options are ignored, as RabbitMQ's own clients do.
    return params
