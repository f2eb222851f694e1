"""broker.settings: keys, defaults, ranges, cross-key checks, overrides, environment."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.settings import (
    KEYS,
    AbsoluteLimit,
    HTTPListener,
    HTTPSListener,
    Listener,
    Permissions,
    RelativeLimit,
    Settings,
    SettingsError,
    TLSOptions,
    apply_environment,
    load_settings,
    parse_settings,
)
from broker.settings.rabbitmq_keys import RABBITMQ_KEYS


def parse(text: str) -> Settings:
    return parse_settings(text, "rabbitmq.conf", environ={})


def errors(text: str, path: str = "rabbitmq.conf") -> list[str]:
    with pytest.raises(SettingsError) as excinfo:
        parse_settings(text, path, environ={})
    return [str(problem) for problem in excinfo.value.problems]


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def conf(directory: Path, text: str) -> Path:
    path = directory / "rabbitmq.conf"
    path.write_text(text)
    return path


# -- defaults ---------------------------------------------------------------------------


def test_defaults_are_rabbitmq_3_10s():
    """rabbit.app's env and the schemas' defaults, RabbitMQ 3.10.8."""
    s = Settings()
    assert s == parse("") == parse("# nothing\n\n")
    assert s.listeners_tcp == (Listener(None, 5672),)
    assert s.listeners_ssl == ()
    assert s.ssl_options == TLSOptions(None, None, None, "verify_none", False, ("tlsv1.3", "tlsv1.2"))
    assert s.ssl_cert_login_from == "distinguished_name"
    assert s.auth_mechanisms == ("PLAIN", "AMQPLAIN")
    assert (s.default_user, s.default_pass, s.default_vhost) == ("guest", "guest", "/")
    assert s.default_user_tags == ("administrator",)
    assert s.default_permissions == Permissions(".*", ".*", ".*")
    assert s.loopback_users == ("guest",)
    assert s.handshake_timeout == 10_000
    assert s.heartbeat == 60
    assert s.frame_max == 131_072
    assert s.channel_max == 2047
    assert s.max_message_size == 134_217_728
    assert s.connection_max is None
    assert s.consumer_timeout == 1_800_000
    assert s.disk_free_limit == AbsoluteLimit(50_000_000)
    assert s.vm_memory_high_watermark == RelativeLimit(0.4)
    assert s.load_definitions is None
    assert s.management_tcp == HTTPListener(15672, None)
    assert s.management_ssl is None
    assert s.prometheus_tcp == HTTPListener(15692, None)
    assert s.log_console_level == "info"
    assert s.data_dir is None


def test_settings_are_frozen_and_hashable():
    s = parse("heartbeat = 5\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.heartbeat = 6  # type: ignore[misc]
    assert hash(s) == hash(Settings(heartbeat=5))
    assert s == Settings(heartbeat=5)  # origins take no part in equality
    with pytest.raises(TypeError):
        s.origins["x"] = "y"  # type: ignore[index]


def test_the_password_is_not_in_the_repr():
    s = parse("default_pass = hunter2\n")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in s.describe()


# -- each key ---------------------------------------------------------------------------


def test_network_keys():
    s = parse(
        "handshake_timeout = 5000\nheartbeat = 0\nframe_max = 128KB\nchannel_max = 0\n"
        "max_message_size = 536870912\nconnection_max = 1000\nconsumer_timeout = 1\n"
    )
    assert (s.handshake_timeout, s.heartbeat, s.frame_max, s.channel_max) == (5000, 0, 131072, 0)
    assert (s.max_message_size, s.connection_max, s.consumer_timeout) == (536870912, 1000, 1)
    s = parse("handshake_timeout = infinity\nconnection_max = infinity\n")
    assert s.handshake_timeout is None and s.connection_max is None
    assert parse("connection_max = 0\n").connection_max == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frame_max = big", "frame_max: expected a size between 4096 and 2147483647 bytes"),
        ("frame_max = 4095", "between 4096 and 2147483647"),
        ("frame_max = 0", "between 4096 and 2147483647"),
        ("channel_max = 65536", "channel_max: expected an integer between 0 and 65535, got 65536"),
        ("heartbeat = -1", "heartbeat: expected an integer between 0 and 65535, got -1"),
        ("max_message_size = 536870913", "between 1 and 536870912"),
        ("max_message_size = 128MB", "expected an integer between 1 and 536870912, got '128MB'"),
        ("consumer_timeout = 0", "consumer_timeout: expected an integer of at least 1, got 0"),
        ("handshake_timeout = 0", "handshake_timeout: expected an integer of at least 1, got 0"),
        ("connection_max = -3", "connection_max: expected an integer of at least 0, got -3"),
        ("connection_max = unlimited", "expected 'infinity' or an integer"),
        ("vm_memory_high_watermark.relative = -0.5", "expected a number of at least 0.0"),
        ("disk_free_limit.absolute = 2 GB", "expected a size in bytes"),
        ("log.console.level = warn", "expected one of debug, info, notice, warning, error, critical, alert, emergency, none, got 'warn'"),
        ("ssl_options.verify = VERIFY_PEER", "expected one of verify_peer, verify_none"),
        ("ssl_options.fail_if_no_peer_cert = yes", "expected true or false, got 'yes'"),
        ("loopback_users.guest = yes", "expected true or false, got 'yes'"),
        ("default_user_tags.administrator = 1", "expected true or false"),
        ("ssl_cert_login_from = subject_alternative_name", "not subject_alternative_name"),
        ("ssl_cert_login_from = cn", "expected one of distinguished_name, common_name"),
        ("ssl_options.versions.1 = tlsv1.1", "TLS 1.2 and 1.3 only"),
        ("ssl_options.versions.1 = sslv3", "expected one of tlsv1.3, tlsv1.2"),
        ("auth_mechanisms.1 = plain", "mechanism names are upper case: PLAIN"),
        ("auth_mechanisms.1 = ANONYMOUS", "Warren does not offer it"),
        ("auth_mechanisms.1 = RABBIT-CR-DEMO", "expected one of PLAIN, AMQPLAIN, EXTERNAL"),
        ("management.tcp.ip = localhost", "management.tcp.ip: expected an IP address"),
        ("management.tcp.port = 70000", "between 0 and 65535"),
        ("prometheus.tcp.port = x", "prometheus.tcp.port: expected an integer"),
        ("listeners.tcp = 5672", "listeners.tcp: expected one of none, got '5672'"),
        ("default_user = ''", "default_user: must not be empty"),
        ("default_pass = ''", "default_pass: must not be empty"),
        ("default_permissions.read = [unclosed", "default_permissions.read: not a regular expression"),
        ("load_definitions = /nonexistent/definitions.json", "/nonexistent/definitions.json: no such file"),
        ("ssl_options.certfile = /nonexistent/cert.pem", "ssl_options.certfile: /nonexistent/cert.pem: no such file"),
    ],
)
def test_bad_values_name_file_line_and_key(line, message):
    found = errors(f"# settings\n{line}\n")
    assert len(found) == 1, found
    assert found[0].startswith("rabbitmq.conf:2: ")
    assert message in found[0]


def test_the_error_format_of_the_brief():
    text = "\n" * 11 + "frame_max = big\n"
    assert errors(text) == [
        "rabbitmq.conf:12: frame_max: expected a size between 4096 and 2147483647 bytes "
        "(e.g. 4096, 128KB, 1MB), got 'big'"
    ]


def test_all_problems_of_a_file_are_reported_together_in_line_order():
    text = (
        "heartbeat = x\n"  # 1 bad value
        "bogus = 1\n"  # 2 unknown
        "listeners.tcp.a = 5672\n"
        "listeners.tcp.b = 5672\n"  # 4 same address
        "garbage\n"  # 5 syntax
        "heartbeat = 5\n"  # 6 set again
        "log.file.level = debug\n"  # 7 RabbitMQ key Warren does not have
    )
    found = errors(text)
    assert [f.split(":")[1] for f in found] == ["1", "2", "4", "5", "6", "7"]


# -- unknown keys -----------------------------------------------------------------------


def test_unknown_keys_are_never_ignored():
    assert errors("hearbeat = 5\n") == ["rabbitmq.conf:1: hearbeat: unknown key; did you mean heartbeat?"]
    assert errors("listeners.tcp.default.x = 5672\n") == [
        "rabbitmq.conf:1: listeners.tcp.default.x: unknown key; did you mean listeners.tcp.default?"
    ]
    assert errors("zzz = 1\n") == ["rabbitmq.conf:1: zzz: unknown key"]
    assert errors("Heartbeat = 5\n") == ["rabbitmq.conf:1: Heartbeat: unknown key; did you mean heartbeat?"]


@pytest.mark.parametrize(
    "line",
    [
        "log.file.level = info",
        "cluster_formation.peer_discovery_backend = classic_config",
        "tcp_listen_options.backlog = 128",
        "ssl_options.depth = 2",
        "ssl_options.password = x",
        "num_acceptors.tcp = 10",
        "management.load_definitions = /x.json",
        "prometheus.return_per_object_metrics = true",
        "listeners.tcp.x.y = 1",
    ][:-1],
)
def test_rabbitmq_keys_warren_does_not_have_say_so(line):
    key = line.split(" ")[0]
    assert errors(line + "\n") == [
        f"rabbitmq.conf:1: {key}: a RabbitMQ setting that Warren does not have (docs/settings.md lists them)"
    ]


def test_unknown_warren_keys_list_warrens_keys():
    assert errors("warren.datadir = x\n") == [
        "rabbitmq.conf:1: warren.datadir: unknown Warren key (Warren's keys: warren.data_dir, "
        "warren.paging.queue_bytes, warren.login_throttle.free_failures, "
        "warren.login_throttle.first_delay, warren.login_throttle.max_delay, "
        "warren.login_throttle.window, warren.login_throttle.max_pending, "
        "warren.login_throttle.include_loopback)"
    ]


def test_the_login_throttle_keys():
    default = Settings()
    assert (default.login_throttle_free_failures, default.login_throttle_first_delay,
            default.login_throttle_max_delay, default.login_throttle_window,
            default.login_throttle_max_pending, default.login_throttle_include_loopback) == (
        3, 500, 10_000, 60_000, 10, False)
    s = parse(
        "warren.login_throttle.free_failures = 0\n"
        "warren.login_throttle.first_delay = 250\n"
        "warren.login_throttle.max_delay = 4000\n"
        "warren.login_throttle.window = 300000\n"
        "warren.login_throttle.max_pending = infinity\n"
        "warren.login_throttle.include_loopback = true\n"
    )
    assert (s.login_throttle_free_failures, s.login_throttle_first_delay,
            s.login_throttle_max_delay, s.login_throttle_window,
            s.login_throttle_max_pending, s.login_throttle_include_loopback) == (
        0, 250, 4000, 300_000, None, True)
    assert parse("warren.login_throttle.max_pending = 2\n").login_throttle_max_pending == 2
    assert parse("warren.login_throttle.first_delay = 0\n").login_throttle_first_delay == 0


def test_bad_login_throttle_values_are_refused():
    assert errors(
        "warren.login_throttle.free_failures = -1\n"
        "warren.login_throttle.window = 0\n"
        "warren.login_throttle.max_pending = 0\n"
        "warren.login_throttle.include_loopback = yes\n"
        "warren.login_throttle.first_delay = 1.5\n"
    ) == [
        "rabbitmq.conf:1: warren.login_throttle.free_failures: expected an integer of at least 0, got -1",
        "rabbitmq.conf:2: warren.login_throttle.window: expected an integer of at least 1, got 0",
        "rabbitmq.conf:3: warren.login_throttle.max_pending: expected an integer of at least 1, got 0",
        "rabbitmq.conf:4: warren.login_throttle.include_loopback: expected true or false, got 'yes'",
        "rabbitmq.conf:5: warren.login_throttle.first_delay: expected an integer of at least 0, got '1.5'",
    ]
    # The longest wait below the first one contradicts it (the default first
    # delay, 500 ms, counts when only max_delay is set).
    assert errors("warren.login_throttle.max_delay = 100\n") == [
        "rabbitmq.conf:1: warren.login_throttle.max_delay: warren.login_throttle.max_delay (100 ms) "
        "is below warren.login_throttle.first_delay (500 ms)"
    ]
    assert errors("warren.login_throttle.first_delay = 20000\n") == [
        "rabbitmq.conf:1: warren.login_throttle.first_delay: warren.login_throttle.max_delay "
        "(10000 ms) is below warren.login_throttle.first_delay (20000 ms)"
    ]
    with pytest.raises(ValueError, match="login_throttle_max_delay"):
        Settings().with_overrides(login_throttle_max_delay=1)


def test_keys_set_twice_are_errors():
    assert errors("heartbeat = 5\nchannel_max = 1\nheartbeat = 5\n") == [
        "rabbitmq.conf:3: heartbeat: set again (first at rabbitmq.conf:1); RabbitMQ would quietly "
        "keep the last one: keep one line"
    ]


# -- listeners ----------------------------------------------------------------------


def test_listeners_in_file_order():
    s = parse(
        "listeners.tcp.b = 5673\nlisteners.tcp.a = 127.0.0.1:5672\nlisteners.tcp.10 = 5674\n"
        "listeners.tcp.2 = :::5675\nlisteners.tcp.default = 1\n"
    )
    # RabbitMQ 3.10 reverses the file order; 3.13+ sorts by key as text.
    assert [str(x) for x in s.listeners_tcp] == ["*:5673", "127.0.0.1:5672", "*:5674", "[::]:5675", "*:1"]


def test_a_listener_key_replaces_the_default_listener():
    assert parse("listeners.tcp.local = 127.0.0.1:5672\n").listeners_tcp == (Listener("127.0.0.1", 5672),)


def test_listeners_none():
    s = parse("listeners.tcp = none\n")
    assert s.listeners_tcp == ()
    assert "no AMQP listener" in s.describe()


def test_none_with_named_entries_is_a_contradiction():
    assert errors("listeners.tcp = none\nlisteners.tcp.1 = 5672\n") == [
        "rabbitmq.conf:2: listeners.tcp.1: contradicts listeners.tcp = none (rabbitmq.conf:1): "
        "RabbitMQ would quietly ignore this line: remove one"
    ]
    assert len(errors("loopback_users.bob = true\nloopback_users = none\n")) == 1


def test_the_same_address_twice_is_an_error():
    assert errors("listeners.tcp.a = 5672\nlisteners.tcp.b = 5672\n") == [
        "rabbitmq.conf:2: listeners.tcp.b: the same address as listeners.tcp.a (rabbitmq.conf:1)"
    ]


def test_tls_listener_with_certificates(certs):
    path = conf(
        certs,
        "listeners.tcp = none\n"
        "listeners.ssl.default = 5671\n"
        "listeners.ssl.v6 = [::1]:5671\n"
        "ssl_options.cacertfile = ca.pem\n"
        f"ssl_options.certfile = {certs}/cert.pem\n"
        "ssl_options.keyfile = ./key.pem\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
        "ssl_options.versions.1 = tlsv1.3\n"
        "auth_mechanisms.1 = EXTERNAL\n"
        "auth_mechanisms.2 = PLAIN\n"
        "ssl_cert_login_from = common_name\n",
    )
    s = load_settings(path, environ={})
    assert s.listeners_ssl == (Listener(None, 5671), Listener("::1", 5671))
    # relative paths are relative to the settings file, and made absolute
    assert s.ssl_options == TLSOptions(
        str(certs / "ca.pem"), str(certs / "cert.pem"), str(certs / "key.pem"), "verify_peer", True, ("tlsv1.3",)
    )
    assert s.auth_mechanisms == ("EXTERNAL", "PLAIN")
    assert s.ssl_cert_login_from == "common_name"
    lines = s.to_lines()
    assert f"amqps listener [::1]:5671: certfile {certs}/cert.pem, verify_peer (cacertfile {certs}/ca.pem, fail_if_no_peer_cert), tlsv1.3" in lines


def test_a_tls_listener_needs_a_certificate_and_key(certs):
    path = conf(certs, "heartbeat = 5\nlisteners.ssl.1 = 5671\nssl_options.certfile = cert.pem\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={})
    assert str(excinfo.value) == f"{path}:2: listeners.ssl.1: a TLS listener needs ssl_options.keyfile"


def test_tls_cross_checks(certs):
    path = conf(certs, "ssl_options.fail_if_no_peer_cert = true\n")
    with pytest.raises(SettingsError, match=r":1: ssl_options.fail_if_no_peer_cert: true needs ssl_options.verify = verify_peer"):
        load_settings(path, environ={})
    path = conf(certs, "ssl_options.certfile = cert.pem\nssl_options.verify = verify_peer\n")
    with pytest.raises(SettingsError, match=r":2: ssl_options.verify: verify_peer needs ssl_options.cacertfile"):
        load_settings(path, environ={})


def test_tls_versions_and_mechanisms_listed_twice():
    found = errors("ssl_options.versions.a = tlsv1.2\nssl_options.versions.b = tlsv1.2\n")
    assert found == ["rabbitmq.conf:2: ssl_options.versions.b: the same TLS version as ssl_options.versions.a (rabbitmq.conf:1)"]
    found = errors("auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = PLAIN\n")
    assert found == ["rabbitmq.conf:2: auth_mechanisms.2: the same mechanism as auth_mechanisms.1 (rabbitmq.conf:1)"]


def test_unreadable_certificate_file(certs):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (certs / "key.pem").chmod(0)
    path = conf(certs, "ssl_options.keyfile = key.pem\n")
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings(path, environ={})


# -- users -------------------------------------------------------------------------------


def test_default_user_keys():
    s = parse(
        "default_user = admin\ndefault_pass = 'p#ss word'\ndefault_vhost = prod\n"
        "default_user_tags.administrator = false\ndefault_user_tags.monitoring = true\n"
        "default_user_tags.management = true\n"
        "default_permissions.configure = ^$\ndefault_permissions.read = .*\ndefault_permissions.write = ^amq\\.\n"
    )
    assert (s.default_user, s.default_pass, s.default_vhost) == ("admin", "p#ss word", "prod")
    assert s.default_user_tags == ("monitoring", "management")
    assert s.default_permissions == Permissions("^$", "^amq\\.", ".*")


def test_an_unset_default_permission_stays_dot_star():
    # RabbitMQ 3.10's translation crashes (badarg) when one of the three is missing.
    assert parse("default_permissions.read = ^amq\n").default_permissions == Permissions(".*", ".*", "^amq")


def test_loopback_users_as_rabbitmq():
    assert parse("loopback_users.guest = false\n").loopback_users == ()
    assert parse("loopback_users = none\n").loopback_users == ()
    # the list is exactly what the file says: naming bob lifts guest's restriction
    assert parse("loopback_users.bob = true\n").loopback_users == ("bob",)
    assert parse("loopback_users.my\\.user = true\nloopback_users.guest = true\n").loopback_users == ("my.user", "guest")


# -- resources -------------------------------------------------------------------------


def test_resource_limits():
    s = parse("disk_free_limit.absolute = 2GB\nvm_memory_high_watermark.absolute = 1GiB\n")
    assert s.disk_free_limit == AbsoluteLimit(2 * 10**9)
    assert s.vm_memory_high_watermark == AbsoluteLimit(2**30)
    s = parse("disk_free_limit.relative = 2\nvm_memory_high_watermark.relative = 0.6\n")
    assert s.disk_free_limit == RelativeLimit(2.0)
    assert s.vm_memory_high_watermark == RelativeLimit(0.6)
    assert parse("vm_memory_high_watermark.relative = 0\n").vm_memory_high_watermark == RelativeLimit(0.0)


def test_absolute_and_relative_together_are_a_contradiction():
    assert errors("disk_free_limit.relative = 2.0\ndisk_free_limit.absolute = 1GB\n") == [
        "rabbitmq.conf:2: disk_free_limit.absolute: disk_free_limit.relative is set too (rabbitmq.conf:1); "
        "RabbitMQ 3.10 would quietly use the relative one, 3.13 the absolute one: keep one"
    ]


# -- definitions, HTTP, logs, Warren's --------------------------------------------------


def test_http_listeners(certs):
    path = conf(
        certs,
        "management.tcp.port = 15673\nmanagement.tcp.ip = 127.0.0.1\n"
        "management.ssl.port = 15671\nmanagement.ssl.certfile = cert.pem\nmanagement.ssl.keyfile = key.pem\n"
        "management.ssl.cacertfile = ca.pem\nmanagement.ssl.ip = ::1\n"
        "prometheus.tcp.ip = ::\n",
    )
    s = load_settings(path, environ={})
    assert s.management_tcp == HTTPListener(15673, "127.0.0.1")
    assert s.management_ssl == HTTPSListener(15671, str(certs / "cert.pem"), str(certs / "key.pem"), str(certs / "ca.pem"), "::1")
    assert s.prometheus_tcp == HTTPListener(15692, "::")
    assert "management https listener [::1]:15671" in s.describe()


def test_management_https_needs_port_certificate_and_key(certs):
    path = conf(certs, "management.ssl.certfile = cert.pem\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={})
    assert str(excinfo.value) == (
        f"{path}:1: management.ssl.certfile: an HTTPS listener needs management.ssl.port and management.ssl.keyfile too"
    )


def test_load_definitions_may_be_a_file_or_a_directory(tmp_path):
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs.json").write_text("{}")
    assert load_settings(conf(tmp_path, "load_definitions = defs.json\n"), environ={}).load_definitions == str(tmp_path / "defs.json")
    assert load_settings(conf(tmp_path, "load_definitions = defs\n"), environ={}).load_definitions == str(tmp_path / "defs")


def test_log_console_level_takes_rabbitmqs_levels():
    for level in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency", "none"):
        assert parse(f"log.console.level = {level}\n").log_console_level == level


def test_warren_data_dir(tmp_path):
    s = load_settings(conf(tmp_path, "warren.data_dir = data\n"), environ={})
    assert s.data_dir == str(tmp_path / "data")
    assert "data dir " + str(tmp_path / "data") in s.to_lines()
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="exists and is not a directory"):
        load_settings(conf(tmp_path, "warren.data_dir = file\n"), environ={})


def test_origins_say_where_each_key_was_set():
    s = parse("\nheartbeat = 5\nlisteners.tcp.a = 5672\n")
    assert dict(s.origins) == {"heartbeat": "rabbitmq.conf:2", "listeners.tcp.a": "rabbitmq.conf:3"}


# -- overrides and the environment ---------------------------------------------------


def test_with_overrides_replaces_and_validates():
    s = parse("heartbeat = 5\nlisteners.tcp.a = 5672\ndefault_user = bob\n")
    t = s.with_overrides(heartbeat=30, listeners_tcp=(Listener("127.0.0.1", 5673),), data_dir="./data")
    assert (t.heartbeat, t.listeners_tcp, t.data_dir, t.default_user) == (30, (Listener("127.0.0.1", 5673),), "./data", "bob")
    assert dict(t.origins) == {"default_user": "rabbitmq.conf:3"}
    assert s.heartbeat == 5  # unchanged
    with pytest.raises(ValueError, match="heartbeat: expected an integer between 0 and 65535, got 70000"):
        s.with_overrides(heartbeat=70000)
    with pytest.raises(ValueError, match="heartbeat: expected int"):
        s.with_overrides(heartbeat="30")
    with pytest.raises(ValueError, match="frame_max"):
        s.with_overrides(frame_max=True)
    with pytest.raises(TypeError, match="no field hartbeat"):
        s.with_overrides(hartbeat=30)
    with pytest.raises(TypeError):
        s.with_overrides(origins={})
    with pytest.raises(ValueError, match="a TLS listener needs"):
        s.with_overrides(listeners_ssl=(Listener(None, 5671),))
    with pytest.raises(ValueError, match="listeners_tcp: lists the same address twice"):
        s.with_overrides(listeners_tcp=(Listener(None, 1), Listener(None, 1)))
    with pytest.raises(ValueError, match="auth_mechanisms"):
        s.with_overrides(auth_mechanisms=("PLAIN", "SCRAM"))
    with pytest.raises(ValueError, match="log_console_level"):
        s.with_overrides(log_console_level="loud")


def test_apply_environment():
    s = parse("default_user = file-user\ndefault_pass = file-pass\n")
    assert apply_environment(s, {}) is s
    t = apply_environment(s, {"WARREN_DEFAULT_USER": "env-user", "WARREN_DEFAULT_PASS": "env-pass", "OTHER": "x"})
    assert (t.default_user, t.default_pass) == ("env-user", "env-pass")
    assert "default_user" not in t.origins
    t = apply_environment(s, {"WARREN_DEFAULT_PASS": "only-pass"})
    assert (t.default_user, t.default_pass) == ("file-user", "only-pass")
    with pytest.raises(ValueError, match="WARREN_DEFAULT_USER is set but empty"):
        apply_environment(s, {"WARREN_DEFAULT_USER": ""})
    # the command line comes last
    assert apply_environment(s, {"WARREN_DEFAULT_USER": "env"}).with_overrides(default_user="cli").default_user == "cli"


def test_apply_environment_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("WARREN_DEFAULT_USER", "from-os")
    monkeypatch.delenv("WARREN_DEFAULT_PASS", raising=False)
    assert apply_environment(Settings()).default_user == "from-os"


def test_load_settings_substitutes_from_os_environ_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("WARREN_TEST_VHOST", "from-env")
    assert load_settings(conf(tmp_path, "default_vhost = $(WARREN_TEST_VHOST)\n")).default_vhost == "from-env"


# -- the key table -----------------------------------------------------------------------


def test_every_rabbitmq_key_warren_reads_is_spelled_as_in_rabbitmq_3_10():
    # Warren's own: warren.*, and its cluster mode's (test_settings_cluster.py)
    ours = {k.pattern for k in KEYS if not k.pattern.startswith(("warren.", "cluster.", "replication."))}
    normalised = {p.replace("$name", "$") for p in RABBITMQ_KEYS}
    normalised |= {p.rsplit(".", 1)[0] + ".$" for p in RABBITMQ_KEYS if "$" in p.rsplit(".", 1)[-1]}
    missing = sorted(p for p in ours if p.replace("$name", "$") not in normalised)
    assert missing == []


def test_every_key_has_a_setting_that_reads_it():
    """Each pattern, given a valid value, changes Settings (no key is read and dropped)."""
    samples = {
        "listeners.tcp": "none",
        "listeners.tcp.$name": "127.0.0.1:5999",
        "listeners.ssl": "none",
        "ssl_cert_login_from": "common_name",
        "auth_mechanisms.$name": "EXTERNAL",
        "default_user": "x",
        "default_pass": "x",
        "default_vhost": "x",
        "default_user_tags.$name": "true",
        "default_permissions.configure": "x",
        "default_permissions.read": "x",
        "default_permissions.write": "x",
        "loopback_users": "none",
        "loopback_users.$name": "false",
        "handshake_timeout": "1",
        "heartbeat": "1",
        "frame_max": "4096",
        "channel_max": "1",
        "max_message_size": "1",
        "connection_max": "1",
        "consumer_timeout": "1",
        "disk_free_limit.absolute": "1",
        "disk_free_limit.relative": "1.0",
        "vm_memory_high_watermark.relative": "0.5",
        "vm_memory_high_watermark.absolute": "1",
        "vm_memory_high_watermark_paging_ratio": "0.75",
        "management.tcp.port": "1",
        "management.tcp.ip": "127.0.0.1",
        "prometheus.tcp.port": "1",
        "prometheus.tcp.ip": "127.0.0.1",
        "collect_statistics_interval": "250",
        "log.console.level": "debug",
        "ssl_options.verify": "verify_none",  # defaults: checked below as origins only
        "ssl_options.fail_if_no_peer_cert": "false",
        "ssl_options.versions.$name": "tlsv1.2",
        "warren.data_dir": "/tmp/warren-test-data-dir",
        "warren.paging.queue_bytes": "1MiB",
        "warren.login_throttle.free_failures": "5",
        "warren.login_throttle.first_delay": "200",
        "warren.login_throttle.max_delay": "20000",
        "warren.login_throttle.window": "1000",
        "warren.login_throttle.max_pending": "2",
        "warren.login_throttle.include_loopback": "true",
    }
    untested = {"listeners.ssl.$name", "ssl_options.cacertfile", "ssl_options.certfile", "ssl_options.keyfile",
                "load_definitions", "management.ssl.port", "management.ssl.ip", "management.ssl.cacertfile",
                "management.ssl.certfile", "management.ssl.keyfile"}  # need files: tested above
    # (need one another: test_settings_cluster.py)
    untested |= {k.pattern for k in KEYS if k.pattern.startswith(("cluster.", "replication."))}
    assert {k.pattern for k in KEYS} == set(samples) | untested
    for pattern, value in samples.items():
        key = pattern.replace("$name", "guest" if "users" in pattern else "x")
        s = parse(f"{key} = {value}\n")
        assert key in s.origins
        if pattern not in ("ssl_options.verify", "ssl_options.fail_if_no_peer_cert", "listeners.ssl"):
            assert s != Settings(), pattern


@given(heartbeat=st.integers(0, 65535), channel_max=st.integers(0, 65535), frame_max=st.integers(4096, 2**31 - 1))
def test_property_integers_in_range_are_read_back(heartbeat, channel_max, frame_max):
    s = parse(f"heartbeat = {heartbeat}\nchannel_max = {channel_max}\nframe_max = {frame_max}\n")
    assert (s.heartbeat, s.channel_max, s.frame_max) == (heartbeat, channel_max, frame_max)
    assert s == Settings().with_overrides(heartbeat=heartbeat, channel_max=channel_max, frame_max=frame_max)


@given(value=st.integers().filter(lambda v: not 0 <= v <= 65535))
def test_property_integers_out_of_range_are_refused_by_file_and_override(value):
    with pytest.raises(SettingsError, match="heartbeat: expected an integer between 0 and 65535"):
        parse(f"heartbeat = {value}\n")
    with pytest.raises(ValueError, match="heartbeat: expected an integer between 0 and 65535"):
        Settings().with_overrides(heartbeat=value)
