"""A vhost: its topology (exchanges, bindings), its queues, the rules.

Routing and exchange bookkeeping live in `routing.topology.Topology`, which
knows queues by name only; the queue objects (messages, consumers) live here.
This module applies the broker-side rules RabbitMQ applies around them:
server-named queues, the `amq.` prefix, passive declares, equivalence checks
on redeclare, exclusive queues (405 for other connections, deleted with their
connection), auto-delete, if-unused / if-empty, and it logs every declare and
delete.

Errors from `routing` carry RabbitMQ's reply code and text without the
"NOT_FOUND - " prefix that RabbitMQ puts on the wire; `_amqp()` adds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from broker.core import errors
from broker.core.delayed import HELD, DelayedJournal, DelayedMessages
from broker.core.direct_reply_to import REPLY_TO_PREFIX, DirectReplyTo, reply_keys
from broker.core.features import dead_lettering
from broker.core.features.arguments import log_ignored_once, validate_queue_arguments
from broker.core.features.deduplication import EXCHANGE, DedupCache, DedupStore
from broker.core.features.priority import PriorityQueue, max_priority_of
from broker.core.memory import MemoryReleaser
from broker.core.message import Message, QueuedMessage
from broker.core.names import new_name
from broker.core.policies import (
    OperatorPolicy,
    Policy,
    VHostPolicies,
    alternate_exchange,
    policy_fields,
    queue_values,
)
from broker.core.queue import MessageStore, Queue, QueuePaging
from broker.core.stats import BrokerCounters, MessageTotals
from broker.core.stream import StreamLogs, StreamQueue, stream_refusal
from broker.core.timers import Scheduler
from broker.logging import get_logger
from protocol.errors import AMQPError
from routing import deduplication as routing_dedup
from routing.errors import RoutingError
from routing.topology import Topology

__all__ = ["ClientRef", "DefinitionsSink", "VHost", "VHostLimits", "limit_reached", "new_queue"]

log = get_logger("warren.vhost")

T = TypeVar("T")

#: Queue arguments RabbitMQ compares on redeclare (rabbit_amqqueue's
#: "declare_args" list, 3.10). Others are accepted and ignored in comparisons.
EQUIVALENCE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-delivery-limit",  # compared by RabbitMQ's quorum queues, the ones that have it
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-queue-master-locator",
    "x-queue-type",
    "x-single-active-consumer",
    # quorum queues' own (RabbitMQ 3.10 compares these too)
    "x-quorum-initial-group-size",
    "x-dead-letter-strategy",
    "x-queue-leader-locator",
    # Warren's (LavinMQ's) deduplication arguments: a cache of another size,
    # lifetime or header is another queue (docs/deduplication.md).
    "x-message-deduplication",
    "x-cache-size",
    "x-cache-ttl",
    "x-deduplication-header",
)


#: Exchange arguments every type reads (each type adds its own in
#: `Exchange.ARGUMENTS`): others are logged once as ignored.
_EXCHANGE_ARGUMENTS = frozenset({"alternate-exchange", *routing_dedup.ARGUMENTS})

class ClientRef(Protocol):
    """The connection a request comes from, as the vhost sees it: compared by
    identity for exclusive queues (spec 1.7.2.1), named by peer in logs."""

    @property
    def peer_text(self) -> str: ...


class DefinitionsSink(Protocol):
    """Where durable definitions are kept (the storage layer's `DefinitionsStore`)."""

    def changed(self, vhost: VHost) -> None:
        """The topology of `vhost` changed: persist it if its durable part did."""
        ...


def _amqp(error: RoutingError) -> AMQPError:
    return errors.from_code(error.reply_code, error.reply_text)


def _routing(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except RoutingError as error:
        raise _amqp(error) from None


@dataclass
class VHostLimits:
    """RabbitMQ's vhost limits (`max-connections`, `max-queues`); None: no limit.

    A negative value set through the API or definitions means "no limit" and
    0 means "none allowed", as in RabbitMQ.
    """

    max_connections: int | None = None
    max_queues: int | None = None

    def as_dict(self) -> dict[str, int]:
        """RabbitMQ's `vhost-limits` parameter value: only the limits that are set."""
        out = {}
        if self.max_connections is not None:
            out["max-connections"] = self.max_connections
        if self.max_queues is not None:
            out["max-queues"] = self.max_queues
        return out


def limit_reached(limit: int | None, count: int) -> bool:
    """Would one more exceed `limit`? (None or negative: no limit.)"""
    return limit is not None and limit >= 0 and count + 1 > limit


class VHost:
    """One virtual host: its exchanges and bindings (`topology`) and its queues."""

    def __init__(self, name: str = "/") -> None:
        self.name = name
        self.description = ""
        self.tags: tuple[str, ...] = ()
        self.limits = VHostLimits()
        #: Open AMQP connections on this vhost (kept by the sessions, for max-connections).
        self.connection_count = 0
        self.topology = Topology(name)
        self.queues: dict[str, Queue] = {}
        #: Policies and operator policies (broker.core.policies); change them
        #: with `set_policy` / `clear_policy`, which apply them.
        self.policies = VHostPolicies()
        #: The broker's churn and dead-letter counts: the registry shares one
        #: object among its vhosts (`broker.core.stats`).
        self.counters = BrokerCounters()
        #: The message counts and connection bytes of the channels and
        #: connections on this vhost that have closed (the open ones count
        #: their own; a vhost's totals are the sum).
        self.retired = MessageTotals()
        #: Who declared each exchange (RabbitMQ's `user_who_performed_action`).
        self.exchange_users: dict[str, str] = {}
        #: Messages published to each exchange and the queue copies they
        #: became, by channels since closed: [publish_in, publish_out].
        self.retired_exchanges: dict[str, list[int]] = {}
        #: Set by the broker: runs TTL and x-expires deadlines.
        self.timers: Scheduler | None = None
        #: Set by the broker: told of large frees (broker.core.memory).
        self.memory: MemoryReleaser | None = None
        #: Set by the broker: pages bodies of long queues out (broker.storage.paging).
        self.paging: QueuePaging | None = None
        #: Set by the broker with a data directory: streams' logs on disk
        #: (broker.storage.streams); None: streams keep their logs in memory.
        self.streams: StreamLogs | None = None
        # Durability (the storage layer); None without --data-dir.
        self.definitions: DefinitionsSink | None = None
        self.journal: MessageStore | None = None
        #: Exchange name -> (the exchange, its deduplication cache or None),
        #: filled on first publish while `topology.dedup_exchanges` is not 0.
        self.dedup_caches: dict[str, tuple[Any, DedupCache | None]] = {}
        #: The reply consumers of `amq.rabbitmq.reply-to` (broker.core.direct_reply_to).
        #: The registry replaces this vhost's own table with the broker's: a
        #: reply reaches its requester from any vhost, as in RabbitMQ.
        self.replies = DirectReplyTo()
        #: Messages held by this vhost's delayed-message exchanges (broker.core.delayed).
        self.delayed = DelayedMessages(self)

    @property
    def delayed_journal(self) -> DelayedJournal | None:
        """The journal, for held messages (None without one)."""
        journal = self.journal
        return journal if hasattr(journal, "hold_delayed") else None  # type: ignore[return-value]

    @property
    def dedup_store(self) -> DedupStore | None:
        """Where durable exchanges' and queues' deduplication caches are kept:
        the journal (None without --data-dir)."""
        journal = self.journal
        if journal is None or not hasattr(journal, "dedup_remember"):
            return None
        return cast(DedupStore, journal)

    def stored(self) -> None:
        """After a change: persist the durable definitions (if any changed)."""
        if self.definitions is not None:
            self.definitions.changed(self)

    # -- exchanges --------------------------------------------------------------

    def declare_exchange(
        self,
        name: str,
        type: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
        peer: str | None = None,
        user: str | None = None,
    ) -> None:
        topology = self.topology
        if not name:
            # RabbitMQ refuses every exchange.declare of "", passive or not.
            raise errors.default_exchange_refused()
        if passive:
            # Passive: only "does it exist" (spec 1.6.2.1); properties are ignored.
            _routing(topology.get_exchange, name)
            return
        existed = topology.has_exchange(name)
        _routing(
            topology.declare_exchange,
            name,
            type,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments or {},
        )
        if not existed:
            exchange = topology.exchanges[name]
            for key in exchange.arguments:
                if key not in _EXCHANGE_ARGUMENTS and key not in exchange.ARGUMENTS:
                    log_ignored_once(
                        self.name, name, key,
                        "unknown exchange argument, ignored as RabbitMQ ignores it",
                        what="exchange",
                    )
            self._apply_exchange_policies(exchange)
            if user is not None:
                self.exchange_users[name] = user
            log.info(
                "exchange.declared",
                exchange=name,
                type=type,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                peer=peer,
            )
            self.stored()

    def delete_exchange(
        self, name: str, *, if_unused: bool = False, peer: str | None = None
    ) -> None:
        existed = self.topology.has_exchange(name)
        changes = _routing(self.topology.delete_exchange, name, if_unused)
        if existed:
            log.info("exchange.deleted", exchange=name, peer=peer)
        self._forget_deleted(changes, skip=name)
        self.stored()

    def bind_exchange(
        self, destination: str, source: str, routing_key: str, arguments: dict[str, Any]
    ) -> None:
        # RabbitMQ checks the destination's existence too; topology does both.
        if _routing(self.topology.bind, source, ("exchange", destination), routing_key, arguments):
            log.info("binding.created", source=source, destination=destination, kind="exchange")
            self.stored()

    def unbind_exchange(
        self, destination: str, source: str, routing_key: str, arguments: dict[str, Any]
    ) -> None:
        changes = _routing(
            self.topology.unbind, source, ("exchange", destination), routing_key, arguments
        )
        self._forget_deleted(changes)
        self.stored()

    def _forget_deleted(self, changes: Any, skip: str | None = None) -> None:
        """What the vhost keeps per exchange goes with the exchanges `changes`
        deleted (the one asked for, and those auto-deleted with it); each but
        `skip` is logged as auto-deleted."""
        for name in getattr(changes, "exchanges_deleted", ()):
            self.exchange_users.pop(name, None)
            self.retired_exchanges.pop(name, None)
            self._drop_dedup_cache(name)
            # A deleted delayed exchange takes its held messages with it.
            if name in self.delayed.counts:
                self.delayed.drop_exchange(name)
            if name != skip:
                log.info("exchange.deleted", exchange=name, reason="auto_delete")

    # -- publishing -------------------------------------------------------------

    def check_publish(self, exchange: str) -> None:
        """404 for a missing exchange, 403 for an internal one (checked at publish)."""
        x = self.topology.exchanges.get(exchange)
        if x is None:
            raise errors.exchange_not_found(exchange, self.name)
        if x.internal:
            raise errors.access_refused(
                f"cannot publish to internal exchange '{exchange}' in vhost '{self.name}'"
            )

    def has_exchange(self, name: str) -> bool:
        return self.topology.has_exchange(name)

    def retire_exchange_counts(self, exchange: str, publish_in: int, publish_out: int) -> None:
        """A closed channel's messages to `exchange` (statistics: the open
        channels count their own)."""
        if exchange in self.topology.exchanges:
            counts = self.retired_exchanges.setdefault(exchange, [0, 0])
            counts[0] += publish_in
            counts[1] += publish_out

    def queue_named(self, name: str) -> Queue | None:
        return self.queues.get(name)

    def dead_letter(self, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
        """Republish messages that died in `queue` to its dead-letter exchange."""
        dead_lettered = self.counters.dead_lettered
        dead_lettered[reason] = dead_lettered.get(reason, 0) + len(entries)
        dead_lettering.dead_letter(self, queue, entries, reason)

    def route(self, exchange: str, message: Message, replies: bool = True) -> list[Queue]:
        """The queues a message reaches (each once). Raises 404/403/406 as RabbitMQ does.

        A message published to the default exchange with a direct reply-to
        name among its routing keys (`amq.rabbitmq.reply-to.<opaque>`) is
        handed to that requester here, unless `replies` is false (a
        transaction's publish, whose replies went when it was published);
        such a name is no queue, so it adds nothing to the list, and a
        mandatory reply is returned as unroutable, as RabbitMQ does.
        """
        headers = message.headers
        if not exchange and headers is None:
            # The default exchange without CC/BCC: the queue named by the key.
            key = message.routing_key
            queue = self.queues.get(key)
            if queue is not None:
                return [queue]
            if replies and key.startswith(REPLY_TO_PREFIX):
                self.deliver_replies(message)
            return []
        topology = self.topology
        # Only a consistent-hash exchange with `hash-property` reads the
        # properties: decode them for no other (the publish path's fast case).
        properties = message.decoded_properties if topology.uses_properties else None
        held: Sequence[str] = ()  # no list made per publish
        delay = 0
        try:
            if topology.delayed_exchanges:  # the one check the publish path pays
                # A message asking for a delay stops at each delayed-message
                # exchange it reaches (held there); `HELD` stands in for them.
                names, held, delay = topology.route_holding(
                    exchange, message.routing_key, headers, properties
                )
            else:
                names = topology.route(exchange, message.routing_key, headers, properties)
        except RoutingError as error:
            raise _amqp(error) from None
        if topology.dedup_exchanges and self.is_duplicate(exchange, message):
            # LavinMQ: neither routed (so returned if mandatory) nor held; confirmed.
            return []
        if not exchange and replies:
            self.deliver_replies(message)
        queues = self.queues
        out = [queues[name] for name in names if name in queues]
        if held:
            self._hold(held, message, delay)
            out.append(HELD)
        return out

    # -- deduplication (broker.core.features.deduplication) ----------------------

    def exchange_dedup(self, exchange: str) -> DedupCache | None:
        """The deduplication cache of `exchange`, made on first use; None if it
        does not deduplicate (or does not exist)."""
        x = self.topology.exchanges.get(exchange)
        known = self.dedup_caches.get(exchange)
        if known is not None and known[0] is x:
            return known[1]
        if x is None:
            return None
        if known is not None:  # replaced behind the vhost's back: start afresh
            self._drop_dedup_cache(exchange)
        settings = self.topology.dedup_settings(exchange)
        cache = None
        if settings is not None:
            cache = DedupCache(EXCHANGE, self.name, exchange, settings)
            if x.durable:
                cache.store = self.dedup_store
        self.dedup_caches[exchange] = (x, cache)
        return cache

    def is_duplicate(self, exchange: str, message: Message) -> bool:
        """Whether a message published to `exchange` is a duplicate there (and
        if not, remember its key). Only the exchange published to checks, as
        in LavinMQ: not those it reaches through bindings or as alternate."""
        cache = self.exchange_dedup(exchange)
        return cache is not None and cache.is_duplicate(message.headers)

    def _drop_dedup_cache(self, exchange: str) -> None:
        known = self.dedup_caches.pop(exchange, None)
        if known is None or known[1] is None:
            return
        cache = known[1]
        if cache.store is not None:
            cache.store.dedup_dropped(cache)
        cache.clear()
    def _hold(self, held: Sequence[str], message: Message, delay: int) -> None:
        exchanges = self.topology.exchanges
        durable = {name for name in held if exchanges[name].durable}
        self.delayed.hold(held, message, delay, durable)

    def release_delayed(self, exchange: str, message: Message) -> int:
        """Route a message whose delay is over from delayed exchange `exchange`
        by today's bindings (broker.core.delayed); how many queues took it."""
        topology = self.topology
        headers = message.headers
        properties = message.decoded_properties if topology.uses_properties else None
        try:
            names = topology.release(exchange, message.routing_key, headers, properties)
        except RoutingError:
            return 0
        if not names:
            return 0
        if headers is not None:
            message = message.without_bcc()
        queues = self.queues
        count = 0
        for name in names:
            queue = queues.get(name)
            if queue is not None:
                queue.enqueue(message)
                count += 1
        return count

    def deliver_replies(self, message: Message) -> None:
        """Hand a message published to the default exchange to the direct
        reply-to consumers its routing key, CC and BCC name (without BCC)."""
        replies = self.replies
        if not len(replies):
            return
        headers = message.headers
        keys = reply_keys(message.routing_key, headers)
        if keys:
            replies.deliver(keys, message.without_bcc() if headers is not None else message)

    def route_names(
        self,
        exchange: str,
        routing_key: str,
        headers: dict[str, Any] | None,
        message: Message | None = None,
    ) -> list[str]:
        """Queue names for a message the broker itself publishes (dead-lettering).

        Nothing to answer to here, so a routing error just means "nowhere".
        `message` gives its properties to an exchange that hashes one.
        """
        properties = None
        if message is not None and self.topology.uses_properties:
            properties = message.decoded_properties
        try:
            if self.topology.delayed_exchanges and message is not None:
                # A dead letter reaching a delayed exchange with an x-delay
                # is held there too (the plugin delays what rabbit_exchange:
                # route/2 hands it, dead letters included).
                names, held, delay = self.topology.route_holding(
                    exchange, routing_key, headers, properties
                )
                if held:
                    self._hold(held, message, delay)
                return names
            return self.topology.route(exchange, routing_key, headers, properties)
        except RoutingError:
            return []

    # -- queues ---------------------------------------------------------------------

    def get_queue(self, name: str, connection: ClientRef | None) -> Queue:
        """The queue, if it exists (404) and this connection may use it (405)."""
        queue = self.queues.get(name)
        if queue is None:
            raise errors.queue_not_found(name, self.name)
        if queue.exclusive_owner is not None and queue.exclusive_owner is not connection:
            raise errors.exclusive_locked(name, self.name)
        queue.touch()
        return queue

    def declare_queue(
        self,
        connection: ClientRef | None,
        name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        check_configure: Callable[[str], None] | None = None,
        check_new: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> Queue:
        """queue.declare, with RabbitMQ's checks in its order.

        `check_configure(name)` (the caller's permission check) runs once the
        name is known (server-made names included); `check_new(name,
        arguments)` only for a queue about to be made, after the max-queues
        limit (RabbitMQ checks dead-letter exchange permissions there).
        """
        arguments = dict(arguments or {})
        if passive:
            return self.get_queue(name, connection)
        if not name:
            name = new_name("amq.gen-")
        elif name.startswith("amq."):
            raise errors.reserved_prefix("queue", name)
        if check_configure is not None:
            check_configure(name)
        existing = self.queues.get(name)
        if existing is not None:
            self._assert_equivalent(existing, connection, durable, exclusive, auto_delete, arguments)
            existing.touch()
            self.counters.queue_declared += 1
            return existing
        if limit_reached(self.limits.max_queues, len(self.queues)):
            raise errors.precondition_failed(
                f"cannot declare queue '{name}': queue limit in vhost '{self.name}' "
                f"({self.limits.max_queues}) is reached"
            )
        if check_new is not None:
            check_new(name, arguments)
        validate_queue_arguments(
            name, arguments, self.name, durable=durable, exclusive=exclusive,
            auto_delete=auto_delete,
        )
        queue = new_queue(
            name,
            durable=durable,
            exclusive_owner=connection if exclusive else None,
            auto_delete=auto_delete,
            arguments=arguments,
            vhost=self,
        )
        self.queues[name] = queue
        self.topology.add_queue(name)
        self._apply_queue_policies(queue)
        self.counters.queue_declared += 1
        self.counters.queue_created += 1
        log.info(
            "queue.declared",
            queue=name,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            peer=_peer(connection),
        )
        if durable:
            queue.journal = self.journal  # persistent messages on it are journalled
            if queue.dedup is not None:
                queue.dedup.store = self.dedup_store
            self.stored()
        return queue

    def _assert_equivalent(
        self,
        queue: Queue,
        connection: ClientRef | None,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> None:
        # rabbit_amqqueue:assert_equivalence/5: exclusivity first (405), then
        # durable, auto_delete, then the compared x-arguments (406).
        owner = queue.exclusive_owner
        if (owner is not None and owner is not connection) or (owner is None) == exclusive:
            if owner is not None or exclusive:
                raise errors.exclusive_locked(queue.name, self.name)
        if queue.durable != durable:
            raise errors.inequivalent_arg(
                "queue", queue.name, self.name, "durable", durable, queue.durable
            )
        if queue.auto_delete != auto_delete:
            raise errors.inequivalent_arg(
                "queue", queue.name, self.name, "auto_delete", auto_delete, queue.auto_delete
            )
        for key in EQUIVALENCE_ARGS:
            got, had = arguments.get(key), queue.arguments.get(key)
            if key == "x-queue-type" and (got or "classic") == (had or "classic"):
                continue  # no x-queue-type is "classic" (RabbitMQ's default type)
            if isinstance(got, bytes):
                got = got.decode("utf-8", "replace")
            if got != had or type(got) is not type(had):
                raise errors.inequivalent_arg(
                    "queue", queue.name, self.name, key, got, had, x_arg=True
                )

    def purge_queue(self, connection: ClientRef | None, name: str) -> int:
        queue = self.get_queue(name, connection)
        if isinstance(queue, StreamQueue):
            raise stream_refusal(queue, "queue.purge")
        freed = queue.ready_bytes
        count = queue.purge()
        self._freed(freed)
        return count

    def _freed(self, nbytes: int) -> None:
        """Messages of `nbytes` were dropped at once: the memory can go back to the OS."""
        if self.memory is not None:
            self.memory.freed(nbytes)

    def delete_queue(
        self,
        connection: ClientRef | None,
        name: str,
        *,
        if_unused: bool = False,
        if_empty: bool = False,
    ) -> int:
        """queue.delete: the number of ready messages deleted with it.

        A missing queue is not an error: RabbitMQ 3.10 answers delete-ok with
        message_count 0 (checked against the reference broker).
        """
        queue = self.queues.get(name)
        if queue is None:
            return 0
        self.get_queue(name, connection)  # 405 for someone else's exclusive queue
        if if_unused and queue.consumers:
            raise errors.precondition_failed(f"queue '{name}' in vhost '{self.name}' in use")
        if if_empty and queue.ready:
            raise errors.precondition_failed(f"queue '{name}' in vhost '{self.name}' not empty")
        return self._delete_queue(queue, reason="delete", peer=_peer(connection))

    def expire_queue(self, queue: Queue) -> None:
        """`x-expires` ran out: the queue was unused for that long."""
        if not queue.deleted and self.queues.get(queue.name) is queue:
            self._delete_queue(queue, reason="expires")

    def auto_delete_queue(self, queue: Queue) -> None:
        """The last consumer of an auto-delete queue left."""
        if not queue.deleted and self.queues.get(queue.name) is queue:
            self._delete_queue(queue, reason="auto_delete")

    def _delete_queue(self, queue: Queue, *, reason: str, peer: str | None = None) -> int:
        queue.deleted = True
        self.counters.queue_deleted += 1
        del self.queues[queue.name]
        changes = self.topology.remove_queue(queue.name)
        freed = queue.ready_bytes
        count = queue.purge()
        self._freed(freed)
        if isinstance(queue, StreamQueue):
            queue.drop_log()
        consumers = list(queue.consumers)
        queue.consumers.clear()
        queue.exclusive_consumer = None
        for consumer in consumers:
            # RabbitMQ's consumer_cancel_notify: the server sends basic.cancel.
            consumer.cancelled_by_queue()
        log.info("queue.deleted", queue=queue.name, reason=reason, messages=count, peer=peer)
        self._forget_deleted(changes)
        if queue.durable:
            if queue.journal is not None:
                queue.journal.queue_deleted(queue)
            self.stored()
        return count

    def delete_contents(self) -> int:
        """The vhost is being deleted: delete every queue (and its messages); how many messages."""
        messages = 0
        # The registry rewrites the definitions once, afterwards: not once per queue.
        definitions, self.definitions = self.definitions, None
        try:
            for queue in list(self.queues.values()):
                messages += self._delete_queue(queue, reason="vhost_deleted")
            messages += self.delayed.drop_all()
        finally:
            self.definitions = definitions
        # The exchanges go with the vhost: their deduplication keys too (and
        # the journal segments they held).
        for name in list(self.dedup_caches):
            self._drop_dedup_cache(name)
        return messages

    def connection_closed(self, connection: ClientRef) -> None:
        """Delete the exclusive queues of a connection that went away (spec 1.7.2.1)."""
        owned = [q for q in self.queues.values() if q.exclusive_owner is connection]
        for queue in owned:
            self._delete_queue(queue, reason="exclusive_owner_closed", peer=_peer(connection))

    # -- policies ---------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> bool:
        """Set a policy or operator policy (validated: policies.validate_policy) and
        apply it to every queue and exchange; True if it is new."""
        created = self.policies.put(policy)
        log.info(
            "policy.set",
            vhost=self.name,
            policy=policy.name,
            operator=isinstance(policy, OperatorPolicy),
            pattern=policy.pattern,
            apply_to=policy.apply_to,
            priority=policy.priority,
            created=created,
        )
        self.apply_policies()
        self.stored()
        return created

    def clear_policy(self, name: str, *, operator: bool = False) -> bool:
        """Clear a policy (or operator policy) and apply what is left; False if none."""
        if self.policies.delete(name, operator=operator) is None:
            return False
        log.info("policy.cleared", vhost=self.name, policy=name, operator=operator)
        self.apply_policies()
        self.stored()
        return True

    def apply_policies(self) -> None:
        """Give every queue and exchange the policies that match it now
        (RabbitMQ's update_matched_objects, after every set and clear)."""
        for queue in list(self.queues.values()):
            if not queue.deleted:
                self._apply_queue_policies(queue)
        for exchange in list(self.topology.exchanges.values()):
            self._apply_exchange_policies(exchange)

    def _apply_queue_policies(self, queue: Queue) -> None:
        policy, operator = self.policies.match("queues", queue.name)
        if policy == queue.policy and operator == queue.operator_policy:
            return  # unchanged: no reconfiguration (RabbitMQ's no_change)
        queue.policy, queue.operator_policy = policy, operator
        queue.configure(queue_values(queue.arguments, policy, operator))

    def _apply_exchange_policies(self, exchange: Any) -> None:
        if not exchange.name:
            return  # the default exchange never uses an alternate exchange
        policy, operator = self.policies.match("exchanges", exchange.name)
        exchange.set_policy_alternate(alternate_exchange(policy, operator))

    def policy_fields(self, kind: str, name: str) -> dict[str, Any]:
        """`policy`, `operator_policy`, `effective_policy_definition` as the
        management API shows them for the queue (kind "queues") or exchange
        ("exchanges") `name` (see policies.policy_fields)."""
        if kind == "queues":
            queue = self.queues.get(name)
            if queue is not None:
                return policy_fields(queue.policy, queue.operator_policy)
        policy, operator = self.policies.match(kind, name)
        return policy_fields(policy, operator, kind)

    # -- bindings ---------------------------------------------------------------------

    def bind_queue(
        self,
        connection: ClientRef | None,
        queue: str,
        exchange: str,
        routing_key: str,
        arguments: dict[str, Any],
    ) -> None:
        if queue in self.queues:
            self.get_queue(queue, connection)
        if _routing(self.topology.bind, exchange, ("queue", queue), routing_key, arguments):
            log.info("binding.created", source=exchange, destination=queue, kind="queue")
            self.stored()

    def unbind_queue(
        self,
        connection: ClientRef | None,
        queue: str,
        exchange: str,
        routing_key: str,
        arguments: dict[str, Any],
    ) -> None:
        if queue in self.queues:
            self.get_queue(queue, connection)
        changes = _routing(self.topology.unbind, exchange, ("queue", queue), routing_key, arguments)
        if getattr(changes, "bindings_removed", None):
            log.info("binding.deleted", source=exchange, destination=queue, kind="queue")
        self._forget_deleted(changes)
        self.stored()


def _peer(connection: ClientRef | None) -> str | None:
    return connection.peer_text if connection is not None else None


def new_queue(
    name: str,
    *,
    durable: bool = False,
    exclusive_owner: object | None = None,
    auto_delete: bool = False,
    arguments: dict[str, Any] | None = None,
    vhost: VHost | None = None,
) -> Queue:
    """A queue of the class its (validated) arguments call for: a
    `StreamQueue` for `x-queue-type: stream` (its log on the vhost's
    `streams`, else in memory), a `PriorityQueue` for `x-max-priority`
    above 0, else a plain `Queue`."""
    if (arguments or {}).get("x-queue-type") == "stream":
        return StreamQueue(
            name,
            durable=durable,
            exclusive_owner=exclusive_owner,
            auto_delete=auto_delete,
            arguments=arguments,
            vhost=vhost,
            logs=vhost.streams if vhost is not None else None,
        )
    cls = PriorityQueue if max_priority_of(arguments or {}) else Queue
    return cls(
        name,
        durable=durable,
        exclusive_owner=exclusive_owner,
        auto_delete=auto_delete,
        arguments=arguments,
        vhost=vhost,
    )
