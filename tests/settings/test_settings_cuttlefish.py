"""Warren reads rabbitmq.conf files as RabbitMQ 3.10's cuttlefish does: a differential test.

Each sample file is read by Warren and by the cuttlefish and schemas of an
installed RabbitMQ (an escript run with ``escript``, the plugins directory of
RabbitMQ found under /usr/lib/rabbitmq or given as WARREN_RABBITMQ_PLUGINS):

- files both accept must give the same values (lists compared as sets: 3.10
  reverses the file order of ``listeners.tcp.*`` and ``auth_mechanisms.*``);
- files RabbitMQ refuses, Warren refuses;
- the deliberate differences of docs/settings.md are pinned: files RabbitMQ
  accepts and Warren refuses (RabbitMQ would quietly do something else, or
  fail later), and the few that Warren accepts and RabbitMQ 3.10 refuses.

Skipped where no RabbitMQ is installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.settings import AbsoluteLimit, Settings, SettingsError, load_settings


def _plugins() -> str | None:
    given = os.environ.get("WARREN_RABBITMQ_PLUGINS")
    if given:
        return given
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10*/plugins"))
    return found[-1] if found else None


PLUGINS = _plugins()
pytestmark = pytest.mark.skipif(
    PLUGINS is None or not glob.glob(f"{PLUGINS}/cuttlefish-*/ebin") or shutil.which("escript") is None,
    reason="needs an installed RabbitMQ 3.10 (its cuttlefish and schemas) and escript",
)

# Reads each file with RabbitMQ's cuttlefish and schemas; prints one JSON line
# per file: "error", or the generated app environment (sizes parsed as the
# broker parses them when it starts).
ESCRIPT = r"""#!/usr/bin/env escript
main([Plugins | ConfFiles]) ->
    [code:add_patha(D) || D <- filelib:wildcard(Plugins ++ "/*/ebin")],
    Schemas = filelib:wildcard(Plugins ++ "/{rabbit,rabbitmq_management,rabbitmq_prometheus}-*/priv/schema/*.schema"),
    Schema = cuttlefish_schema:files(Schemas),
    [io:format("~ts~n", [json(map(Schema, F))]) || F <- ConfFiles].

map(Schema, ConfFile) ->
    try case cuttlefish_conf:file(ConfFile) of
        {errorlist, _} -> error;
        Conf ->
            case cuttlefish_generator:map(Schema, Conf) of
                {error, _, _} -> error;
                Config ->
                    Rabbit = proplists:get_value(rabbit, Config, []),
                    Log = proplists:get_value(log, Rabbit, []),
                    Level = proplists:get_value(level, proplists:get_value(console, Log, []), undefined),
                    [{rabbit, [fix(K, V) || {K, V} <- Rabbit, K =/= log]},
                     {log_console_level, Level},
                     {rabbitmq_management, proplists:get_value(rabbitmq_management, Config, [])},
                     {rabbitmq_prometheus, proplists:get_value(rabbitmq_prometheus, Config, [])}]
            end
        end
    catch _:_ -> error
    end.

fix(disk_free_limit, V) when is_list(V) -> {disk_free_limit, bytes(V)};
fix(vm_memory_high_watermark, {absolute, V}) -> {vm_memory_high_watermark, [absolute, bytes(V)]};
fix(K, V) when K =:= tcp_listeners; K =:= ssl_listeners ->
    {K, [case L of P when is_integer(P) -> {port, P}; _ -> L end || L <- V]};
fix(K, V) -> {K, V}.

bytes(V) ->
    case rabbit_resource_monitor_misc:parse_information_unit(V) of
        {ok, B} -> B;
        {error, _} -> unparsable
    end.

json(error) -> "\"error\"";
json(true) -> "true";
json(false) -> "false";
json(X) when is_integer(X) -> integer_to_list(X);
json(X) when is_float(X) -> float_to_list(X, [short]);
json(X) when is_atom(X) -> str(atom_to_list(X));
json(X) when is_binary(X) -> str(unicode:characters_to_list(X));
json(X) when is_tuple(X) -> json(tuple_to_list(X));
json([]) -> "[]";
json(X) when is_list(X) ->
    case io_lib:printable_unicode_list(X) of
        true -> str(X);
        false -> "[" ++ lists:join(",", [json(E) || E <- X]) ++ "]"
    end.

str(S) -> "\"" ++ lists:flatmap(fun($") -> "\\\""; ($\\) -> "\\\\"; (C) -> [C] end, S) ++ "\"".
"""


def cuttlefish(tmp_path: Path, texts: list[str]) -> list[Any]:
    script = tmp_path / "read.escript"
    script.write_text(ESCRIPT)
    files = []
    for index, text in enumerate(texts):
        path = tmp_path / f"sample{index}.conf"
        path.write_text(text)
        files.append(str(path))
    assert PLUGINS is not None
    done = subprocess.run(
        ["escript", str(script), PLUGINS, *files], capture_output=True, text=True, timeout=120, check=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("[", '"'))]
    assert len(lines) == len(texts), done.stdout + done.stderr
    return [json.loads(line) for line in lines]


def warren(tmp_path: Path, text: str) -> Settings | None:
    path = tmp_path / "warren.conf"
    path.write_text(text)
    try:
        return load_settings(path, environ={})
    except SettingsError:
        return None


def _listeners(listeners: Any) -> list[str]:
    return sorted(json.dumps(["port", x.port] if x.host is None else [x.host, x.port]) for x in listeners)


def as_rabbitmq(s: Settings, key: str) -> Any:
    """Warren's value of a RabbitMQ app-env key, in the escript's JSON form."""
    limit = s.disk_free_limit
    memory = s.vm_memory_high_watermark
    return {
        "tcp_listeners": lambda: _listeners(s.listeners_tcp),
        "ssl_listeners": lambda: _listeners(s.listeners_ssl),
        "loopback_users": lambda: sorted(s.loopback_users),
        "default_user_tags": lambda: sorted(s.default_user_tags),
        "auth_mechanisms": lambda: sorted(s.auth_mechanisms),
        "default_permissions": lambda: [s.default_permissions.configure, s.default_permissions.read, s.default_permissions.write],
        "handshake_timeout": lambda: "infinity" if s.handshake_timeout is None else s.handshake_timeout,
        "connection_max": lambda: "infinity" if s.connection_max is None else s.connection_max,
        "disk_free_limit": lambda: limit.bytes if isinstance(limit, AbsoluteLimit) else ["mem_relative", limit.fraction],
        "vm_memory_high_watermark": lambda: ["absolute", memory.bytes] if isinstance(memory, AbsoluteLimit) else memory.fraction,
        "ssl_options": lambda: {
            k: (sorted(v) if k == "versions" else v)
            for k, v in vars(s.ssl_options).items()
        },
    }.get(key, lambda: getattr(s, key))()


def normalise(key: str, value: Any) -> Any:
    if key in ("tcp_listeners", "ssl_listeners"):
        return sorted(json.dumps(x) for x in value)
    if key in ("loopback_users", "default_user_tags", "auth_mechanisms"):
        return sorted(value)
    if key == "ssl_options":
        return {k: (sorted(v) if k == "versions" else v) for k, v in value}
    return value


ACCEPTED_BY_BOTH = [
    "listeners.tcp.default = 5672\n",
    "listeners.tcp.a = 127.0.0.1:5673\nlisteners.tcp.b = 5672\nlisteners.tcp.c = ::1:5674\nlisteners.tcp.d = :::5675\n",
    "listeners.tcp = none\n",
    "listeners.tcp.1 = 0.0.0.0:0\n",
    "heartbeat = 30\nframe_max = 128KB\nchannel_max = 0\nmax_message_size = 536870912\n",
    "frame_max = 0.5MB\nchannel_max = +5\nheartbeat = 05\n",
    "handshake_timeout = infinity\nconnection_max = infinity\nconsumer_timeout = 1\n",
    "handshake_timeout = 5000\nconnection_max = 0\n",
    "default_user = my user   \ndefault_pass = a = b#c\ndefault_vhost = prod\n",
    "default_permissions.configure = ^$\ndefault_permissions.read = .*\ndefault_permissions.write = ^amq\n",
    "loopback_users.guest = false\n",
    "loopback_users = none\n",
    "loopback_users.guest = true\nloopback_users.bob = true\nloopback_users.my\\.user = true\n",
    "default_user_tags.administrator = false\ndefault_user_tags.monitoring = true\ndefault_user_tags.management = true\n",
    "auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = AMQPLAIN\nauth_mechanisms.3 = EXTERNAL\n",
    "ssl_cert_login_from = common_name\n",
    "disk_free_limit.absolute = 2GB\n",
    "disk_free_limit.absolute = 1000000\n",
    "disk_free_limit.absolute = 512MiB\n",
    "disk_free_limit.absolute = 50mb\n",
    "disk_free_limit.relative = 2.0\n",
    "vm_memory_high_watermark.relative = 0.6\n",
    "vm_memory_high_watermark.relative = 1.5e-1\n",
    "vm_memory_high_watermark.absolute = 1GiB\n",
    "vm_memory_high_watermark.absolute = 2000kB\n",
    "vm_memory_high_watermark_paging_ratio = 0.75\n",
    "log.console.level = notice\n",
    "log.console.level = debug\n",
    "management.tcp.port = 15673\nmanagement.tcp.ip = 127.0.0.1\nprometheus.tcp.port = 15693\nprometheus.tcp.ip = ::\n",
    "   # indented comment\n\t\nheartbeat\t=\t7 # seven\r\nchannel_max=9\r\n",
]

REFUSED_BY_BOTH = [
    "vm_memory_high_watermark_paging_ratio = 1.5\n",
    "vm_memory_high_watermark_paging_ratio = 1.0\n",
    "vm_memory_high_watermark_paging_ratio = 0\n",
    "frame_max = big\n",
    "frame_max = 1kB\n",
    "heartbeat = x\n",
    "heartbeat = 1.0\n",
    "channel_max = 5_000\n",
    "listeners.tcp.1 = localhost:5672\n",
    "listeners.tcp.1 = 127.0.0.1\n",
    "listeners.tcp = 5672\n",
    "listeners.tcp.default.x = 5672\n",
    "ssl_options.verify = VERIFY_PEER\n",
    "ssl_options.fail_if_no_peer_cert = True\n",
    "loopback_users.bob@example = true\n",
    "no_such_key = 1\n",
    "Heartbeat = 5\n",
    "consumer_timeout = 0\n",
    "max_message_size = 536870913\n",
    "max_message_size = 128MB\n",
    "log.console.level = warn\n",
    "management.tcp.ip = localhost\n",
    "disk_free_limit.relative = x\n",
    "default_pass =\n",
    "heartbeat 5\n",
    "ssl_options.certfile = /nonexistent/cert.pem\n",
    "load_definitions = /nonexistent/definitions.json\n",
]

#: RabbitMQ 3.10 accepts these; Warren refuses them (docs/settings.md, "Differences").
WARREN_REFUSES = [
    "heartbeat = -3\n",  # RabbitMQ fails when it sends connection.tune
    "channel_max = 70000\n",
    "frame_max = 1.3KB\n",  # a float frame size
    "frame_max = 100\n",  # below RabbitMQ's own minimum: no client can connect
    "listeners.tcp.1 = 127.0.0.1:99999\n",
    "listeners.tcp.1 = 127.1:5672\n",
    "loopback_users.guest = yes\n",  # RabbitMQ: guest is quietly no longer loopback-only
    "disk_free_limit.absolute = 2 GB\n",  # RabbitMQ logs an error and uses 50MB
    "disk_free_limit.absolute = 1.5GB\n",
    "disk_free_limit.absolute = 2G\n",  # 2 GiB in 3.10, 2 GB in 3.13
    "heartbeat = 10\nheartbeat = 20\n",  # RabbitMQ keeps the last
    "listeners.tcp = none\nlisteners.tcp.1 = 5672\n",  # RabbitMQ ignores listeners.tcp.1
    "disk_free_limit.relative = 2.0\ndisk_free_limit.absolute = 1GB\n",
    "auth_mechanisms.1 = plain\n",
    "auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = PLAIN\n",
    "ssl_options.versions.1 = tlsv1.1\n",
    "vm_memory_high_watermark.relative = -0.5\n",
    "listeners.ssl.1 = 5671\n",  # no certificate: RabbitMQ fails when the listener starts
    "ssl_options.fail_if_no_peer_cert = true\n",  # without verify_peer: Erlang's ssl refuses it at start
]

#: RabbitMQ 3.10 refuses these; Warren accepts them (RabbitMQ's limits that are accidents).
WARREN_ACCEPTS = [
    "vm_memory_high_watermark.relative = 1\n",  # Erlang's list_to_float needs "1.0"
    "disk_free_limit.relative = 2\n",
    "vm_memory_high_watermark.relative = .4\n",
    "listeners.tcp.1 = [::1]:5672\n",  # brackets: Warren's addition
    "default_permissions.read = ^amq\n",  # 3.10's translation crashes when one of three is set
]


def test_files_both_accept_give_the_same_values(tmp_path):
    results = cuttlefish(tmp_path, ACCEPTED_BY_BOTH)
    for text, result in zip(ACCEPTED_BY_BOTH, results, strict=True):
        assert result != "error", f"RabbitMQ refuses {text!r}"
        settings = warren(tmp_path, text)
        assert settings is not None, f"Warren refuses {text!r}"
        env = dict(result)
        compared = 0
        for key, value in env["rabbit"]:
            assert normalise(key, value) == as_rabbitmq(settings, key), (text, key)
            compared += 1
        if env["log_console_level"] != "undefined":
            assert settings.log_console_level == env["log_console_level"]
            compared += 1
        for app, field in (("rabbitmq_management", "management_tcp"), ("rabbitmq_prometheus", "prometheus_tcp")):
            for config_key, pairs in env[app]:
                assert config_key == "tcp_config"
                listener = getattr(settings, field)
                assert dict(pairs) == {k: v for k, v in vars(listener).items() if k in dict(pairs)}
                compared += 1
        assert compared, text


def test_files_rabbitmq_refuses_warren_refuses(tmp_path):
    for text, result in zip(REFUSED_BY_BOTH, cuttlefish(tmp_path, REFUSED_BY_BOTH), strict=True):
        assert result == "error", f"RabbitMQ accepts {text!r}: {result}"
        assert warren(tmp_path, text) is None, f"Warren accepts {text!r}"


def test_the_documented_differences(tmp_path):
    for text, result in zip(WARREN_REFUSES, cuttlefish(tmp_path, WARREN_REFUSES), strict=True):
        assert result != "error", f"RabbitMQ refuses {text!r}: no longer a difference"
        assert warren(tmp_path, text) is None, f"Warren accepts {text!r}"
    for text, result in zip(WARREN_ACCEPTS, cuttlefish(tmp_path, WARREN_ACCEPTS), strict=True):
        assert result == "error", f"RabbitMQ accepts {text!r}: no longer a difference"
        assert warren(tmp_path, text) is not None, f"Warren refuses {text!r}"


def test_tls_files(tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    text = (
        f"listeners.ssl.default = 5671\nssl_options.cacertfile = {tmp_path}/ca.pem\n"
        f"ssl_options.certfile = {tmp_path}/cert.pem\nssl_options.keyfile = {tmp_path}/key.pem\n"
        "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n"
        "ssl_options.versions.1 = tlsv1.3\nssl_options.versions.2 = tlsv1.2\n"
    )
    [result] = cuttlefish(tmp_path, [text])
    settings = warren(tmp_path, text)
    assert result != "error" and settings is not None
    env = dict(dict(result)["rabbit"])
    assert normalise("ssl_listeners", env["ssl_listeners"]) == as_rabbitmq(settings, "ssl_listeners")
    assert normalise("ssl_options", env["ssl_options"]) == as_rabbitmq(settings, "ssl_options")
