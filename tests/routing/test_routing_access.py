"""The access statements: vhost, user, permission, topic-permission, limit.

Parsing, the formatter, the exact error texts, and RabbitMQ definitions JSON
both ways on real RabbitMQ 3.10.8 exports (tests/routing/data; the names had a
random prefix, replaced by "lang", and the cluster id was replaced).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing import config
from routing.config.access import check_password_hash
from routing.model import (
    PermissionDecl,
    TopicPermissionDecl,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)

DATA = Path(__file__).parent / "data"
EXPORT = DATA / "rabbitmq-3.10.8-access-definitions.json"
VHOST_EXPORT = DATA / "rabbitmq-3.10.8-vhost-definitions.json"

ALICE_HASH = "WY9ucuBKFiDCFPUGXQSq8bbM5Fy4SeFe9N/EOA4PUpOc9XXY"
BILLING_HASH = (
    "Xu1aF4bxV+x5op7uJNulXxrHFaj2Hi/2o5+z6BeLvcMTMTlU9vIvb915Wvt9hmqEZz+9x2ZDBMiqCxXUkMBttmypx50="
)

ACCESS = f"""\
# Who may do what.
vhost prod
    description "production, EU"
    tags eu production

user alice  # the on-call admin
    password-hash "{ALICE_HASH}"
    tags administrator monitoring
user billing
    password-hash "{BILLING_HASH}"
    hashing-algorithm sha512
    tags billing-service
    max-connections 5  # one per worker
user nologin

permission alice on prod configure ".*" write ".*" read ".*"
permission billing on prod configure "" write "^orders\\\\." read "^(billing|audit)$"
topic-permission billing on prod exchange amq.topic write "^orders\\\\..*" read ".*"
limit prod max-connections 100
limit prod max-queues 500

exchange orders type topic durable
"""


def errors(text: str, vhost: str = "/") -> list[str]:
    return [str(e) for e in config.check(text, "access.conf", vhost)]


def only_error(text: str, vhost: str = "/") -> str:
    found = errors(text, vhost)
    assert len(found) == 1, found
    return found[0]


# -- the model, the formatter ------------------------------------------------------


def test_parse_builds_the_model() -> None:
    m = config.parse(ACCESS, "access.conf")
    assert m.vhosts == [VHostDecl("prod", "production, EU", ["eu", "production"])]
    assert m.users == [
        UserDecl("alice", ALICE_HASH, tags=["administrator", "monitoring"]),
        UserDecl("billing", BILLING_HASH, "rabbit_password_hashing_sha512",
                 ["billing-service"], {"max-connections": 5}),
        UserDecl("nologin"),
    ]
    assert m.permissions == [
        PermissionDecl("alice", "prod", ".*", ".*", ".*"),
        PermissionDecl("billing", "prod", "", "^orders\\.", "^(billing|audit)$"),
    ]
    assert m.topic_permissions == [
        TopicPermissionDecl("billing", "prod", "amq.topic", "^orders\\..*", ".*"),
    ]
    assert m.limits == [
        VHostLimitDecl("prod", "max-connections", 100),
        VHostLimitDecl("prod", "max-queues", 500),
    ]
    assert [x.name for x in m.exchanges] == ["orders"]
    assert len(m.access) == 9 and len(m.topology) == 1
    assert m.users[0].origin.trailing_comment == "the on-call admin"
    assert m.users[1].origin.option_comments == {"max-connections": "one per worker"}


def test_the_formatter_is_canonical_and_keeps_comments() -> None:
    messy = (
        "# Who may do what.\n"
        'vhost prod tags eu production description "production, EU"\n'
        "\n"
        f'user alice tags administrator monitoring password-hash "{ALICE_HASH}"'
        "  # the on-call admin\n"
        f'user billing max-connections 5 tags "billing-service" hashing-algorithm '
        "rabbit_password_hashing_sha512\n"
        f'    password-hash "{BILLING_HASH}"\n'
        "user nologin\n"
        "\n"
        'permission alice on prod read ".*" write ".*" configure ".*"\n'
        'permission billing on prod\n    configure ""\n    write "^orders\\\\."\n'
        '    read "^(billing|audit)$"\n'
        'topic-permission billing on prod read ".*" write "^orders\\\\..*" exchange amq.topic\n'
        "limit prod max-connections 100\n"
        "limit prod max-queues 500\n"
        "\n"
        "exchange orders type topic durable\n"
    )
    text = config.format(config.parse(messy))
    assert text == ACCESS.replace("    max-connections 5  # one per worker\n",
                                  "    max-connections 5\n")
    assert config.format(config.parse(ACCESS)) == ACCESS
    assert config.parse(text) == config.parse(ACCESS)


def test_tags_that_would_read_otherwise_are_quoted() -> None:
    m = config.parse('user u tags "password-hash" "adminstrator" "a b" custom\n')
    assert m.users[0].tags == ["password-hash", "adminstrator", "a b", "custom"]
    text = config.format(m)
    assert text == 'user u\n    tags "password-hash" "adminstrator" "a b" custom\n'
    assert config.parse(text) == m


def test_the_files_own_vhost_needs_no_vhost_statement() -> None:
    text = (
        'user u\npermission u on prod configure "" write "" read ""\n'
        'permission u on / configure "" write "" read ""\nlimit prod max-queues 10\n'
    )
    assert errors(text, vhost="prod") == []
    assert [e.splitlines()[0] for e in errors(text)] == [
        "access.conf:2:17: vhost 'prod' is not declared",
        "access.conf:4:7: vhost 'prod' is not declared",
    ]


def test_the_hashes_the_broker_makes_are_accepted() -> None:
    from broker.auth.passwords import ALGORITHMS, hash_password

    for module in ALGORITHMS:
        made = hash_password("s3cret", module)
        assert check_password_hash(made, module) is None
        short = module.rsplit("_", 1)[1]
        m = config.parse(f'user u\n    password-hash "{made}"\n    hashing-algorithm {short}\n')
        assert (m.users[0].password_hash, m.users[0].hashing_algorithm) == (made, module)
    # the example of broker.auth.passwords: RabbitMQ 3.10's hash of "guest"
    assert check_password_hash(
        "ttFpXR8Ha6VMd2aJcoNQ84laKAyOS8vZazudbK7P+9FLAjqU", "rabbit_password_hashing_sha256"
    ) is None


# -- errors: the exact text ----------------------------------------------------------


def test_an_unknown_user_or_vhost_in_a_permission() -> None:
    text = 'user alice\nvhost prod\npermission alise on prd configure ".*" write ".*" read ".*"\n'
    assert errors(text) == [
        "access.conf:3:12: user 'alise' is not declared: did you mean 'alice'?\n"
        '    permission alise on prd configure ".*" write ".*" read ".*"\n'
        "               ^^^^^",
        "access.conf:3:21: vhost 'prd' is not declared: did you mean 'prod'?\n"
        '    permission alise on prd configure ".*" write ".*" read ".*"\n'
        "                        ^^^",
    ]
    assert only_error('topic-permission bob on / exchange x write "" read ""\n') == (
        "access.conf:1:18: user 'bob' is not declared\n"
        '    topic-permission bob on / exchange x write "" read ""\n'
        "                     ^^^\n"
        '    hint: declare it with: user bob password-hash "..."'
    )
    assert only_error("limit staging max-queues 0\n", vhost="prod") == (
        "access.conf:1:7: vhost 'staging' is not declared\n"
        "    limit staging max-queues 0\n"
        "          ^^^^^^^\n"
        "    hint: declare it with: vhost staging ('/' and the file's own vhost, 'prod', "
        "need none)"
    )


def test_duplicates() -> None:
    text = (
        "user alice\nuser alice\nvhost v\nvhost v\n"
        'permission alice on v configure "" write "" read ""\n'
        'permission alice on v configure ".*" write "" read ""\n'
        'topic-permission alice on v exchange t write "" read ""\n'
        'topic-permission alice on v exchange t write ".*" read ""\n'
        'topic-permission alice on v exchange u write "" read ""\n'
        "limit v max-queues 1\nlimit v max-queues 2\nlimit v max-connections 2\n"
    )
    assert [e.splitlines()[0] for e in errors(text)] == [
        "access.conf:2:6: user 'alice' is declared twice",
        "access.conf:4:7: vhost 'v' is declared twice",
        "access.conf:6:12: the permission of 'alice' on vhost 'v' is declared twice",
        "access.conf:8:18: the topic permission of 'alice' on vhost 'v' for exchange 't' is "
        "declared twice",
        "access.conf:11:7: limit max-queues of vhost 'v' is declared twice",
    ]
    assert errors(text)[2].endswith(
        "hint: a user has one permission per vhost; the first is at line 5"
    )


def test_an_invalid_pattern() -> None:
    text = 'user u\npermission u on / configure "(" write "" read "[z-a]"\n'
    assert errors(text) == [
        "access.conf:2:29: invalid regular expression '(': missing ), unterminated subpattern "
        "at position 0\n"
        '    permission u on / configure "(" write "" read "[z-a]"\n'
        "                                ^^^\n"
        "    hint: Python's re reads the pattern; RabbitMQ uses PCRE, nearly the same",
        "access.conf:2:47: invalid regular expression '[z-a]': bad character range z-a at "
        "position 1\n"
        '    permission u on / configure "(" write "" read "[z-a]"\n'
        "                                                  ^^^^^^^\n"
        "    hint: Python's re reads the pattern; RabbitMQ uses PCRE, nearly the same",
    ]


def test_a_single_backslash_in_a_pattern() -> None:
    # In a quoted string \. is just ".": the pattern would match more than meant.
    assert only_error('user u\npermission u on / configure "" write "^orders\\." read ""\n') == (
        "access.conf:2:46: '\\.' in a quoted string is just '.': a backslash of a regular "
        "expression is written '\\\\' (as in JSON: \"\\\\.\")\n"
        '    permission u on / configure "" write "^orders\\." read ""\n'
        "                                                 ^^"
    )


def test_patterns_are_quoted() -> None:
    assert only_error("user u\npermission u on / configure .* write \"\" read \"\"\n") == (
        'access.conf:2:29: the configure pattern is written in quotes: ".*"\n'
        '    permission u on / configure .* write "" read ""\n'
        "                                ^^\n"
        '    hint: patterns are regular expressions, always quoted ("" allows nothing)'
    )


def test_a_missing_clause() -> None:
    assert only_error('user u\npermission u on / configure ".*" read ".*"\n') == (
        "access.conf:2:12: a permission needs write\n"
        '    permission u on / configure ".*" read ".*"\n'
        "               ^\n"
        '    hint: permission <user> on <vhost> configure "<regex>" write "<regex>" read "<regex>"'
    )
    assert errors("user u\npermission u on /\n")[0].splitlines()[0] == (
        "access.conf:2:12: a permission needs configure, write and read"
    )


def test_a_missing_on() -> None:
    assert only_error("user u\npermission u / configure \"\"\n") == (
        "access.conf:2:14: expected 'on', found '/'\n"
        '    permission u / configure ""\n'
        "                 ^\n"
        '    hint: permission <user> on <vhost> configure "<regex>" write "<regex>" read "<regex>"'
    )


def test_a_password_is_never_written() -> None:
    assert only_error('user bob password "s3cret"\n') == (
        "access.conf:1:10: a configuration file holds password hashes, never passwords\n"
        '    user bob password "s3cret"\n'
        "             ^^^^^^^^\n"
        '    hint: password-hash "..." (warren config hash-password prints one)'
    )


def test_a_malformed_password_hash() -> None:
    assert only_error('user bob\n    password-hash "abc"\n') == (
        "access.conf:2:19: a password hash is base64 (as RabbitMQ exports it)\n"
        '        password-hash "abc"\n'
        "                      ^^^^^\n"
        "    hint: warren config hash-password prints a valid one"
    )
    # a sha256 hash with the algorithm sha512: the length gives it away
    assert only_error(f'user bob password-hash "{ALICE_HASH}" hashing-algorithm sha512\n') == (
        "access.conf:1:24: a sha512 password hash is 68 bytes (4 of salt, then the digest), "
        "this one is 36\n"
        f'    user bob password-hash "{ALICE_HASH}" hashing-algorithm sha512\n'
        "                           " + "^" * (len(ALICE_HASH) + 2) + "\n"
        "    hint: warren config hash-password prints a valid one"
    )


def test_an_unknown_hashing_algorithm() -> None:
    assert only_error("user bob hashing-algorithm sha1\n") == (
        "access.conf:1:28: unknown hashing-algorithm 'sha1': did you mean 'sha512'?\n"
        "    user bob hashing-algorithm sha1\n"
        "                               ^^^^\n"
        "    hint: sha256 (RabbitMQ's default), sha512 or md5"
    )


def test_a_misspelt_known_tag() -> None:
    assert only_error("user bob tags adminstrator\n") == (
        "access.conf:1:15: unknown tag 'adminstrator': did you mean 'administrator'?\n"
        "    user bob tags adminstrator\n"
        "                  ^^^^^^^^^^^^\n"
        "    hint: RabbitMQ gives administrator, monitoring, policymaker, management, "
        "impersonator a meaning; write a tag in quotes to keep it as it is"
    )
    assert errors('user bob tags "adminstrator" ops-team\n') == []


def test_bad_tags() -> None:
    assert [e.splitlines()[0] for e in errors('user a tags "x,y" ok ok\nvhost v tags\n')] == [
        "access.conf:1:13: a tag cannot be empty, hold ',' or start or end with a space, "
        'got "x,y"',
        "access.conf:1:22: tag 'ok' is given twice",
        "access.conf:2:13: tags needs at least one tag",
    ]


def test_limits() -> None:
    first = [
        errors(text)[0].splitlines()[0]
        for text in (
            "limit / max-queues ten\n",
            "limit / max-queues 1 max-connections 2\n",
            "limit / max-channels 1\n",
            "limit /\n",
            "limit / max-connections 9223372036854775808\n",
            "user u max-queues 1\n",
            "vhost v max-connections 1\n",
        )
    ]
    assert first == [
        "access.conf:1:20: max-queues takes a whole number, not 'ten'",
        "access.conf:1:22: one limit per statement",
        "access.conf:1:9: max-channels is a user limit, not a vhost limit",
        "access.conf:1:8: limit needs max-connections <n> or max-queues <n>",
        "access.conf:1:25: max-connections must be between -9223372036854775808 and "
        "9223372036854775807, got '9223372036854775808'",
        "access.conf:1:8: max-queues is a vhost limit, not a user limit",
        "access.conf:1:9: max-connections is not an option of a vhost: vhost limits are "
        "statements of their own",
    ]
    m = config.parse("limit / max-connections -1\nlimit / max-queues 0\n")
    assert [(lim.name, lim.value) for lim in m.limits] == [
        ("max-connections", -1), ("max-queues", 0)
    ]


def test_misspelt_options_and_statements() -> None:
    assert only_error('user u\npermission u on / configur "" write "" read ""\n') == (
        "access.conf:2:19: unknown permission option 'configur': did you mean 'configure'?\n"
        '    permission u on / configur "" write "" read ""\n'
        "                      ^^^^^^^^\n"
        "    hint: permission options: configure, write, read"
    )
    assert only_error("usr alice\n").splitlines()[0] == (
        "access.conf:1:1: unknown statement 'usr': did you mean 'user'?"
    )
    assert only_error("user u\n    permission u on / x\n").splitlines()[0] == (
        "access.conf:2:5: unexpected 'permission' inside a user statement"
    )
    assert only_error('user u\npermission u on / exchange x configure "" write "" read ""\n') \
        .splitlines()[0] == (
            "access.conf:2:19: a permission has no exchange: it covers every resource whose "
            "name matches"
        )


# -- definitions JSON ---------------------------------------------------------------


def test_to_definitions_writes_rabbitmqs_shapes() -> None:
    defs = config.to_definitions(config.parse(ACCESS), "prod")
    assert list(defs) == ["users", "vhosts", "permissions", "topic_permissions", "parameters",
                          "exchanges", "queues", "bindings"]
    assert defs["users"] == [
        {"name": "alice", "password_hash": ALICE_HASH,
         "hashing_algorithm": "rabbit_password_hashing_sha256",
         "tags": ["administrator", "monitoring"], "limits": {}},
        {"name": "billing", "password_hash": BILLING_HASH,
         "hashing_algorithm": "rabbit_password_hashing_sha512",
         "tags": ["billing-service"], "limits": {"max-connections": 5}},
        {"name": "nologin", "password_hash": "",
         "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [], "limits": {}},
    ]
    assert defs["vhosts"] == [
        {"name": "prod", "description": "production, EU", "tags": ["eu", "production"]}
    ]
    assert defs["permissions"][1] == {
        "user": "billing", "vhost": "prod", "configure": "", "write": "^orders\\.",
        "read": "^(billing|audit)$",
    }
    assert defs["topic_permissions"] == [
        {"user": "billing", "vhost": "prod", "exchange": "amq.topic",
         "write": "^orders\\..*", "read": ".*"},
    ]
    assert defs["parameters"] == [
        {"value": {"max-connections": 100, "max-queues": 500}, "vhost": "prod",
         "component": "vhost-limits", "name": "limits"},
    ]
    # a file without access statements gives what it always gave
    assert list(config.to_definitions(config.parse("queue q\n"))) == [
        "exchanges", "queues", "bindings"
    ]


def _sorted(items: list[dict]) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True) for i in items)


CARRIED = ("users", "vhosts", "permissions", "topic_permissions")


def test_a_rabbitmq_export_through_the_language_and_back() -> None:
    data = json.loads(EXPORT.read_text())
    dropped: list[str] = []
    notes: list[str] = []
    m = config.from_definitions(data, "lang-prod", warn=dropped.append, note=notes.append)
    text = config.format(m)
    assert config.check(text, "converted.conf", "lang-prod") == []
    again = config.to_definitions(config.parse(text, "converted.conf", "lang-prod"), "lang-prod")
    # every user, vhost, permission and topic permission, as exported
    for kind in CARRIED:
        assert _sorted(again[kind]) == _sorted(data[kind]), kind
    # the vhost limits and the operator policy: the parameters of those components
    parameters = [p for p in data["parameters"]
                  if p["component"] in ("vhost-limits", "operator_policy")]
    assert len(parameters) == 3
    assert _sorted(again["parameters"]) == _sorted(parameters)
    # the vhost's policy, as exported
    assert again["policies"] == data["policies"]
    # the topology of lang-prod
    for kind in ("exchanges", "queues", "bindings"):
        ours = [i for i in data[kind] if i["vhost"] == "lang-prod"]
        assert ours and _sorted(again[kind]) == _sorted(ours), kind
    # and what could not be carried is named
    assert dropped == [
        "global_parameters: left out 1 global parameter (the configuration language has no "
        "global parameters): lang-owner",
    ]
    assert notes == [
        "global_parameters: left out internal_cluster_id, the node's own cluster id (not "
        "configuration: importing it would give another cluster the same id)",
        "left out the topology of 1 other vhost (one file holds one vhost's topology; convert "
        "each with --vhost): lang-staging (1 exchange)",
    ]


def test_the_export_as_text() -> None:
    m = config.from_definitions(json.loads(EXPORT.read_text()), "lang-prod",
                                warn=lambda message: None)
    text = config.format(m)
    assert text.startswith(
        "vhost lang-staging\nvhost /\nvhost lang-prod\n\n"
        "limit lang-staging max-queues 0\nlimit lang-prod max-queues 500\n"
        "limit lang-prod max-connections 100\n\n"
        "user lang-legacy\n"
        '    password-hash "Xu1aF47M9IeKH/a7cZR0NZNC3/s="\n'
        "    hashing-algorithm md5\n"
        "    tags policymaker\n"
    )
    assert "user lang-nologin\n\npermission guest on lang-staging" in text
    assert ('permission lang-billing on lang-prod configure "" write "^orders\\\\." '
            'read "^(billing|audit)$"\n') in text
    assert ('topic-permission lang-billing on lang-prod exchange lang-events write "" '
            'read "^eu\\\\."\n') in text


def test_a_per_vhost_export() -> None:
    # GET /api/definitions/VHOST: no users or vhosts, topology without a vhost field
    data = json.loads(VHOST_EXPORT.read_text())
    dropped: list[str] = []
    m = config.from_definitions(data, "lang-prod", warn=dropped.append)
    assert [(lim.vhost, lim.name, lim.value) for lim in m.limits] == [
        ("lang-prod", "max-queues", 500), ("lang-prod", "max-connections", 100)
    ]
    assert [q.name for q in m.queues] == ["lang-billing"]
    assert [(p.keyword, p.name) for p in m.policies] == [
        ("policy", "lang-ttl"), ("operator-policy", "lang-cap")
    ]
    assert dropped == []
    text = config.format(m)
    assert config.check(text, "x.conf", vhost="lang-prod") == []
    assert [e.message for e in config.check(text, "x.conf")] == [
        "vhost 'lang-prod' is not declared", "vhost 'lang-prod' is not declared"
    ]


def test_tags_as_a_comma_separated_string_and_vhost_metadata() -> None:
    data = {
        "users": [{"name": "u", "password_hash": "", "tags": "administrator, custom,,",
                   "limits": {"max-connections": 3, "max-sessions": 1}}],
        "vhosts": [
            {"name": "a", "description": "A", "tags": "x,y"},
            {"name": "b", "metadata": {"description": "B", "tags": ["z"],
                                       "default_queue_type": "quorum"}},
            {"name": "c", "description": "", "tags": [], "default_queue_type": "undefined",
             "tracing": False},
        ],
    }
    dropped: list[str] = []
    m = config.from_definitions(data, warn=dropped.append)
    assert m.users == [UserDecl("u", tags=["administrator", "custom"],
                                limits={"max-connections": 3})]
    assert m.vhosts == [VHostDecl("a", "A", ["x", "y"]), VHostDecl("b", "B", ["z"]),
                        VHostDecl("c")]
    assert dropped == [
        "vhosts[1]: skipped default_queue_type 'quorum' of vhost 'b': the configuration "
        "language has no way to write it",
        "users[0]: skipped user limit 'max-sessions' of user 'u': RabbitMQ 3.10's user limits "
        "are max-connections and max-channels",
    ]


def test_malformed_access_items_are_problems() -> None:
    bad = {
        "users": [{"name": "u", "hashing_algorithm": "rabbit_password_hashing_sha1",
                   "tags": 5, "limits": {"max-connections": "ten"}}],
        "permissions": [{"user": "u", "vhost": "/", "configure": 1, "write": "", "read": ""}],
        "parameters": [{"component": "vhost-limits", "vhost": "/", "name": "limits",
                        "value": {"max-queues": 1.5}}],
        "policies": {},
    }
    with pytest.raises(config.DefinitionsError) as info:
        config.from_definitions(bad, warn=lambda message: None)
    assert info.value.problems == [
        "users[0].hashing_algorithm: unknown password hashing algorithm "
        "'rabbit_password_hashing_sha1'",
        "users[0].tags: expected an array of strings, got 5",
        "users[0].limits.max-connections: expected a whole number, got 'ten'",
        "permissions[0].configure: expected a string, got 1",
        "parameters[0].value.max-queues: expected a whole number, got 1.5",
        "policies: expected an array, got dict",
    ]


def test_an_invalid_pattern_in_an_export_is_kept_and_check_names_it() -> None:
    # PCRE reads some patterns Python's re does not: the item is kept, and
    # checking the converted text says which (from-definitions prints both).
    data = {"users": [{"name": "u", "password_hash": ""}],
            "permissions": [{"user": "u", "vhost": "/", "configure": "(?i)a(?-i)b|\\Qx\\E",
                             "write": "", "read": ""}]}
    m = config.from_definitions(data)
    found = config.check(config.format(m))
    assert len(found) == 1 and "invalid regular expression" in found[0].message


@pytest.mark.parametrize(
    "pattern",
    # PCRE syntax RabbitMQ 3.10.8 accepted (measured) that Python's re refuses:
    # errors here (docs/config-language.md lists them, and what to write instead)
    ["\\\\Qa.b\\\\E", "a(?i)b", "a\\\\Kb", "(?<n>x)", "\\\\h", "\\\\R", "\\\\p{L}", "(?|a|b)",
     "\\\\x{41}"],
)
def test_pcre_only_syntax_is_an_error_here(pattern: str) -> None:
    found = errors(f'user u\npermission u on / configure "{pattern}" write "" read ""\n')
    assert len(found) == 1 and "invalid regular expression" in found[0], found


def test_a_posix_class_compiles_without_a_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re's FutureWarning would be an exception
        assert errors('user u\npermission u on / configure "[[:alpha:]]" write "" read ""\n') == []
