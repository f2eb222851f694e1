"""The keys Warren reads from a ``rabbitmq.conf``, and how they make `Settings`.

`KEYS` is the table (pattern, accepted values, default) that docs/settings.md
describes; `build` turns a file's entries into `Settings`, collecting every
problem (unknown keys, bad values, keys set twice, keys that contradict each
other) instead of stopping at the first.

Standard library only.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from broker.settings.model import (
    AUTH_MECHANISMS,
    LOG_LEVELS,
    MAX_FRAME_MAX,
    MAX_LEASE_TTL,
    MAX_MESSAGE_SIZE,
    MAX_MIN_FOLLOWERS,
    MIN_FRAME_MAX,
    MIN_LEASE_TTL,
    MIN_SECRET_LENGTH,
    NO_HTTPS_ENDPOINT,
    TLS_VERSIONS,
    AbsoluteLimit,
    ClusterSettings,
    EtcdSettings,
    HTTPListener,
    HTTPSListener,
    Permissions,
    RelativeLimit,
    Settings,
    TLSOptions,
    check_etcd_prefix,
    check_secret,
)
from broker.settings.parser import Entry, Problem
from broker.settings.rabbitmq_keys import RABBITMQ_KEYS
from broker.settings.values import (
    is_wildcard,
    parse_bool,
    parse_bytesize,
    parse_endpoints,
    parse_enum,
    parse_float,
    parse_host,
    parse_int,
    parse_int_or_infinity,
    parse_ip,
    parse_listener,
    parse_node_name,
    parse_size,
)

__all__ = ["KEYS", "Key", "build", "find_key"]


def _none(text: str) -> str:
    return parse_enum(text, ("none",))


def _string(text: str) -> str:
    return text


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _mechanism(text: str) -> str:
    if text in AUTH_MECHANISMS:
        return text
    if text.upper() in AUTH_MECHANISMS:
        raise ValueError(f"mechanism names are upper case: {text.upper()}, got {text!r}")
    hint = " (ANONYMOUS is RabbitMQ 4.0's; Warren does not offer it)" if text == "ANONYMOUS" else ""
    raise ValueError(f"expected one of {', '.join(AUTH_MECHANISMS)}, got {text!r}{hint}")


def _tls_version(text: str) -> str:
    if text in ("tlsv1", "tlsv1.1"):
        raise ValueError(f"Warren offers TLS 1.2 and 1.3 only (tlsv1.2, tlsv1.3), got {text!r}")
    return parse_enum(text, TLS_VERSIONS)


def _cert_login_from(text: str) -> str:
    if text in ("subject_alternative_name", "subject_alt_name"):
        raise ValueError(
            f"Warren takes the user name from distinguished_name or common_name, not {text}"
        )
    return parse_enum(text, ("distinguished_name", "common_name"))


@dataclass(frozen=True)
class Key:
    """One key (``$name`` stands for any one key part) and what it accepts."""

    pattern: str
    parse: Callable[[str], Any]
    accepts: str
    default: str
    #: a path: made absolute (relative to the file's directory) and checked
    #: readable, as RabbitMQ's ``file_accessible`` validator.
    path: bool = False
    #: a directory Warren creates: made absolute, must not be a file.
    directory: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.pattern.split("."))

    def matches(self, key: tuple[str, ...]) -> bool:
        parts = self.parts
        return len(parts) == len(key) and all(p == k or p.startswith("$") for p, k in zip(parts, key, strict=True))


def _size_or_bytes(text: str) -> int:
    return parse_size(text)


def _paging_ratio(text: str) -> float:
    # RabbitMQ's schema: a float with its "less_than_1" validator (0 < x < 1).
    value = parse_float(text, 0.0, 1.0)
    if not 0.0 < value < 1.0:
        raise ValueError(f"expected a number above 0 and below 1, got {text!r}")
    return value


def _size_or_infinity(text: str) -> int | None:
    return None if text == "infinity" else parse_size(text)


KEYS: Final[tuple[Key, ...]] = (
    # AMQP listeners and TLS
    Key("listeners.tcp", _none, "none: no plain AMQP listener", "-"),
    Key("listeners.tcp.$name", parse_listener, "PORT, IP:PORT, IPv6:PORT or [IPv6]:PORT", "listeners.tcp.default = 5672"),
    Key("listeners.ssl", _none, "none: no TLS listener", "-"),
    Key("listeners.ssl.$name", parse_listener, "as listeners.tcp.$name", "none"),
    Key("ssl_options.cacertfile", _text, "path of a readable file (PEM CA certificates)", "none", path=True),
    Key("ssl_options.certfile", _text, "path of a readable file (PEM certificate chain)", "none", path=True),
    Key("ssl_options.keyfile", _text, "path of a readable file (PEM private key)", "none", path=True),
    Key("ssl_options.verify", lambda t: parse_enum(t, ("verify_peer", "verify_none")), "verify_peer, verify_none", "verify_none"),
    Key("ssl_options.fail_if_no_peer_cert", parse_bool, "true, false", "false"),
    Key("ssl_options.versions.$name", _tls_version, "tlsv1.3, tlsv1.2", "tlsv1.3 and tlsv1.2"),
    Key("ssl_cert_login_from", _cert_login_from, "distinguished_name, common_name", "distinguished_name"),
    Key("auth_mechanisms.$name", _mechanism, ", ".join(AUTH_MECHANISMS), "PLAIN and AMQPLAIN"),
    # the user and vhost created on first start
    Key("default_user", _text, "a user name", "guest"),
    Key("default_pass", _text, "a password", "guest"),
    Key("default_vhost", _text, "a vhost name", "/"),
    Key("default_user_tags.$name", parse_bool, "true, false (the tag is $name)", "administrator"),
    Key("default_permissions.configure", _string, "a regular expression", ".*"),
    Key("default_permissions.read", _string, "a regular expression", ".*"),
    Key("default_permissions.write", _string, "a regular expression", ".*"),
    Key("loopback_users", _none, "none: every user may connect from anywhere", "-"),
    Key("loopback_users.$name", parse_bool, "true, false (the user is $name)", "guest"),
    # connections
    Key("handshake_timeout", lambda t: parse_int_or_infinity(t, 1), "milliseconds >= 1, or infinity", "10000"),
    Key("heartbeat", lambda t: parse_int(t, 0, 65535), "seconds, 0 to 65535 (0: off)", "60"),
    Key("frame_max", lambda t: parse_bytesize(t, MIN_FRAME_MAX, MAX_FRAME_MAX), f"bytes, {MIN_FRAME_MAX} to {MAX_FRAME_MAX}; KB/MB/GB are 1024-based here", "131072"),
    Key("channel_max", lambda t: parse_int(t, 0, 65535), "0 to 65535 (0: 65535)", "2047"),
    Key("max_message_size", lambda t: parse_int(t, 1, MAX_MESSAGE_SIZE), f"bytes, 1 to {MAX_MESSAGE_SIZE} (512 MiB)", "134217728"),
    Key("connection_max", lambda t: parse_int_or_infinity(t, 0), "an integer >= 0, or infinity", "infinity"),
    Key("consumer_timeout", lambda t: parse_int(t, 1), "milliseconds >= 1", "1800000"),
    # resources
    Key("disk_free_limit.absolute", _size_or_bytes, "bytes, or a size: 50MB, 2GB (1000-based), 1GiB (1024-based)", "50000000 (50MB)"),
    Key("disk_free_limit.relative", lambda t: parse_float(t, 0.0), "a number >= 0: that many times the RAM", "-"),
    Key("vm_memory_high_watermark.relative", lambda t: parse_float(t, 0.0), "a number >= 0: that fraction of the RAM", "0.4"),
    Key("vm_memory_high_watermark.absolute", _size_or_bytes, "bytes, or a size as disk_free_limit.absolute", "-"),
    Key("vm_memory_high_watermark_paging_ratio", _paging_ratio, "a number above 0 and below 1: queues page to disk above that fraction of the watermark", "0.5"),
    # definitions, HTTP, logs
    Key("load_definitions", _text, "path of a readable file or directory (definitions JSON)", "none", path=True),
    Key("management.tcp.port", lambda t: parse_int(t, 0, 65535), "0 to 65535", "15672"),
    Key("management.tcp.ip", parse_ip, "an IP address", "every interface"),
    Key("management.ssl.port", lambda t: parse_int(t, 0, 65535), "0 to 65535", "none (no HTTPS)"),
    Key("management.ssl.ip", parse_ip, "an IP address", "every interface"),
    Key("management.ssl.cacertfile", _text, "path of a readable file", "none", path=True),
    Key("management.ssl.certfile", _text, "path of a readable file", "none", path=True),
    Key("management.ssl.keyfile", _text, "path of a readable file", "none", path=True),
    Key("prometheus.tcp.port", lambda t: parse_int(t, 0, 65535), "0 to 65535", "15692"),
    Key("prometheus.tcp.ip", parse_ip, "an IP address", "every interface"),
    Key("collect_statistics_interval", lambda t: parse_int(t, 1), "milliseconds >= 1", "5000"),
    Key("log.console.level", lambda t: parse_enum(t, LOG_LEVELS), ", ".join(LOG_LEVELS), "info"),
    # Warren's own
    Key("warren.data_dir", _text, "a directory (created if missing)", "none: nothing persists", directory=True),
    Key("warren.paging.queue_bytes", _size_or_infinity, "bytes, a size as disk_free_limit.absolute, or infinity: a queue pages new messages to disk above that much memory", "64MiB"),
    Key("warren.login_throttle.free_failures", lambda t: parse_int(t, 0), "an integer >= 0: failed logins from one address answered at once", "3"),
    Key("warren.login_throttle.first_delay", lambda t: parse_int(t, 0), "milliseconds >= 0: the first delayed answer's wait (0: none)", "500"),
    Key("warren.login_throttle.max_delay", lambda t: parse_int(t, 0), "milliseconds >= 0, at least first_delay: the longest wait", "10000"),
    Key("warren.login_throttle.window", lambda t: parse_int(t, 1), "milliseconds >= 1: an address's failures are forgotten after that long without one", "60000"),
    Key("warren.login_throttle.max_pending", lambda t: parse_int_or_infinity(t, 1), "an integer >= 1, or infinity: delayed answers waiting per address", "10"),
    Key("warren.login_throttle.include_loopback", parse_bool, "true, false: throttle loopback addresses too", "false"),
    # Warren's high-availability cluster (docs/cluster.md); any of these keys
    # asks for cluster mode, which needs the five of _CLUSTER_REQUIRED.
    Key("cluster.name", _text, "a non-empty name, the same on every node", "none: a single node"),
    Key("cluster.node_name", parse_node_name, "letters, digits, -, _, . and @; unique in the cluster", "none"),
    Key("cluster.advertise_host", parse_host, "an IP address or a host name (letters, digits, - and .)", "replication.listener's IP"),
    Key("cluster.etcd.endpoints", parse_endpoints, "http://HOST:PORT or https://HOST:PORT URLs, separated by commas", "none"),
    Key("cluster.etcd.prefix", check_etcd_prefix, "a key prefix starting with / and not ending with /", "/warren/ + cluster.name"),
    Key("cluster.etcd.ssl.cacertfile", _text, "path of a readable file (PEM CA certificates)", "the system's CAs", path=True),
    Key("cluster.etcd.ssl.certfile", _text, "path of a readable file (PEM client certificate)", "none", path=True),
    Key("cluster.etcd.ssl.keyfile", _text, "path of a readable file (PEM private key)", "none", path=True),
    Key("cluster.etcd.lease_ttl", lambda t: parse_int(t, MIN_LEASE_TTL, MAX_LEASE_TTL), f"seconds, {MIN_LEASE_TTL} to {MAX_LEASE_TTL}", "5"),
    Key("replication.listener", parse_listener, "as listeners.tcp.$name", "none"),
    Key("replication.min_followers", lambda t: parse_int(t, 0, MAX_MIN_FOLLOWERS), f"0 to {MAX_MIN_FOLLOWERS}", "1"),
    Key("replication.secret", check_secret, f"at least {MIN_SECRET_LENGTH} characters, the same on every node", "none"),
)

#: The keys cluster mode cannot do without.
_CLUSTER_REQUIRED: Final = (
    "cluster.name", "cluster.node_name", "cluster.etcd.endpoints", "replication.listener", "replication.secret",
)

_WARREN_KEYS: Final = tuple(k.pattern for k in KEYS if k.pattern.startswith("warren."))
#: RabbitMQ keys Warren refuses that have a Warren key of a like meaning.
_WARREN_SPELLING: Final = {"cluster_name": "cluster.name (docs/cluster.md)"}


def find_key(key: tuple[str, ...]) -> Key | None:
    """The entry of `KEYS` a key matches (exact patterns win over ``$name`` ones)."""
    candidates = [k for k in KEYS if k.matches(key)]
    candidates.sort(key=lambda k: k.pattern.count("$"))
    return candidates[0] if candidates else None


def _is_rabbitmq_key(key: tuple[str, ...]) -> bool:
    for pattern in RABBITMQ_KEYS:
        parts = pattern.split(".")
        if len(parts) == len(key) and all(p == k or p.startswith("$") for p, k in zip(parts, key, strict=True)):
            return True
    return False


def _unknown(entry: Entry) -> Problem:
    name = entry.name
    if entry.key[0] == "warren":
        message = f"unknown Warren key (Warren's keys: {', '.join(_WARREN_KEYS)})"
    elif _is_rabbitmq_key(entry.key):
        message = "a RabbitMQ setting that Warren does not have (docs/settings.md lists them)"
        if name in _WARREN_SPELLING:
            message += f"; Warren's is {_WARREN_SPELLING[name]}"
    else:
        names = [_spell(k, entry.key) for k in KEYS]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        message = "unknown key" + (f"; did you mean {close[0]}?" if close else "")
    return Problem(entry.path, entry.line, name, message)


def _spell(key: Key, parts: tuple[str, ...]) -> str:
    """A pattern with each ``$name`` spelled as the unknown key has it there (or NAME)."""
    return ".".join(
        (parts[i] if i < len(parts) else "NAME") if p.startswith("$") else p
        for i, p in enumerate(key.parts)
    )


def _resolve_path(entry: Entry, value: str, directory: bool) -> str:
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(entry.path)), value))
    if directory:
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{path} exists and is not a directory")
        return path
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path}: cannot be read")
    return path


class _Collector:
    """The parsed entries of one file, by key, with the problems found so far."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.values: dict[str, tuple[Entry, Any]] = {}

    def add(self, entry: Entry) -> None:
        spec = find_key(entry.key)
        if spec is None:
            self.problems.append(_unknown(entry))
            return
        name = entry.name
        if name in self.values:
            first = self.values[name][0]
            self.problems.append(
                Problem(
                    entry.path,
                    entry.line,
                    name,
                    f"set again (first at {first.where}); RabbitMQ would quietly keep the last "
                    "one: keep one line",
                )
            )
            return
        try:
            value = spec.parse(entry.value)
            if spec.path or spec.directory:
                value = _resolve_path(entry, value, spec.directory)
        except ValueError as error:
            self.problems.append(Problem(entry.path, entry.line, name, str(error)))
            value = _INVALID
        self.values[name] = (entry, value)

    def get(self, name: str) -> Any:
        found = self.values.get(name)
        return None if found is None else found[1]

    def entry(self, name: str) -> Entry | None:
        found = self.values.get(name)
        return None if found is None else found[0]

    def named(self, prefix: str) -> list[tuple[Entry, Any]]:
        """The ``prefix.NAME`` entries, in file order."""
        parts = tuple(prefix.split("."))
        return [(entry, value) for entry, value in self.values.values() if entry.key[:-1] == parts]

    def where(self, name: str) -> str:
        entry = self.entry(name)
        return "?" if entry is None else entry.where

    def later(self, *names: str) -> str:
        """Of keys the file set, the one it set last."""
        order = list(self.values)
        return max(names, key=order.index)

    def report(self, name: str, message: str) -> None:
        entry = self.entry(name)
        if entry is None:
            raise AssertionError(name)
        self.problems.append(Problem(entry.path, entry.line, entry.name, message))


class _Invalid:
    """A value that did not parse (its problem is already reported)."""


_INVALID: Final = _Invalid()


def _valid(value: Any) -> bool:
    return value is not _INVALID


def _list(c: _Collector, prefix: str, what: str, *, none_key: str | None = None) -> tuple[Any, ...] | None:
    """A ``prefix.NAME = value`` list: values in file order, None if the file has none.

    ``none_key`` = none empties the list; naming entries with it is a contradiction.
    """
    items = c.named(prefix)
    if none_key is not None and c.get(none_key) == "none":
        for entry, _ in items:
            c.problems.append(
                Problem(
                    entry.path,
                    entry.line,
                    entry.name,
                    f"contradicts {none_key} = none ({c.where(none_key)}): RabbitMQ would "
                    "quietly ignore this line: remove one",
                )
            )
        return ()
    if not items or not all(_valid(value) for _, value in items):
        return None  # (an invalid item's problem is already reported)
    seen: dict[Any, Entry] = {}
    result = []
    for entry, value in items:
        if value in seen:
            c.problems.append(
                Problem(entry.path, entry.line, entry.name, f"the same {what} as {seen[value].name} ({seen[value].where})")
            )
            continue
        seen[value] = entry
        result.append(value)
    return tuple(result)


def _flags(c: _Collector, prefix: str, none_key: str | None = None) -> tuple[str, ...] | None:
    """``prefix.NAME = true|false``: the NAMEs set to true, in file order."""
    items = c.named(prefix)
    if none_key is not None and c.get(none_key) == "none":
        for entry, _ in items:
            c.problems.append(
                Problem(
                    entry.path,
                    entry.line,
                    entry.name,
                    f"contradicts {none_key} = none ({c.where(none_key)}): RabbitMQ would "
                    "quietly ignore this line: remove one",
                )
            )
        return ()
    if not items:
        return None
    return tuple(entry.key[-1] for entry, value in items if value is True)


def _limit(c: _Collector, prefix: str) -> AbsoluteLimit | RelativeLimit | None:
    absolute = c.get(f"{prefix}.absolute")
    relative = c.get(f"{prefix}.relative")
    if absolute is not None and relative is not None:
        later = c.later(f"{prefix}.absolute", f"{prefix}.relative")
        other = f"{prefix}.relative" if later.endswith("absolute") else f"{prefix}.absolute"
        c.report(
            later,
            f"{other} is set too ({c.where(other)}); RabbitMQ 3.10 would quietly use the "
            "relative one, 3.13 the absolute one: keep one",
        )
        return None
    if absolute is not None and _valid(absolute):
        return AbsoluteLimit(absolute)
    if relative is not None and _valid(relative):
        return RelativeLimit(relative)
    return None


def _construct(c: _Collector, factory: Callable[..., Any], fallback: str | None, **kwargs: Any) -> Any:
    """``factory(**kwargs)``, its ValueError reported at the key it names (or ``fallback``)."""
    try:
        return factory(**kwargs)
    except ValueError as error:
        text = str(error)
        key, sep, message = text.partition(": ")
        entry = c.entry(key) if sep else None
        if entry is None and fallback is not None:
            entry = c.entry(fallback)
            message = text
        if entry is None:
            c.problems.append(Problem("<settings>", None, None, text))
        else:
            c.problems.append(Problem(entry.path, entry.line, entry.name, message))
        return _INVALID


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _cluster(c: _Collector) -> ClusterSettings | _Invalid | None:
    """``cluster.*`` and ``replication.*``: None if the file has none of them."""
    given = [name for name in c.values if name.split(".")[0] in ("cluster", "replication")]
    if not given:
        return None
    before = len(c.problems)
    missing = [name for name in _CLUSTER_REQUIRED if name not in c.values]
    if missing:
        c.report(given[0], f"cluster mode needs {_and(missing)} too")
    certfile, keyfile = c.get("cluster.etcd.ssl.certfile"), c.get("cluster.etcd.ssl.keyfile")
    if (certfile is None) != (keyfile is None):
        present, absent = ("certfile", "keyfile") if keyfile is None else ("keyfile", "certfile")
        c.report(f"cluster.etcd.ssl.{present}",
                 f"needs cluster.etcd.ssl.{absent} too (a client certificate goes with its key)")
    endpoints = c.get("cluster.etcd.endpoints")
    files = [name for name in given if name.startswith("cluster.etcd.ssl.")]
    if files and endpoints is not None and _valid(endpoints) and not any(e.startswith("https://") for e in endpoints):
        c.report(files[0], NO_HTTPS_ENDPOINT)
    listener = c.get("replication.listener")
    advertise_host = c.get("cluster.advertise_host")
    if listener is not None and _valid(listener) and advertise_host is None and is_wildcard(listener.host):
        c.report(
            "replication.listener",
            f"listens on every interface ({listener}): set cluster.advertise_host, the address "
            "other nodes and clients reach this node at",
        )
    name, prefix = c.get("cluster.name"), c.get("cluster.etcd.prefix")
    if prefix is None and name is not None and _valid(name):
        prefix = "/warren/" + name
        try:
            check_etcd_prefix(prefix)
        except ValueError:
            c.report("cluster.name", f"ends with /, so the default cluster.etcd.prefix, {prefix!r}, would too: "
                                     "drop the / or set cluster.etcd.prefix")
    if len(c.problems) > before or not all(_valid(c.get(name)) for name in given):
        return _INVALID  # (every problem is reported)
    lease_ttl, min_followers = c.get("cluster.etcd.lease_ttl"), c.get("replication.min_followers")
    etcd = _construct(
        c, EtcdSettings, given[0], endpoints=endpoints, prefix=prefix,
        cacertfile=c.get("cluster.etcd.ssl.cacertfile"), certfile=certfile, keyfile=keyfile,
        **({} if lease_ttl is None else {"lease_ttl": lease_ttl}),  # (else the dataclass's default)
    )
    if not _valid(etcd):
        return _INVALID
    made: ClusterSettings | _Invalid = _construct(
        c, ClusterSettings, given[0],
        name=name, node_name=c.get("cluster.node_name"), etcd=etcd, replication_listener=listener,
        advertise_host=listener.host if advertise_host is None else advertise_host,
        secret=c.get("replication.secret"),
        **({} if min_followers is None else {"min_followers": min_followers}),
    )
    return made


def build(entries: Sequence[Entry]) -> tuple[Settings | None, list[Problem]]:
    """Settings from a file's entries, or None and every problem found."""
    c = _Collector()
    for entry in entries:
        c.add(entry)
    fields: dict[str, Any] = {}

    def scalar(field: str, key: str) -> None:
        value = c.get(key)
        if value is not None and _valid(value):
            fields[field] = value

    # listeners
    for kind in ("tcp", "ssl"):
        listeners = _list(c, f"listeners.{kind}", "address", none_key=f"listeners.{kind}")
        if listeners is not None:
            fields[f"listeners_{kind}"] = listeners

    # TLS
    tls: dict[str, Any] = {}
    for name in ("cacertfile", "certfile", "keyfile", "verify", "fail_if_no_peer_cert"):
        value = c.get(f"ssl_options.{name}")
        if value is not None and _valid(value):
            tls[name] = value
    versions = _list(c, "ssl_options.versions", "TLS version")
    if versions is not None:
        tls["versions"] = versions
    if any(k.startswith("ssl_options.") for k in c.values):
        options = _construct(c, TLSOptions, None, **tls)
        if _valid(options):
            fields["ssl_options"] = options
    ssl_listeners = fields.get("listeners_ssl", ())
    options = fields.get("ssl_options", TLSOptions())
    if ssl_listeners and (options.certfile is None or options.keyfile is None):
        first_listener = c.named("listeners.ssl")[0][0]
        missing = [f"ssl_options.{n}" for n in ("certfile", "keyfile") if getattr(options, n) is None]
        c.report(first_listener.name, f"a TLS listener needs {' and '.join(missing)}")

    scalar("ssl_cert_login_from", "ssl_cert_login_from")
    mechanisms = _list(c, "auth_mechanisms", "mechanism")
    if mechanisms is not None:
        fields["auth_mechanisms"] = mechanisms

    # default user and vhost
    for key in ("default_user", "default_pass", "default_vhost"):
        scalar(key, key)
    tags = _flags(c, "default_user_tags")
    if tags is not None:
        fields["default_user_tags"] = tags
    permissions = {
        name: c.get(f"default_permissions.{name}")
        for name in ("configure", "read", "write")
        if c.get(f"default_permissions.{name}") is not None
    }
    if permissions:
        made = _construct(c, Permissions, None, **permissions)
        if _valid(made):
            fields["default_permissions"] = made
    loopback = _flags(c, "loopback_users", none_key="loopback_users")
    if loopback is not None:
        fields["loopback_users"] = loopback

    # connections
    for key in ("heartbeat", "frame_max", "channel_max", "max_message_size", "consumer_timeout"):
        scalar(key, key)
    for key in ("handshake_timeout", "connection_max"):
        if key in c.values and _valid(c.get(key)):
            fields[key] = c.get(key)  # None is infinity

    # resources
    for prefix in ("disk_free_limit", "vm_memory_high_watermark"):
        limit = _limit(c, prefix)
        if limit is not None:
            fields[prefix] = limit
    scalar("vm_memory_high_watermark_paging_ratio", "vm_memory_high_watermark_paging_ratio")

    # definitions, HTTP, logs, Warren's
    scalar("load_definitions", "load_definitions")
    for plugin in ("management", "prometheus"):
        port, ip = c.get(f"{plugin}.tcp.port"), c.get(f"{plugin}.tcp.ip")
        if (port is not None or ip is not None) and _valid(port) and _valid(ip):
            default = HTTPListener(15672) if plugin == "management" else HTTPListener(15692)
            fields[f"{plugin}_tcp"] = HTTPListener(
                default.port if port is None else port, ip if ip is not None else default.ip
            )
    https = {name: c.get(f"management.ssl.{name}") for name in ("port", "ip", "cacertfile", "certfile", "keyfile")}
    given = [name for name, value in https.items() if value is not None]
    if given:
        order = list(c.values)
        first_key = min((f"management.ssl.{n}" for n in given), key=order.index)
        missing = [f"management.ssl.{n}" for n in ("port", "certfile", "keyfile") if https[n] is None]
        if missing:
            c.report(first_key, f"an HTTPS listener needs {' and '.join(missing)} too")
        elif all(_valid(v) for v in https.values()):
            made = _construct(c, HTTPSListener, first_key, **{k: v for k, v in https.items() if v is not None})
            if _valid(made):
                fields["management_ssl"] = made
    scalar("collect_statistics_interval", "collect_statistics_interval")
    scalar("log_console_level", "log.console.level")
    scalar("data_dir", "warren.data_dir")
    if "warren.paging.queue_bytes" in c.values and _valid(c.get("warren.paging.queue_bytes")):
        fields["paging_queue_bytes"] = c.get("warren.paging.queue_bytes")  # None is infinity
    for name in ("free_failures", "first_delay", "max_delay", "window", "include_loopback"):
        scalar(f"login_throttle_{name}", f"warren.login_throttle.{name}")
    if "warren.login_throttle.max_pending" in c.values and _valid(c.get("warren.login_throttle.max_pending")):
        fields["login_throttle_max_pending"] = c.get("warren.login_throttle.max_pending")  # None is infinity
    first, longest = c.get("warren.login_throttle.first_delay"), c.get("warren.login_throttle.max_delay")
    first = first if isinstance(first, int) else Settings.login_throttle_first_delay
    longest = longest if isinstance(longest, int) else Settings.login_throttle_max_delay
    if longest < first and _valid(c.get("warren.login_throttle.max_delay")) and _valid(
            c.get("warren.login_throttle.first_delay")):
        key = ("warren.login_throttle.max_delay" if "warren.login_throttle.max_delay" in c.values
               else "warren.login_throttle.first_delay")
        c.report(key, f"warren.login_throttle.max_delay ({longest} ms) is below "
                      f"warren.login_throttle.first_delay ({first} ms)")

    cluster = _cluster(c)
    if cluster is not None and _valid(cluster):
        fields["cluster"] = cluster

    if c.problems:
        return None, c.problems
    fields["origins"] = {name: entry.where for name, (entry, _) in c.values.items()}
    try:
        return Settings(**fields), []
    except ValueError as error:  # a check of Settings that build() does not make itself
        return None, [Problem(entries[0].path if entries else "<settings>", None, None, str(error))]
