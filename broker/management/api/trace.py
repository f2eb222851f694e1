"""Warren's route tracer over HTTP: which queues would a message reach, and why.

    POST /api/warren/trace/{vhost}                                    vhost access
    {"exchange": "orders", "routing_key": "order.eu.created", "headers": {"urgent": true}}

RabbitMQ has no such endpoint (its firehose tracer records messages that
were really published); this one publishes nothing and changes nothing. It
runs `routing.topology.Topology.trace`, the routing code the broker runs
for every message, on the vhost's live topology, and answers what `warren
route` prints for a configuration file, as JSON:

- `queues`: each queue reached, with `hops`, the chain of steps that led
  there (a binding with its key and arguments and the message key that
  matched it; an alternate exchange; the default exchange), a shortest one;
- `exchanges`: every exchange the message crossed, in order, with what
  happened there (which bindings matched, whether its alternate exchange
  took over, or why nothing matched);
- `routing_keys`: the publish key and the CC/BCC entries it was routed with;
- `unroutable`: when no queue is reached, what the broker would do with the
  message (mandatory: basic.return 312 NO_ROUTE; otherwise dropped);
- `deduplication`: for the exchange published to and each queue reached that
  deduplicate (`x-message-deduplication`), the header, the message's key and
  whether the live cache would drop it now (`duplicate`; at the exchange that
  also sets the top-level `duplicate`: the message would not be routed);
- `text`: the same, as the lines `warren route` prints.

`exchange` is required ("" or "amq.default" is the default exchange);
`routing_key` defaults to ""; `headers` is a JSON object whose values are
taken as AMQP field values (strings, numbers, booleans, arrays, tables, null
for void). An internal exchange is traced as a message that reached it
through a binding (`internal: true` says so; a client publishing to it gets
403). Errors: a missing vhost or exchange is 404, a body that is not such an
object is 400, as is a CC/BCC header that is not an array (the 406 a
publish would get, RabbitMQ's words).
"""

from __future__ import annotations

from typing import Any

from broker.core.features.deduplication import DedupCache
from broker.core.vhost import VHost
from broker.management.authz import require_vhost
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.router import Router
from routing.deduplication import DedupSettings, describe
from routing.errors import RoutingError
from routing.exchanges.headers import HeadersExchange
from routing.topology import Hop, RouteTrace, Topology

__all__ = ["add_routes", "trace_document"]

#: What the broker does with a message that reaches no queue (docs/routing.md).
UNROUTABLE_OUTCOME = (
    "published with mandatory, the broker returns it (basic.return 312 NO_ROUTE; with "
    "publisher confirms, basic.ack follows the return); without mandatory it is dropped"
)


def _json(value: Any) -> Any:
    """An AMQP field value (binding arguments) as JSON can hold it."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _hop(topology: Topology, hop: Hop) -> dict[str, Any]:
    binding = hop.binding
    if hop.via == "default-exchange":
        # The implicit binding of every queue to "": its key is the queue's name.
        routing_key: str | None = hop.destination.name
        arguments: dict[str, Any] | None = {}
    elif binding is not None:
        routing_key, arguments = binding.routing_key, _json(dict(binding.arguments))
    else:
        routing_key = arguments = None
    source = topology.exchanges.get(hop.source)
    return {
        "source": hop.source,
        "source_type": source.type if source is not None else None,
        "destination": hop.destination.name,
        "destination_type": hop.destination.kind,
        "via": hop.via,
        "routing_key": routing_key,
        "arguments": arguments,
        "matched_key": hop.matched_key,
        "description": hop.describe(),
    }


def _exchange_step(
    topology: Topology, trace: RouteTrace, name: str, headers: dict[str, Any], vhost: str
) -> dict[str, Any]:
    """What happened to the message at one exchange it crossed (as `warren route` explains)."""
    x = topology.exchanges[name]
    if isinstance(x, HeadersExchange):
        matched = x.matching_bindings(trace.routing_keys[0], headers)
    elif name == "":
        matched = []
    else:
        matched = [b for k in trace.routing_keys for b in x.matching_bindings(k, headers)]
    step: dict[str, Any] = {
        "name": name,
        "type": x.type,
        "internal": x.internal,
        "bindings": len(x.bindings),
        "matched": [
            {
                "destination": b.destination.name,
                "destination_type": b.destination.kind,
                "routing_key": b.routing_key,
                "arguments": _json(dict(b.arguments)),
            }
            for b in dict.fromkeys(matched)
        ],
        "alternate_exchange": x.alternate_exchange,
        "alternate_exchange_used": False,
    }
    keys = ", ".join(f"'{k}'" for k in trace.routing_keys)
    if name == "":
        found = [k for k in trace.routing_keys if topology.has_queue(k)]
        step["outcome"] = "matched" if found else "no_match"
        step["explanation"] = (
            f"the default exchange: the routing key names queue(s) {', '.join(repr(k) for k in found)}"
            if found
            else f"the default exchange: no queue named {keys} in vhost '{vhost}'"
        )
        return step
    if matched:
        step["outcome"] = "matched"
        destinations = ", ".join(f"{b.destination}" for b in dict.fromkeys(matched))
        text = f"matched, on to {destinations}"
        if x.alternate_exchange is not None:
            # RabbitMQ: the alternate exchange only takes messages the
            # exchange's own bindings do not match at all (docs/routing.md).
            text += f"; its alternate-exchange '{x.alternate_exchange}' is not used"
        step["explanation"] = text
        return step
    if not x.bindings:
        step["outcome"] = "no_bindings"
        what = "nothing is bound to it"
    elif isinstance(x, HeadersExchange):
        step["outcome"] = "no_match"
        shown = ", ".join(f"{k}={v!r}" for k, v in headers.items()) or "none"
        what = f"no binding matched the headers ({shown})"
    else:
        step["outcome"] = "no_match"
        noun = "routing key" if len(trace.routing_keys) == 1 else "routing keys"
        what = f"no binding matched the {noun} {keys}"
    if x.alternate_exchange is not None:
        if topology.has_exchange(x.alternate_exchange):
            step["alternate_exchange_used"] = True
            what += f"; on to its alternate-exchange '{x.alternate_exchange}'"
        else:
            what += (
                f"; its alternate-exchange '{x.alternate_exchange}' does not exist: "
                "the message stops here"
            )
    step["explanation"] = what
    return step


def _dedup_steps(
    vhost: VHost, exchange: str, queues: list[str], headers: dict[str, Any]
) -> list[dict[str, Any]]:
    """Deduplication at the exchange published to and at the queues reached:
    its settings, the message's key, and whether the live cache would drop it
    (read only: no key is remembered, no cache is made)."""
    topology = vhost.topology
    found: list[tuple[str, str, DedupSettings, DedupCache | None]] = []
    settings = topology.dedup_settings(exchange)
    if settings is not None:
        known = vhost.dedup_caches.get(exchange)
        live = known[1] if known is not None and known[0] is topology.exchanges.get(exchange) else None
        found.append(("exchange", exchange, settings, live))
    for name in queues:
        queue = vhost.queues.get(name)
        if queue is not None and queue.dedup is not None:
            found.append(("queue", name, queue.dedup.settings, queue.dedup))
    steps = []
    for kind, name, settings, cache in found:
        value = headers.get(settings.header)
        duplicate = cache is not None and cache.would_drop(headers)
        text = describe(kind, name, settings, headers)
        if value is not None:
            text += (
                "; now: seen before, this message would be DROPPED as a duplicate"
                if duplicate
                else "; now: not seen, this message would pass and its key be remembered"
            )
        steps.append({"kind": kind, "name": name, "header": settings.header,
                      "cache_size": settings.size, "cache_ttl": settings.ttl,
                      "key": _json(value), "duplicate": duplicate,
                      "remembered": len(cache) if cache is not None else 0,
                      "explanation": text})  # fmt: skip
    return steps


def trace_document(
    vhost: VHost, exchange: str, routing_key: str, headers: dict[str, Any]
) -> dict[str, Any]:
    """The answer for one message: the trace, every exchange crossed, the text.

    Raises `RoutingError` (unknown exchange, a CC/BCC header that is not an array).
    """
    topology = vhost.topology
    x = topology.get_exchange(exchange)
    trace = topology.trace(exchange, routing_key, headers or None, allow_internal=True)
    steps = [
        _exchange_step(topology, trace, name, headers, vhost.name)
        for name in trace.exchanges_visited
    ]
    text = trace.describe().splitlines()
    notes = []
    if x.internal:
        notes.append(
            f"exchange '{exchange}' is internal: a client publishing to it gets 403 "
            "ACCESS_REFUSED; traced as a message that reached it through a binding"
        )
    if "BCC" in headers:
        notes.append("the broker removes the BCC header from the messages it delivers")
    dedup = _dedup_steps(vhost, exchange, trace.queues, headers)
    duplicate = any(step["kind"] == "exchange" and step["duplicate"] for step in dedup)
    for step in dedup:
        notes.append(step["explanation"])
    unroutable = None
    if not trace.queues:
        reasons = [f"exchange '{s['name']}' ({s['type']}): {s['explanation']}" for s in steps]
        unroutable = {"reasons": reasons, "outcome": UNROUTABLE_OUTCOME}
        text += [f"  {line}" for line in [*reasons, UNROUTABLE_OUTCOME]]
    return {
        "vhost": vhost.name,
        "exchange": exchange,
        "exchange_type": x.type,
        "internal": x.internal,
        "routing_key": routing_key,
        "routing_keys": list(trace.routing_keys),
        "headers": _json(headers),
        "routed": bool(trace.queues),
        # x-delayed-message exchanges that would hold it, and for how long;
        # `queues` is then where it would go if released now.
        "delayed": [{"exchange": name, "delay_ms": delay} for name, delay in trace.delayed],
        "queues": [
            {"name": name, "hops": [_hop(topology, hop) for hop in trace.paths[name]]}
            for name in trace.queues
        ],
        "exchanges": steps,
        "unroutable": unroutable,
        "deduplication": dedup,
        "duplicate": duplicate,
        "notes": notes,
        "text": "\n".join([*(f"note: {n}" for n in notes), *text]),
    }


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register `POST /api/warren/trace/{vhost}` on `router`."""

    @router.route("/api/warren/trace/{vhost}", "POST")
    def trace_route(request: Request) -> Response:
        name = request.params["vhost"]
        require_vhost(context.access, request, name)
        vhost = context.vhosts.get(name)
        if vhost is None:
            raise HttpError(404, "not_found", "vhost_not_found")
        body = request.json_object()
        if "exchange" not in body:
            raise HttpError.bad_request("[{key_missing,exchange}]")
        exchange = body["exchange"]
        routing_key = body.get("routing_key", "")
        headers = body.get("headers")
        if headers is None:
            headers = {}
        if not isinstance(exchange, str):
            raise HttpError.bad_request("exchange must be a string")
        if not isinstance(routing_key, str):
            raise HttpError.bad_request("routing_key must be a string")
        if not isinstance(headers, dict):
            raise HttpError.bad_request("headers must be an object")
        if exchange == "amq.default":  # RabbitMQ's name for "" in the API
            exchange = ""
        try:
            document = trace_document(vhost, exchange, routing_key, headers)
        except RoutingError as error:
            if error.reply_code == 404:
                raise HttpError(404, "not_found", error.reply_text) from None
            raise HttpError.bad_request(f"{error.reply_code} {error.reply_text}") from None
        return Response.json(document)
