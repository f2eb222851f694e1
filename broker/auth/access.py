"""Access control: who may log in, open which vhost, and touch which resource.

`AccessControl` is the broker's one table of users, permissions and topic
permissions, with RabbitMQ's `loopback_users` rule. It answers three
questions, each as RabbitMQ 3.10 answers it (docs/security.md):

- `authenticate(username, password, peer)`: a password login (PLAIN,
  AMQPLAIN), or `authenticate_external(name, peer)` for a TLS client
  certificate (EXTERNAL). A refusal raises `LoginRefused` with the reason
  for the log; the client only ever hears RabbitMQ's generic 403.
- `may_open(user, vhost)`: a user may open a vhost when it has a permission
  record there (even one of three empty patterns).
- `access(user, vhost)`: a `UserAccess`, the per-connection view that
  checks each method's permission and caches the answers.

Changes (the HTTP API, definitions) go through the methods here, which bump
`version`, drop every `UserAccess` cache and tell the `on_change` observers
(persistence), so a revoked permission takes effect on the next method of
every open channel. (RabbitMQ keeps up to twelve cached answers per channel
until it idles; Warren does not, see docs/compatibility.md.)
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from broker.auth.permissions import Permission, TopicPermission
from broker.auth.users import User, parse_tags, validate_user_limits
from broker.core import errors
from broker.logging import get_logger
from protocol.errors import AMQPError

__all__ = [
    "AccessControl",
    "LoginRefused",
    "LoopbackOnly",
    "Peer",
    "UserAccess",
    "resource_name",
]

log = get_logger("warren.auth")

Kind = Literal["configure", "write", "read"]
Resource = Literal["exchange", "queue"]

#: RabbitMQ checks permissions on the default exchange under this name.
DEFAULT_EXCHANGE_NAME = "amq.default"
#: Cached answers per connection before the cache is emptied (bounds memory
#: for a client that touches ever new names, e.g. topic routing keys).
CACHE_LIMIT = 1024


class LoginRefused(Exception):
    """A login refused; the message is the reason, for the log only."""


class LoopbackOnly(LoginRefused):
    """A `loopback_users` user logging in from elsewhere (the HTTP API says so)."""


class Peer(Protocol):
    """Where a login comes from (the session's `ConnectionInfo` is one)."""

    @property
    def is_loopback(self) -> bool: ...

    @property
    def peer_text(self) -> str: ...


def resource_name(resource: Resource, name: str) -> str:
    """The name a permission is checked against: "" is `amq.default` for an exchange."""
    return DEFAULT_EXCHANGE_NAME if resource == "exchange" and not name else name


def refused(resource: str, name: str, vhost: str, user: str) -> AMQPError:
    """RabbitMQ's 403 for a refused resource check (a channel error)."""
    return errors.access_refused(
        f"access to {resource} '{name}' in vhost '{vhost}' refused for user '{user}'"
    )


def _host_of(peer_text: str) -> str:
    """The address part of "host:port" / "[v6]:port"."""
    return peer_text.rsplit(":", 1)[0].strip("[]")


@dataclass
class LoginThrottle:
    """Delays the answer to failed logins from an address that keeps failing.

    The first `free_failures` failures from one address within `window`
    seconds are answered at once; each further one waits twice as long as
    the one before (from `first_delay`), up to `max_delay`. Only the
    failing connection waits: other clients, and good logins from the same
    address, are not delayed. RabbitMQ answers every failure at once (and
    closes the socket 3 s later), so a guesser gets hundreds of tries a
    second; this bounds that to a handful. At most `max_addresses` are
    remembered (the oldest go first), so memory stays bounded.

    Guessing in parallel would get around the delays (40 connections at once
    each wait, then answer together), so at most `max_pending` delayed
    answers may wait per address (None: no cap): while that many wait, a
    new handshake from the address is refused at once without its
    credentials being checked (`shed`), so it teaches a guesser nothing.

    Loopback clients are not delayed unless `include_loopback`: a process
    on the broker's own machine is not the remote guesser this is for, and
    test suites run their failed-login cases from there.

    The settings keys `warren.login_throttle.*` set these (docs/security.md).
    """

    free_failures: int = 3
    first_delay: float = 0.5
    max_delay: float = 10.0
    window: float = 60.0
    max_pending: int | None = 10
    max_addresses: int = 10_000
    include_loopback: bool = False
    #: Answers delayed since start.
    delayed: int = 0
    #: Handshakes refused unchecked because `max_pending` answers were waiting.
    shed: int = 0
    _failures: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)
    #: Delayed answers waiting now, per address.
    _pending: dict[str, int] = field(default_factory=dict)

    def failed(self, host: str, now: float | None = None) -> float:
        """Record a failure from `host`; the seconds its answer should wait.
        A wait above 0 counts as pending until `answered(host)`."""
        now = time.monotonic() if now is None else now
        count, last = self._failures.pop(host, (0, now))
        if now - last > self.window:
            count = 0
        count += 1
        self._failures[host] = (count, now)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        if count <= self.free_failures:
            return 0.0
        delay = min(self.first_delay * 2 ** (count - self.free_failures - 1), self.max_delay)
        if delay <= 0:
            return 0.0
        self.delayed += 1
        self._pending[host] = self._pending.get(host, 0) + 1
        return delay

    def answered(self, host: str) -> None:
        """A delayed answer to `host` was sent (or its connection is gone)."""
        left = self._pending.get(host, 0) - 1
        if left > 0:
            self._pending[host] = left
        else:
            self._pending.pop(host, None)

    def pending(self, host: str) -> int:
        """Delayed answers to `host` waiting now."""
        return self._pending.get(host, 0)

    def over_pending(self, host: str) -> bool:
        """Must a new handshake from `host` be refused unchecked? (counted in `shed`)"""
        if self.max_pending is None or self._pending.get(host, 0) < self.max_pending:
            return False
        self.shed += 1
        return True


class AccessControl:
    """Users, their permissions per vhost, topic permissions, and the loopback rule."""

    def __init__(self, loopback_users: Iterable[str] = ("guest",)) -> None:
        self.users: dict[str, User] = {}
        #: (user, vhost) -> its permission record.
        self.permissions: dict[tuple[str, str], Permission] = {}
        #: (user, vhost) -> exchange -> topic permission.
        self.topic_permissions: dict[tuple[str, str], dict[str, TopicPermission]] = {}
        self.loopback_users = frozenset(loopback_users)
        #: Bumped on every change of users or permissions.
        self.version = 0
        #: Logins refused since start (also logged, one line each).
        self.failed_logins = 0
        #: Login attempts by protocol ("amqp091", "http"): [succeeded, failed],
        #: as rabbitmq_prometheus counts them (rabbitmq_auth_attempts_*_total).
        self.auth_attempts: dict[str, list[int]] = {"amqp091": [0, 0], "http": [0, 0]}
        #: Called after every change (the definitions store persists them).
        self.on_change: list[Callable[[], None]] = []
        #: Called with a user's name when it is deleted (its connections close).
        self.on_user_deleted: list[Callable[[str], None]] = []
        self._views: weakref.WeakSet[UserAccess] = weakref.WeakSet()
        #: Slows down repeated failed logins from one address.
        self.throttle = LoginThrottle()
        #: Open AMQP connections by user (all vhosts), for the user limits;
        #: each has a `channels` mapping (its open channels).
        self.sessions: dict[str, set[Any]] = {}

    @classmethod
    def with_default_user(
        cls,
        name: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        tags: tuple[str, ...] = ("administrator",),
        permission: Permission | None = None,
        loopback_users: Iterable[str] = ("guest",),
    ) -> AccessControl:
        """RabbitMQ's first start: one user, all permissions on the default vhost."""
        control = cls(loopback_users)
        control.users[name] = User.with_password(name, password, tags)
        control.permissions[(name, vhost)] = permission or Permission()
        return control

    # -- logins ---------------------------------------------------------------------

    def authenticate(self, username: str, password: str, peer: Peer) -> str:
        """The user's name for a good password login; `LoginRefused(reason)` if not."""
        user = self.users.get(username)
        if user is None:
            raise LoginRefused("no such user")
        if password == "":
            raise LoginRefused("blank password")
        if not user.check_password(password):
            raise LoginRefused("invalid credentials")
        self._check_loopback(username, peer)
        return username

    def authenticate_external(self, username: str, peer: Peer) -> str:
        """A login by TLS client certificate: the user must exist (no password needed)."""
        if username not in self.users:
            raise LoginRefused(f"no user named {username!r} (the client certificate's)")
        self._check_loopback(username, peer)
        return username

    def _check_loopback(self, username: str, peer: Peer) -> None:
        if username in self.loopback_users and not peer.is_loopback:
            raise LoopbackOnly(f"user '{username}' can only connect via localhost")

    def login_succeeded(self, protocol: str = "amqp091") -> None:
        """A login over `protocol` ("amqp091" or "http") was accepted: count it."""
        self.auth_attempts[protocol][0] += 1

    def login_refused_unchecked(self, protocol: str = "amqp091") -> None:
        """A login refused before its credentials were checked (too many of
        its address's answers waiting): a failed attempt, not a throttled one."""
        self.auth_attempts[protocol][1] += 1

    def login_failed(self, peer: Peer, protocol: str = "amqp091") -> float:
        """A login from `peer` over `protocol` was refused: count it; the
        seconds to wait before answering (0 until the peer's address has
        failed a few times). A wait above 0 must be followed by
        `login_answered(peer)`."""
        self.failed_logins += 1
        self.auth_attempts[protocol][1] += 1
        if peer.is_loopback and not self.throttle.include_loopback:
            return 0.0
        return self.throttle.failed(_host_of(peer.peer_text))

    def login_answered(self, peer: Peer) -> None:
        """The delayed answer to a failed login from `peer` is sent."""
        self.throttle.answered(_host_of(peer.peer_text))

    def login_shed(self, peer: Peer) -> int:
        """Before checking a login: 0 to go on, or how many delayed answers to
        `peer`'s address wait already, when that is the throttle's cap (the
        handshake is then refused without checking its credentials)."""
        if peer.is_loopback and not self.throttle.include_loopback:
            return 0
        host = _host_of(peer.peer_text)
        return self.throttle.pending(host) if self.throttle.over_pending(host) else 0

    def may_open(self, user: str, vhost: str) -> bool:
        """Has `user` a permission record in `vhost` (what connection.open needs)?"""
        return (user, vhost) in self.permissions

    def access(self, user: str, vhost: str) -> UserAccess:
        """The view one connection of `user` in `vhost` checks its methods with."""
        view = UserAccess(self, user, vhost)
        self._views.add(view)
        return view

    # -- user limits (RabbitMQ 3.10: max-connections, max-channels) ---------------------

    def connection_opened(self, user: str, session: Any) -> None:
        """An AMQP connection of `user` is open (it counts against its limits)."""
        self.sessions.setdefault(user, set()).add(session)

    def connection_closed(self, user: str, session: Any) -> None:
        sessions = self.sessions.get(user)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.sessions[user]

    def user_connections(self, user: str) -> int:
        return len(self.sessions.get(user, ()))

    def user_channels(self, user: str) -> int:
        return sum(len(session.channels) for session in self.sessions.get(user, ()))

    def _user_limit(self, user: str, name: str) -> int | None:
        found = self.users.get(user)
        return None if found is None else found.limit(name)

    def check_user_connection_limit(self, user: str) -> None:
        """530 as rabbit_reader:is_over_user_connection_limit when `user` has
        its `max-connections` open already (in any vhost)."""
        limit = self._user_limit(user, "max-connections")
        if limit is not None and self.user_connections(user) >= limit:
            raise errors.not_allowed(
                f"connection refused for user '{user}': user connection limit ({limit}) "
                "is reached"
            )

    def check_user_channel_limit(self, user: str) -> None:
        """530 (a connection error, as rabbit_reader:create_channel's) when
        `user` has its `max-channels` open already (over all its connections)."""
        limit = self._user_limit(user, "max-channels")
        if limit is not None and self.user_channels(user) >= limit:
            raise errors.not_allowed(
                f"number of channels opened for user '{user}' has reached the maximum "
                f"allowed user limit of ({limit})"
            )

    def set_user_limits(self, user: str, limits: Any) -> None:
        """Merge `limits` into `user`'s (rabbitmqctl set_user_limits, PUT
        /api/user-limits/U/NAME). KeyError: no such user; ValueError:
        RabbitMQ's validation text."""
        found = self.users[user]
        merged = {**found.limits, **validate_user_limits(limits)}
        self.users[user] = _with_limits(found, merged)
        self._changed()

    def clear_user_limit(self, user: str, name: str) -> None:
        """Drop one of `user`'s limits ("all": every one), as
        rabbitmqctl clear_user_limits. KeyError: no such user."""
        found = self.users[user]
        if name == "all":
            left: dict[str, int] = {}
        else:
            left = {k: v for k, v in found.limits.items() if k != name}
        if left != dict(found.limits):
            self.users[user] = _with_limits(found, left)
            self._changed()

    def user_tags(self, user: str) -> tuple[str, ...]:
        found = self.users.get(user)
        return found.tags if found is not None else ()

    # -- changes --------------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1
        for view in list(self._views):
            view.forget()
        for observer in self.on_change:
            observer()

    def put_user(self, user: User) -> bool:
        """Create or replace a user; True if it is new. Its limits are merged
        into the existing user's, as RabbitMQ's PUT /api/users does (a user
        given without limits keeps those it had)."""
        existing = self.users.get(user.name)
        created = existing is None
        if existing is not None and existing.limits:
            user = _with_limits(user, {**existing.limits, **user.limits})
        self.users[user.name] = user
        self._changed()
        return created

    def delete_user(self, name: str) -> bool:
        """Delete a user and its permissions; False if there was none."""
        if self.users.pop(name, None) is None:
            return False
        for key in [k for k in self.permissions if k[0] == name]:
            del self.permissions[key]
        for key in [k for k in self.topic_permissions if k[0] == name]:
            del self.topic_permissions[key]
        self._changed()
        for observer in self.on_user_deleted:
            observer(name)
        return True

    def set_permission(self, user: str, vhost: str, permission: Permission) -> bool:
        """Set `user`'s record in `vhost`; True if it is new. The user must exist."""
        if user not in self.users:
            raise KeyError(user)
        created = (user, vhost) not in self.permissions
        self.permissions[(user, vhost)] = permission
        self._changed()
        return created

    def clear_permission(self, user: str, vhost: str) -> bool:
        if self.permissions.pop((user, vhost), None) is None:
            return False
        self._changed()
        return True

    def set_topic_permission(self, user: str, vhost: str, permission: TopicPermission) -> bool:
        """Set `user`'s topic permission on one exchange of `vhost`; True if it is new."""
        if user not in self.users:
            raise KeyError(user)
        table = self.topic_permissions.setdefault((user, vhost), {})
        created = permission.exchange not in table
        table[permission.exchange] = permission
        self._changed()
        return created

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None) -> bool:
        """Drop `user`'s topic permissions in `vhost` (on one exchange, or all)."""
        table = self.topic_permissions.get((user, vhost))
        if not table:
            return False
        if exchange is None:
            del self.topic_permissions[(user, vhost)]
        elif table.pop(exchange, None) is None:
            return False
        self._changed()
        return True

    def vhost_deleted(self, vhost: str) -> None:
        """A vhost is gone: so are the permissions in it."""
        dropped = False
        for table in (self.permissions, self.topic_permissions):
            for key in [k for k in table if k[1] == vhost]:
                del table[key]
                dropped = True
        if dropped:
            self._changed()

    # -- definitions (RabbitMQ's JSON shape) -------------------------------------------

    def export(self) -> dict[str, list[dict[str, Any]]]:
        """Users, permissions and topic permissions as RabbitMQ 3.10 exports them."""
        return {
            "users": [user.to_definition() for user in self.users.values()],
            "permissions": [
                {"user": user, "vhost": vhost, "configure": p.configure, "write": p.write,
                 "read": p.read}
                for (user, vhost), p in self.permissions.items()
            ],
            "topic_permissions": [
                {"user": user, "vhost": vhost, "exchange": p.exchange, "write": p.write,
                 "read": p.read}
                for (user, vhost), table in self.topic_permissions.items()
                for p in table.values()
            ],
        }

    def load(self, definitions: dict[str, Any], vhosts: Iterable[str] | None = None) -> list[str]:
        """Add the users and permissions of a definitions document; the problems found.

        Items that are malformed, or name a user or vhost that does not exist
        (`vhosts`, when given), are skipped and reported; the rest is loaded.
        Loading does not tell `on_change` observers item by item: one change
        is reported at the end.
        """
        problems: list[str] = []
        known_vhosts = None if vhosts is None else set(vhosts)
        for index, item in enumerate(definitions.get("users") or []):
            try:
                # As rabbit_auth_backend_internal:put_user: a clear `password`
                # is hashed now, a `password_hash` taken as it is, both refused.
                if "password" in item and "password_hash" in item:
                    raise ValueError("both_password_and_password_hash_are_provided")
                if "password" in item:
                    user = User.with_password(
                        str(item["name"]), str(item["password"]), parse_tags(item.get("tags"))
                    )
                else:
                    algorithm = item.get("hashing_algorithm") or "rabbit_password_hashing_sha256"
                    user = User(
                        str(item["name"]),
                        item.get("password_hash") or "",
                        algorithm,
                        parse_tags(item.get("tags")),
                    )
                # Limits are merged into the user's (RabbitMQ: maps:merge).
                limits = validate_user_limits(item.get("limits") or {})
                existing = self.users.get(user.name)
                if existing is not None:
                    limits = {**existing.limits, **limits}
                user = _with_limits(user, limits)
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                problems.append(f"users[{index}]: {error}")
                continue
            self.users[user.name] = user
        for index, item in enumerate(definitions.get("permissions") or []):
            where = f"permissions[{index}]"
            try:
                user, vhost = item["user"], item["vhost"]
                permission = Permission(item["configure"], item["write"], item["read"])
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                problems.append(f"{where}: {error}")
                continue
            if user not in self.users or (known_vhosts is not None and vhost not in known_vhosts):
                problems.append(f"{where}: no user {user!r} or no vhost {vhost!r}")
                continue
            self.permissions[(user, vhost)] = permission
        for index, item in enumerate(definitions.get("topic_permissions") or []):
            where = f"topic_permissions[{index}]"
            try:
                user, vhost = item["user"], item["vhost"]
                topic = TopicPermission(item["exchange"], item["write"], item["read"])
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                problems.append(f"{where}: {error}")
                continue
            if user not in self.users or (known_vhosts is not None and vhost not in known_vhosts):
                problems.append(f"{where}: no user {user!r} or no vhost {vhost!r}")
                continue
            self.topic_permissions.setdefault((user, vhost), {})[topic.exchange] = topic
        self._changed()
        return problems


def _with_limits(user: User, limits: dict[str, int]) -> User:
    return User(user.name, user.password_hash, user.hashing_algorithm, user.tags, limits)


class UserAccess:
    """One connection's permissions: its user in its vhost, checked as RabbitMQ does.

    Answers are cached until a permission changes (`forget`), so the check on
    every publish is a set lookup (`writable_exchanges`), not a regex match.
    """

    __slots__ = (
        "control", "user", "vhost", "writable_exchanges", "topic_restricted", "_answers",
        "__weakref__",
    )

    def __init__(self, control: AccessControl, user: str, vhost: str) -> None:
        self.control = control
        self.user = user
        self.vhost = vhost
        #: Exchanges this connection may publish to (checked and cached): the
        #: publish hot path tests membership only.
        self.writable_exchanges: set[str] = set()
        self._answers: dict[tuple[str, str, str], bool] = {}
        #: Has the user topic permissions in this vhost (so publishes to topic
        #: exchanges check routing keys)? False for most users: no cost then.
        self.topic_restricted = bool(control.topic_permissions.get((user, vhost)))

    def forget(self) -> None:
        """Permissions changed: drop every cached answer."""
        self.writable_exchanges = set()
        self._answers = {}
        self.topic_restricted = bool(self.control.topic_permissions.get((self.user, self.vhost)))

    @property
    def is_impersonator(self) -> bool:
        """May publish messages whose user_id names another user (RabbitMQ's tag)."""
        return "impersonator" in self.control.user_tags(self.user)

    def allowed(self, kind: Kind, resource: Resource, name: str) -> bool:
        key = (kind, resource, name)
        answer = self._answers.get(key)
        if answer is None:
            permission = self.control.permissions.get((self.user, self.vhost))
            answer = permission is not None and permission.allows(
                kind, resource_name(resource, name)
            )
            if len(self._answers) >= CACHE_LIMIT:
                self._answers = {}
            self._answers[key] = answer
        return answer

    def check(self, kind: Kind, resource: Resource, name: str) -> None:
        """403 ACCESS_REFUSED (RabbitMQ's text) unless the user has `kind` on the resource."""
        if not self.allowed(kind, resource, name):
            raise refused(resource, resource_name(resource, name), self.vhost, self.user)

    def check_publish(self, exchange: str) -> None:
        """basic.publish: write on the exchange, remembered for the next publish."""
        self.check("write", "exchange", exchange)
        if len(self.writable_exchanges) < CACHE_LIMIT:
            self.writable_exchanges.add(exchange)

    def check_topic(self, kind: Literal["write", "read"], exchange: str, key: str) -> None:
        """The topic permission on a topic exchange's routing or binding key (403 if refused).

        An exchange with no topic permission record for this user is unrestricted.
        """
        table = self.control.topic_permissions.get((self.user, self.vhost))
        if not table or exchange not in table:
            return
        cache_key = ("topic-" + kind, exchange, key)
        answer = self._answers.get(cache_key)
        if answer is None:
            answer = table[exchange].allows(kind, key, self.user, self.vhost)
            if len(self._answers) >= CACHE_LIMIT:
                self._answers = {}
            self._answers[cache_key] = answer
        if not answer:
            raise errors.access_refused(
                f"access to topic '{key}' in exchange '{exchange}' in vhost '{self.vhost}' "
                f"refused for user '{self.user}'"
            )
