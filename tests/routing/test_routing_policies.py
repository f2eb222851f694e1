"""The `policy` and `operator-policy` statements: parse, check, format, definitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.core import policies as core
from routing import config
from routing.config.options import (
    OPERATOR_POLICY_OPTIONS,
    POLICY_OPTIONS,
    POLICY_REFUSED,
)
from routing.model import PolicyDecl

DATA = Path(__file__).parent / "data"

TEXT = """\
# Orders expire after a minute and die to orders.dlx.
policy orders-ttl pattern "^orders\\\\." apply-to queues priority 1
    message-ttl 1m
    max-length-bytes 10MiB
    overflow reject-publish-dlx
    dead-letter-exchange orders.dlx  # the retry loop
    dead-letter-routing-key "retry"
policy unrouted pattern "^orders$" apply-to exchanges
    alternate-exchange orders.unrouted
operator-policy cap pattern ".*" priority -1
    expires 7d
    max-length 100000

exchange orders type topic
exchange orders.dlx type fanout
exchange orders.unrouted type fanout
"""


def test_policies_parse_into_the_model() -> None:
    model = config.parse(TEXT)
    assert model.policies == [
        PolicyDecl("orders-ttl", "^orders\\.", {
            "message-ttl": 60_000, "max-length-bytes": 10 * 2**20,
            "overflow": "reject-publish-dlx", "dead-letter-exchange": "orders.dlx",
            "dead-letter-routing-key": "retry",
        }, "queues", 1),
        PolicyDecl("unrouted", "^orders$", {"alternate-exchange": "orders.unrouted"},
                   "exchanges", 0),
        PolicyDecl("cap", ".*", {"expires": 7 * 86_400_000, "max-length": 100000}, "all", -1,
                   operator=True),
    ]


def test_the_text_is_canonical_and_round_trips() -> None:
    model = config.parse(TEXT)
    assert config.format(model) == TEXT
    assert config.parse(config.format(model)) == model


def test_fmt_normalises_a_policy() -> None:
    text = 'policy p priority 0 apply-to all pattern "x" max-length 5 message-ttl 30000\n'
    assert config.format(config.parse(text)) == (
        'policy p pattern "x"\n    message-ttl 30s\n    max-length 5\n'
    )


def errors(text: str) -> list[str]:
    return [str(e) for e in config.check(text, "p.conf")]


def test_every_mistake_is_reported_with_a_hint() -> None:
    text = (
        'policy p pattern "^orders\\." apply-to queus priority high\n'
        "    mesage-ttl 30s\n"
        "    ha-mode all\n"
        "    dead-letter-exchange nope\n"
        "    max-length -1\n"
        'operator-policy o pattern ".*"\n'
        "    dead-letter-exchange \"\"\n"
        "policy q apply-to all\n"
        "    max-length 1\n"
        'policy r pattern "x"\n'
        'policy p pattern "y"\n'
        "    max-length 2\n"
    )
    assert errors(text) == [
        "p.conf:1:26: '\\.' in a quoted string is just '.': a backslash of a regular "
        "expression is written '\\\\' (as in JSON: \"\\\\.\")\n"
        '    policy p pattern "^orders\\." apply-to queus priority high\n'
        "                             ^^",
        "p.conf:1:39: unknown apply-to 'queus': did you mean 'queues'?\n"
        '    policy p pattern "^orders\\." apply-to queus priority high\n'
        "                                          ^^^^^\n"
        "    hint: apply-to is queues, exchanges or all (the default)",
        "p.conf:1:54: priority takes a number, not high\n"
        '    policy p pattern "^orders\\." apply-to queus priority high\n'
        "                                                         ^^^^\n"
        "    hint: the highest priority that matches applies; 0 by default",
        "p.conf:2:5: unknown policy setting 'mesage-ttl': did you mean 'message-ttl'?\n"
        "        mesage-ttl 30s\n"
        "        ^^^^^^^^^^\n"
        "    hint: policy settings: message-ttl, expires, max-length, max-length-bytes, "
        "overflow, dead-letter-exchange, dead-letter-routing-key, delivery-limit, "
        "consumer-timeout, alternate-exchange",
        "p.conf:3:5: ha-mode is a RabbitMQ policy setting that Warren does not implement\n"
        "        ha-mode all\n"
        "        ^^^^^^^\n"
        "    hint: classic queue mirroring: Warren is a single node",
        "p.conf:4:26: dead-letter exchange 'nope' is not declared\n"
        "        dead-letter-exchange nope\n"
        "                             ^^^^\n"
        "    hint: declare it with: exchange nope type <type>",
        "p.conf:5:16: max-length must not be negative, got '-1'\n"
        "        max-length -1\n"
        "                   ^^",
        "p.conf:7:5: dead-letter-exchange is not a setting of an operator policy\n"
        '        dead-letter-exchange ""\n'
        "        ^^^^^^^^^^^^^^^^^^^^\n"
        "    hint: operator policies set the limits only: message-ttl, expires, max-length, "
        "max-length-bytes, delivery-limit",
        "p.conf:8:9: a policy needs a pattern\n"
        "    policy q apply-to all\n"
        "            ^\n"
        '    hint: policy <name> pattern "<regex>" [apply-to queues|exchanges|all] '
        "[priority <n>]",
        "p.conf:10:8: a policy needs at least one setting\n"
        '    policy r pattern "x"\n'
        "           ^\n"
        "    hint: on the indented lines below it, e.g. message-ttl 30s",
        "p.conf:11:8: policy 'p' is declared twice\n"
        '    policy p pattern "y"\n'
        "           ^\n"
        "    hint: the first is at line 1; keep one",
    ]


def test_a_policy_and_an_operator_policy_may_share_a_name() -> None:
    text = 'policy p pattern "x"\n    max-length 1\noperator-policy p pattern "x"\n    max-length 2\n'
    assert errors(text) == []


def test_a_misspelt_statement_suggests_policy() -> None:
    assert "did you mean 'policy'?" in errors('polcy p pattern "x"\n')[0]


def test_the_language_knows_what_the_broker_implements() -> None:
    # routing does not import broker: the two tables are kept equal here.
    assert set(POLICY_OPTIONS) == set(core.QUEUE_KEYS) | set(core.EXCHANGE_KEYS)
    assert set(OPERATOR_POLICY_OPTIONS) == set(core.OPERATOR_KEYS)
    assert POLICY_REFUSED == core.REFUSED_KEYS


@pytest.mark.parametrize("name", sorted(POLICY_OPTIONS))
def test_every_value_the_language_reads_the_broker_accepts(name: str) -> None:
    option = POLICY_OPTIONS[name]
    sample = {"duration": "30s", "count": "5", "size": "1MiB", "name": "x", "text": "k",
              "choice": option.choices[0] if option.choices else ""}[option.kind]
    model = config.parse(f'policy p pattern "."\n    {name} {sample}\nexchange x type direct\n')
    decl = model.policies[0]
    core.validate_policy("/", decl.name, pattern=decl.pattern, definition=decl.definition,
                         priority=decl.priority, apply_to=decl.apply_to)


def test_to_definitions_writes_policies_and_operator_policies_as_rabbitmq_exports_them() -> None:
    data = config.to_definitions(config.parse(TEXT), "orders")
    assert data["policies"][0] == {
        "vhost": "orders", "name": "orders-ttl", "pattern": "^orders\\.", "apply-to": "queues",
        "definition": {"message-ttl": 60000, "max-length-bytes": 10485760,
                       "overflow": "reject-publish-dlx", "dead-letter-exchange": "orders.dlx",
                       "dead-letter-routing-key": "retry"},
        "priority": 1,
    }
    assert data["parameters"] == [{
        "value": {"pattern": ".*", "definition": {"expires": 604800000, "max-length": 100000},
                  "priority": -1, "apply-to": "all"},
        "vhost": "orders", "component": "operator_policy", "name": "cap",
    }]
    # and a file without policies gives what it always gave
    assert list(config.to_definitions(config.parse("queue q\n"))) == [
        "exchanges", "queues", "bindings"
    ]


def test_from_definitions_keeps_the_vhosts_policies_and_notes_the_others() -> None:
    data = {
        "policies": [
            {"vhost": "a", "name": "ttl", "pattern": "^q", "apply-to": "queues",
             "definition": {"message-ttl": 1000}, "priority": 2},
            {"vhost": "b", "name": "other", "pattern": ".", "apply-to": "all",
             "definition": {"max-length": 1}, "priority": 0},
            {"vhost": "a", "name": "ha", "pattern": ".", "apply-to": "all",
             "definition": {"ha-mode": "all", "max-length": 1}, "priority": 0},
        ],
        "parameters": [
            {"value": {"pattern": ".", "definition": {"max-length": 5}, "priority": 0,
                       "apply-to": "queues"}, "vhost": "a", "component": "operator_policy",
             "name": "cap"},
        ],
    }
    warned: list[str] = []
    noted: list[str] = []
    model = config.from_definitions(data, "a", warn=warned.append, note=noted.append)
    assert [(p.keyword, p.name) for p in model.policies] == [
        ("policy", "ttl"), ("operator-policy", "cap")
    ]
    assert warned == [
        "policies[2]: skipped policy 'ha': setting 'ha-mode' is a RabbitMQ policy setting "
        "Warren does not implement (classic queue mirroring: Warren is a single node)"
    ]
    assert noted == [
        "left out the policies of 1 other vhost (a file's policies are its own vhost's; "
        "convert each with --vhost): b (1 policy)"
    ]


def test_malformed_policies_are_problems() -> None:
    data = {"policies": [
        {"vhost": "/", "name": "p", "pattern": 5, "definition": {"max-length": 1}},
        {"vhost": "/", "name": "q", "pattern": ".", "definition": {}},
        {"vhost": "/", "name": "r", "pattern": ".", "definition": {"max-length": "x"}},
        {"vhost": "/", "name": "s", "pattern": ".", "apply-to": "both",
         "definition": {"max-length": 1}},
    ]}
    with pytest.raises(config.DefinitionsError) as info:
        config.from_definitions(data)
    assert info.value.problems == [
        "policies[0]: policy 'p': pattern: expected a string, got 5",
        "policies[1]: policy 'q': definition: expected a non-empty object, got {}",
        "policies[2]: policy 'r': max-length takes a whole number, not 'x'",
        "policies[3]: policy 's': apply-to 'both' is not one of queues, exchanges, all",
    ]


def test_a_real_export_with_policies_through_the_language_and_back() -> None:
    # An export of the reference RabbitMQ 3.10.8 with a policy and an operator policy.
    data = json.loads((DATA / "rabbitmq-3.10.8-access-definitions.json").read_text())
    model = config.from_definitions(data, "lang-prod", warn=lambda m: None)
    text = config.format(model)
    assert 'policy lang-ttl pattern "^billing" apply-to queues priority 1\n' in text
    assert "    message-ttl 1m\n" in text
    assert 'operator-policy lang-cap pattern ".*" apply-to queues\n' in text
    again = config.to_definitions(config.parse(text, "x.conf", "lang-prod"), "lang-prod")
    assert again["policies"] == data["policies"]
    operator = [p for p in data["parameters"] if p["component"] == "operator_policy"]
    assert [p for p in again["parameters"] if p["component"] == "operator_policy"] == operator
