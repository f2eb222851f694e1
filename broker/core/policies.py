"""Policies and operator policies: which one applies, and what it changes.

RabbitMQ 3.10's model (rabbit_policy.erl, rabbit_policies.erl,
rabbit_amqqueue_process.erl; every rule below was checked against the
reference node):

- A policy is a runtime parameter of one vhost: `name`, `pattern` (a regular
  expression), `apply-to` (`queues`, `exchanges` or `all`, the default; 3.10
  knows no other value), `priority` (any number, 0 by default) and a
  `definition` (the settings: `message-ttl`, `max-length`...). An operator
  policy has the same fields and a smaller set of settings (the numeric
  limits), and lives in a namespace of its own.
- The pattern is searched for in the queue's or exchange's name, unanchored,
  as `re:run(Name, Pattern)` does: on the name's UTF-8 bytes (PCRE without
  its UTF mode, so `.` is one byte and `\\w` is ASCII). Warren searches the
  same bytes with Python's `re`, whose syntax is nearly PCRE's.
- At most one policy and one operator policy apply to a queue or exchange:
  among those that match, the one with the highest priority. Between equal
  priorities RabbitMQ's choice is undefined (it takes the first in its
  parameter table's hash order: five policies of one priority matching five
  queues all chose the same, not the first by name). Warren takes the one
  whose name sorts first, so the answer does not change across restarts.
- The policy's and the operator policy's definitions are merged key by key:
  a key in one only is taken from it; a key in both (only the numeric
  limits can be) takes the lower value ("the lower value wins").
- Then, per queue key, that merged value meets the queue's own `x-` argument
  (`args_policy_lookup` with each key's resolver, `PRECEDENCE`): for the
  numeric limits the lower wins again; for the others the argument wins.
  An exchange's `alternate-exchange` argument wins over the policy's.
- Policies apply when a queue or exchange is declared and again, to every
  existing one, whenever a policy is set or cleared (`update_matched_objects`).

Validation gives RabbitMQ's texts ("Validation failed\\n\\n<<\\"x\\">> is not a
valid maximum length\\n"), with values printed as Erlang's `~p` prints them.
One key is RabbitMQ 3.12's, a documented extension (docs/compatibility.md):
`consumer-timeout`, which 3.10 does not know. A key RabbitMQ 3.10 knows but
Warren does not implement (`ha-mode`,
`queue-mode`, `max-age`, `federation-upstream`...; `REFUSED_KEYS`) is refused
with a reason, never accepted and ignored.

No I/O here: the vhost (broker.core.vhost) keeps a `VHostPolicies` and applies
the results to its queues and exchanges.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

__all__ = [
    "APPLY_TO",
    "EXCHANGE_KEYS",
    "OPERATOR_KEYS",
    "PRECEDENCE",
    "QUEUE_KEYS",
    "REFUSED_KEYS",
    "OperatorPolicy",
    "Policy",
    "PolicyInvalid",
    "VHostPolicies",
    "alternate_exchange",
    "erlang_term",
    "merged_definition",
    "policy_fields",
    "queue_values",
    "validate_policy",
]

#: The values of `apply-to` RabbitMQ 3.10 accepts (3.12 added queue types).
APPLY_TO = ("queues", "exchanges", "all")

#: Resolvers between a queue's argument and the (merged) policy value.
MIN = "min"  # res_min: the lower value wins
ARGUMENT = "argument"  # res_arg: the argument wins


@dataclass(frozen=True)
class Key:
    """One definition key Warren implements.

    `check(value)` says whether RabbitMQ accepts the value; `noun` ends its
    text ("~p is not a valid <noun>"); `resolve` is the rule against the
    queue's `x-<key>` argument; `operator` whether operator policies may set it.
    """

    name: str
    noun: str
    check: Callable[[Any], bool]
    kind: str  # "queues" or "exchanges": what it acts on
    resolve: str = MIN
    operator: bool = False


def _integer(minimum: int) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    return check


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _overflow(value: Any) -> bool:
    return value in ("drop-head", "reject-publish", "reject-publish-dlx")


_KEYS = (
    Key("message-ttl", "message TTL", _integer(0), "queues", MIN, operator=True),
    Key("expires", "queue expiry", _integer(1), "queues", MIN, operator=True),
    Key("max-length", "maximum length", _integer(0), "queues", MIN, operator=True),
    Key("max-length-bytes", "maximum length in bytes", _integer(0), "queues", MIN, operator=True),
    Key("overflow", "overflow value", _overflow, "queues", ARGUMENT),
    Key("dead-letter-exchange", "dead letter exchange name", _string, "queues", ARGUMENT),
    Key("dead-letter-routing-key", "dead letter routing key", _string, "queues", ARGUMENT),
    # RabbitMQ 3.10 applies delivery-limit to quorum queues, with min/2 against
    # the argument; Warren honours x-delivery-limit on every queue, and so the
    # policy key too (docs/compatibility.md).
    Key("delivery-limit", "delivery limit", _integer(0), "queues", MIN, operator=True),
    # RabbitMQ 3.12's key (3.10 refuses it as "not recognised"): milliseconds,
    # 0 or more (rabbit_policies validate_policy0), the lower of it and the
    # queue's x-consumer-timeout (rabbit_channel get_queue_consumer_timeout,
    # args_policy_lookup with erlang:min); not an operator policy key in 3.12.
    Key("consumer-timeout", "consumer timeout", _integer(0), "queues", MIN),
    Key("alternate-exchange", "alternate exchange name", _string, "exchanges", ARGUMENT),
)
KEYS: dict[str, Key] = {k.name: k for k in _KEYS}
#: The queue keys, in RabbitMQ's order of application (process_args_policy).
QUEUE_KEYS = tuple(k.name for k in _KEYS if k.kind == "queues")
EXCHANGE_KEYS = tuple(k.name for k in _KEYS if k.kind == "exchanges")
#: What an operator policy may set (rabbit_policies' operator_policy_validator
#: keys that Warren implements).
OPERATOR_KEYS = tuple(k.name for k in _KEYS if k.operator)
#: key -> resolver against the queue's or exchange's own argument.
PRECEDENCE = {k.name: k.resolve for k in _KEYS}

_MIRRORING = "classic queue mirroring: Warren is a single node"
_PLUGIN = "a plugin Warren does not have"
#: Settings RabbitMQ 3.10 (or one of its plugins) accepts in a policy that
#: Warren does not implement: refused, with the reason, rather than kept and
#: silently ignored.
REFUSED_KEYS: dict[str, str] = {
    "ha-mode": _MIRRORING,
    "ha-params": _MIRRORING,
    "ha-sync-mode": _MIRRORING,
    "ha-sync-batch-size": _MIRRORING,
    "ha-promote-on-shutdown": _MIRRORING,
    "ha-promote-on-failure": _MIRRORING,
    "queue-master-locator": "queue placement in a cluster: Warren is a single node",
    "queue-leader-locator": "queue placement in a cluster: Warren is a single node",
    "initial-cluster-size": "quorum queues: Warren has classic queues only",
    "dead-letter-strategy": "at-least-once dead-lettering of quorum queues: Warren has "
    "classic queues only",
    "max-in-memory-length": "quorum queues' in-memory limits: Warren has classic queues only",
    "max-in-memory-bytes": "quorum queues' in-memory limits: Warren has classic queues only",
    "max-age": "a stream's retention by policy: use the x-max-age argument",
    "stream-max-segment-size-bytes": "a stream's segment size by policy: use the argument",
    "queue-mode": "lazy classic queues: Warren pages messages to disk on its own",
    "queue-version": "classic queue storage versions: Warren has its own journal",
    "federation-upstream": f"federation, {_PLUGIN}",
    "federation-upstream-pattern": f"federation, {_PLUGIN}",
    "federation-upstream-set": f"federation, {_PLUGIN}",
    "shards-per-node": f"sharding, {_PLUGIN}",
    "routing-key": f"sharding, {_PLUGIN}",
}

#: The settings RabbitMQ's operator policies accept that Warren does not implement.
_OPERATOR_REFUSED = frozenset({"max-in-memory-length", "max-in-memory-bytes"})


class PolicyInvalid(ValueError):
    """A policy the broker refuses. `str()` is RabbitMQ's whole text, as the
    management API answers it (before HTML escaping): "Validation failed\\n\\n
    <one line per problem>\\n"; `problems` are those lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Validation failed\n\n" + "".join(p + "\n" for p in problems))


# -- Erlang's ~p, for the texts ------------------------------------------------------


def _erlang_float(value: float) -> str:
    # Erlang prints the shortest form that reads back: 1.5, 100.0, 1.0e20.
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{int(exponent)}"
    return text


def erlang_term(value: Any) -> str:
    """`value` (decoded JSON) as RabbitMQ's messages print it (Erlang's `~p`):
    `<<"x">>` for a string, `#{<<"k">> => 1}` for an object, `null`..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _erlang_float(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'<<"{escaped}">>'
    if isinstance(value, Mapping):
        inner = ",".join(f"{erlang_term(k)} => {erlang_term(v)}" for k, v in value.items())
        return "#{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(erlang_term(v) for v in value) + "]"
    return repr(value)


# -- policies -----------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # only whether it compiles matters (as PCRE's)
        return re.compile(pattern.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, eq=True)
class Policy:
    """A policy of one vhost (immutable: setting a policy replaces the object)."""

    vhost: str
    name: str
    pattern: str
    definition: dict[str, Any] = field(default_factory=dict, hash=False)
    priority: int | float = 0
    apply_to: str = "all"

    #: RabbitMQ's runtime parameter component, as definitions JSON names it.
    COMPONENT: ClassVar[str] = "policy"

    def applies_to(self, kind: str) -> bool:
        """Does it apply to `kind`, "queues" or "exchanges"?"""
        return self.apply_to == "all" or self.apply_to == kind

    def matches(self, kind: str, name: str) -> bool:
        """Does it apply to the `kind` called `name` (RabbitMQ's matches/2)?"""
        if not self.applies_to(kind):
            return False
        return _compiled(self.pattern).search(name.encode("utf-8", "surrogatepass")) is not None

    def as_json(self) -> dict[str, Any]:
        """As /api/policies shows it and definitions JSON exports it."""
        return {
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to,
            "definition": dict(self.definition),
            "priority": self.priority,
        }

    def as_parameter(self) -> dict[str, Any]:
        """As RabbitMQ 3.10 exports an operator policy: a runtime parameter."""
        return {
            "value": {
                "pattern": self.pattern,
                "definition": dict(self.definition),
                "priority": self.priority,
                "apply-to": self.apply_to,
            },
            "vhost": self.vhost,
            "component": self.COMPONENT,
            "name": self.name,
        }


@dataclass(frozen=True, eq=True)
class OperatorPolicy(Policy):
    """An operator policy: the same fields, its own namespace, fewer settings
    (the numeric limits, `OPERATOR_KEYS`), merged with the policy key by key."""

    COMPONENT: ClassVar[str] = "operator_policy"


def _check_definition(definition: Any, operator: bool) -> list[str]:
    if not isinstance(definition, Mapping):
        return [f"definition must be a dictionary: {erlang_term(definition)}"]
    if not definition:
        return ["no policy provided"]
    allowed = OPERATOR_KEYS if operator else tuple(KEYS)
    # RabbitMQ validates the keys in sorted order (a JSON object becomes a
    # sorted map) and reports the first bad value only, before unknown keys.
    for name in sorted(definition):
        value = definition[name]
        key = KEYS.get(name)
        if key is not None and name in allowed and not key.check(value):
            return [f"{erlang_term(value)} is not a valid {key.noun}"]
    # Keys RabbitMQ 3.10 knows (for this kind of policy) but Warren does not
    # implement are refused with the reason; others are RabbitMQ's "not recognised".
    known_elsewhere = _OPERATOR_REFUSED if operator else frozenset(REFUSED_KEYS)
    others = [name for name in sorted(definition) if name not in allowed]
    unknown = [name for name in others if name not in known_elsewhere]
    if unknown:
        terms = ",".join(f"{{{erlang_term(k)},{erlang_term(definition[k])}}}" for k in unknown)
        return [f"[{terms}] are not recognised policy settings"]
    return [
        f"{erlang_term(name)} is a RabbitMQ policy setting that Warren does not implement "
        f"({REFUSED_KEYS[name]})"
        for name in others
    ]



def validate_policy(
    vhost: str,
    name: str,
    *,
    pattern: Any,
    definition: Any,
    priority: Any = 0,
    apply_to: Any = "all",
    operator: bool = False,
) -> Policy:
    """The policy these values make, or `PolicyInvalid` with RabbitMQ's texts.

    Problems come in RabbitMQ's order: the definition's, then apply-to's, the
    pattern's and the priority's, one line each.
    """
    problems = _check_definition(definition, operator)
    if apply_to not in APPLY_TO:
        shown = apply_to if isinstance(apply_to, str) else erlang_term(apply_to)
        problems.append(
            f"apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
        )
    if not isinstance(pattern, str):
        problems.append(f"pattern should be a binary but was {erlang_term(pattern)}")
    else:
        problem = pattern_problem(pattern)
        if problem is not None:
            problems.append(f"pattern should be regular expression but is invalid: {problem}")
    if isinstance(priority, bool) or not isinstance(priority, int | float) or (
        isinstance(priority, float) and not math.isfinite(priority)
    ):
        problems.append(f"priority should be a number, actually was {erlang_term(priority)}")
    if problems:
        raise PolicyInvalid(problems)
    kind = OperatorPolicy if operator else Policy
    # Kept sorted by key, as RabbitMQ shows a definition (a JSON object is a map).
    return kind(vhost, name, pattern, dict(sorted(definition.items())), priority, apply_to)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` does not compile, as `{"message",position}`; None if it does."""
    try:
        _compiled(pattern)
    except re.error as error:
        position = error.pos if error.pos is not None else 0
        return f'{{"{error.msg}",{position}}}'
    except (OverflowError, RecursionError):
        return '{"regular expression is too large",0}'
    return None


# -- one vhost's policies -----------------------------------------------------------


def _best(candidates: Iterable[Policy]) -> Policy | None:
    best: Policy | None = None
    for policy in candidates:
        if best is None or policy.priority > best.priority or (
            policy.priority == best.priority and policy.name < best.name
        ):
            best = policy
    return best


class VHostPolicies:
    """The policies and operator policies of one vhost, by name."""

    def __init__(self) -> None:
        self.policies: dict[str, Policy] = {}
        self.operator_policies: dict[str, Policy] = {}

    def __bool__(self) -> bool:
        return bool(self.policies or self.operator_policies)

    def _table(self, operator: bool) -> dict[str, Policy]:
        return self.operator_policies if operator else self.policies

    def put(self, policy: Policy) -> bool:
        """Set `policy` (replacing one of the same name and kind); True if it is new."""
        table = self._table(isinstance(policy, OperatorPolicy))
        created = policy.name not in table
        table[policy.name] = policy
        return created

    def delete(self, name: str, *, operator: bool = False) -> Policy | None:
        """Clear the policy `name`; the one cleared, or None."""
        return self._table(operator).pop(name, None)

    def get(self, name: str, *, operator: bool = False) -> Policy | None:
        return self._table(operator).get(name)

    def listing(self, *, operator: bool = False) -> list[Policy]:
        """Every policy (or operator policy), by priority then name."""
        return sorted(self._table(operator).values(), key=lambda p: (p.priority, p.name))

    def match(self, kind: str, name: str) -> tuple[Policy | None, Policy | None]:
        """The policy and the operator policy that apply to the `kind` ("queues"
        or "exchanges") called `name`: the highest priority of those that match."""
        if not self:
            return None, None
        return (
            _best(p for p in self.policies.values() if p.matches(kind, name)),
            _best(p for p in self.operator_policies.values() if p.matches(kind, name)),
        )


# -- what applies ---------------------------------------------------------------------


def _lower(a: Any, b: Any) -> Any:
    return b if b < a else a


def merged_definition(policy: Policy | None, operator: Policy | None) -> dict[str, Any]:
    """The effective policy definition (RabbitMQ's merge_operator_definitions):
    every key of either; a key in both takes the lower value (booleans, which
    no key Warren implements has, would take the operator's)."""
    if policy is None and operator is None:
        return {}
    if operator is None:
        assert policy is not None
        return dict(sorted(policy.definition.items()))
    if policy is None:
        return dict(sorted(operator.definition.items()))
    merged = dict(policy.definition)
    for key, op_value in operator.definition.items():
        if key not in merged:
            merged[key] = op_value
        elif isinstance(op_value, bool) and isinstance(merged[key], bool):
            merged[key] = op_value
        else:
            merged[key] = _lower(merged[key], op_value)
    return dict(sorted(merged.items()))


def queue_values(
    arguments: Mapping[str, Any], policy: Policy | None, operator: Policy | None
) -> dict[str, Any]:
    """A queue's effective settings, by policy key ("message-ttl": 30000, ...):
    its `x-` arguments and the merged policy, resolved key by key as
    `PRECEDENCE` says. Keys with no value are left out."""
    merged = merged_definition(policy, operator) if policy or operator else {}
    values: dict[str, Any] = {}
    for key in QUEUE_KEYS:
        argument = arguments.get("x-" + key)
        from_policy = merged.get(key)
        if argument is None:
            value = from_policy
        elif from_policy is None or PRECEDENCE[key] == ARGUMENT:
            value = argument
        else:
            value = _lower(from_policy, argument)
        if value is not None:
            values[key] = value
    return values


def alternate_exchange(policy: Policy | None, operator: Policy | None) -> str | None:
    """The alternate exchange a policy gives an exchange (its own argument, if
    it has one, wins: routing.exchanges.base.Exchange.set_policy_alternate)."""
    value = merged_definition(policy, operator).get("alternate-exchange")
    return value if isinstance(value, str) else None


def policy_fields(
    policy: Policy | None, operator: Policy | None, kind: str = "queues"
) -> dict[str, Any]:
    """The fields RabbitMQ's management API adds to a queue or an exchange.

    A queue always has `policy`, `operator_policy` (names, or None) and
    `effective_policy_definition` (`{}` without any); an exchange has only
    `policy`, and only when one applies (read off the reference node).
    """
    if kind == "exchanges":
        return {"policy": policy.name} if policy is not None else {}
    return {
        "policy": policy.name if policy is not None else None,
        "operator_policy": operator.name if operator is not None else None,
        "effective_policy_definition": merged_definition(policy, operator),
    }
