"""`warren route`: where would this message go, under the topology in a file?

    warren route FILE EXCHANGE ROUTING_KEY [--header KEY=VALUE]...

Offline: no broker is involved. The file is declared into a
`routing.topology.Topology` (the same routing code the broker runs), its
policies give exchanges their alternate exchange as the broker's do (an
exchange's own `alternate-exchange` argument wins; broker.core.policies),
and `Topology.trace` gives the queues the message reaches with the chain of
bindings that led to each. When it reaches nothing, the command says why for
each exchange the message crossed (no binding matched; the alternate
exchange it went on to) and what the broker would do with it (mandatory:
basic.return 312 NO_ROUTE; otherwise it is dropped). A message whose
`x-delay` header asks an `x-delayed-message` exchange to hold it is shown
delayed by that many milliseconds, with the queues it would reach if it were
released now (by then the bindings may differ). Exit 0 when the message
reaches a queue, 1 when it reaches none.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import EXIT_NO, EXIT_OK, CommandError, header_argument, run_command

__all__ = ["add_parser", "apply_policies", "dedup_notes", "explain_unroutable"]


def add_parser(subparsers: Any) -> None:
    """Register `warren route` (see broker/cli.py)."""
    parser = subparsers.add_parser(
        "route",
        help="show which queues a message would reach under a file's topology (offline)",
        description="Under the topology in FILE, show which queues a message published to "
        "EXCHANGE with ROUTING_KEY (and headers) would reach, and the chain of bindings that "
        'led to each; or why it reaches nothing. Offline: no broker is needed. Use "" for '
        "the default exchange. Exit 0 if the message reaches a queue, 1 if it reaches none.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
        "  $ warren route examples/orders.conf orders order.eu.created --header urgent=true\n"
        "  exchange 'orders' routing keys ['order.eu.created']: 2 queue(s)\n"
        "    queue 'billing'\n"
        "      exchange 'orders' -> queue 'billing' by key 'order.*.created' matched "
        "'order.eu.created'\n"
        "    queue 'audit'\n"
        "      exchange 'orders' -> exchange 'orders.audit' by key 'order.#' matched "
        "'order.eu.created'\n"
        "      exchange 'orders.audit' -> queue 'audit' by headers x-match='any' "
        "priority='high' urgent=True\n\n"
        "header values read as in the configuration language: true/false are booleans, 5 an\n"
        "integer, '\"5\"' a string; CC=a,b and BCC=a,b add routing keys (sender-selected\n"
        "distribution).",
    )
    parser.add_argument("file", metavar="FILE", help="the configuration file (- for stdin)")
    parser.add_argument("exchange", metavar="EXCHANGE", help='the exchange ("" for the default)')
    parser.add_argument("routing_key", metavar="ROUTING_KEY", help="the message's routing key")
    parser.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=header_argument,
        metavar="KEY=VALUE",
        help="a message header (repeatable)",
    )
    parser.set_defaults(func=lambda args: run_command("warren route", lambda: _route(args)))


def _route(args: argparse.Namespace) -> int:
    from routing.config.errors import did_you_mean
    from routing.errors import RoutingError
    from routing.topology import Topology

    from ._common import headers_dict, read_config

    model = read_config(args.file)
    topology = Topology()
    try:
        model.apply_to(topology)
    except RoutingError as error:  # a file `check` accepts always applies; be safe
        raise CommandError(f"{args.file}: {error.reply_text}") from None
    by_policy = apply_policies(model, topology)
    exchange = args.exchange
    if not topology.has_exchange(exchange):
        names = [name for name in topology.exchanges if name]
        raise CommandError(
            f"exchange '{exchange}' is not declared in {args.file} nor built in"
            f"{did_you_mean(exchange, names)}"
        )
    headers = headers_dict(args.headers)
    try:
        trace = topology.trace(exchange, args.routing_key, headers, allow_internal=True)
    except RoutingError as error:
        raise CommandError(error.reply_text) from None
    if topology.exchanges[exchange].internal:
        print(
            f"note: exchange '{exchange}' is internal: a client publishing to it gets 403 "
            "ACCESS_REFUSED; traced as a message that reached it through a binding"
        )
    notes = [
        f"note: the alternate-exchange of exchange '{name}' comes from policy "
        f"'{by_policy[name]}'"
        for name in trace.exchanges_visited
        if name in by_policy
    ]
    notes += dedup_notes(model, topology, exchange, trace.queues, headers)
    if trace.queues:
        print(trace.describe())
        for note in notes:
            print(note)
        return EXIT_OK
    described = trace.describe().splitlines()
    for line in described[: 1 + len(trace.delayed)]:  # the head and the delays
        print(line)
    for line in explain_unroutable(topology, trace, headers, args.file):
        print(f"  {line}")
    for note in notes:
        print(note)
    sys.stdout.flush()
    return EXIT_NO


def dedup_notes(
    model: Any, topology: Any, exchange: str, queues: Any, headers: Any
) -> list[str]:
    """Notes on deduplication (x-message-deduplication) at the exchange published
    to and at the queues reached; offline, no cache is known: what would happen."""
    from routing.deduplication import dedup_settings, describe
    from routing.model import QueueDecl

    notes = []
    settings = topology.dedup_settings(exchange)
    if settings is not None:
        notes.append("note: " + describe("exchange", exchange, settings, headers))
    declared = {d.name: d for d in model.declarations if isinstance(d, QueueDecl)}
    for name in queues:
        decl = declared.get(name)
        settings = dedup_settings(decl.arguments) if decl is not None else None
        if settings is not None:
            notes.append("note: " + describe("queue", name, settings, headers))
    return notes


def apply_policies(model: Any, topology: Any) -> dict[str, str]:
    """Give `topology`'s exchanges the alternate exchanges `model`'s policies give
    them, as the broker does; {exchange: policy name} for those that took one."""
    from broker.core.policies import VHostPolicies, alternate_exchange, validate_policy

    policies = VHostPolicies()
    for decl in model.policies:  # checked with the file: the broker accepts them
        policies.put(validate_policy(
            "/", decl.name, pattern=decl.pattern, definition=dict(decl.definition),
            priority=decl.priority, apply_to=decl.apply_to, operator=decl.operator,
        ))
    by_policy: dict[str, str] = {}
    if not policies:
        return by_policy
    for name, exchange in topology.exchanges.items():
        if not name:
            continue  # the default exchange never uses an alternate exchange
        policy, operator = policies.match("exchanges", name)
        alternate = alternate_exchange(policy, operator)
        exchange.set_policy_alternate(alternate)
        if alternate is not None and exchange.alternate_exchange == alternate and (
            "alternate-exchange" not in exchange.arguments
        ):
            assert policy is not None
            by_policy[name] = policy.name
    return by_policy


def explain_unroutable(topology: Any, trace: Any, headers: Any, filename: str) -> list[str]:
    """Why a message reached no queue: each exchange it crossed, and what happens to it."""
    from routing.exchanges.headers import HeadersExchange

    lines = ["unroutable: no queue reached"]
    for name in trace.exchanges_visited:
        x = topology.exchanges[name]
        if name == "":
            keys = ", ".join(f"'{k}'" for k in trace.routing_keys)
            lines.append(f"the default exchange: no queue named {keys} in {filename}")
            continue
        count = len(x.bindings)
        where = f"exchange '{name}' ({x.type}, {count} binding{'' if count == 1 else 's'})"
        if isinstance(x, HeadersExchange):
            matched = x.matching_bindings(trace.routing_keys[0], headers)
        else:
            matched = [b for k in trace.routing_keys for b in x.matching_bindings(k, headers)]
        if matched:
            # Every binding that matched led to an exchange that reached nothing.
            for b in matched:
                lines.append(f"{where}: matched, on to {b.destination}")
            if x.alternate_exchange is not None:
                # RabbitMQ's rule: the alternate exchange is for messages the
                # exchange's own bindings do not match at all (routing.md).
                lines.append(
                    f"  its alternate-exchange '{x.alternate_exchange}' is not used: "
                    "a binding matched"
                )
            continue
        if not count:
            what = "nothing is bound to it"
        elif isinstance(x, HeadersExchange):
            shown = ", ".join(f"{k}={v!r}" for k, v in (headers or {}).items()) or "none"
            what = f"no binding matched the headers ({shown})"
        else:
            keys = ", ".join(f"'{k}'" for k in trace.routing_keys)
            noun = "routing key" if len(trace.routing_keys) == 1 else "routing keys"
            what = f"no binding matched the {noun} {keys}"
        lines.append(f"{where}: {what}")
        if x.alternate_exchange is not None:
            if topology.has_exchange(x.alternate_exchange):
                lines.append(f"  -> its alternate-exchange '{x.alternate_exchange}'")
            else:
                lines.append(
                    f"  its alternate-exchange '{x.alternate_exchange}' does not exist: "
                    "the message stops here"
                )
    if getattr(trace, "delayed", None):
        lines.append(
            "held by a delayed exchange, it is not returned when published (mandatory or "
            "not); if it reaches no queue when released, it is dropped"
        )
        return lines
    lines.append(
        "published with mandatory, the broker returns it (basic.return 312 NO_ROUTE; "
        "with publisher confirms, basic.ack follows the return); without mandatory it is dropped"
    )
    return lines
