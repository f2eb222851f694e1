"""The value syntaxes of ``rabbitmq.conf``: text -> typed value, or ValueError.

Each parser accepts what RabbitMQ 3.10 accepts for the keys that use it
(cuttlefish's datatypes and RabbitMQ's own parsers, checked against the real
cuttlefish 3.0.1 of RabbitMQ 3.10.8), with the ranges RabbitMQ enforces,
whether in its schema or only later when the node starts or a client connects.
Where RabbitMQ's acceptance is an accident (a float must be written ``1.0``,
not ``1``) Warren accepts the obvious spelling too; where RabbitMQ would
silently do something else than the operator meant (``2 GB`` falls back to the
default disk limit, ``1.5MB`` becomes a float frame size) Warren refuses.
docs/settings.md lists every such difference.

The ValueError messages complete "KEY: ..." and say what was expected, then
what was found: ``expected an integer between 4096 and 2147483647, got 'big'``.

Standard library only.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "BINARY_UNITS",
    "DECIMAL_UNITS",
    "Listener",
    "check_int",
    "is_wildcard",
    "parse_bool",
    "parse_bytesize",
    "parse_endpoint",
    "parse_endpoints",
    "parse_enum",
    "parse_float",
    "parse_host",
    "parse_int",
    "parse_int_or_infinity",
    "parse_ip",
    "parse_listener",
    "parse_node_name",
    "parse_size",
]

_INT = re.compile(r"[+-]?[0-9]+")
# Decimal notation, with or without a fraction or an exponent. (RabbitMQ's
# float datatype is Erlang's list_to_float, which refuses "1" and ".5": Warren
# reads them as 1.0 and 0.5.)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _got(text: str) -> str:
    return f"got {text!r}"


def check_int(value: int, low: int, high: int | None = None, what: str = "an integer") -> int:
    """``value`` if ``low <= value <= high`` (no upper bound if ``high`` is None)."""
    if high is None:
        if value < low:
            raise ValueError(f"expected {what} of at least {low}, got {value}")
    elif not low <= value <= high:
        raise ValueError(f"expected {what} between {low} and {high}, got {value}")
    return value


def parse_int(text: str, low: int, high: int | None = None) -> int:
    """An integer (Erlang's syntax: optional sign, decimal digits) in a range."""
    if not _INT.fullmatch(text):
        bounds = f"between {low} and {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"expected an integer {bounds}, {_got(text)}")
    return check_int(int(text), low, high)


def parse_int_or_infinity(text: str, low: int, high: int | None = None) -> int | None:
    """``infinity`` (None) or an integer in a range, as ``[{atom, infinity}, integer]``."""
    if text == "infinity":
        return None
    if not _INT.fullmatch(text):
        raise ValueError(f"expected 'infinity' or an integer of at least {low}, {_got(text)}")
    return check_int(int(text), low, high)


def parse_float(text: str, low: float, high: float | None = None) -> float:
    """A decimal number in a range (``0.4``, ``1``, ``2.0``, ``4e-1``)."""
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"expected a number such as 0.4, {_got(text)}")
    value = float(text)
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"expected a number {bounds}, {_got(text)}")
    return value


def parse_bool(text: str) -> bool:
    """``true`` or ``false``, lower case, as cuttlefish's ``{enum, [true, false]}``."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"expected true or false, {_got(text)}")


def parse_enum(text: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, exactly (cuttlefish's enums are case-sensitive)."""
    if text in choices:
        return text
    raise ValueError(f"expected one of {', '.join(choices)}, {_got(text)}")


# -- sizes --------------------------------------------------------------------

#: cuttlefish's ``bytesize`` datatype (frame_max): these six suffixes, and they
#: are powers of 1024, whatever the letters say: ``frame_max = 128KB`` is 131072.
_BYTESIZE_UNITS: Final = {"KB": 1024, "kb": 1024, "MB": 1024**2, "mb": 1024**2,
                          "GB": 1024**3, "gb": 1024**3}
_BYTESIZE = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))(KB|kb|MB|mb|GB|gb)?")


def parse_bytesize(text: str, low: int, high: int) -> int:
    """cuttlefish's ``bytesize``: ``131072``, ``128KB`` (1024-based), ``0.5MB``.

    The result must be a whole number of bytes: cuttlefish would hand RabbitMQ
    a float for ``1.3KB``.
    """
    match = _BYTESIZE.fullmatch(text)
    expected = f"expected a size between {low} and {high} bytes (e.g. {low}, 128KB, 1MB)"
    if not match:
        raise ValueError(f"{expected}, {_got(text)}")
    number, unit = match.groups()
    value = float(number) * _BYTESIZE_UNITS[unit] if unit else int(number)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{expected}, got {text!r}, which is not a whole number of bytes")
        value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{expected}, {_got(text)}")
    return value


#: RabbitMQ's information units (rabbit_resource_monitor_misc), for
#: disk_free_limit.absolute and vm_memory_high_watermark.absolute. RabbitMQ 3.10
#: has the kB/MB/GB and KiB/MiB/GiB spellings; 3.13 added T, Ki/Mi/Gi/Ti.
DECIMAL_UNITS: Final = {
    **dict.fromkeys(("kB", "KB", "kb", "Kb"), 1000),
    **dict.fromkeys(("MB", "mb", "Mb"), 1000**2),
    **dict.fromkeys(("GB", "gb", "Gb"), 1000**3),
    **dict.fromkeys(("TB", "tb", "Tb"), 1000**4),
}
BINARY_UNITS: Final = {
    **dict.fromkeys(("kiB", "KiB", "kib", "KIB", "Ki", "ki"), 1024),
    **dict.fromkeys(("MiB", "mib", "MIB", "Mi", "mi"), 1024**2),
    **dict.fromkeys(("GiB", "gib", "GIB", "Gi", "gi"), 1024**3),
    **dict.fromkeys(("TiB", "tib", "TIB", "Ti", "ti"), 1024**4),
}
#: Bare k/K/m/M/g/G/t/T: powers of 1024 up to RabbitMQ 3.12, of 1000 since 3.13.
_AMBIGUOUS_UNITS: Final = frozenset("kKmMgGtT")
_SIZE = re.compile(r"([+-]?[0-9]+)([A-Za-z]*)")


def parse_size(text: str) -> int:
    """A number of bytes: ``50000000``, ``50MB`` (10**6), ``512MiB`` (2**20).

    RabbitMQ's units, with their base: kB/MB/GB/TB are powers of 1000,
    KiB/MiB/GiB/TiB (and Ki/Mi/Gi/Ti) powers of 1024. A bare ``K``, ``M``, ``G``
    is refused: RabbitMQ changed its meaning in 3.13 (1024-based before,
    1000-based since). So is anything RabbitMQ cannot read, which RabbitMQ
    itself only logs before it falls back to its default (``2 GB``, ``1.5GB``).
    """
    match = _SIZE.fullmatch(text)
    examples = "e.g. 50000000, 50MB, 2GB, 512MiB"
    if not match:
        raise ValueError(f"expected a size in bytes ({examples}), {_got(text)}")
    digits, unit = match.groups()
    if unit in _AMBIGUOUS_UNITS:
        upper = unit.upper()
        raise ValueError(
            f"the unit {unit!r} is ambiguous (RabbitMQ reads it as 1024-based up to 3.12 and "
            f"1000-based since 3.13): write {digits}{upper}B for powers of 1000 or "
            f"{digits}{upper}iB for powers of 1024"
        )
    if unit and unit not in DECIMAL_UNITS and unit not in BINARY_UNITS:
        raise ValueError(f"unknown unit {unit!r} ({examples}), {_got(text)}")
    value = int(digits) * (DECIMAL_UNITS.get(unit) or BINARY_UNITS.get(unit) or 1)
    if value < 0:
        raise ValueError(f"expected a size of at least 0 bytes, {_got(text)}")
    return value


# -- addresses ------------------------------------------------------------------


def parse_ip(text: str) -> str:
    """An IP address, as RabbitMQ's ``is_ip`` validator (no host names), normalised.

    IPv4 in dotted-quad form only (RabbitMQ also takes Erlang's short forms such
    as ``127.1``; Warren asks for ``127.0.0.1``). IPv6 in any form, with an
    optional zone (``fe80::1%eth0``); square brackets are accepted and dropped.
    """
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        raise ValueError(
            f"expected an IP address such as 127.0.0.1 or ::1 (not a host name), {_got(text)}"
        ) from None


@dataclass(frozen=True)
class Listener:
    """Where to listen: ``host`` None means every interface (RabbitMQ's bare port)."""

    host: str | None
    port: int

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"a port is an integer, got {self.port!r}")
        check_int(self.port, 0, 65535, "a port")
        if self.host is not None:
            object.__setattr__(self, "host", parse_ip(self.host))

    def __str__(self) -> str:
        if self.host is None:
            return f"*:{self.port}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def _port(text: str, whole: str) -> int:
    if not _INT.fullmatch(text):
        raise ValueError(
            f"expected a port, IP:port or [IPv6]:port (e.g. 5672, 127.0.0.1:5672, ::1:5672), "
            f"{_got(whole)}"
        )
    return check_int(int(text), 0, 65535, "a port")


def parse_listener(text: str) -> Listener:
    """A listener, as ``listeners.tcp.NAME``: ``5672``, ``127.0.0.1:5672``, ``::1:5672``.

    RabbitMQ's forms: a bare port (every interface), or an IP address and a
    port split at the last colon, so IPv6 is written without brackets
    (``::1:5672``, ``:::5672`` for every IPv6 interface). Warren also accepts
    ``[::1]:5672``, which RabbitMQ 3.10 refuses. Host names are refused, as by
    RabbitMQ. Ports are 0 to 65535 (0: any free port).
    """
    if _INT.fullmatch(text):
        return Listener(None, check_int(int(text), 0, 65535, "a port"))
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [IPv6]:port, {_got(text)}")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(
                "expected a port, IP:port or [IPv6]:port (e.g. 5672, 127.0.0.1:5672, ::1:5672), "
                f"{_got(text)}"
            )
    number = _port(port, text)
    return Listener(parse_ip(host), number)


# -- the cluster's names and addresses ------------------------------------------

_NODE_NAME = re.compile(r"[A-Za-z0-9_.@-]+")
# Permissive on purpose (no label rules): what it refuses is what no resolver
# takes, spaces and the empty name above all.
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]*[A-Za-z0-9][A-Za-z0-9.-]*")


def is_wildcard(host: str | None) -> bool:
    """Whether a listener's host is every interface: None (a bare port), 0.0.0.0 or ::."""
    return host is None or ipaddress.ip_address(host.partition("%")[0]).is_unspecified


def parse_node_name(text: str) -> str:
    """A cluster node's name: ASCII letters, digits, ``-``, ``_``, ``.`` and ``@``."""
    if not _NODE_NAME.fullmatch(text):
        raise ValueError(f"expected a name of letters, digits, -, _, . and @ (e.g. warren-1), {_got(text)}")
    return text


def parse_host(text: str) -> str:
    """An address other machines connect to: an IP address (normalised, as
    `parse_ip`) or a host name of letters, digits, ``-`` and ``.``.

    The wildcard addresses (0.0.0.0, ::) are refused: they name no machine.
    """
    try:
        ip = parse_ip(text)
    except ValueError:
        if _HOST_NAME.fullmatch(text):
            return text
        raise ValueError(
            f"expected an IP address or a host name (letters, digits, - and .), {_got(text)}"
        ) from None
    if is_wildcard(ip):
        raise ValueError(f"expected an address other machines can reach, not the wildcard {ip}")
    return ip


def parse_endpoint(text: str) -> str:
    """An etcd endpoint, ``http://HOST:PORT`` or ``https://HOST:PORT``.

    HOST as `parse_host`, an IPv6 address in brackets (``http://[fd00::1]:2379``);
    PORT 1 to 65535, required (etcd has no standard port a URL could imply). No
    path, query, user or password; a trailing ``/`` is dropped.
    """
    expected = f"expected http://HOST:PORT or https://HOST:PORT (e.g. http://10.0.0.1:2379), {_got(text)}"
    if not text.startswith(("http://", "https://")):
        raise ValueError(expected)
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        raise ValueError(expected) from None
    if url.username is not None or url.password is not None:
        raise ValueError(f"expected no user or password in the URL, {_got(text)}")
    if url.path not in ("", "/") or url.query or url.fragment or "?" in text or "#" in text:
        raise ValueError(f"expected no path or query after HOST:PORT, {_got(text)}")
    host = url.netloc.rpartition(":")[0]
    if not host or port is None:
        raise ValueError(expected)
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(expected)
    if host.startswith("["):
        try:
            if ipaddress.ip_address(host[1:-1].partition("%")[0]).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"expected an IPv6 address in brackets, {_got(text)}") from None
        host = host[1:-1]
    try:
        parse_host(host)
    except ValueError as error:
        raise ValueError(f"{error} (in {text!r})") from None
    check_int(port, 1, 65535, "a port")
    return f"{url.scheme}://{url.netloc}"


def parse_endpoints(text: str) -> tuple[str, ...]:
    """Endpoints (`parse_endpoint`) separated by commas, spaces around them allowed;
    at least one, each once."""
    endpoints: list[str] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"expected URLs separated by commas, with none empty, {_got(text)}")
        endpoint = parse_endpoint(item)
        if endpoint in endpoints:
            raise ValueError(f"lists {endpoint} twice")
        endpoints.append(endpoint)
    return tuple(endpoints)
