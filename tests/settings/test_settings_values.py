"""broker.settings.values: RabbitMQ's value syntaxes (integers, floats, sizes, listeners)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.settings.values import (
    BINARY_UNITS,
    DECIMAL_UNITS,
    Listener,
    parse_bool,
    parse_bytesize,
    parse_enum,
    parse_float,
    parse_int,
    parse_int_or_infinity,
    parse_ip,
    parse_listener,
    parse_size,
)

# -- integers, floats, booleans, enums ---------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("65535", 65535), ("+5", 5), ("05", 5), ("-0", 0)])
def test_integers_as_erlang_reads_them(text, value):
    assert parse_int(text, 0, 65535) == value


@pytest.mark.parametrize("text", ["5_000", "1.0", "1e3", "0x10", " 5", "five", ""])
def test_not_integers(text):
    with pytest.raises(ValueError, match=f"expected an integer between 0 and 65535, got {text!r}"):
        parse_int(text, 0, 65535)


def test_integer_ranges():
    with pytest.raises(ValueError, match="expected an integer between 0 and 65535, got 65536"):
        parse_int("65536", 0, 65535)
    with pytest.raises(ValueError, match="expected an integer of at least 1, got 0"):
        parse_int("0", 1)
    assert parse_int("99999999999", 1) == 99999999999


def test_infinity_or_integer():
    assert parse_int_or_infinity("infinity", 0) is None
    assert parse_int_or_infinity("12", 0) == 12
    for bad in ("Infinity", "inf", "-1", "x"):
        with pytest.raises(ValueError):
            parse_int_or_infinity(bad, 0)


@pytest.mark.parametrize(("text", "value"), [("0.4", 0.4), ("1", 1.0), (".5", 0.5), ("2.0", 2.0), ("1.5e-1", 0.15), ("4E-1", 0.4)])
def test_floats(text, value):
    # RabbitMQ (Erlang's list_to_float) refuses "1" and ".5"; Warren reads them.
    assert parse_float(text, 0.0) == value


@pytest.mark.parametrize("text", ["nan", "inf", "1,5", "0.4x", "", "-0.1", "1e999"])
def test_not_floats_or_out_of_range(text):
    with pytest.raises(ValueError):
        parse_float(text, 0.0)


def test_booleans_are_lower_case_true_and_false_only():
    assert parse_bool("true") is True
    assert parse_bool("false") is False
    for bad in ("True", "yes", "1", "on", "FALSE"):
        with pytest.raises(ValueError, match=f"expected true or false, got {bad!r}"):
            parse_bool(bad)


def test_enums_are_case_sensitive():
    assert parse_enum("verify_peer", ("verify_peer", "verify_none")) == "verify_peer"
    with pytest.raises(ValueError, match="expected one of verify_peer, verify_none, got 'VERIFY_PEER'"):
        parse_enum("VERIFY_PEER", ("verify_peer", "verify_none"))


# -- sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("131072", 131072),
        ("128KB", 131072),  # cuttlefish's bytesize: 1024-based
        ("128kb", 131072),
        ("1MB", 1048576),
        ("1mb", 1048576),
        ("1GB", 1073741824),
        ("0.5MB", 524288),
        ("4096", 4096),
    ],
)
def test_bytesize_is_cuttlefishs(text, value):
    assert parse_bytesize(text, 4096, 2**31 - 1) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1kB", "expected a size"),  # not a cuttlefish bytesize suffix
        ("1k", "expected a size"),
        ("1 MB", "expected a size"),
        ("1KiB", "expected a size"),
        ("1.3KB", "not a whole number of bytes"),  # cuttlefish would pass on the float 1331.2
        ("4095", "between 4096 and 2147483647"),
        ("2GB", "between 4096 and 2147483647"),
        ("-5", "between 4096 and 2147483647"),
        ("big", "expected a size between 4096 and 2147483647 bytes"),
    ],
)
def test_bytesize_refusals(text, why):
    with pytest.raises(ValueError, match=why):
        parse_bytesize(text, 4096, 2**31 - 1)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50000000", 50_000_000),
        ("0", 0),
        ("50MB", 50_000_000),
        ("50mb", 50_000_000),
        ("50Mb", 50_000_000),
        ("2GB", 2_000_000_000),
        ("500kB", 500_000),
        ("500KB", 500_000),
        ("1TB", 10**12),
        ("1GiB", 2**30),
        ("1gib", 2**30),
        ("1GIB", 2**30),
        ("512MiB", 512 * 2**20),
        ("1Gi", 2**30),
        ("4KiB", 4096),
        ("4kiB", 4096),
        ("1TiB", 2**40),
    ],
)
def test_information_units_as_rabbitmq(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("unit", ["k", "K", "m", "M", "g", "G", "t", "T"])
def test_bare_single_letter_units_are_refused_as_ambiguous(unit):
    with pytest.raises(ValueError, match="ambiguous") as excinfo:
        parse_size(f"2{unit}")
    upper = unit.upper()
    assert f"2{upper}B" in str(excinfo.value) and f"2{upper}iB" in str(excinfo.value)


@pytest.mark.parametrize("text", ["2 GB", "1.5GB", "2XB", "GB", "", "-5", "-5MB", "mB", "2mB", "2gB"])
def test_sizes_rabbitmq_cannot_read_are_refused(text):
    # RabbitMQ only logs "Unable to parse disk_free_limit value" and uses its default.
    with pytest.raises(ValueError):
        parse_size(text)


@given(number=st.integers(0, 10**6), unit=st.sampled_from(sorted({**DECIMAL_UNITS, **BINARY_UNITS})))
def test_property_size_is_number_times_unit(number, unit):
    assert parse_size(f"{number}{unit}") == number * {**DECIMAL_UNITS, **BINARY_UNITS}[unit]


# -- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("5672", None, 5672),
        ("0", None, 0),
        ("127.0.0.1:5672", "127.0.0.1", 5672),
        ("0.0.0.0:5672", "0.0.0.0", 5672),
        ("::1:5672", "::1", 5672),  # RabbitMQ's IPv6 form: split at the last colon
        (":::5672", "::", 5672),
        ("[::1]:5672", "::1", 5672),  # Warren's addition
        ("[::]:5671", "::", 5671),
        ("fe80::1%eth0:5672", "fe80::1%eth0", 5672),
        ("2001:DB8::1:5672", "2001:db8::1", 5672),
        ("1.2.3.4:+5", "1.2.3.4", 5),
    ],
)
def test_listener_forms(text, host, port):
    assert parse_listener(text) == Listener(host, port)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("localhost:5672", "not a host name"),
        ("127.0.0.1", "expected a port, IP:port"),
        ("127.0.0.1:", "expected a port, IP:port"),
        ("127.0.0.1:99999", "between 0 and 65535"),
        ("99999", "between 0 and 65535"),
        ("-1", "between 0 and 65535"),
        ("127.1:5672", "expected an IP address"),  # Erlang accepts the short form; Warren does not
        ("010.0.0.1:5672", "expected an IP address"),
        ("[::1]5672", "expected [IPv6]:port"),
        ("[::1]:x", "expected a port"),
        ("", "expected a port"),
    ],
)
def test_listener_refusals(text, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_listener(text)


def test_listener_str_is_readable_and_parses_back():
    for listener in (Listener(None, 5672), Listener("127.0.0.1", 1), Listener("::1", 5671)):
        text = str(listener)
        assert text in ("*:5672", "127.0.0.1:1", "[::1]:5671")
        if listener.host is not None:
            assert parse_listener(text) == listener


def test_listener_checks_itself():
    with pytest.raises(ValueError):
        Listener(None, 70000)
    with pytest.raises(ValueError):
        Listener("example.com", 5672)
    with pytest.raises(ValueError):
        Listener(None, True)  # type: ignore[arg-type]
    assert Listener("::0001", 5672).host == "::1"


@given(
    address=st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)),
    port=st.integers(0, 65535),
)
def test_property_listener_round_trip(address, port):
    listener = Listener(address, port)
    assert parse_listener(str(listener)) == listener
    assert parse_listener(f"{address}:{port}") == listener


def test_ip_addresses():
    assert parse_ip("0.0.0.0") == "0.0.0.0"
    assert parse_ip("::") == "::"
    assert parse_ip("[::1]") == "::1"
    for bad in ("localhost", "1.2.3", "256.0.0.1", "", "::1:5672:x"):
        with pytest.raises(ValueError, match="expected an IP address"):
            parse_ip(bad)
