"""`warren config check|fmt|from-definitions|to-definitions` on files (no broker)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import EXAMPLE, ROOT

from routing import config

BAD = """\
exchange orders type topik durable
queue billing durable message-ttl -5s
bind billing orders
"""

MESSY = """\
# the orders exchange
exchange  orders type topic durable alternate-exchange unrouted
exchange unrouted type fanout
queue billing durable message-ttl 30000 # thirty seconds
bind billing to orders key "order.*.created"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- check -------------------------------------------------------------------------


def test_check_a_valid_file(warren) -> None:
    result = warren("config", "check", str(EXAMPLE))
    assert result.returncode == 0
    assert result.stdout == f"{EXAMPLE}: ok (18 declarations)\n"


def test_check_reports_every_error_with_place_line_caret_and_hint(warren, tmp_path) -> None:
    bad = write(tmp_path, "orders.conf", BAD)
    result = warren("config", "check", "orders.conf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == (
        "orders.conf:1:22: unknown exchange type 'topik': did you mean 'topic'?\n"
        "    exchange orders type topik durable\n"
        "                         ^^^^^\n"
        "orders.conf:2:35: message-ttl must not be negative, got '-5s'\n"
        "    queue billing durable message-ttl -5s\n"
        "                                      ^^^\n"
        "orders.conf:3:14: expected 'to', found 'orders'\n"
        "    bind billing orders\n"
        "                 ^^^^^^\n"
        "    hint: bind [exchange] <destination> to <exchange> [key <routing key>] ...\n"
        "3 errors in 1 file\n"
    )
    # the same errors the library gives: the command adds nothing and drops nothing
    expected = [str(e) for e in config.check(BAD, "orders.conf")]
    assert result.stdout.rstrip("\n").split("\n3 errors")[0] == "\n".join(expected)
    assert bad.read_text() == BAD  # check never writes


def test_check_many_files_and_an_unreadable_one(warren, tmp_path) -> None:
    write(tmp_path, "bad.conf", BAD)
    result = warren("config", "check", str(EXAMPLE), "bad.conf", "missing.conf", cwd=tmp_path)
    assert result.returncode == 2  # a file could not be read at all
    assert f"{EXAMPLE}: ok" in result.stdout
    assert "3 errors in 1 file" in result.stdout
    assert result.stderr == (
        "warren config check: cannot read missing.conf: No such file or directory\n"
    )


def test_check_reads_stdin(warren) -> None:
    result = warren("config", "check", "-", input="queue q durable\n")
    assert (result.returncode, result.stdout) == (0, "<stdin>: ok (1 declaration)\n")


# -- fmt ---------------------------------------------------------------------------


CANONICAL = """\
# the orders exchange
exchange orders type topic durable
    alternate-exchange unrouted
exchange unrouted type fanout
queue billing durable  # thirty seconds
    message-ttl 30s
bind billing to orders key "order.*.created"
"""


def test_fmt_rewrites_in_canonical_form_keeping_the_mode(warren, tmp_path) -> None:
    messy = write(tmp_path, "messy.conf", MESSY)
    os.chmod(messy, 0o640)
    canonical = write(tmp_path, "canonical.conf", CANONICAL)
    result = warren("config", "fmt", "messy.conf", "canonical.conf", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "reformatted messy.conf\n")
    assert messy.read_text() == CANONICAL
    assert canonical.read_text() == CANONICAL
    assert messy.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canonical.conf", "messy.conf"]
    # formatting again changes nothing
    again = warren("config", "fmt", "messy.conf", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, "")


def test_fmt_check_lists_files_that_are_not_canonical(warren, tmp_path) -> None:
    write(tmp_path, "messy.conf", MESSY)
    write(tmp_path, "canonical.conf", CANONICAL)
    result = warren("config", "fmt", "--check", "messy.conf", "canonical.conf", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "messy.conf\n")
    assert (tmp_path / "messy.conf").read_text() == MESSY  # --check writes nothing
    clean = warren("config", "fmt", "--check", "canonical.conf", str(EXAMPLE), cwd=tmp_path)
    assert (clean.returncode, clean.stdout) == (0, "")


def test_fmt_diff_shows_the_change(warren, tmp_path) -> None:
    write(tmp_path, "messy.conf", MESSY)
    result = warren("config", "fmt", "--diff", "messy.conf", cwd=tmp_path)
    assert result.returncode == 1
    assert "--- messy.conf\n+++ messy.conf (canonical)\n" in result.stdout
    assert "-queue billing durable message-ttl 30000 # thirty seconds\n" in result.stdout
    assert "+    message-ttl 30s\n" in result.stdout
    assert (tmp_path / "messy.conf").read_text() == MESSY


def test_fmt_stdin_to_stdout(warren) -> None:
    result = warren("config", "fmt", "-", input=MESSY)
    assert (result.returncode, result.stdout) == (0, CANONICAL)


def test_fmt_refuses_a_file_that_does_not_parse(warren, tmp_path) -> None:
    write(tmp_path, "bad.conf", BAD)
    result = warren("config", "fmt", "bad.conf", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "warren config fmt: bad.conf:1:22: unknown exchange type 'topik': did you mean "
        "'topic'? (and 2 more); not formatted (run `warren config check bad.conf`)\n"
    )
    assert (tmp_path / "bad.conf").read_text() == BAD


# -- definitions ---------------------------------------------------------------------


def test_to_definitions_and_back(warren, tmp_path) -> None:
    result = warren("config", "to-definitions", str(EXAMPLE))
    assert result.returncode == 0
    defs = json.loads(result.stdout)
    assert defs == config.to_definitions(config.parse(EXAMPLE.read_text()))
    assert {x["name"] for x in defs["exchanges"]} >= {"orders", "orders.audit"}
    (tmp_path / "defs.json").write_text(result.stdout)
    back = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert config.parse(back.stdout).same_topology(config.parse(EXAMPLE.read_text()))
    assert config.format(config.parse(back.stdout)) == back.stdout  # canonical


def test_to_definitions_of_another_vhost(warren) -> None:
    result = warren("config", "to-definitions", "--vhost", "prod", str(EXAMPLE))
    defs = json.loads(result.stdout)
    assert {item["vhost"] for kind in defs.values() for item in kind} == {"prod"}


def test_from_definitions_of_a_rabbitmq_export(warren) -> None:
    export = ROOT / "tests" / "routing" / "data" / "rabbitmq-3.10.8-definitions.json"
    result = warren("config", "from-definitions", str(export))
    assert result.returncode == 0, result.stderr
    expected = config.from_definitions(json.loads(export.read_text()))
    assert config.parse(result.stdout).same_topology(expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"exchanges": [1', "defs.json:1:17: not valid JSON: Expecting ',' delimiter"),
        ("[]", "defs.json: expected a JSON object (a definitions export)"),
        ("[" * 20000 + "]" * 20000, "defs.json: JSON nested too deeply to read"),
        ("{}", "defs.json: nothing to convert: no exchanges, queues or bindings in vhost '/', "
               "and no users, vhosts, permissions or limits"),
        (
            '{"exchanges": [{"name": "a", "type": "x-delayed"}],'
            ' "queues": [{"name": "q", "arguments": {"x-message-ttl": "abc"}}]}',
            "defs.json: 2 problems: exchanges[0].type: unknown exchange type 'x-delayed'; "
            "queues[0].arguments.x-message-ttl: message-ttl takes a duration, not 'abc'",
        ),
    ],
)
def test_from_definitions_bad_input_is_one_line(warren, tmp_path, content, message) -> None:
    (tmp_path / "defs.json").write_text(content)
    result = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"warren config from-definitions: {message}\n"


def test_from_definitions_names_what_the_export_lacks(warren, tmp_path) -> None:
    # A binding to an exchange of another vhost: the text is printed, the
    # problem reported as `config check` would, and the exit status says so.
    (tmp_path / "defs.json").write_text(json.dumps({"queues": [{"name": "q"}], "bindings": [
        {"source": "elsewhere", "destination": "q", "destination_type": "queue",
         "routing_key": "k", "arguments": {}}]}))
    result = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == 'queue q\n\nbind q to elsewhere key "k"\n'
    assert "defs.json (converted):3:11: exchange 'elsewhere' is not declared" in result.stderr


def test_from_definitions_skips_what_the_language_cannot_write(warren, tmp_path) -> None:
    # A queue with a table argument (as some plugins set) does not sink the export:
    # it is left out with a warning naming it, the rest is printed, exit status 1.
    (tmp_path / "defs.json").write_text(json.dumps({
        "queues": [{"name": "q", "vhost": "/", "durable": True, "arguments": {}},
                   {"name": "q.meta", "vhost": "/", "arguments": {"x-meta": {"team": "a"}}}],
        "exchanges": [{"name": "x", "vhost": "/", "type": "direct", "arguments": {}}],
        "bindings": [{"source": "x", "vhost": "/", "destination": "q.meta",
                      "destination_type": "queue", "routing_key": "k", "arguments": {}}],
    }))
    result = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == "exchange x type direct\n\nqueue q durable\n"
    assert result.stderr == (
        "warren config from-definitions: defs.json: warning: queues[1]: skipped queue "
        "'q.meta': argument 'x-meta' is a table, which the configuration language cannot "
        "write\n"
        "warren config from-definitions: defs.json: warning: bindings[0]: skipped binding of "
        "queue 'q.meta' to exchange 'x': queue 'q.meta' was skipped\n"
    )


def test_to_definitions_of_an_invalid_file_is_one_line(warren, tmp_path) -> None:
    write(tmp_path, "bad.conf", BAD)
    result = warren("config", "to-definitions", "bad.conf", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "warren config to-definitions: bad.conf:1:22: unknown exchange type 'topik': did you "
        "mean 'topic'? (and 2 more); run `warren config check bad.conf` for details\n"
    )


# -- help ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["config"],
        ["config", "check"],
        ["config", "fmt"],
        ["config", "from-definitions"],
        ["config", "to-definitions"],
        ["config", "apply"],
        ["config", "hash-password"],
        ["config", "diff"],
        ["route"],
        ["publish"],
        ["consume"],
        ["list"],
        ["purge"],
        ["delete"],
        ["delete", "queue"],
        ["delete", "exchange"],
        ["close-connection"],
        ["users"],
        ["users", "list"],
        ["users", "add"],
        ["users", "delete"],
        ["users", "set-tags"],
        ["users", "set-password"],
        ["vhosts"],
        ["vhosts", "list"],
        ["vhosts", "add"],
        ["vhosts", "delete"],
        ["permissions"],
        ["permissions", "list"],
        ["permissions", "set"],
        ["permissions", "clear"],
        ["definitions"],
        ["definitions", "export"],
        ["definitions", "import"],
    ],
)
def test_every_command_has_help_with_an_example(warren, command) -> None:
    result = warren(*command, "--help")
    assert result.returncode == 0
    assert "example" in result.stdout
    assert f"warren {' '.join(command)}" in result.stdout
