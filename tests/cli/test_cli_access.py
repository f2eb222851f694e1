"""The access statements on the command line: check, fmt, from-definitions,
to-definitions, hash-password, and apply through the management HTTP API.

Apply's management part runs against Warren's management API, and against
the reference RabbitMQ's too when both WARREN_REFERENCE_URL and
WARREN_REFERENCE_MANAGEMENT_URL are set (the `target` fixture); it creates a
vhost and users named `acli-<random>-...` and deletes them afterwards. The
rest needs no broker, or the in-process Warren.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from cli_helpers import ROOT
from test_cli_apply import closed_port, exists

from broker.auth.passwords import verify_password
from broker.commands.apply import AccessState, plan_access
from routing import config

EXPORT = ROOT / "tests" / "routing" / "data" / "rabbitmq-3.10.8-access-definitions.json"

ALICE_HASH = "WY9ucuBKFiDCFPUGXQSq8bbM5Fy4SeFe9N/EOA4PUpOc9XXY"

ACCESS = f"""\
vhost prod
    description "production, EU"
user alice
    password-hash "{ALICE_HASH}"
    tags administrator
permission alice on prod configure ".*" write ".*" read ".*"
limit prod max-queues 10
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- check, fmt, to-definitions --------------------------------------------------------


def test_check_knows_the_files_vhost(warren, tmp_path) -> None:
    write(tmp_path, "a.conf", 'user u\npermission u on prod configure "" write "" read ""\n')
    result = warren("config", "check", "a.conf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "a.conf:2:17: vhost 'prod' is not declared"
    ok = warren("config", "check", "--vhost", "prod", "a.conf", cwd=tmp_path)
    assert (ok.returncode, ok.stdout) == (0, "a.conf: ok (2 declarations)\n")
    # fmt and to-definitions take the same --vhost
    assert warren("config", "fmt", "--check", "--vhost", "prod", "a.conf",
                  cwd=tmp_path).returncode == 0
    refused = warren("config", "fmt", "a.conf", cwd=tmp_path)
    assert (refused.returncode, refused.stderr) == (2, (
        "warren config fmt: a.conf:2:17: vhost 'prod' is not declared; not formatted "
        "(run `warren config check a.conf`)\n"
    ))
    bad = warren("config", "to-definitions", "--vhost", "staging", "a.conf", cwd=tmp_path)
    assert (bad.returncode, bad.stderr) == (2, (
        "warren config to-definitions: a.conf:2:17: vhost 'prod' is not declared; run "
        "`warren config check --vhost staging a.conf` for details\n"
    ))


def test_fmt_rewrites_access_statements(warren, tmp_path) -> None:
    messy = (
        'user alice tags administrator password-hash "' + ALICE_HASH + '"\n'
        'vhost prod description "production, EU"\n'
        'permission alice on prod read ".*" write ".*" configure ".*"\n'
        "limit prod max-queues 10\n"
    )
    path = write(tmp_path, "a.conf", messy)
    result = warren("config", "fmt", "a.conf", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "reformatted a.conf\n")
    assert path.read_text() == (
        "user alice\n"
        f'    password-hash "{ALICE_HASH}"\n'
        "    tags administrator\n"
        "vhost prod\n"
        '    description "production, EU"\n'
        'permission alice on prod configure ".*" write ".*" read ".*"\n'
        "limit prod max-queues 10\n"
    )
    assert warren("config", "fmt", "--check", "a.conf", cwd=tmp_path).returncode == 0


def test_to_definitions_carries_access(warren, tmp_path) -> None:
    write(tmp_path, "a.conf", ACCESS)
    result = warren("config", "to-definitions", "a.conf", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    defs = json.loads(result.stdout)
    assert defs["users"] == [{
        "name": "alice", "password_hash": ALICE_HASH,
        "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"],
        "limits": {},
    }]
    assert defs["vhosts"] == [{"name": "prod", "description": "production, EU"}]
    assert defs["permissions"] == [
        {"user": "alice", "vhost": "prod", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    assert defs["topic_permissions"] == []
    assert defs["parameters"] == [{"value": {"max-queues": 10}, "vhost": "prod",
                                   "component": "vhost-limits", "name": "limits"}]


# -- from-definitions: what is carried, what is left out -------------------------------


def test_from_definitions_of_a_real_export_names_what_it_leaves_out(warren, tmp_path) -> None:
    result = warren("config", "from-definitions", str(EXPORT), "--vhost", "lang-prod")
    assert result.returncode == 1  # a global parameter could not be carried
    name = str(EXPORT)
    assert result.stderr.splitlines() == [
        f"warren config from-definitions: {name}: warning: global_parameters: left out 1 "
        "global parameter (the configuration language has no global parameters): lang-owner",
        f"warren config from-definitions: {name}: note: global_parameters: left out "
        "internal_cluster_id, the node's own cluster id (not configuration: importing it "
        "would give another cluster the same id)",
        f"warren config from-definitions: {name}: note: left out the topology of 1 other vhost "
        "(one file holds one vhost's topology; convert each with --vhost): lang-staging "
        "(1 exchange)",
    ]
    # export -> from-definitions -> to-definitions keeps every carried item
    write(tmp_path, "prod.conf", result.stdout)
    back = warren("config", "to-definitions", "--vhost", "lang-prod", "prod.conf", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    again, data = json.loads(back.stdout), json.loads(EXPORT.read_text())

    def same(a: list, b: list) -> bool:
        return sorted(json.dumps(i, sort_keys=True) for i in a) == sorted(
            json.dumps(i, sort_keys=True) for i in b)

    for kind in ("users", "vhosts", "permissions", "topic_permissions"):
        assert same(again[kind], data[kind]), kind
    assert same(again["parameters"],
                [p for p in data["parameters"]
                 if p["component"] in ("vhost-limits", "operator_policy")])
    assert again["policies"] == data["policies"]
    for kind in ("exchanges", "queues", "bindings"):
        assert same(again[kind], [i for i in data[kind] if i["vhost"] == "lang-prod"]), kind


def test_from_definitions_of_only_what_is_carried_exits_0(warren, tmp_path) -> None:
    data = json.loads(EXPORT.read_text())
    for kind in ("policies", "global_parameters"):
        data[kind] = []
    data["parameters"] = [p for p in data["parameters"] if p["component"] == "vhost-limits"]
    write(tmp_path, "defs.json", json.dumps(data))
    result = warren("config", "from-definitions", "defs.json", "--vhost", "lang-staging",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # only notes: the other vhost's topology is there for --vhost lang-prod
    assert result.stderr == (
        "warren config from-definitions: defs.json: note: left out the topology of 1 other "
        "vhost (one file holds one vhost's topology; convert each with --vhost): lang-prod "
        "(1 exchange, 1 queue, 1 binding)\n"
    )
    assert "exchange lang-staging-x type fanout durable\n" in result.stdout


def test_from_definitions_with_a_pattern_pythons_re_refuses(warren, tmp_path) -> None:
    # PCRE reads \Q...\E; Python's re does not: the text is printed, and the
    # permission is named on stderr as `config check` would name it (exit 1).
    write(tmp_path, "defs.json", json.dumps({
        "users": [{"name": "u", "password_hash": "", "tags": []}],
        "permissions": [{"user": "u", "vhost": "/", "configure": "\\Qa.b\\E",
                         "write": "", "read": ""}],
    }))
    result = warren("config", "from-definitions", "defs.json", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == (
        'user u\n\npermission u on / configure "\\\\Qa.b\\\\E" write "" read ""\n'
    )
    assert result.stderr.startswith(
        "defs.json (converted):3:29: invalid regular expression '\\\\Qa.b\\\\E': bad escape \\Q"
    )


# -- hash-password ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "md5"])
def test_hash_password(warren, algorithm) -> None:
    args = ["config", "hash-password"] + (["--algorithm", algorithm] if algorithm != "sha256"
                                          else [])
    result = warren(*args, input="s3cret pässword\n")
    assert result.returncode == 0, result.stderr
    made = result.stdout.strip()
    module = f"rabbit_password_hashing_{algorithm}"
    assert verify_password("s3cret pässword", made, module)
    assert not verify_password("s3cret pässword\n", made, module)
    # two runs, two salts
    assert warren(*args, input="s3cret pässword\n").stdout.strip() != made
    # and the language takes it
    line = f"    hashing-algorithm {algorithm}\n" if algorithm != "sha256" else ""
    assert config.check(f'user u\n    password-hash "{made}"\n{line}') == []


def test_hash_password_refuses_an_empty_one(warren) -> None:
    result = warren("config", "hash-password", input="\n")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "warren config hash-password: the password is empty, and RabbitMQ refuses empty "
        "passwords (a user without a password has no password-hash in the file)\n"
    )


# -- apply without the management API ------------------------------------------------------


def test_apply_needs_the_management_api_and_applies_nothing_without_it(
    warren, warren_url, unique, tmp_path
) -> None:
    q = unique("q")
    path = write(tmp_path, "a.conf", ACCESS + f"\nqueue {q}\n")
    result = warren("config", "apply", "a.conf", "--url", warren_url, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "warren config apply: a.conf:1: vhost prod and 3 more (1 vhost, 1 user, 1 permission, "
        "1 limit) cannot be applied over AMQP: pass --management-url http://HOST:15672 "
        "(or set $WARREN_MANAGEMENT_URL, or a profile: the management API); nothing was "
        "applied\n"
    )
    assert not exists(warren_url, "queue", q)
    assert path.read_text().endswith(f"queue {q}\n")


def test_an_unreachable_management_api_is_one_line_before_anything(
    warren, warren_url, unique, tmp_path
) -> None:
    q = unique("q")
    write(tmp_path, "a.conf", ACCESS + f"\nqueue {q}\n")
    port = closed_port()
    result = warren("config", "apply", "a.conf", "--url", warren_url, "--management-url",
                    f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren config apply: cannot connect to the management API at "
        f"http://127.0.0.1:{port}: connection refused (is the broker running, with its "
        "management API on that port?)\n"
    )
    assert not exists(warren_url, "queue", q)


# -- plan_access: the comparison, without a broker ------------------------------------------


def test_plan_access_compares_and_says_what_changes() -> None:
    model = config.parse(ACCESS + 'topic-permission alice on prod exchange t write "" read ""\n')
    fresh = plan_access(model, AccessState())
    assert [(a.outcome.status, a.outcome.declaration) for a in fresh] == [
        ("created", "vhost prod"),
        ("created", "user alice"),
        ("created", "permission alice on prod"),
        ("created", "topic-permission alice on prod exchange t"),
        ("created", "limit prod max-queues 10"),
    ]
    assert fresh[1].requests == [("/api/users/alice", {
        "password_hash": ALICE_HASH, "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": "administrator"})]
    assert fresh[4].requests == [("/api/vhost-limits/prod/max-queues", {"value": 10})]
    assert [a.outcome.status for a in plan_access(model, AccessState(), dry_run=True)] == [
        "would-create"] * 5
    assert all(not a.requests for a in plan_access(model, AccessState(), dry_run=True))

    state = AccessState(
        vhosts={"prod": {"description": "production", "tags": ["eu"]}},
        users={"alice": {"password_hash": ALICE_HASH,
                         "hashing_algorithm": "rabbit_password_hashing_sha256",
                         "tags": ["management"], "limits": {"max-connections": 3}}},
        permissions={("alice", "prod"): {"configure": ".*", "write": ".*", "read": ".*"}},
        topic_permissions={("alice", "prod", "t"): {"write": "", "read": "x"}},
        vhost_limits={"prod": {"max-queues": 10, "max-connections": 5}},
    )
    plan = plan_access(model, state)
    assert [(a.outcome.status, a.outcome.detail) for a in plan] == [
        ("changed", "description was 'production', now 'production, EU'"),
        ("changed", "tags were 'management', now 'administrator'"),
        ("present", ""),
        ("changed", "read was 'x', now ''"),
        ("present", ""),
    ]
    # the vhost keeps the tags the file does not give; the user keeps its password
    assert plan[0].requests == [("/api/vhosts/prod",
                                 {"description": "production, EU", "tags": "eu"})]
    assert plan[1].requests == [("/api/users/alice", {
        "password_hash": ALICE_HASH, "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": "administrator"})]


def test_plan_access_never_replaces_a_password_unless_asked() -> None:
    model = config.parse("user alice\n    tags administrator\n    max-connections 4\n")
    state = AccessState(users={"alice": {
        "password_hash": ALICE_HASH, "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": [], "limits": {}}})
    (conflict,) = plan_access(model, state)
    assert (conflict.outcome.status, conflict.outcome.detail, conflict.requests) == (
        "conflict", "password hash differs from the broker's; nothing changed (pass "
        "--replace-passwords to replace it)", [])
    (replaced,) = plan_access(model, state, replace_passwords=True)
    assert replaced.outcome.status == "changed"
    assert replaced.outcome.detail == (
        "password hash replaced; tags were none, now 'administrator'; max-connections set to 4"
    )
    assert replaced.requests == [
        ("/api/users/alice", {"password_hash": "", "tags": "administrator",
                              "hashing_algorithm": "rabbit_password_hashing_sha256"}),
        ("/api/user-limits/alice/max-connections", {"value": 4}),
    ]


def test_names_are_escaped_in_paths() -> None:
    model = config.parse('vhost "a/b c"\nuser "x y"\npermission "x y" on "a/b c" '
                         'configure "" write "" read ""\n')
    paths = [a.requests[0][0] for a in plan_access(model, AccessState())]
    assert paths == ["/api/vhosts/a%2Fb%20c", "/api/users/x%20y",
                     "/api/permissions/a%2Fb%20c/x%20y"]


# -- apply against the reference RabbitMQ's management API --------------------------------

REFERENCE_URL = os.environ.get("WARREN_REFERENCE_URL")
REFERENCE_MANAGEMENT_URL = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")
def management(base: str, method: str, path: str, body: object = None) -> object:
    """One call to the management API at `base` (the target's, without credentials)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    if not raw:
        return None
    # The reference broker is shared: other suites leave deeply nested argument tables.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        return json.loads(raw)
    finally:
        sys.setrecursionlimit(limit)


def reference_file(p: str, alice_hash: str, billing_hash: str) -> str:
    return f"""\
vhost {p}-prod
    description "production, EU"
    tags eu production
user {p}-alice
    password-hash "{alice_hash}"
    tags administrator monitoring
    max-connections 10
user {p}-billing
    password-hash "{billing_hash}"
    hashing-algorithm sha512
    tags billing-service
permission {p}-alice on {p}-prod configure ".*" write ".*" read ".*"
permission {p}-billing on {p}-prod configure "" write "^orders\\\\." read "^(billing|audit)$"
topic-permission {p}-billing on {p}-prod exchange amq.topic write "^orders\\\\..*" read ".*"
limit {p}-prod max-connections 100
limit {p}-prod max-queues 500

exchange {p}-orders type topic durable
queue {p}-billing durable
bind {p}-billing to {p}-orders key "order.*.created"
"""


def test_apply_access_file(warren, tmp_path, target) -> None:
    # Once on RabbitMQ only: Warren's API had no /api/user-limits (404), and
    # the file sets a user's max-connections. Now on both.
    from broker.auth.passwords import hash_password

    p = target.prefix
    for label in ("alice", "billing"):
        target.forget_user(f"{p}-{label}")
    target.forget_vhost(f"{p}-prod")

    def api(method: str, path: str, body: object = None) -> object:
        return management(target.base, method, path, body)

    can_log_in = target.can_log_in
    alice = hash_password("alice-pw")
    billing = hash_password("billing-pw", "rabbit_password_hashing_sha512")
    path = write(tmp_path, "access.conf", reference_file(p, alice, billing))
    # the topology goes to the vhost the file creates: apply makes it first
    url = target.url(f"{p}-prod")
    apply = ["config", "apply", "access.conf", "--url", url, *target.api]

    dry = warren(*apply, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "dry run, nothing changed: 11 would create"
    with pytest.raises(urllib.error.HTTPError):
        api("GET", f"/api/vhosts/{p}-prod")

    first = warren(*apply, cwd=tmp_path)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == (
        f"created      vhost {p}-prod\n"
        f"created      user {p}-alice\n"
        f"created      user {p}-billing\n"
        f"created      permission {p}-alice on {p}-prod\n"
        f"created      permission {p}-billing on {p}-prod\n"
        f"created      topic-permission {p}-billing on {p}-prod exchange amq.topic\n"
        f"created      limit {p}-prod max-connections 100\n"
        f"created      limit {p}-prod max-queues 500\n"
        f"created      exchange {p}-orders\n"
        f"created      queue {p}-billing\n"
        f'created      bind {p}-billing to {p}-orders key "order.*.created"\n'
        "11 created\n"
    )
    assert can_log_in(f"{p}-alice", "alice-pw", f"{p}-prod")
    assert can_log_in(f"{p}-billing", "billing-pw", f"{p}-prod")  # sha512
    assert api("GET", f"/api/users/{p}-billing") == {
        "name": f"{p}-billing", "password_hash": billing,
        "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ["billing-service"],
        "limits": {},
    }

    again = warren(*apply, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == "11 present"

    # RabbitMQ's export, through the language and back: every item carried
    exported = api("GET", "/api/definitions")
    assert isinstance(exported, dict)
    write(tmp_path, "defs.json", json.dumps(exported))
    converted = warren("config", "from-definitions", "defs.json", "--vhost", f"{p}-prod",
                       cwd=tmp_path)
    assert converted.returncode in (0, 1), converted.stderr  # the shared broker may hold policies
    mine = config.parse(converted.stdout, "converted.conf", f"{p}-prod")
    written = config.parse(path.read_text(), "access.conf", f"{p}-prod")

    def ours(m: config.TopologyConfig) -> list:
        keep = [d for d in m.declarations if p in repr(d.key())]
        return sorted(config.format(config.TopologyConfig([d])) for d in keep)

    # the vhost's description and tags are not in 3.10.8's export (it writes the name
    # only; Warren's has them); the guest permission on the new vhost is the
    # creating user's, on both
    if target.kind == "rabbitmq":
        written.vhosts[0].description = written.vhosts[0].tags = None
    assert [line for line in ours(mine) if not line.startswith("permission guest ")] == \
        ours(written)

    # a changed file: tags, a limit, a pattern, a description, a new password
    new_alice = hash_password("new-pw")
    changed = path.read_text().replace(
        "tags administrator monitoring", "tags monitoring").replace(
        "    max-connections 10\n", "    max-connections 20\n").replace(
        '"production, EU"', '"production, EU and US"').replace(
        "max-queues 500", "max-queues 600").replace(
        '"^(billing|audit)$"', '"^billing$"').replace(alice, new_alice)
    write(tmp_path, "access.conf", changed)
    result = warren(*apply, cwd=tmp_path)
    assert result.returncode == 1  # the password is a conflict
    lines = result.stdout.splitlines()
    assert lines[0] == (f"changed      vhost {p}-prod: description was 'production, EU', now "
                        "'production, EU and US'")
    assert lines[1] == (f"conflict     user {p}-alice: password hash differs from the "
                        "broker's; nothing changed (pass --replace-passwords to replace it)")
    assert lines[4] == (f"changed      permission {p}-billing on {p}-prod: read was "
                        "'^(billing|audit)$', now '^billing$'")
    assert lines[7] == f"changed      limit {p}-prod max-queues 600: was 500, now 600"
    assert lines[-1] == "3 changed, 7 present, 1 conflicting"
    assert can_log_in(f"{p}-alice", "alice-pw", f"{p}-prod")  # not replaced

    replaced = warren(*apply, "--replace-passwords", "--json", cwd=tmp_path)
    assert replaced.returncode == 0
    user = [json.loads(line) for line in replaced.stdout.splitlines()][1]
    assert user == {
        "status": "changed", "kind": "user", "name": f"{p}-alice",
        "declaration": f"user {p}-alice",
        "detail": "password hash replaced; tags were 'administrator monitoring', now "
                  "'monitoring'; max-connections was 10, now 20",
    }
    assert can_log_in(f"{p}-alice", "new-pw", f"{p}-prod")
    assert not can_log_in(f"{p}-alice", "alice-pw", f"{p}-prod")
    assert api("GET", f"/api/vhost-limits/{p}-prod") == [
        {"vhost": f"{p}-prod", "value": {"max-queues": 600, "max-connections": 100}}
    ]
    assert warren(*apply, cwd=tmp_path).stdout.splitlines()[-1] == "11 present"


#: How each broker's API refuses a pattern Python's re reads and PCRE does not.
REFUSED_PATTERN = {
    "rabbitmq": "invalid_regexp: \\N{EM DASH}: PCRE does not support \\L, \\l, \\N{name}, "
                "\\U, or \\u at 1",
    "warren": "invalid_regexp: not a regular expression (bad escape \\N at position 0): "
              "'\\\\N{EM DASH}'",
}


def test_apply_reports_what_the_broker_refuses(warren, tmp_path, target) -> None:
    # A pattern both brokers' APIs refuse (\N{...}, which PCRE does not
    # read): the permission fails, the rest is applied; each broker says why
    # in its own words.
    p = target.prefix
    target.forget_vhost(f"{p}-v")
    target.forget_user(f"{p}-u")
    write(tmp_path, "a.conf", (
        f"vhost {p}-v\nuser {p}-u\n"
        f'permission {p}-u on {p}-v configure "\\\\N{{EM DASH}}" write "" read ""\n'
        f"limit {p}-v max-queues 3\n"
    ))
    result = warren("config", "apply", "a.conf", *target.api, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"created      vhost {p}-v",
        f"created      user {p}-u",
        f"failed       permission {p}-u on {p}-v: HTTP 400: {REFUSED_PATTERN[target.kind]}",
        f"created      limit {p}-v max-queues 3",
        "3 created, 1 failed",
    ]
    assert target.http("GET", f"/api/vhost-limits/{quote(p + '-v', safe='')}") == [
        {"vhost": f"{p}-v", "value": {"max-queues": 3}}
    ]


def test_hash_password_refuses_what_is_not_utf8(warren) -> None:
    result = warren("config", "hash-password", input=b"\xff\xfe\n")
    assert (result.returncode, result.stdout) == (2, b"")
    assert result.stderr == (
        b"warren config hash-password: the password is not UTF-8 text (invalid start byte at "
        b"byte 0); RabbitMQ hashes a password's UTF-8 bytes\n"
    )


def run_on_a_terminal(args: list[str], typed: list[bytes]) -> tuple[int, bytes]:
    """Run `warren ARGS` with a terminal as its controlling tty; type each line
    of `typed` after a prompt. (exit status, everything the terminal showed)."""
    import pty
    import time

    from cli_helpers import WARREN

    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout, stderr and /dev/tty are the terminal
        os.execv(str(WARREN), [str(WARREN), *args])
    import select

    shown = b""
    pending = list(typed)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            data = os.read(fd, 1024)
        except OSError:  # EIO: the child is gone
            break
        if not data:
            break
        shown += data
        if pending and shown.endswith(b": "):  # a prompt, waiting
            os.write(fd, pending.pop(0) + b"\n")
    else:
        os.kill(pid, 9)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown


def test_hash_password_at_a_terminal_asks_twice() -> None:
    code, shown = run_on_a_terminal(["config", "hash-password"], [b"s3cret", b"s3cret"])
    assert code == 0, shown
    lines = shown.decode().replace("\r", "").split("\n")
    assert lines[:2] == ["Password: ", "Again: "]
    assert "s3cret" not in shown.decode()  # not echoed
    assert verify_password("s3cret", lines[2], "rabbit_password_hashing_sha256")
    code, shown = run_on_a_terminal(["config", "hash-password"], [b"s3cret", b"other"])
    assert code == 2
    assert shown.decode().replace("\r", "").endswith(
        "warren config hash-password: the two passwords differ; nothing printed\n"
    )
