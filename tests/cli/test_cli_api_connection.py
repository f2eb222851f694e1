"""Reaching the management API: where its address comes from (options, environment,
profiles file), and every way of not reaching it being one line and exit 2, for
every command that talks HTTP (the issue: `config apply --management-url`
pointed at the AMQP port printed a 50-line BadStatusLine traceback and exit 1).

Against the in-process Warren (`api_warren`): its AMQP port, its management
port, closed ports, a socket that never answers, and an HTTPS listener with a
certificate made by `openssl` (skipped, saying so, without it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cli_api_helpers import closed_port, q, with_userinfo
from cli_helpers import run_warren

from broker.settings import HTTPListener, HTTPSListener, Listener, Settings
from broker.testing import BrokerThread

CONF = "exchange acli-conn.x type fanout\n"


def amqp_port(thread: BrokerThread) -> int:
    return int(thread.url.rsplit(":", 1)[1].split("/", 1)[0])


def http_port(thread: BrokerThread) -> int:
    assert thread.broker is not None
    return int(thread.broker.management_url.rsplit(":", 1)[1])


#: Every command that talks HTTP, with arguments that reach the API (prog, argv).
def http_commands(tmp_path: Path, amqp_url: str) -> list[tuple[str, list[str]]]:
    conf = tmp_path / "a.conf"
    conf.write_text(CONF)
    defs = tmp_path / "defs.json"
    defs.write_text('{"queues": []}')
    commands = [
        ["list", "queues"], ["list", "exchanges"], ["list", "bindings"],
        ["list", "connections"], ["list", "channels"], ["list", "consumers"],
        ["purge", "q"], ["delete", "queue", "q"], ["delete", "exchange", "x"],
        ["close-connection", "c"],
        ["users", "list"], ["users", "add", "acli-u"], ["users", "delete", "acli-u"],
        ["users", "set-tags", "acli-u", "t"], ["users", "set-password", "acli-u"],
        ["vhosts", "list"], ["vhosts", "add", "acli-v"], ["vhosts", "delete", "acli-v"],
        ["permissions", "list"], ["permissions", "set", "acli-u", "", "", ""],
        ["permissions", "clear", "acli-u"],
        ["definitions", "export"], ["definitions", "import", str(defs)],
        ["cluster", "status"],
        ["config", "diff", str(conf)],
        ["config", "apply", str(conf), "--url", amqp_url],
        ["config", "apply", str(conf), "--url", amqp_url, "--prune", "--dry-run"],
    ]
    out = []
    for argv in commands:
        words = 1 if argv[0] in ("purge", "close-connection") else 2
        out.append((" ".join(["warren", *argv[:words]]), argv))
    return out


#: One command of each kind (every request goes through the same client): for the
#: failures that cost a second each, or need endpoints Warren has today.
SOME = ("warren users list", "warren users add", "warren permissions set",
        "warren definitions import", "warren config diff", "warren config apply")


def some(commands: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    chosen = [c for c in commands if c[0] in SOME]
    assert len({prog for prog, _ in chosen}) == len(SOME)
    return chosen


def run_all(commands: list[tuple[str, list[str]]], *extra: str,
            env: dict[str, str] | None = None) -> list[tuple[str, subprocess.CompletedProcess]]:
    """Run each command (with `extra` options) at once; (prog, result) in order."""
    with ThreadPoolExecutor(8) as pool:
        results = pool.map(
            lambda c: (c[0], run_warren(*c[1], *extra, input="pw\n", env=env)), commands
        )
        return list(results)


def assert_one_line(results: list[tuple[str, subprocess.CompletedProcess]], message: str,
                    secret: str = "guest") -> None:
    """Every command failed with exactly `warren <command>: <message>`, exit 2,
    nothing on stdout and no password."""
    for prog, result in results:
        assert (result.returncode, result.stdout) == (2, ""), (prog, result.stderr)
        assert result.stderr == f"{prog}: {message}\n", prog
        assert f":{secret}@" not in result.stderr


@pytest.fixture
def commands(tmp_path, api_warren) -> list[tuple[str, list[str]]]:
    return http_commands(tmp_path, api_warren.url)


def test_a_closed_port_is_one_line_for_every_command(commands) -> None:
    port = closed_port()
    results = run_all(commands, "--management-url", f"http://guest:guest@127.0.0.1:{port}")
    assert_one_line(results, (
        f"cannot connect to the management API at http://127.0.0.1:{port}: connection refused "
        "(is the broker running, with its management API on that port?)"
    ))


def test_the_amqp_port_is_one_line_for_every_command(commands, api_warren) -> None:
    port = amqp_port(api_warren)
    results = run_all(commands, "--management-url", f"http://guest:guest@127.0.0.1:{port}")
    assert_one_line(results, (
        f"http://127.0.0.1:{port} answered in AMQP, not HTTP: that is the broker's AMQP port; "
        "the management API listens on another (by default 15672)"
    ))


def test_tls_to_a_plain_port_is_one_line(commands, api_warren) -> None:
    port = http_port(api_warren)
    results = run_all(some(commands), "--management-url",
                      f"https://guest:guest@127.0.0.1:{port}")
    assert_one_line(results, (
        f"https://127.0.0.1:{port}: TLS handshake failed: wrong version number (is this port "
        "plain HTTP? then use http://)"
    ))


def test_a_refused_login_is_one_line(commands, api_warren) -> None:
    port = http_port(api_warren)
    results = run_all(some(commands), "--management-url", f"http://guest:n0pe@127.0.0.1:{port}")
    assert_one_line(results, (
        f"the management API at http://127.0.0.1:{port} refused the login of user 'guest': "
        "Login failed (HTTP 401; credentials from --management-url)"
    ), secret="n0pe")
    for _prog, result in results:
        assert "n0pe" not in result.stderr


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()


def test_a_timeout_is_one_line(commands, silent_port, tmp_path) -> None:
    # The profile's timeout, for every command (config apply has no --timeout).
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[slow]\nurl = "http://127.0.0.1:{silent_port}"\ntimeout = 1\n')
    results = run_all(some(commands), "--profile", "slow",
                      env={"WARREN_PROFILES": str(profiles)})
    assert_one_line(results, f"http://127.0.0.1:{silent_port}: no answer within 1s (--timeout)")


def test_timeout_option(warren, silent_port) -> None:
    result = warren("users", "list", "--timeout", "0.5", "--management-url",
                    f"http://127.0.0.1:{silent_port}")
    assert (result.returncode, result.stderr) == (2, (
        f"warren users list: http://127.0.0.1:{silent_port}: no answer within 0.5s (--timeout)\n"
    ))
    bad = warren("users", "list", "--timeout", "0")
    assert bad.returncode == 2 and "--timeout: must be more than 0, got '0'" in bad.stderr


def test_bad_urls_are_one_line_without_the_password(warren) -> None:
    result = warren("users", "list", "--management-url", "ftp://guest:s3cret@host/")
    assert (result.returncode, result.stderr) == (2, (
        "warren users list: --management-url must be an http:// or https:// URL (the "
        "management API, e.g. http://localhost:15672), got 'ftp://guest@host/'\n"
    ))
    result = warren("users", "list", env={"WARREN_MANAGEMENT_URL": "http://u:s3cret@host:99999"})
    assert (result.returncode, result.stderr) == (2, (
        "warren users list: $WARREN_MANAGEMENT_URL: not a valid URL: 'http://u@host:99999'\n"
    ))


# -- where the API comes from ---------------------------------------------------------------


def test_first_found_wins(warren, api_warren, tmp_path) -> None:
    good = api_warren.broker.management_url  # no credentials: guest/guest by default
    ports = {name: closed_port() for name in ("flag", "env", "default", "other")}
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        f'[default]\nurl = "http://127.0.0.1:{ports["default"]}"\n'
        f'[good]\nurl = "{good}"\nuser = "guest"\npassword-env = "ACLI_PASSWORD"\n'
        f'[other]\nurl = "http://127.0.0.1:{ports["other"]}"\n'
    )

    def used(*args: str, **env: str) -> str:
        """Which API `warren users list` reached: 'good', or the name of the closed port."""
        env = {"WARREN_PROFILES": str(profiles), "ACLI_PASSWORD": "guest", **env}
        result = warren("users", "list", *args, env=env)
        if result.returncode == 0:
            return "good"
        found = [name for name, port in ports.items() if f"127.0.0.1:{port}" in result.stderr]
        assert len(found) == 1, result.stderr
        return found[0]

    env_url = f"http://127.0.0.1:{ports['env']}"
    flag = ["--management-url", f"http://127.0.0.1:{ports['flag']}"]
    assert used() == "default"  # the [default] profile
    assert used(WARREN_PROFILE="good") == "good"
    assert used(WARREN_PROFILE="good", WARREN_MANAGEMENT_URL=env_url) == "env"
    assert used("--profile", "good", WARREN_MANAGEMENT_URL=env_url) == "good"
    assert used("--profile", "other", WARREN_PROFILE="good") == "other"
    assert used(*flag, WARREN_MANAGEMENT_URL=env_url, WARREN_PROFILE="good") == "flag"

    both = warren("users", "list", *flag, "--profile", "good")
    assert both.returncode == 2
    assert "argument --profile: not allowed with argument --management-url" in both.stderr


def test_the_default_is_localhost_15672(warren) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 15672)) == 0:
            pytest.skip("something listens on localhost:15672 here")
    result = warren("users", "list")
    assert result.returncode == 2
    assert "http://localhost:15672" in result.stderr


def test_a_password_from_the_environment(warren, api_warren) -> None:
    user = "acli-envpass"
    base = api_warren.broker.management_url
    made = warren("users", "add", user, "--tags", "administrator", "--management-url", base,
                  input="env-s3cret\n")
    assert made.returncode == 0, made.stderr
    try:
        url = with_userinfo(base, q(user))
        missing = warren("users", "list", "--management-url", url)
        assert (missing.returncode, missing.stderr) == (2, (
            f"warren users list: no password for user '{user}' (--management-url): put it in "
            "the URL, in $WARREN_MANAGEMENT_PASSWORD, or in the profile (password-env)\n"
        ))
        found = warren("users", "list", "--management-url", url,
                       env={"WARREN_MANAGEMENT_PASSWORD": "env-s3cret"})
        assert found.returncode == 0, found.stderr
        assert user in found.stdout
        by_env = warren("users", "list", env={"WARREN_MANAGEMENT_URL": url,
                                              "WARREN_MANAGEMENT_PASSWORD": "env-s3cret"})
        assert by_env.returncode == 0, by_env.stderr
    finally:
        warren("users", "delete", user, "--management-url", base)


def test_profile_file_mistakes_are_one_line(warren, tmp_path) -> None:
    profiles = tmp_path / "profiles.toml"

    def error(text: str | None, *args: str, **env: str) -> str:
        if text is not None:
            profiles.write_text(text)
        result = warren("users", "list", *args, env={"WARREN_PROFILES": str(profiles), **env})
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        return result.stderr.removeprefix("warren users list: ").rstrip("\n")

    assert error(None, "--profile", "prod") == (
        f"profile 'prod': there is no profiles file ({profiles})"
    )
    assert error('[prod]\nurl = "http://h:1"\n', "--profile", "staging") == (
        f"{profiles}: no profile 'staging' (it has: prod)"
    )
    assert error("[prod\n", "--profile", "prod").startswith(f"{profiles}: not valid TOML: ")
    assert error('[prod]\nurl = "http://h:1"\npasswd = "x"\n', "--profile", "prod") == (
        f"{profiles}: [prod]: unknown setting 'passwd' (known: url, user, password, "
        "password-env, cacert, timeout)"
    )
    assert error('[prod]\nuser = "x"\n', "--profile", "prod") == f"{profiles}: [prod] has no url"
    assert error('[prod]\nurl = "http://h:1"\nuser = "ops"\npassword-env = "ACLI_NOPE"\n',
                 "--profile", "prod") == (
        "profile 'prod': its password-env names $ACLI_NOPE, which is not set"
    )
    assert error('[default]\nurl = "http://h:1"\ntimeout = -1\n') == (
        f"{profiles}: [default] timeout must be a positive number of seconds"
    )
    assert error('[prod]\nurl = "amqp://h:5672"\n', WARREN_PROFILE="prod") == (
        f"{profiles}: [prod] url must be an http:// or https:// URL (the management API, "
        "e.g. http://localhost:15672), got 'amqp://h:5672'"
    )


def test_config_apply_uses_a_configured_api_only(warren, api_warren, tmp_path) -> None:
    """apply reads bindings through the API when something names it (here the
    environment), and never reaches for the built-in default."""
    conf = tmp_path / "a.conf"
    conf.write_text("exchange acli-apply.x type fanout\nqueue acli-apply.q\n"
                    "bind acli-apply.q to acli-apply.x\n")
    try:
        plain = warren("config", "apply", str(conf), "--url", api_warren.url)
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.splitlines()[-1] == "2 created, 1 bound"
        by_env = warren("config", "apply", str(conf), "--url", api_warren.url,
                        env={"WARREN_MANAGEMENT_URL": api_warren.broker.management_url})
        assert by_env.returncode == 0, by_env.stderr
        assert by_env.stdout.splitlines()[-1] == "3 present"
    finally:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(api_warren.url))
        channel = connection.channel()
        channel.queue_delete("acli-apply.q")
        channel.exchange_delete("acli-apply.x")
        connection.close()


# -- TLS --------------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def https_warren(tmp_path_factory) -> Iterator[tuple[BrokerThread, int, Path]]:
    """A Warren whose management API also listens on HTTPS, with a self-signed
    certificate for 127.0.0.1 (its own CA)."""
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed (apt-get install openssl)")
    directory = tmp_path_factory.mktemp("https")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    settings = Settings(
        listeners_tcp=(Listener("127.0.0.1", 0),),
        management_tcp=HTTPListener(0, "127.0.0.1"),
        management_ssl=HTTPSListener(0, str(cert), str(key), None, "127.0.0.1"),
    )
    thread = BrokerThread(settings=settings)
    thread.start()
    assert thread.broker is not None
    port = next(listener.port for listener in thread.broker.listeners if listener.kind == "https")
    try:
        yield thread, port, cert
    finally:
        thread.stop()


def test_https_with_a_ca_option(warren, https_warren) -> None:
    _thread, port, cert = https_warren
    url = f"https://guest:guest@127.0.0.1:{port}"
    trusted = warren("users", "list", "--management-url", url, "--cacert", str(cert))
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.startswith("name ")
    by_env = warren("vhosts", "list", "--management-url", url,
                    env={"WARREN_MANAGEMENT_CACERT": str(cert)})
    assert by_env.returncode == 0, by_env.stderr
    untrusted = warren("users", "list", "--management-url", url)
    assert (untrusted.returncode, untrusted.stderr) == (2, (
        f"warren users list: https://127.0.0.1:{port}: the server's TLS certificate is not "
        "trusted: self-signed certificate (pass --cacert FILE with the CA that signed it)\n"
    ))
    missing = warren("users", "list", "--management-url", url, "--cacert", "/nonexistent.pem")
    assert (missing.returncode, missing.stderr) == (
        2, "warren users list: --cacert /nonexistent.pem: no such file\n"
    )


def test_plain_http_to_a_tls_port_is_one_line(warren, https_warren) -> None:
    _thread, port, _cert = https_warren
    result = warren("users", "list", "--management-url", f"http://guest:guest@127.0.0.1:{port}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr in (
        f"warren users list: http://127.0.0.1:{port} answered in TLS, not plain HTTP: use "
        "https://\n",
        f"warren users list: http://127.0.0.1:{port} closed the connection without an HTTP "
        "answer: is it the broker's AMQP port, or a TLS port? (the management API listens on "
        "15672 by default)\n",
    )
