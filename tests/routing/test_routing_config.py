"""The configuration language: parsing, the formatter round trip, definitions JSON,
applying a configuration to a Topology."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import config
from routing.config.options import MAX_EXPIRY_MS, QUEUE_OPTIONS
from routing.exchanges import Destination
from routing.exchanges.consistent_hash import PROPERTIES
from routing.model import (
    BindingDecl,
    ExchangeDecl,
    PermissionDecl,
    PolicyDecl,
    QueueDecl,
    TopicPermissionDecl,
    TopologyConfig,
    UserDecl,
    VHostDecl,
    VHostLimitDecl,
)
from routing.topology import Topology

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parents[2] / "examples"
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ORDERS = """\
# The order pipeline.
exchange orders type topic durable
exchange orders.dlx type fanout durable  # dead letters land here

queue billing durable
    message-ttl 30s
    dead-letter-exchange orders.dlx
queue audit durable
    x-custom "hello world"

bind billing to orders key "order.*.created"
bind audit to orders.headers headers any format=json urgent
bind exchange orders.dlx to orders key "order.failed.#"
exchange orders.headers type headers
"""


def test_parse_builds_the_model() -> None:
    m = config.parse(ORDERS, "orders.conf")
    assert m.exchanges == [
        ExchangeDecl("orders", "topic", durable=True),
        ExchangeDecl("orders.dlx", "fanout", durable=True),
        ExchangeDecl("orders.headers", "headers"),
    ]
    assert m.queues == [
        QueueDecl(
            "billing",
            durable=True,
            arguments={"x-message-ttl": 30000, "x-dead-letter-exchange": "orders.dlx"},
        ),
        QueueDecl("audit", durable=True, arguments={"x-custom": "hello world"}),
    ]
    assert m.bindings == [
        BindingDecl("orders", "billing", "queue", "order.*.created"),
        BindingDecl(
            "orders.headers",
            "audit",
            "queue",
            "",
            {"x-match": "any", "format": "json", "urgent": None},
        ),
        BindingDecl("orders", "orders.dlx", "exchange", "order.failed.#"),
    ]
    assert m.exchanges[1].origin.trailing_comment == "dead letters land here"
    assert m.exchanges[0].origin.comments == ["The order pipeline."]


def test_format_is_canonical_and_keeps_comments() -> None:
    text = config.format(config.parse(ORDERS))
    assert text == (
        "# The order pipeline.\n"
        "exchange orders type topic durable\n"
        "exchange orders.dlx type fanout durable  # dead letters land here\n"
        "\n"
        "queue billing durable\n"
        "    message-ttl 30s\n"
        "    dead-letter-exchange orders.dlx\n"
        "queue audit durable\n"
        '    x-custom "hello world"\n'
        "\n"
        'bind billing to orders key "order.*.created"\n'
        "bind audit to orders.headers headers any format=json urgent\n"
        'bind exchange orders.dlx to orders key "order.failed.#"\n'
        "exchange orders.headers type headers\n"
    )
    assert config.format(config.parse(text)) == text


def test_units_are_normalised() -> None:
    m = config.parse("queue q message-ttl 90000 expires 2h max-length-bytes 1MB x-message-ttl2 5\n")
    assert m.queues[0].arguments == {
        "x-message-ttl": 90000,
        "x-expires": 7_200_000,
        "x-max-length-bytes": 1_000_000,
        "x-message-ttl2": 5,
    }
    assert config.format(m) == (
        "queue q\n    message-ttl 90s\n    expires 2h\n    max-length-bytes 1MB\n    x-message-ttl2 5\n"
    )


def test_generic_values_keep_their_types() -> None:
    m = config.parse('queue q x-a 5 x-b 2.5 x-c true x-d "5" x-e word argument plain "x"\n')
    assert m.queues[0].arguments == {
        "x-a": 5,
        "x-b": 2.5,
        "x-c": True,
        "x-d": "5",
        "x-e": "word",
        "plain": "x",
    }
    assert config.parse(config.format(m)) == m


def test_apply_to_topology_routes() -> None:
    m = config.parse(ORDERS)
    t = Topology()
    m.apply_to(t)
    assert t.route("orders", "order.eu.created") == ["billing"]
    assert t.route("orders.headers", "", {"urgent": 1}) == ["audit"]
    assert t.bindings_to(Destination("exchange", "orders.dlx"))


# -- definitions JSON ---------------------------------------------------------


def test_from_rabbitmq_export() -> None:
    data = json.loads((DATA / "rabbitmq-3.10.8-definitions.json").read_text())
    m = config.from_definitions(data)
    assert [x.name for x in m.exchanges] == ["rtdef.x", "rtdef.h", "rtdef.ae"]
    assert [q.name for q in m.queues] == ["rtdef.q"]  # the other vhost's queue is not ours
    assert m.exchanges[0].alternate_exchange == "rtdef.ae"
    assert m.exchanges[1] == ExchangeDecl("rtdef.h", "headers", auto_delete=True, internal=True)
    assert m.bindings[0].arguments == {"flag": True, "fmt": "json", "n": 5, "x-match": "any"}
    # Through the language and back to JSON: what RabbitMQ exported, for our vhost.
    again = config.to_definitions(config.parse(config.format(m)))
    for kind in ("exchanges", "queues", "bindings"):
        ours = [i for i in data[kind] if i["vhost"] == "/"]
        assert sorted(again[kind], key=json.dumps) == sorted(ours, key=json.dumps)


def test_from_definitions_reports_every_problem() -> None:
    bad = {
        "exchanges": [{"name": "x", "type": "topik"}],
        "queues": [{"name": "q", "arguments": {"x-message-ttl": -1, "x-max-length": "ten"}}],
        "bindings": [{"source": "x", "destination": "q", "destination_type": "table"}],
    }
    try:
        config.from_definitions(bad)
    except config.DefinitionsError as exc:
        assert exc.problems == [
            "exchanges[0].type: unknown exchange type 'topik'",
            "queues[0].arguments.x-message-ttl: message-ttl must not be negative, got '-1'",
            "queues[0].arguments.x-max-length: max-length takes a whole number, not 'ten'",
            "bindings[0].destination_type: expected queue or exchange",
        ]
    else:
        raise AssertionError("no error")


# -- generated models: print, parse, print ---------------------------------------

NAME_CHARS = 'ab.-_:/ #"\\=*é'
names = st.text(NAME_CHARS, min_size=1, max_size=8).filter(lambda n: not n.startswith("amq."))
texts = st.text(NAME_CHARS + "\t\n\r", max_size=10)
comments = st.text('ab #"=\t', max_size=8).map(str.strip)
generic_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    texts,
)
#: Binding keys of an x-consistent-hash exchange: weights, as RabbitMQ reads them.
weights = st.integers(1, 10**6).map(str) | st.sampled_from(["+3", "007", "1"])
x_names = st.from_regex(r"x-[a-z]{1,6}", fullmatch=True).filter(
    lambda n: n not in {o.argument for o in QUEUE_OPTIONS.values()}
)


@st.composite
def models(draw: st.DrawFn) -> TopologyConfig:
    exchange_names = draw(st.lists(names, max_size=4, unique=True))
    queue_names = draw(st.lists(names, max_size=4, unique=True))
    targets = [*exchange_names, "amq.direct"]
    decls: list = []
    weighted = set()  # x-consistent-hash exchanges: their bindings' keys are weights
    for name in exchange_names:
        args = draw(st.dictionaries(x_names, generic_values, max_size=2))
        if draw(st.booleans()):
            args["alternate-exchange"] = draw(st.sampled_from(targets))
        plain = names.filter(lambda n: n not in ("alternate-exchange", "hash-header",
                                                 "hash-property"))
        if draw(st.booleans()):
            args[draw(plain)] = draw(generic_values)
        type_ = draw(st.sampled_from(["direct", "fanout", "topic", "headers",
                                      "x-consistent-hash"]))
        hashing = draw(st.integers(0, 3))
        if type_ == "x-consistent-hash":
            weighted.add(name)
            if hashing == 1:
                args["hash-header"] = draw(texts)
            elif hashing == 2:
                args["hash-property"] = draw(st.sampled_from(PROPERTIES))
        elif hashing == 1:  # any value on other types, written as "argument ..."
            args[draw(st.sampled_from(["hash-header", "hash-property"]))] = draw(generic_values)
        decls.append(
            ExchangeDecl(
                name,
                type_,
                draw(st.booleans()),
                draw(st.booleans()),
                draw(st.booleans()),
                args,
            )
        )
    for name in queue_names:
        args = draw(st.dictionaries(x_names, generic_values, max_size=2))
        optional = {
            "x-message-ttl": st.integers(0, MAX_EXPIRY_MS),
            "x-expires": st.integers(1, MAX_EXPIRY_MS),
            "x-max-length": st.integers(0, 10**9),
            "x-max-length-bytes": st.integers(0, 2**50),
            "x-overflow": st.sampled_from(["drop-head", "reject-publish", "reject-publish-dlx"]),
            "x-dead-letter-exchange": st.sampled_from(["", *targets]),
            "x-dead-letter-routing-key": texts,
            "x-max-priority": st.integers(1, 255),
            "x-delivery-limit": st.integers(0, 100),
            "x-queue-type": st.just("classic"),
        }
        for arg, strategy in optional.items():
            if draw(st.integers(0, 3)) == 0:
                args[arg] = draw(strategy)
        decls.append(QueueDecl(name, draw(st.booleans()), draw(st.booleans()), args))
    if exchange_names:
        seen = set()
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(["queue", "exchange"] if queue_names else ["exchange"]))
            dest = draw(st.sampled_from(queue_names if kind == "queue" else targets))
            args = {}
            if draw(st.booleans()):
                args = draw(st.dictionaries(names, generic_values, max_size=3))
                args["x-match"] = draw(st.sampled_from(["all", "any", "all-with-x", "any-with-x"]))
                for void in draw(st.lists(names, max_size=2)):
                    args.setdefault(void, None)
            source = draw(st.sampled_from(exchange_names))
            key = draw(weights if source in weighted else texts)
            b = BindingDecl(source, dest, kind, key, args)
            if b.key() not in seen:
                seen.add(b.key())
                decls.append(b)
    if draw(st.booleans()):
        decls.extend(draw(access_declarations()))
    if draw(st.booleans()):
        decls.extend(draw(policy_declarations(targets)))
    order = draw(st.permutations(range(len(decls))))
    decls = [decls[i] for i in order]
    for decl in decls:  # comments, which the formatter must keep in place
        decl.origin.comments = draw(st.lists(comments, max_size=2))
        decl.origin.trailing_comment = draw(st.none() | comments)
        decl.origin.blank_line_before = draw(st.booleans())
        options = _option_names(decl)
        if options and draw(st.booleans()):
            option = draw(st.sampled_from(options))
            decl.origin.option_comments = {option: draw(comments)}
    return TopologyConfig(decls, trailing_comments=draw(st.lists(comments, max_size=2)))


def _option_names(decl) -> list[str]:
    """The options of ``decl`` written on lines of their own (comments may follow them)."""
    if isinstance(decl, ExchangeDecl | QueueDecl):
        return sorted(a for a in decl.arguments if a != "x-queue-type")
    if isinstance(decl, PolicyDecl):
        return sorted(decl.definition)
    if isinstance(decl, VHostDecl):
        return [o for o, v in (("description", decl.description), ("tags", decl.tags)) if v]
    if isinstance(decl, UserDecl):
        options = [*decl.limits]
        if decl.password_hash:
            options.append("password-hash")
        if decl.hashing_algorithm != "rabbit_password_hashing_sha256":
            options.append("hashing-algorithm")
        if decl.tags:
            options.append("tags")
        return sorted(options)
    return []


# Tags: known ones, free-form ones, option names and near misses of known tags
# (which the formatter must quote), and names that need quotes.
tags = st.lists(
    st.sampled_from(["administrator", "monitoring", "policymaker", "management",
                     "impersonator", "custom", "tags", "description", "password-hash",
                     "max-channels", "adminstrator", "monitorin", "a b", 'x"y', "#", "é"]),
    unique=True, max_size=4,
)
patterns = st.sampled_from(
    [".*", "", "^$", "^orders\\.", "^(billing|audit)$", "a\\\\b", '"q"', "tab\there",
     "#x", "[a-z]+\\d{2,}", "é.*"]
)
limits = st.integers(-(2**63), 2**63 - 1)


@st.composite
def password_hashes(draw: st.DrawFn) -> tuple[str, str]:
    algorithm = draw(st.sampled_from(["sha256", "sha512", "md5"]))
    if draw(st.integers(0, 4)) == 0:
        return "", f"rabbit_password_hashing_{algorithm}"
    salt = draw(st.binary(min_size=4, max_size=4))
    digest = hashlib.new(algorithm, salt + draw(texts).encode()).digest()
    return base64.b64encode(salt + digest).decode(), f"rabbit_password_hashing_{algorithm}"


@st.composite
def access_declarations(draw: st.DrawFn) -> list:
    """Vhosts, users, permissions, topic permissions and limits that refer to
    declared users and vhosts (or to "/", which always exists)."""
    vhost_names = draw(st.lists(names, max_size=3, unique=True))
    user_names = draw(st.lists(names, max_size=3, unique=True))
    decls: list = []
    for name in vhost_names:
        description = draw(st.none() | texts)
        vhost_tags = draw(tags.filter(lambda t: "é" not in t)) or None
        decls.append(VHostDecl(name, description, vhost_tags))
    for name in user_names:
        password_hash, algorithm = draw(password_hashes())
        user_limits = draw(st.dictionaries(st.sampled_from(["max-connections", "max-channels"]),
                                           limits, max_size=2))
        decls.append(UserDecl(name, password_hash, algorithm, draw(tags), user_limits))
    targets = [*vhost_names, "/"]
    if user_names:
        for user, vhost in draw(st.lists(st.tuples(st.sampled_from(user_names),
                                                   st.sampled_from(targets)),
                                         unique=True, max_size=3)):
            decls.append(PermissionDecl(user, vhost, draw(patterns), draw(patterns),
                                        draw(patterns)))
        for user, vhost, exchange in draw(st.lists(
            st.tuples(st.sampled_from(user_names), st.sampled_from(targets),
                      st.sampled_from(["amq.topic", "", "events", "a b"])),
            unique=True, max_size=3,
        )):
            decls.append(TopicPermissionDecl(user, vhost, exchange, draw(patterns),
                                             draw(patterns)))
    for vhost, limit in draw(st.lists(st.tuples(st.sampled_from(targets),
                                                st.sampled_from(["max-connections",
                                                                 "max-queues"])),
                                      unique=True, max_size=3)):
        decls.append(VHostLimitDecl(vhost, limit, draw(limits)))
    return decls


@st.composite
def policy_declarations(draw: st.DrawFn, exchanges: list[str]) -> list:
    """Policies and operator policies whose exchanges are declared (or built in)."""
    settings = {
        "message-ttl": st.integers(0, 10**12),
        "expires": st.integers(1, 10**12),
        "max-length": st.integers(0, 10**9),
        "max-length-bytes": st.integers(0, 2**50),
        "overflow": st.sampled_from(["drop-head", "reject-publish", "reject-publish-dlx"]),
        "dead-letter-exchange": st.sampled_from(["", *exchanges]),
        "dead-letter-routing-key": texts,
        "delivery-limit": st.integers(0, 100),
        "alternate-exchange": st.sampled_from(exchanges),
    }
    numeric = ("message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit")
    decls: list = []
    for operator in (False, True):
        for name in draw(st.lists(names, max_size=3, unique=True)):
            keys = draw(st.lists(st.sampled_from(numeric if operator else sorted(settings)),
                                 min_size=1, max_size=4, unique=True))
            decls.append(PolicyDecl(
                name, draw(patterns), {k: draw(settings[k]) for k in keys},
                draw(st.sampled_from(["all", "queues", "exchanges"])),
                draw(st.integers(-5, 10) | st.sampled_from([0.5, -1.25, 2.0])), operator,
            ))
    return decls


def _comments(m: TopologyConfig) -> list:
    return [
        (d.origin.comments, d.origin.trailing_comment, d.origin.option_comments)
        for d in m.declarations
    ] + [m.trailing_comments]


@SETTINGS
@given(models())
def test_format_round_trip(m: TopologyConfig) -> None:
    text = config.format(m)
    again = config.parse(text, "generated.conf")
    assert again == m
    assert _comments(again) == _comments(m)
    assert config.format(again) == text


@SETTINGS
@given(models())
def test_definitions_round_trip(m: TopologyConfig) -> None:
    data = json.loads(json.dumps(config.to_definitions(m)))
    assert "null" not in json.dumps(data)  # RabbitMQ refuses null: null_not_allowed
    # Void values come back as the string "undefined", as through RabbitMQ itself.
    for decl in m.topology:
        decl.arguments = {k: "undefined" if v is None else v for k, v in decl.arguments.items()}
    # An empty vhost description is read as "not said" (3.11's exports write one
    # for every vhost): it comes back as None.
    for vhost in m.vhosts:
        vhost.description = vhost.description or None
    assert config.from_definitions(data).same_topology(m)


def test_examples_are_valid_and_canonical() -> None:
    files = sorted(EXAMPLES.glob("*.conf"))
    assert files
    for path in files:
        text = path.read_text()
        m = config.parse(text, path.name)
        assert config.format(m) == text, path.name
        m.apply_to(Topology())


def test_comments_on_option_lines_stay_with_their_option() -> None:
    text = (
        "queue billing durable  # the billing service\n"
        "    message-ttl 30000   # give up after 30 s\n"
        "    # a note inside the statement\n"
        "    max-length 10\n"
    )
    assert config.format(config.parse(text)) == (
        "# a note inside the statement\n"
        "queue billing durable  # the billing service\n"
        "    message-ttl 30s  # give up after 30 s\n"
        "    max-length 10\n"
    )


def test_from_topology_rebuilds_the_same_routing() -> None:
    t = Topology()
    config.parse(ORDERS).apply_to(t)
    t.declare_exchange("extra", "direct", auto_delete=True)
    t.bind("extra", Destination("queue", "billing"), "k", {"x-any": 1})
    snapshot = TopologyConfig.from_topology(t)
    assert {x.name for x in snapshot.exchanges} == {
        "orders",
        "orders.dlx",
        "orders.headers",
        "extra",
    }
    assert {q.name for q in snapshot.queues} == {"billing", "audit"}
    rebuilt = Topology()
    config.parse(config.format(snapshot)).apply_to(rebuilt)
    assert sorted(map(repr, rebuilt.bindings())) == sorted(map(repr, t.bindings()))
    assert rebuilt.get_exchange("extra").auto_delete


# -- limits ---------------------------------------------------------------------


def test_ttl_and_expires_reach_ten_years_as_in_rabbitmq() -> None:
    m = config.parse("queue q message-ttl 60d expires 3650d\nqueue r x-message-ttl 315360000000\n")
    assert m.queues[0].arguments == {"x-message-ttl": 5_184_000_000, "x-expires": 315_360_000_000}
    assert m.queues[1].arguments == {"x-message-ttl": 315_360_000_000}
    assert config.format(m) == (
        "queue q\n    message-ttl 60d\n    expires 3650d\nqueue r\n    message-ttl 3650d\n"
    )
    defs = {"queues": [{"name": "q", "arguments": {"x-message-ttl": 5_184_000_000}}]}
    assert config.from_definitions(defs).queues[0].arguments == {"x-message-ttl": 5_184_000_000}


def test_the_expiry_limit_is_the_brokers() -> None:
    # routing/ may not import broker/, so the number is written twice; keep them equal.
    from broker.core.features.arguments import MAX_EXPIRY_MS as BROKER_MAX

    assert MAX_EXPIRY_MS == BROKER_MAX
    assert QUEUE_OPTIONS["message-ttl"].maximum == QUEUE_OPTIONS["expires"].maximum == BROKER_MAX


def test_integers_as_wide_as_the_amqp_encoder_takes() -> None:
    from protocol.fields import encode_value

    text = (
        "exchange x type headers\nqueue q x-low -9223372036854775808 x-high 18446744073709551615\n"
        "    max-length 18446744073709551615\n"
        "bind q to x headers all n=-9223372036854775808 argument m 18446744073709551615\n"
    )
    m = config.parse(text)
    assert m.queues[0].arguments == {
        "x-low": -(2**63), "x-high": 2**64 - 1, "x-max-length": 2**64 - 1,
    }
    assert m.bindings[0].arguments == {"x-match": "all", "n": -(2**63), "m": 2**64 - 1}
    for value in (*m.queues[0].arguments.values(), *m.bindings[0].arguments.values()):
        encode_value(value)  # every accepted value can be sent
    assert config.parse(config.format(m)).same_topology(m)


def test_definitions_with_integers_amqp_cannot_carry() -> None:
    defs = {
        "queues": [{"name": "q", "arguments": {"x-wide": 2**64, "x-max-length": 2**64}}],
        "bindings": [{"source": "x", "destination": "q", "destination_type": "queue",
                      "arguments": {"n": -(2**63) - 1, "f": 1e308}}],
    }
    try:
        config.from_definitions(defs)
    except config.DefinitionsError as exc:
        assert exc.problems == [
            "queues[0].arguments.x-wide: integer 18446744073709551616 does not fit an AMQP "
            "field value",
            "queues[0].arguments.x-max-length: max-length must be at most "
            "18446744073709551615, got '18446744073709551616'",
            "bindings[0].arguments.n: integer -9223372036854775809 does not fit an AMQP "
            "field value",
        ]
    else:
        raise AssertionError("no error")


# -- nested arguments in definitions --------------------------------------------

NESTED = {
    "exchanges": [
        {"name": "x", "vhost": "/", "type": "topic", "arguments": {}},
        {"name": "x.nested", "vhost": "/", "type": "fanout",
         "arguments": {"x-meta": {"team": "billing"}}},
        {"name": "x.other", "vhost": "other", "type": "fanout",
         "arguments": {"x-meta": {"team": "billing"}}},
    ],
    "queues": [
        {"name": "q", "vhost": "/", "durable": True, "arguments": {"x-message-ttl": 60000}},
        {"name": "q.nested", "vhost": "/", "arguments": {"x-tags": ["a", "b"]}},
        {"name": "q.other", "vhost": "other", "arguments": {"x-tags": ["a"]}},
    ],
    "bindings": [
        {"source": "x", "vhost": "/", "destination": "q", "destination_type": "queue",
         "routing_key": "k", "arguments": {}},
        {"source": "x", "vhost": "/", "destination": "q", "destination_type": "queue",
         "routing_key": "t", "arguments": {"x-meta": {"a": 1}}},
        {"source": "x", "vhost": "/", "destination": "q.nested", "destination_type": "queue",
         "routing_key": "k", "arguments": {}},
        {"source": "x.nested", "vhost": "/", "destination": "q", "destination_type": "queue",
         "routing_key": "k", "arguments": {}},
        {"source": "x", "vhost": "/", "destination": "x.nested",
         "destination_type": "exchange", "routing_key": "k", "arguments": {}},
    ],
}


def test_from_definitions_skips_nested_arguments_and_keeps_the_rest() -> None:
    warnings: list[str] = []
    m = config.from_definitions(NESTED, warn=warnings.append)
    assert [x.name for x in m.exchanges] == ["x"]
    assert m.queues == [QueueDecl("q", durable=True, arguments={"x-message-ttl": 60000})]
    assert [(b.source, b.destination, b.routing_key) for b in m.bindings] == [("x", "q", "k")]
    # one warning per skipped item of this vhost, naming it; the other vhost is not looked at
    assert warnings == [
        "exchanges[1]: skipped exchange 'x.nested': argument 'x-meta' is a table, which the "
        "configuration language cannot write",
        "queues[1]: skipped queue 'q.nested': argument 'x-tags' is an array, which the "
        "configuration language cannot write",
        "bindings[1]: skipped binding of queue 'q' to exchange 'x': argument 'x-meta' is a "
        "table, which the configuration language cannot write",
        "bindings[2]: skipped binding of queue 'q.nested' to exchange 'x': queue 'q.nested' "
        "was skipped",
        "bindings[3]: skipped binding of queue 'q' to exchange 'x.nested': exchange "
        "'x.nested' was skipped",
        "bindings[4]: skipped binding of exchange 'x.nested' to exchange 'x': exchange "
        "'x.nested' was skipped",
    ]
    assert config.check(config.format(m)) == []


def test_from_definitions_warns_through_the_warnings_module_by_default() -> None:
    with pytest.warns(config.DefinitionsWarning) as caught:
        m = config.from_definitions(NESTED)
    assert len(caught) == 6
    assert str(caught[1].message).startswith("queues[1]: skipped queue 'q.nested'")
    assert caught[0].filename == __file__  # the warning points at the caller
    assert [q.name for q in m.queues] == ["q"]


def test_from_definitions_still_refuses_malformed_items_next_to_nested_ones() -> None:
    bad = {"queues": [{"name": "q.nested", "arguments": {"x-tags": [1]}},
                      {"name": "q", "arguments": {"x-max-length": "ten"}}]}
    with pytest.raises(config.DefinitionsError) as info:
        config.from_definitions(bad, warn=lambda message: None)
    assert info.value.problems == [
        "queues[1].arguments.x-max-length: max-length takes a whole number, not 'ten'"
    ]
