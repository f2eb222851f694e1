"""`Settings`: the typed, frozen result of reading a ``rabbitmq.conf``.

Field names follow RabbitMQ's keys, dots made underscores
(``listeners.tcp.*`` -> ``listeners_tcp``, ``management.tcp.port`` ->
``management_tcp.port``); Warren's own ``warren.X`` keys drop the prefix
(``warren.data_dir`` -> ``data_dir``). Defaults are RabbitMQ 3.10's.

Every instance is valid: ``__post_init__`` checks types and ranges, so
`Settings.with_overrides` (command-line options over the file) cannot build
one that the file could not have. Checks that need the file system (that a
certificate file is readable) are made when a file is read, not here.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn, get_args

from broker.settings.values import (
    Listener,
    check_int,
    parse_endpoint,
    parse_host,
    parse_ip,
    parse_node_name,
)

__all__ = [
    "AUTH_MECHANISMS",
    "AbsoluteLimit",
    "ClusterSettings",
    "EtcdSettings",
    "HTTPListener",
    "HTTPSListener",
    "LOG_LEVELS",
    "Listener",
    "LogLevel",
    "Permissions",
    "RelativeLimit",
    "Settings",
    "TLSOptions",
    "TLS_VERSIONS",
]

Verify = Literal["verify_none", "verify_peer"]
TLSVersion = Literal["tlsv1.3", "tlsv1.2"]
CertLoginFrom = Literal["distinguished_name", "common_name"]
LogLevel = Literal[
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency", "none"
]

#: What ``ssl_options.versions.N`` may name (RabbitMQ also has tlsv1 and tlsv1.1).
TLS_VERSIONS: Final[tuple[str, ...]] = get_args(TLSVersion)
#: The SASL mechanisms Warren offers (``auth_mechanisms.N``).
AUTH_MECHANISMS: Final = ("PLAIN", "AMQPLAIN", "EXTERNAL")
#: RabbitMQ's log levels (``log.console.level``), most verbose first.
LOG_LEVELS: Final[tuple[str, ...]] = get_args(LogLevel)

MAX_FRAME_MAX: Final = 2**31 - 1
MIN_FRAME_MAX: Final = 4096  # RabbitMQ 3.10's ?FRAME_MIN_SIZE
MAX_MESSAGE_SIZE: Final = 512 * 1024 * 1024  # RabbitMQ's max_message_size validator
#: cluster.etcd.lease_ttl, seconds: below 2 a busy leader would lose its lease
#: between two renewals; above 60 a dead one would keep the cluster leaderless.
MIN_LEASE_TTL: Final = 2
MAX_LEASE_TTL: Final = 60
#: replication.min_followers' upper bound.
MAX_MIN_FOLLOWERS: Final = 10
#: replication.secret's shortest length, in characters.
MIN_SECRET_LENGTH: Final = 16


def _fail(name: str, message: str) -> NoReturn:
    raise ValueError(f"{name}: {message}")


def _check_type(name: str, value: object, *types: type) -> None:
    if isinstance(value, bool) and bool not in types:
        _fail(name, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
    if not isinstance(value, types):
        _fail(name, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    _check_type(name, value, int)
    assert isinstance(value, int)
    try:
        check_int(value, low, high)
    except ValueError as error:
        _fail(name, str(error))


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(name, f"expected one of {', '.join(choices)}, got {value!r}")


def _check_str_tuple(name: str, value: object, *, allow_empty: bool = True) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        _fail(name, f"expected a tuple of non-empty strings, got {value!r}")
    assert isinstance(value, tuple)
    if len(set(value)) != len(value):
        _fail(name, f"lists the same name twice: {value!r}")
    if not allow_empty and not value:
        _fail(name, "must not be empty")


def _check_optional_path(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        _fail(name, f"expected a path or None, got {value!r}")


@dataclass(frozen=True)
class TLSOptions:
    """``ssl_options.*``: the TLS listeners' certificate and client checks."""

    cacertfile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: Verify = "verify_none"
    fail_if_no_peer_cert: bool = False
    versions: tuple[TLSVersion, ...] = ("tlsv1.3", "tlsv1.2")

    def __post_init__(self) -> None:
        for name in ("cacertfile", "certfile", "keyfile"):
            _check_optional_path(f"ssl_options.{name}", getattr(self, name))
        _check_choice("ssl_options.verify", self.verify, ("verify_none", "verify_peer"))
        _check_type("ssl_options.fail_if_no_peer_cert", self.fail_if_no_peer_cert, bool)
        _check_str_tuple("ssl_options.versions", self.versions, allow_empty=False)
        for version in self.versions:
            _check_choice("ssl_options.versions", version, TLS_VERSIONS)
        if self.fail_if_no_peer_cert and self.verify != "verify_peer":
            _fail(
                "ssl_options.fail_if_no_peer_cert",
                "true needs ssl_options.verify = verify_peer (without it no client "
                "certificate is asked for; Erlang's TLS refuses the combination too)",
            )
        if self.verify == "verify_peer" and self.cacertfile is None:
            _fail(
                "ssl_options.verify",
                "verify_peer needs ssl_options.cacertfile, the CA certificates that "
                "client certificates are checked against",
            )


@dataclass(frozen=True)
class Permissions:
    """``default_permissions.*``: regular expressions over resource names."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"

    def __post_init__(self) -> None:
        for name in ("configure", "write", "read"):
            pattern = getattr(self, name)
            _check_type(f"default_permissions.{name}", pattern, str)
            try:
                re.compile(pattern)
            except re.error as error:
                _fail(f"default_permissions.{name}", f"not a regular expression ({error}): {pattern!r}")


@dataclass(frozen=True)
class AbsoluteLimit:
    """A limit in bytes (``disk_free_limit.absolute``, ``vm_memory_high_watermark.absolute``)."""

    bytes: int

    def __post_init__(self) -> None:
        _check_int("bytes", self.bytes, 0)

    def __str__(self) -> str:
        return f"{self.bytes} bytes"


@dataclass(frozen=True)
class RelativeLimit:
    """A limit relative to the machine's RAM (``*.relative``): free disk = fraction x RAM,
    memory high watermark = fraction x RAM."""

    fraction: float

    def __post_init__(self) -> None:
        if isinstance(self.fraction, int) and not isinstance(self.fraction, bool):
            object.__setattr__(self, "fraction", float(self.fraction))
        _check_type("fraction", self.fraction, float)
        if not 0.0 <= self.fraction < float("inf"):
            _fail("fraction", f"expected a number of at least 0, got {self.fraction!r}")

    def __str__(self) -> str:
        return f"{self.fraction:g} x RAM"


Limit = AbsoluteLimit | RelativeLimit


@dataclass(frozen=True)
class HTTPListener:
    """``management.tcp.*``, ``prometheus.tcp.*``: ``ip`` None means every interface."""

    port: int
    ip: str | None = None

    def __post_init__(self) -> None:
        _check_int("port", self.port, 0, 65535)
        if self.ip is not None:
            object.__setattr__(self, "ip", parse_ip(self.ip))

    def __str__(self) -> str:
        return str(Listener(self.ip, self.port))


@dataclass(frozen=True)
class HTTPSListener:
    """``management.ssl.*``: an HTTPS listener needs a certificate and its key."""

    port: int
    certfile: str
    keyfile: str
    cacertfile: str | None = None
    ip: str | None = None

    def __post_init__(self) -> None:
        _check_int("management.ssl.port", self.port, 0, 65535)
        for name in ("certfile", "keyfile"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                _fail(f"management.ssl.{name}", f"expected a path, got {value!r}")
        _check_optional_path("management.ssl.cacertfile", self.cacertfile)
        if self.ip is not None:
            object.__setattr__(self, "ip", parse_ip(self.ip))

    def __str__(self) -> str:
        return str(Listener(self.ip, self.port))


@dataclass(frozen=True)
class EtcdSettings:
    """``cluster.etcd.*``: the etcd cluster that elects the leader and lists the nodes.

    ``prefix`` starts every key Warren writes there (``/warren/`` + the cluster
    name unless the file says otherwise). ``cacertfile`` verifies etcd's
    certificate on ``https://`` endpoints (None: the system's CAs);
    ``certfile`` and ``keyfile`` (both or neither) are a client certificate.
    ``lease_ttl`` is how many seconds a silent leader keeps its leadership.
    """

    endpoints: tuple[str, ...]
    prefix: str
    cacertfile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    lease_ttl: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.endpoints, tuple) or not all(isinstance(e, str) for e in self.endpoints):
            _fail("cluster.etcd.endpoints", f"expected a tuple of URLs, got {self.endpoints!r}")
        if not self.endpoints:
            _fail("cluster.etcd.endpoints", "expected at least one URL")
        try:
            endpoints = tuple(parse_endpoint(e) for e in self.endpoints)
        except ValueError as error:
            _fail("cluster.etcd.endpoints", str(error))
        if len(set(endpoints)) != len(endpoints):
            _fail("cluster.etcd.endpoints", f"lists the same URL twice: {', '.join(endpoints)}")
        object.__setattr__(self, "endpoints", endpoints)
        _check_type("cluster.etcd.prefix", self.prefix, str)
        try:
            check_etcd_prefix(self.prefix)
        except ValueError as error:
            _fail("cluster.etcd.prefix", str(error))
        for name in ("cacertfile", "certfile", "keyfile"):
            _check_optional_path(f"cluster.etcd.ssl.{name}", getattr(self, name))
        if (self.certfile is None) != (self.keyfile is None):
            given, other = ("certfile", "keyfile") if self.keyfile is None else ("keyfile", "certfile")
            _fail(f"cluster.etcd.ssl.{given}", f"needs cluster.etcd.ssl.{other} too (a client certificate goes with its key)")
        _check_int("cluster.etcd.lease_ttl", self.lease_ttl, MIN_LEASE_TTL, MAX_LEASE_TTL)
        files = [n for n in ("cacertfile", "certfile", "keyfile") if getattr(self, n) is not None]
        if files and not self.https:
            _fail(f"cluster.etcd.ssl.{files[0]}", NO_HTTPS_ENDPOINT)

    @property
    def https(self) -> bool:
        """Whether any endpoint is ``https://``."""
        return any(e.startswith("https://") for e in self.endpoints)


#: The problem of TLS files for etcd with no https:// endpoint to use them.
NO_HTTPS_ENDPOINT: Final = (
    "no cluster.etcd.endpoints URL is https://, so this file would not be used: "
    "write https:// endpoints or remove the cluster.etcd.ssl.* keys"
)


def check_etcd_prefix(prefix: str) -> str:
    """``prefix`` if it starts with ``/`` and does not end with one (``/warren/prod``)."""
    if not prefix.startswith("/"):
        raise ValueError(f"expected a key prefix starting with / (e.g. /warren/prod), got {prefix!r}")
    if prefix.endswith("/"):
        raise ValueError(f"expected a key prefix not ending with / (e.g. /warren/prod), got {prefix!r}")
    return prefix


def check_secret(secret: str) -> str:
    """``secret`` if it is long enough. The message never shows it."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"expected at least {MIN_SECRET_LENGTH} characters, got {len(secret)} "
            "(the same long random string on every node)"
        )
    return secret


@dataclass(frozen=True)
class ClusterSettings:
    """``cluster.*`` and ``replication.*``: this node's place in a high-availability cluster.

    ``advertise_host`` is the address other nodes and clients reach this node
    at (by default the replication listener's IP). A publisher confirm waits
    until ``min_followers`` followers have the message on disk (0: the
    leader's fsync alone). ``secret`` authenticates the replication stream;
    it is in no ``repr``.
    """

    name: str
    node_name: str
    etcd: EtcdSettings
    replication_listener: Listener
    advertise_host: str
    min_followers: int = 1
    secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        _check_type("cluster.name", self.name, str)
        if not self.name:
            _fail("cluster.name", "must not be empty")
        _check_type("cluster.node_name", self.node_name, str)
        try:
            parse_node_name(self.node_name)
        except ValueError as error:
            _fail("cluster.node_name", str(error))
        _check_type("cluster.etcd", self.etcd, EtcdSettings)
        _check_type("replication.listener", self.replication_listener, Listener)
        _check_type("cluster.advertise_host", self.advertise_host, str)
        try:
            object.__setattr__(self, "advertise_host", parse_host(self.advertise_host))
        except ValueError as error:
            _fail("cluster.advertise_host", str(error))
        _check_int("replication.min_followers", self.min_followers, 0, MAX_MIN_FOLLOWERS)
        if not isinstance(self.secret, str):  # (the message must not show it)
            _fail("replication.secret", f"expected str, got {type(self.secret).__name__}")
        try:
            check_secret(self.secret)
        except ValueError as error:
            _fail("replication.secret", str(error))

    def __str__(self) -> str:
        etcd = self.etcd
        tls = ""
        if etcd.cacertfile is not None:
            tls += f", cacertfile {etcd.cacertfile}"
        if etcd.certfile is not None:
            tls += f", client certfile {etcd.certfile}"
        return (
            f"cluster {self.name!r} node {self.node_name!r}: replication listener "
            f"{self.replication_listener} advertised as {self.advertise_host}, "
            f"min_followers {self.min_followers}; etcd {', '.join(etcd.endpoints)} "
            f"(prefix {etcd.prefix}, lease_ttl {etcd.lease_ttl}s{tls})"
        )


@dataclass(frozen=True)
class Settings:
    """Everything a ``rabbitmq.conf`` can say to Warren, with RabbitMQ 3.10's defaults.

    ``None`` stands for RabbitMQ's ``infinity`` (``handshake_timeout``,
    ``connection_max``) and for "not set" (paths). ``origins`` maps each key
    the file set to ``"file:line"``, for messages such as "listeners.tcp.1
    (rabbitmq.conf:3): address already in use"; it takes no part in equality.
    """

    # AMQP listeners and TLS
    listeners_tcp: tuple[Listener, ...] = (Listener(None, 5672),)
    listeners_ssl: tuple[Listener, ...] = ()
    ssl_options: TLSOptions = TLSOptions()
    ssl_cert_login_from: CertLoginFrom = "distinguished_name"
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "AMQPLAIN")
    # the user and vhost created on first start
    default_user: str = "guest"
    default_pass: str = field(default="guest", repr=False)
    default_vhost: str = "/"
    default_user_tags: tuple[str, ...] = ("administrator",)
    default_permissions: Permissions = Permissions()
    loopback_users: tuple[str, ...] = ("guest",)
    # connections
    handshake_timeout: int | None = 10_000
    heartbeat: int = 60
    frame_max: int = 131_072
    channel_max: int = 2047
    max_message_size: int = 134_217_728
    connection_max: int | None = None
    consumer_timeout: int = 1_800_000
    # resources
    disk_free_limit: Limit = AbsoluteLimit(50_000_000)
    vm_memory_high_watermark: Limit = RelativeLimit(0.4)
    vm_memory_high_watermark_paging_ratio: float = 0.5
    # definitions, HTTP, logs
    load_definitions: str | None = None
    management_tcp: HTTPListener = HTTPListener(15672)
    management_ssl: HTTPSListener | None = None
    prometheus_tcp: HTTPListener = HTTPListener(15692)
    #: Milliseconds between two samples of the statistics (message rates).
    collect_statistics_interval: int = 5000
    log_console_level: LogLevel = "info"
    # Warren's own keys (warren.*)
    data_dir: str | None = None
    #: Memory a queue's ready messages may use before new ones are paged
    #: out to disk (None: only under memory pressure).
    paging_queue_bytes: int | None = 64 * 1024 * 1024
    #: Failed logins from one address (broker.auth.access.LoginThrottle):
    #: answered at once `free_failures` times within `window` ms, then after
    #: `first_delay` ms, doubling up to `max_delay` ms; at most `max_pending`
    #: answers waiting per address (None: no cap); loopback addresses are
    #: exempt unless `include_loopback`.
    login_throttle_free_failures: int = 3
    login_throttle_first_delay: int = 500
    login_throttle_max_delay: int = 10_000
    login_throttle_window: int = 60_000
    login_throttle_max_pending: int | None = 10
    login_throttle_include_loopback: bool = False
    #: High-availability cluster mode (cluster.*, replication.*); None: a
    #: single node.
    cluster: ClusterSettings | None = None
    origins: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        for name in ("listeners_tcp", "listeners_ssl"):
            listeners = getattr(self, name)
            if not isinstance(listeners, tuple) or not all(isinstance(x, Listener) for x in listeners):
                _fail(name, f"expected a tuple of Listener, got {listeners!r}")
            if len(set(listeners)) != len(listeners):
                _fail(name, f"lists the same address twice: {', '.join(map(str, listeners))}")
        _check_type("ssl_options", self.ssl_options, TLSOptions)
        if self.listeners_ssl and (self.ssl_options.certfile is None or self.ssl_options.keyfile is None):
            _fail(
                "listeners_ssl",
                "a TLS listener needs ssl_options.certfile and ssl_options.keyfile",
            )
        _check_choice("ssl_cert_login_from", self.ssl_cert_login_from, ("distinguished_name", "common_name"))
        _check_str_tuple("auth_mechanisms", self.auth_mechanisms, allow_empty=False)
        for mechanism in self.auth_mechanisms:
            _check_choice("auth_mechanisms", mechanism, AUTH_MECHANISMS)
        for name in ("default_user", "default_pass", "default_vhost"):
            value = getattr(self, name)
            _check_type(name, value, str)
            if not value:
                _fail(name, "must not be empty")
        _check_str_tuple("default_user_tags", self.default_user_tags)
        _check_type("default_permissions", self.default_permissions, Permissions)
        _check_str_tuple("loopback_users", self.loopback_users)
        if self.handshake_timeout is not None:
            _check_int("handshake_timeout", self.handshake_timeout, 1)
        _check_int("heartbeat", self.heartbeat, 0, 65535)
        _check_int("frame_max", self.frame_max, MIN_FRAME_MAX, MAX_FRAME_MAX)
        _check_int("channel_max", self.channel_max, 0, 65535)
        _check_int("max_message_size", self.max_message_size, 1, MAX_MESSAGE_SIZE)
        if self.connection_max is not None:
            _check_int("connection_max", self.connection_max, 0)
        _check_int("consumer_timeout", self.consumer_timeout, 1)
        _check_type("disk_free_limit", self.disk_free_limit, AbsoluteLimit, RelativeLimit)
        _check_type("vm_memory_high_watermark", self.vm_memory_high_watermark, AbsoluteLimit, RelativeLimit)
        ratio = self.vm_memory_high_watermark_paging_ratio
        if isinstance(ratio, int) and not isinstance(ratio, bool):
            object.__setattr__(self, "vm_memory_high_watermark_paging_ratio", float(ratio))
        _check_type("vm_memory_high_watermark_paging_ratio", self.vm_memory_high_watermark_paging_ratio, float)
        if not 0.0 < self.vm_memory_high_watermark_paging_ratio < 1.0:
            _fail("vm_memory_high_watermark_paging_ratio",
                  f"expected a number above 0 and below 1, got {self.vm_memory_high_watermark_paging_ratio!r}")
        _check_optional_path("load_definitions", self.load_definitions)
        _check_type("management_tcp", self.management_tcp, HTTPListener)
        if self.management_ssl is not None:
            _check_type("management_ssl", self.management_ssl, HTTPSListener)
        _check_type("prometheus_tcp", self.prometheus_tcp, HTTPListener)
        _check_int("collect_statistics_interval", self.collect_statistics_interval, 1)
        _check_choice("log_console_level", self.log_console_level, LOG_LEVELS)
        _check_optional_path("data_dir", self.data_dir)
        if self.paging_queue_bytes is not None:
            _check_int("paging_queue_bytes", self.paging_queue_bytes, 0)
        _check_int("login_throttle_free_failures", self.login_throttle_free_failures, 0)
        _check_int("login_throttle_first_delay", self.login_throttle_first_delay, 0)
        _check_int("login_throttle_max_delay", self.login_throttle_max_delay, 0)
        _check_int("login_throttle_window", self.login_throttle_window, 1)
        if self.login_throttle_max_pending is not None:
            _check_int("login_throttle_max_pending", self.login_throttle_max_pending, 1)
        _check_type("login_throttle_include_loopback", self.login_throttle_include_loopback, bool)
        if self.login_throttle_max_delay < self.login_throttle_first_delay:
            _fail("login_throttle_max_delay",
                  f"must not be below login_throttle_first_delay ({self.login_throttle_first_delay}),"
                  f" got {self.login_throttle_max_delay}")
        if self.cluster is not None:
            _check_type("cluster", self.cluster, ClusterSettings)
        if not isinstance(self.origins, MappingProxyType):
            object.__setattr__(self, "origins", MappingProxyType(dict(self.origins)))

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced: command-line options over the file.

        Field names as in this class (``heartbeat=30``,
        ``listeners_tcp=(Listener("127.0.0.1", 5673),)``, ``data_dir="./data"``);
        an unknown name is a TypeError, a bad value a ValueError, as in the
        file. The overridden fields lose their ``origins`` entries' meaning,
        so they are dropped from it.
        """
        names = {f.name for f in dataclasses.fields(self)} - {"origins"}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"Settings has no field {', '.join(unknown)}")
        prefixes: set[str] = set()
        for name in changes:
            found = _KEY_PREFIXES.get(name, name)
            prefixes.update((found,) if isinstance(found, str) else found)
        origins = {
            key: where
            for key, where in self.origins.items()
            if not any(key == p or key.startswith(p + ".") for p in prefixes)
        }
        return dataclasses.replace(self, origins=origins, **changes)

    def to_lines(self) -> list[str]:
        """What the broker will listen on and who may log in, one line each, for the log.

        Never shows a password.
        """
        tls = self.ssl_options
        lines = [f"amqp listener {listener}" for listener in self.listeners_tcp]
        for listener in self.listeners_ssl:
            client = (
                f"verify_peer (cacertfile {tls.cacertfile}"
                + (", fail_if_no_peer_cert" if tls.fail_if_no_peer_cert else "")
                + ")"
                if tls.verify == "verify_peer"
                else "verify_none"
            )
            lines.append(
                f"amqps listener {listener}: certfile {tls.certfile}, {client}, "
                f"{'/'.join(tls.versions)}"
            )
        if not self.listeners_tcp and not self.listeners_ssl:
            lines.append("no AMQP listener (listeners.tcp = none)")
        lines.append(f"auth mechanisms {', '.join(self.auth_mechanisms)}")
        loopback = ", ".join(self.loopback_users) if self.loopback_users else "none"
        lines.append(
            f"default user {self.default_user!r} on vhost {self.default_vhost!r}; "
            f"loopback-only users: {loopback}"
        )
        lines.append(f"management http listener {self.management_tcp}")
        if self.management_ssl is not None:
            lines.append(
                f"management https listener {self.management_ssl}: certfile "
                f"{self.management_ssl.certfile}"
            )
        lines.append(f"prometheus http listener {self.prometheus_tcp}")
        lines.append(f"data dir {self.data_dir}" if self.data_dir else "no data dir: nothing persists")
        if self.cluster is not None:
            lines.append(str(self.cluster))
        return lines

    def describe(self) -> str:
        """`to_lines` as one string, lines separated by "; "."""
        return "; ".join(self.to_lines())


#: Settings field -> the key prefix(es) its origins are recorded under.
_KEY_PREFIXES: Final[Mapping[str, str | tuple[str, ...]]] = {
    "listeners_tcp": "listeners.tcp",
    "listeners_ssl": "listeners.ssl",
    "management_tcp": "management.tcp",
    "management_ssl": "management.ssl",
    "prometheus_tcp": "prometheus.tcp",
    "log_console_level": "log.console.level",
    "data_dir": "warren.data_dir",
    "paging_queue_bytes": "warren.paging.queue_bytes",
    "login_throttle_free_failures": "warren.login_throttle.free_failures",
    "login_throttle_first_delay": "warren.login_throttle.first_delay",
    "login_throttle_max_delay": "warren.login_throttle.max_delay",
    "login_throttle_window": "warren.login_throttle.window",
    "login_throttle_max_pending": "warren.login_throttle.max_pending",
    "login_throttle_include_loopback": "warren.login_throttle.include_loopback",
    "cluster": ("cluster", "replication"),
}
