"""Access control: users, vhosts, permissions, topic permissions, vhost limits.

RabbitMQ's model, as RabbitMQ 3.10 enforces it:

- A user may open a vhost when it has a permission record there (even one of
  three empty patterns); otherwise connection.open gets connection.close 530.
- Each AMQP method checks one of three regular expressions of the user in the
  vhost, configure, write or read, against a resource name (exchange "" is
  checked as "amq.default"). A refusal is channel.close 403 ACCESS_REFUSED with
  "access to queue 'q' in vhost 'v' refused for user 'u'"; the connection
  stays open. Patterns are unanchored PCRE searches; "" means "^$".
- Topic permissions restrict routing keys on topic exchanges only: write on
  basic.publish, read on queue.bind/unbind and exchange.bind/unbind (source).
- Vhost limits: max-connections (530 at connection.open), max-queues (406 at
  queue.declare of a new queue).

The users, vhosts, permissions and limits are made through the broker's
management HTTP API (conformance/admin.py), so every test here needs
--admin-url; without it they are all skipped. Each test runs in a scratch vhost
of its own (``acl-<random>``) with a scratch user, both deleted afterwards.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import amqp
import amqp.connection
import amqp.exceptions
import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from conformance.admin import HASHING_ALGORITHMS, Admin, password_hash
from conformance.helpers import (
    SETTLE_TIMEOUT,
    channel_closed_with,
    connection_closed_with,
    get,
    publish,
    sync,
    wait_for,
)

AREA = "access control"

PASSWORD = "acl-secret"

#: What a client that announced authentication_failure_close sees on any
#: failed login; the real reason goes only to the broker's log.
LOGIN_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
    "For details see the broker logfile."
)

#: (class_id, method_id) in the connection.close answering connection.open.
CONNECTION_OPEN = (10, 40)


def exactly(*names: str) -> str:
    """A permission pattern that matches these names and nothing else."""
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


class Tenant:
    """A scratch vhost with a scratch user in it, made over the management API.

    The AMQP URL's own user (the "owner") gets full permissions in the vhost
    and sets up what a test needs; the scratch user starts with no
    permissions at all, and the test grants exactly what it is about.
    """

    def __init__(self, admin: Admin, amqp_url: str) -> None:
        self.admin = admin
        self._base = pika.URLParameters(amqp_url)
        suffix = uuid.uuid4().hex[:12]
        self.vhost = f"acl-{suffix}"
        self.user = f"acl-user-{suffix}"
        self.owner_user = self._base.credentials.username
        self._owner_password = self._base.credentials.password
        self._users = [self.user]
        self._connections: list[BlockingConnection] = []
        self._owner_channel: BlockingChannel | None = None
        self._user_connection: BlockingConnection | None = None
        admin.put_vhost(self.vhost)
        admin.set_permissions(self.vhost, self.owner_user)
        admin.put_user(self.user, PASSWORD)

    # -- set-up over the management API -----------------------------------

    def add_user(self, label: str = "other", password: str | None = PASSWORD, **kwargs) -> str:
        """Another scratch user (deleted afterwards), without permissions."""
        user = f"acl-{label}-{uuid.uuid4().hex[:12]}"
        self._users.append(user)
        self.admin.put_user(user, password, **kwargs)
        return user

    def grant(self, configure: str = "", write: str = "", read: str = "", user=None) -> None:
        self.admin.set_permissions(self.vhost, user or self.user, configure, write, read)

    def grant_topic(self, exchange: str, write: str = ".*", read: str = ".*") -> None:
        self.admin.set_topic_permissions(self.vhost, self.user, exchange, write, read)

    def limit(self, name: str, value: int) -> None:
        self.admin.set_vhost_limit(self.vhost, name, value)

    # -- AMQP ---------------------------------------------------------------

    def parameters(self, user=None, password=PASSWORD, vhost=None) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(
            host=self._base.host,
            port=self._base.port,
            virtual_host=self.vhost if vhost is None else vhost,
            credentials=pika.PlainCredentials(user or self.user, password),
        )

    def connect(self, user=None, password=PASSWORD, vhost=None) -> BlockingConnection:
        """A pika connection, closed after the test (the scratch user's by default)."""
        connection = pika.BlockingConnection(self.parameters(user, password, vhost))
        self._connections.append(connection)
        return connection

    def channel(self) -> BlockingChannel:
        """A new channel of the scratch user (on a new connection if the broker closed it)."""
        if self._user_connection is None or not self._user_connection.is_open:
            self._user_connection = self.connect()
        return self._user_connection.channel()

    def owner_parameters(self) -> pika.ConnectionParameters:
        return self.parameters(self.owner_user, self._owner_password)

    @property
    def owner(self) -> BlockingChannel:
        """A channel of the URL's user, with every permission in the vhost."""
        if self._owner_channel is None or not self._owner_channel.is_open:
            connection = self._owner_channel.connection if self._owner_channel else None
            if connection is None or not connection.is_open:
                connection = self.connect(self.owner_user, self._owner_password)
            self._owner_channel = connection.channel()
        return self._owner_channel

    def refused(self, kind: str, name: str, user=None) -> str:
        """RabbitMQ's channel.close text for a resource permission refusal."""
        return (
            f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{self.vhost}' "
            f"refused for user '{user or self.user}'"
        )

    def topic_refused(self, routing_key: str, exchange: str) -> str:
        return (
            f"ACCESS_REFUSED - access to topic '{routing_key}' in exchange '{exchange}' "
            f"in vhost '{self.vhost}' refused for user '{self.user}'"
        )

    def close(self) -> None:
        for connection in self._connections:
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass
        for user in self._users:
            self.admin.delete_user(user)
        self.admin.delete_vhost(self.vhost)


@pytest.fixture
def tenant(admin: Admin, amqp_url: str) -> Iterator[Tenant]:
    scratch = Tenant(admin, amqp_url)
    try:
        yield scratch
    finally:
        scratch.close()


@pytest.fixture
def parameters(tenant: Tenant) -> pika.ConnectionParameters:
    """The owner in the scratch vhost: `names` deletes what it registered there."""
    return tenant.owner_parameters()


def assert_refused(tenant: Tenant, action: Callable[[BlockingChannel], object], kind, name):
    """action on a scratch-user channel is refused: channel.close 403 with the exact text."""
    channel = tenant.channel()
    with channel_closed_with(403, tenant.refused(kind, name)):
        action(channel)
    assert channel.connection.is_open, "a refused method closes the channel, not the connection"


def publish_and_sync(channel: BlockingChannel, exchange: str, routing_key: str) -> None:
    """basic.publish is asynchronous: a round trip afterwards brings back a refusal."""
    publish(channel, exchange, routing_key, b"m")
    sync(channel)


def wait_get(channel: BlockingChannel, queue: str, auto_ack: bool = True):
    """basic.get until a message arrives (queues and dead-lettering are asynchronous)."""
    found = []

    def poll() -> bool:
        delivery = get(channel, queue, auto_ack=auto_ack)
        if delivery is not None:
            found.append(delivery)
        return bool(found)

    wait_for(channel.connection, poll)
    return found[0] if found else None


@contextmanager
def amqp_login(
    tenant: Tenant,
    user: str,
    password: str,
    *,
    vhost: str | None = None,
    login_method: str = "PLAIN",
    failure_close: bool = True,
) -> Iterator[amqp.Connection]:
    """A py-amqp connection (it shows connection.close codes, texts and method ids).

    failure_close=False leaves out the authentication_failure_close capability.
    """
    connection = amqp.Connection(
        f"{tenant._base.host}:{tenant._base.port}",
        userid=user,
        password=password,
        virtual_host=tenant.vhost if vhost is None else vhost,
        login_method=login_method,
        connect_timeout=SETTLE_TIMEOUT,
        read_timeout=10,
    )
    if not failure_close:
        connection.negotiate_capabilities = {
            **amqp.connection.NEGOTIATE_CAPABILITIES,
            "authentication_failure_close": False,
        }
    try:
        connection.connect()
        yield connection
    finally:
        try:
            if connection.connected:
                connection.close()
        finally:
            connection.collect()


def login_refused(tenant: Tenant, user: str, password: str, **kwargs):
    """Log in expecting a refusal; returns py-amqp's exception."""
    with pytest.raises(amqp.exceptions.AMQPError) as exc:
        with amqp_login(tenant, user, password, **kwargs):
            pass
    return exc.value


def login_refused_eventually(tenant: Tenant, user: str, password: str):
    """Log in until refused (at most SETTLE_TIMEOUT); returns py-amqp's exception.

    RabbitMQ counts a vhost's connections from connection events, handled
    asynchronously: a connection opened right after another may not see it yet.
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            with amqp_login(tenant, user, password):
                pass
        except amqp.exceptions.AMQPError as exc:
            return exc
        if time.monotonic() > deadline:
            raise AssertionError("the connection limit never refused a connection")
        time.sleep(0.05)


# -- connection.open: vhost access ------------------------------------------


def test_user_with_permissions_opens_the_vhost(tenant):
    tenant.grant(".*", ".*", ".*")
    assert tenant.connect().channel().is_open


def test_user_with_only_empty_permissions_still_opens_the_vhost(tenant):
    # Any permission record in the vhost is vhost access, even "", "", "".
    tenant.grant("", "", "")
    assert tenant.connect().channel().is_open


def test_vhost_without_permissions_is_refused_with_530(tenant):
    error = login_refused(tenant, tenant.user, PASSWORD)
    assert isinstance(error, amqp.exceptions.NotAllowed), repr(error)
    assert error.reply_code == 530
    assert error.reply_text == (
        f"NOT_ALLOWED - access to vhost '{tenant.vhost}' refused for user '{tenant.user}'"
    )
    assert error.method_sig == CONNECTION_OPEN


def test_unknown_vhost_is_refused_with_530(tenant):
    missing = f"acl-missing-{uuid.uuid4().hex[:12]}"
    error = login_refused(tenant, tenant.user, PASSWORD, vhost=missing)
    assert isinstance(error, amqp.exceptions.NotAllowed), repr(error)
    assert error.reply_code == 530
    assert error.reply_text == f"NOT_ALLOWED - vhost {missing} not found"  # no quotes
    assert error.method_sig == CONNECTION_OPEN


def test_pika_reports_vhost_refusal_as_access_denied(tenant):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as exc:
        tenant.connect()
    assert "(530)" in str(exc.value), repr(exc.value)


def test_permissions_granted_later_apply_to_new_channels_of_an_open_connection(tenant, names):
    tenant.grant("", "", "")
    connection = tenant.connect()
    queue = names.queue()
    tenant.grant(exactly(queue), "", "")
    connection.channel().queue_declare(queue)


def test_access_refused_closes_the_channel_not_the_connection(tenant, names):
    tenant.grant("", "", "")
    connection = tenant.connect()
    refused, other = connection.channel(), connection.channel()
    with channel_closed_with(403):
        refused.queue_declare(names.queue())
    assert connection.is_open and other.is_open
    sync(other)


def test_deleting_a_user_closes_its_connections_with_320(tenant):
    user = tenant.add_user()
    tenant.grant(".*", ".*", ".*", user=user)
    connection = tenant.connect(user)
    connection.channel()
    tenant.admin.delete_user(user)
    with connection_closed_with(320, f"CONNECTION_FORCED - user '{user}' is deleted"):
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)


# -- login ---------------------------------------------------------------------


def test_plain_login_succeeds(tenant):
    tenant.grant(".*", ".*", ".*")
    with amqp_login(tenant, tenant.user, PASSWORD, login_method="PLAIN") as connection:
        assert connection.channel().is_open


def test_amqplain_login_succeeds(tenant):
    tenant.grant(".*", ".*", ".*")
    with amqp_login(tenant, tenant.user, PASSWORD, login_method="AMQPLAIN") as connection:
        assert connection.channel().is_open


def test_wrong_password_is_refused_with_403_connection_close(tenant):
    tenant.grant(".*", ".*", ".*")
    error = login_refused(tenant, tenant.user, PASSWORD + "-wrong")
    assert isinstance(error, amqp.exceptions.AccessRefused), repr(error)
    assert error.reply_code == 403
    assert error.reply_text == LOGIN_REFUSED.format(mechanism="PLAIN")
    assert error.method_sig == (0, 0)


def test_wrong_password_with_amqplain_names_amqplain(tenant):
    tenant.grant(".*", ".*", ".*")
    error = login_refused(tenant, tenant.user, "wrong", login_method="AMQPLAIN")
    assert isinstance(error, amqp.exceptions.AccessRefused), repr(error)
    assert error.reply_text == LOGIN_REFUSED.format(mechanism="AMQPLAIN")


def test_unknown_user_is_refused_like_a_wrong_password(tenant):
    error = login_refused(tenant, f"acl-nobody-{uuid.uuid4().hex[:12]}", PASSWORD)
    assert isinstance(error, amqp.exceptions.AccessRefused), repr(error)
    assert error.reply_text == LOGIN_REFUSED.format(mechanism="PLAIN")


def test_empty_password_is_refused(tenant):
    tenant.grant(".*", ".*", ".*")
    error = login_refused(tenant, tenant.user, "")
    assert isinstance(error, amqp.exceptions.AccessRefused), repr(error)
    assert error.reply_text == LOGIN_REFUSED.format(mechanism="PLAIN")


def test_user_without_password_cannot_log_in(tenant):
    # Such users exist for x509 (EXTERNAL) logins; no password opens them.
    user = tenant.add_user("nopassword", password=None)
    tenant.grant(".*", ".*", ".*", user=user)
    for attempt in ("", "anything"):
        error = login_refused(tenant, user, attempt)
        assert isinstance(error, amqp.exceptions.AccessRefused), repr(error)


def test_pika_reports_a_refused_login_as_an_authentication_error(tenant):
    tenant.grant(".*", ".*", ".*")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as exc:
        tenant.connect(password="wrong")
    assert "(403)" in str(exc.value), repr(exc.value)


def test_refused_login_without_failure_close_capability_just_drops_the_socket(tenant):
    """Without authentication_failure_close the server sends no connection.close.

    RabbitMQ closes the socket (about 3 s later, to slow down guessing).
    """
    tenant.grant(".*", ".*", ".*")
    with pytest.raises(OSError) as exc:
        with amqp_login(tenant, tenant.user, "wrong", failure_close=False):
            pass
    assert not isinstance(exc.value, TimeoutError), "the server must close the socket"


# -- password hashes -----------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(HASHING_ALGORITHMS))
def test_user_created_from_a_password_hash_logs_in(tenant, algorithm):
    user = tenant.add_user(
        "hashed",
        password=None,
        password_hash=password_hash("hashed-secret", algorithm),
        hashing_algorithm=algorithm,
    )
    tenant.grant(".*", ".*", ".*", user=user)
    with amqp_login(tenant, user, "hashed-secret") as connection:
        assert connection.channel().is_open
    # The hash decides: any other password is refused.
    assert isinstance(login_refused(tenant, user, "other"), amqp.exceptions.AccessRefused)


def test_password_hash_without_algorithm_is_sha256(tenant):
    user = tenant.add_user(
        "hashed",
        password=None,
        password_hash=password_hash("hashed-secret", "rabbit_password_hashing_sha256"),
    )
    tenant.grant(".*", ".*", ".*", user=user)
    with amqp_login(tenant, user, "hashed-secret") as connection:
        assert connection.channel().is_open


# -- permission patterns -----------------------------------------------------------


def test_permission_pattern_is_an_unanchored_search(tenant, names):
    queue = names.queue()
    tenant.grant(re.escape(queue[5:-5]), "", "")  # a piece from the middle of the name
    tenant.channel().queue_declare(queue)


def test_permission_pattern_is_case_sensitive(tenant, names):
    queue = names.queue()
    tenant.grant(re.escape(queue.upper()), "", "")
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)


def test_empty_permission_pattern_allows_nothing(tenant, names):
    queue = names.queue()
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)


def test_caret_dollar_permission_pattern_allows_nothing(tenant, names):
    queue = names.queue()
    tenant.grant("^$", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)


def test_permission_pattern_matches_utf8_bytes_not_characters(tenant, names):
    # RabbitMQ runs re:run/3 on the UTF-8 bytes: "." is one byte, "ü" two.
    queue = names.queue() + "-\u00fc"
    tenant.grant(re.escape(queue[:-1]) + "..$", "", "")
    tenant.channel().queue_declare(queue)
    tenant.grant(re.escape(queue[:-1]) + ".$", "", "")
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)


# -- exchange.declare / exchange.delete ------------------------------------------


def test_exchange_declare_needs_configure_on_the_exchange(tenant, names):
    exchange = names.exchange()
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.exchange_declare(exchange, "direct"), "exchange", exchange)


def test_exchange_declare_with_configure_on_the_exchange_is_allowed(tenant, names):
    exchange = names.exchange()
    tenant.grant(exactly(exchange), "", "")
    tenant.channel().exchange_declare(exchange, "direct")


def test_exchange_redeclare_of_an_existing_exchange_needs_configure(tenant, names):
    exchange = names.exchange()
    tenant.owner.exchange_declare(exchange, "direct")
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.exchange_declare(exchange, "direct"), "exchange", exchange)


def test_passive_exchange_declare_needs_no_permission(tenant, names):
    exchange = names.exchange()
    tenant.owner.exchange_declare(exchange, "direct")
    tenant.grant("", "", "")
    tenant.channel().exchange_declare(exchange, passive=True)


def test_amq_prefixed_exchange_declare_without_configure_is_refused_on_permission(tenant):
    # The permission is checked before the reserved "amq." prefix.
    tenant.grant("", ".*", ".*")
    name = "amq.acl-reserved"
    assert_refused(tenant, lambda ch: ch.exchange_declare(name, "direct"), "exchange", name)


def test_exchange_delete_needs_configure_on_the_exchange(tenant, names):
    exchange = names.exchange()
    tenant.owner.exchange_declare(exchange, "direct")
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.exchange_delete(exchange), "exchange", exchange)


def test_exchange_delete_with_configure_on_the_exchange_is_allowed(tenant, names):
    exchange = names.exchange()
    tenant.owner.exchange_declare(exchange, "direct")
    tenant.grant(exactly(exchange), "", "")
    tenant.channel().exchange_delete(exchange)
    with channel_closed_with(404):
        tenant.owner.exchange_declare(exchange, passive=True)


def test_exchange_delete_of_a_missing_exchange_without_configure_is_refused(tenant, names):
    exchange = names.exchange()
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.exchange_delete(exchange), "exchange", exchange)


# -- exchange.bind / exchange.unbind ------------------------------------------------


def two_exchanges(tenant, names):
    source, destination = names.exchange("src"), names.exchange("dst")
    tenant.owner.exchange_declare(source, "direct")
    tenant.owner.exchange_declare(destination, "fanout")
    return source, destination


def test_exchange_bind_needs_write_on_the_destination(tenant, names):
    source, destination = two_exchanges(tenant, names)
    tenant.grant(".*", exactly(source), ".*")
    assert_refused(
        tenant,
        lambda ch: ch.exchange_bind(destination, source, "k"),
        "exchange",
        destination,
    )


def test_exchange_bind_needs_read_on_the_source(tenant, names):
    source, destination = two_exchanges(tenant, names)
    tenant.grant(".*", ".*", exactly(destination))
    assert_refused(
        tenant, lambda ch: ch.exchange_bind(destination, source, "k"), "exchange", source
    )


def test_exchange_bind_with_write_on_destination_and_read_on_source_is_allowed(tenant, names):
    source, destination = two_exchanges(tenant, names)
    tenant.grant("", exactly(destination), exactly(source))
    tenant.channel().exchange_bind(destination, source, "k")


def test_exchange_unbind_needs_write_on_the_destination(tenant, names):
    source, destination = two_exchanges(tenant, names)
    tenant.owner.exchange_bind(destination, source, "k")
    tenant.grant(".*", "", ".*")
    assert_refused(
        tenant,
        lambda ch: ch.exchange_unbind(destination, source, "k"),
        "exchange",
        destination,
    )


def test_exchange_unbind_with_write_on_destination_and_read_on_source_is_allowed(tenant, names):
    source, destination = two_exchanges(tenant, names)
    tenant.owner.exchange_bind(destination, source, "k")
    tenant.grant("", exactly(destination), exactly(source))
    tenant.channel().exchange_unbind(destination, source, "k")


# -- queue.declare -------------------------------------------------------------------


def test_queue_declare_needs_configure_on_the_queue(tenant, names):
    queue = names.queue()
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)


def test_queue_declare_with_configure_on_the_queue_is_allowed(tenant, names):
    queue = names.queue()
    tenant.grant(exactly(queue), "", "")
    tenant.channel().queue_declare(queue)


def test_queue_redeclare_of_an_existing_queue_needs_configure(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)


def test_passive_queue_declare_needs_no_permission(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    publish(tenant.owner, "", queue, b"m")
    sync(tenant.owner)
    tenant.grant("", "", "")
    channel = tenant.channel()
    assert wait_for(
        channel.connection,
        lambda: channel.queue_declare(queue, passive=True).method.message_count == 1,
    )


def test_server_named_queue_checks_configure_on_its_amq_gen_name(tenant):
    tenant.grant("", ".*", ".*")
    channel = tenant.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        channel.queue_declare("", exclusive=True)
    assert exc.value.reply_code == 403
    pattern = re.escape(tenant.refused("queue", "NAME")).replace("NAME", r"amq\.gen-[\w-]+")
    assert re.fullmatch(pattern, exc.value.reply_text), exc.value.reply_text


def test_server_named_queue_is_allowed_by_an_amq_gen_pattern(tenant):
    tenant.grant(r"^amq\.gen-", "", "")
    result = tenant.channel().queue_declare("", exclusive=True)
    assert result.method.queue.startswith("amq.gen-")


def test_amq_prefixed_queue_declare_is_refused_as_reserved_before_permission(tenant):
    # For queues the reserved prefix is checked before the permission.
    tenant.grant("", "", "")
    channel = tenant.channel()
    text = "ACCESS_REFUSED - queue name 'amq.acl-reserved' contains reserved prefix 'amq.*'"
    with channel_closed_with(403, text):
        channel.queue_declare("amq.acl-reserved")


# -- queue.bind / unbind / purge / delete ---------------------------------------------


def queue_and_exchange(tenant, names):
    queue, exchange = names.queue(), names.exchange()
    tenant.owner.queue_declare(queue)
    tenant.owner.exchange_declare(exchange, "direct")
    return queue, exchange


def test_queue_bind_needs_write_on_the_queue(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.grant(".*", exactly(exchange), ".*")
    assert_refused(tenant, lambda ch: ch.queue_bind(queue, exchange, "k"), "queue", queue)


def test_queue_bind_needs_read_on_the_exchange(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.grant(".*", ".*", exactly(queue))
    assert_refused(tenant, lambda ch: ch.queue_bind(queue, exchange, "k"), "exchange", exchange)


def test_queue_bind_with_write_on_queue_and_read_on_exchange_is_allowed(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.grant("", exactly(queue), exactly(exchange))
    tenant.channel().queue_bind(queue, exchange, "k")


def test_queue_bind_checks_write_on_the_queue_before_anything_exists(tenant, names):
    # Permissions come before existence: no 404 for a user who may not bind.
    queue, exchange = names.queue(), names.exchange()
    tenant.grant("", "", "")
    assert_refused(tenant, lambda ch: ch.queue_bind(queue, exchange, "k"), "queue", queue)


def test_queue_unbind_needs_read_on_the_exchange(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.owner.queue_bind(queue, exchange, "k")
    tenant.grant(".*", ".*", exactly(queue))
    assert_refused(tenant, lambda ch: ch.queue_unbind(queue, exchange, "k"), "exchange", exchange)


def test_queue_unbind_with_write_on_queue_and_read_on_exchange_is_allowed(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.owner.queue_bind(queue, exchange, "k")
    tenant.grant("", exactly(queue), exactly(exchange))
    tenant.channel().queue_unbind(queue, exchange, "k")


def test_queue_purge_needs_read_on_the_queue(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant(".*", ".*", "")
    assert_refused(tenant, lambda ch: ch.queue_purge(queue), "queue", queue)


def test_queue_purge_with_read_on_the_queue_is_allowed(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant("", "", exactly(queue))
    tenant.channel().queue_purge(queue)


def test_queue_delete_needs_configure_on_the_queue(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.queue_delete(queue), "queue", queue)


def test_queue_delete_with_configure_on_the_queue_is_allowed(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant(exactly(queue), "", "")
    tenant.channel().queue_delete(queue)
    with channel_closed_with(404):
        tenant.owner.queue_declare(queue, passive=True)


def test_queue_delete_of_a_missing_queue_without_configure_is_refused(tenant, names):
    queue = names.queue()
    tenant.grant("", ".*", ".*")
    assert_refused(tenant, lambda ch: ch.queue_delete(queue), "queue", queue)


# -- basic.publish / consume / get ------------------------------------------------------


def test_basic_publish_needs_write_on_the_exchange(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.grant(".*", "", ".*")
    assert_refused(tenant, lambda ch: publish_and_sync(ch, exchange, "k"), "exchange", exchange)


def test_basic_publish_with_write_on_the_exchange_is_allowed(tenant, names):
    queue, exchange = queue_and_exchange(tenant, names)
    tenant.owner.queue_bind(queue, exchange, "k")
    tenant.grant("", exactly(exchange), "")
    publish_and_sync(tenant.channel(), exchange, "k")
    assert wait_get(tenant.owner, queue) is not None


def test_basic_publish_to_the_default_exchange_needs_write_on_amq_default(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant(".*", exactly(queue), ".*")  # write on the queue is not what counts
    assert_refused(tenant, lambda ch: publish_and_sync(ch, "", queue), "exchange", "amq.default")


def test_basic_publish_to_the_default_exchange_with_write_on_amq_default_is_allowed(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant("", exactly("amq.default"), "")
    publish_and_sync(tenant.channel(), "", queue)
    assert wait_get(tenant.owner, queue) is not None


def test_basic_publish_to_a_missing_exchange_without_write_is_refused_not_404(tenant, names):
    exchange = names.exchange()
    tenant.grant(".*", "", ".*")
    assert_refused(tenant, lambda ch: publish_and_sync(ch, exchange, "k"), "exchange", exchange)


def test_basic_consume_needs_read_on_the_queue(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant(".*", ".*", "")
    assert_refused(tenant, lambda ch: ch.basic_consume(queue, lambda *args: None), "queue", queue)


def test_basic_consume_with_read_on_the_queue_is_allowed(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant("", "", exactly(queue))
    assert tenant.channel().basic_consume(queue, lambda *args: None)


def test_basic_get_needs_read_on_the_queue(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant(".*", ".*", "")
    assert_refused(tenant, lambda ch: ch.basic_get(queue), "queue", queue)


def test_basic_get_with_read_on_the_queue_is_allowed(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    publish(tenant.owner, "", queue, b"m")
    tenant.grant("", "", exactly(queue))
    assert wait_get(tenant.channel(), queue) is not None


def test_basic_get_of_a_missing_queue_without_read_is_refused_not_404(tenant, names):
    queue = names.queue()
    tenant.grant(".*", ".*", "")
    assert_refused(tenant, lambda ch: ch.basic_get(queue), "queue", queue)


def test_user_id_property_must_be_the_authenticated_user(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.grant(".*", ".*", ".*")
    channel = tenant.channel()
    publish(channel, "", queue, b"m", user_id=tenant.user)
    sync(channel)
    text = (
        f"PRECONDITION_FAILED - user_id property set to 'someone-else' "
        f"but authenticated user was '{tenant.user}'"
    )
    with channel_closed_with(406, text):
        publish(channel, "", queue, b"m", user_id="someone-else")
        sync(channel)


def test_impersonator_tag_allows_any_user_id(tenant, names):
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    user = tenant.add_user("impersonator", tags="impersonator")
    tenant.grant(".*", ".*", ".*", user=user)
    channel = tenant.connect(user).channel()
    publish(channel, "", queue, b"m", user_id="someone-else")
    sync(channel)
    delivery = wait_get(tenant.owner, queue)
    assert delivery is not None and delivery.properties.user_id == "someone-else"


# -- alternate-exchange and x-dead-letter-exchange at declare time ----------------------


def test_exchange_declare_with_alternate_exchange_needs_write_on_it(tenant, names):
    exchange, alternate = names.exchange(), names.exchange("ae")
    tenant.owner.exchange_declare(alternate, "fanout")
    tenant.grant(exactly(exchange), "", exactly(exchange))
    assert_refused(
        tenant,
        lambda ch: ch.exchange_declare(
            exchange, "direct", arguments={"alternate-exchange": alternate}
        ),
        "exchange",
        alternate,
    )
    with channel_closed_with(404):  # refused before anything was created
        tenant.owner.exchange_declare(exchange, passive=True)


def test_exchange_declare_with_alternate_exchange_needs_read_on_the_new_exchange(tenant, names):
    exchange, alternate = names.exchange(), names.exchange("ae")
    tenant.owner.exchange_declare(alternate, "fanout")
    tenant.grant(exactly(exchange), exactly(alternate), "")
    assert_refused(
        tenant,
        lambda ch: ch.exchange_declare(
            exchange, "direct", arguments={"alternate-exchange": alternate}
        ),
        "exchange",
        exchange,
    )


def test_exchange_declare_with_alternate_exchange_is_allowed_with_configure_read_and_write(
    tenant, names
):
    exchange, alternate = names.exchange(), names.exchange("ae")
    tenant.grant(exactly(exchange), exactly(alternate), exactly(exchange))
    # The alternate exchange need not exist; only the permission is checked.
    tenant.channel().exchange_declare(
        exchange, "direct", arguments={"alternate-exchange": alternate}
    )


def test_redeclaring_an_existing_exchange_does_not_check_its_alternate_exchange(tenant, names):
    exchange, alternate = names.exchange(), names.exchange("ae")
    tenant.owner.exchange_declare(alternate, "fanout")
    tenant.owner.exchange_declare(exchange, "direct", arguments={"alternate-exchange": alternate})
    tenant.grant(exactly(exchange), "", "")
    tenant.channel().exchange_declare(
        exchange, "direct", arguments={"alternate-exchange": alternate}
    )


def test_routing_to_an_alternate_exchange_needs_no_write_on_it(tenant, names):
    exchange, alternate, unrouted = names.exchange(), names.exchange("ae"), names.queue()
    tenant.owner.exchange_declare(alternate, "fanout")
    tenant.owner.queue_declare(unrouted)
    tenant.owner.queue_bind(unrouted, alternate, "")
    tenant.owner.exchange_declare(exchange, "direct", arguments={"alternate-exchange": alternate})
    tenant.grant("", exactly(exchange), "")
    publish_and_sync(tenant.channel(), exchange, "no-binding")
    assert wait_get(tenant.owner, unrouted) is not None


def test_queue_declare_with_dead_letter_exchange_needs_write_on_it(tenant, names):
    queue, dlx = names.queue(), names.exchange("dlx")
    tenant.owner.exchange_declare(dlx, "fanout")
    tenant.grant(exactly(queue), "", exactly(queue))
    assert_refused(
        tenant,
        lambda ch: ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx}),
        "exchange",
        dlx,
    )
    with channel_closed_with(404):  # refused before anything was created
        tenant.owner.queue_declare(queue, passive=True)


def test_queue_declare_with_dead_letter_exchange_needs_read_on_the_queue(tenant, names):
    queue, dlx = names.queue(), names.exchange("dlx")
    tenant.owner.exchange_declare(dlx, "fanout")
    tenant.grant(exactly(queue), exactly(dlx), "")
    assert_refused(
        tenant,
        lambda ch: ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx}),
        "queue",
        queue,
    )


def test_queue_declare_with_dead_letter_exchange_is_allowed_with_configure_read_and_write(
    tenant, names
):
    queue, dlx = names.queue(), names.exchange("dlx")
    tenant.grant(exactly(queue), exactly(dlx), exactly(queue))
    tenant.channel().queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})


def test_queue_declare_with_default_dead_letter_exchange_needs_write_on_amq_default(tenant, names):
    queue = names.queue()
    tenant.grant(exactly(queue), "", exactly(queue))
    assert_refused(
        tenant,
        lambda ch: ch.queue_declare(queue, arguments={"x-dead-letter-exchange": ""}),
        "exchange",
        "amq.default",
    )


def test_redeclaring_an_existing_queue_does_not_check_its_dead_letter_exchange(tenant, names):
    queue, dlx = names.queue(), names.exchange("dlx")
    tenant.owner.exchange_declare(dlx, "fanout")
    tenant.owner.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})
    tenant.grant(exactly(queue), "", "")
    tenant.channel().queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})


def test_dead_lettering_needs_no_write_on_the_dead_letter_exchange(tenant, names):
    queue, dlx, dead = names.queue(), names.exchange("dlx"), names.queue("dead")
    tenant.owner.exchange_declare(dlx, "fanout")
    tenant.owner.queue_declare(dead)
    tenant.owner.queue_bind(dead, dlx, "")
    tenant.owner.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})
    publish(tenant.owner, "", queue, b"m")
    tenant.grant("", "", exactly(queue))
    channel = tenant.channel()
    delivery = wait_get(channel, queue, auto_ack=False)
    assert delivery is not None
    channel.basic_reject(delivery.delivery_tag, requeue=False)
    sync(channel)
    assert wait_get(tenant.owner, dead) is not None


# -- topic permissions --------------------------------------------------------------


def topic_setup(tenant, names, kind="topic", write=r"^a\.", read=r"^b\."):
    """An exchange, a queue, full ordinary permissions, and topic permissions on it."""
    exchange, queue = names.exchange(), names.queue()
    tenant.owner.exchange_declare(exchange, kind)
    tenant.owner.queue_declare(queue)
    tenant.grant(".*", ".*", ".*")
    tenant.grant_topic(exchange, write=write, read=read)
    return exchange, queue


def test_topic_write_pattern_allows_a_matching_routing_key(tenant, names):
    exchange, queue = topic_setup(tenant, names)
    tenant.owner.queue_bind(queue, exchange, "a.#")
    publish_and_sync(tenant.channel(), exchange, "a.1")
    assert wait_get(tenant.owner, queue) is not None


def test_topic_write_pattern_refuses_other_routing_keys(tenant, names):
    exchange, _ = topic_setup(tenant, names)
    channel = tenant.channel()
    with channel_closed_with(403, tenant.topic_refused("b.1", exchange)):
        publish_and_sync(channel, exchange, "b.1")
    assert channel.connection.is_open


def test_topic_permissions_do_not_apply_to_direct_exchanges(tenant, names):
    exchange, queue = topic_setup(tenant, names, kind="direct", write="^$", read="^$")
    channel = tenant.channel()
    channel.queue_bind(queue, exchange, "anything")
    publish_and_sync(channel, exchange, "anything")
    assert wait_get(tenant.owner, queue) is not None


def test_topic_exchange_without_topic_permissions_is_unrestricted(tenant, names):
    topic_setup(tenant, names, write="^$", read="^$")  # on another exchange
    other, queue = names.exchange("other"), names.queue("other")
    tenant.owner.exchange_declare(other, "topic")
    tenant.owner.queue_declare(queue)
    channel = tenant.channel()
    channel.queue_bind(queue, other, "anything")
    publish_and_sync(channel, other, "anything")
    assert wait_get(tenant.owner, queue) is not None


def test_topic_read_pattern_allows_queue_bind_with_a_matching_key(tenant, names):
    exchange, queue = topic_setup(tenant, names)
    tenant.channel().queue_bind(queue, exchange, "b.*")


def test_topic_read_pattern_refuses_queue_bind_with_other_keys(tenant, names):
    exchange, queue = topic_setup(tenant, names)
    channel = tenant.channel()
    with channel_closed_with(403, tenant.topic_refused("#", exchange)):
        channel.queue_bind(queue, exchange, "#")


def test_topic_read_pattern_refuses_queue_unbind_with_other_keys(tenant, names):
    exchange, queue = topic_setup(tenant, names)
    tenant.owner.queue_bind(queue, exchange, "a.*")
    channel = tenant.channel()
    with channel_closed_with(403, tenant.topic_refused("a.*", exchange)):
        channel.queue_unbind(queue, exchange, "a.*")


def test_topic_read_pattern_applies_to_exchange_bind_from_the_source(tenant, names):
    source, _ = topic_setup(tenant, names)
    destination = names.exchange("dst")
    tenant.owner.exchange_declare(destination, "topic")
    channel = tenant.channel()
    channel.exchange_bind(destination, source, "b.x")
    with channel_closed_with(403, tenant.topic_refused("a.x", source)):
        channel.exchange_bind(destination, source, "a.x")


def test_topic_permissions_do_not_restrict_consume_or_get(tenant, names):
    _, queue = topic_setup(tenant, names, write="^$", read="^$")
    tenant.channel().basic_consume(queue, lambda *args: None)
    tenant.channel().basic_get(queue)


def test_empty_topic_pattern_allows_only_the_empty_routing_key(tenant, names):
    exchange, _ = topic_setup(tenant, names, write="", read=".*")
    publish_and_sync(tenant.channel(), exchange, "")
    channel = tenant.channel()
    with channel_closed_with(403, tenant.topic_refused("x", exchange)):
        publish_and_sync(channel, exchange, "x")


def test_topic_permission_expands_username_and_vhost(tenant, names):
    exchange, _ = topic_setup(tenant, names, write=r"^{username}\.{vhost}$")
    publish_and_sync(tenant.channel(), exchange, f"{tenant.user}.{tenant.vhost}")


def test_topic_permission_placeholders_do_not_match_literally(tenant, names):
    exchange, _ = topic_setup(tenant, names, write=r"^{username}\.{vhost}$")
    channel = tenant.channel()
    with channel_closed_with(403, tenant.topic_refused("{username}.{vhost}", exchange)):
        publish_and_sync(channel, exchange, "{username}.{vhost}")


def test_topic_permission_leaves_client_id_unexpanded(tenant, names):
    # {client_id} is filled in for MQTT only; over AMQP 0-9-1 it stays literal
    # text, which the regular expression matches as such.
    exchange, _ = topic_setup(tenant, names, write="^{client_id}$")
    publish_and_sync(tenant.channel(), exchange, "{client_id}")


# -- vhost limits --------------------------------------------------------------------


def max_connections_text(tenant, limit, user=None) -> str:
    return (
        f"NOT_ALLOWED - access to vhost '{tenant.vhost}' refused for user "
        f"'{user or tenant.user}': connection limit ({limit}) is reached"
    )


def test_max_connections_refuses_connections_over_the_limit(tenant):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-connections", 1)
    tenant.connect()
    error = login_refused_eventually(tenant, tenant.user, PASSWORD)
    assert isinstance(error, amqp.exceptions.NotAllowed), repr(error)
    assert error.reply_code == 530
    assert error.reply_text == max_connections_text(tenant, 1)
    assert error.method_sig == CONNECTION_OPEN


def test_max_connections_zero_refuses_every_connection(tenant):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-connections", 0)
    error = login_refused(tenant, tenant.user, PASSWORD)
    assert error.reply_code == 530
    assert error.reply_text == max_connections_text(tenant, 0)


def test_max_connections_is_checked_before_vhost_permissions(tenant):
    tenant.limit("max-connections", 0)  # the user has no permissions at all
    error = login_refused(tenant, tenant.user, PASSWORD)
    assert error.reply_text == max_connections_text(tenant, 0)


def test_max_connections_counts_every_user(tenant):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-connections", 1)
    assert tenant.owner.is_open  # the owner's connection takes the only slot
    error = login_refused_eventually(tenant, tenant.user, PASSWORD)
    assert error.reply_text == max_connections_text(tenant, 1)


def test_max_connections_slot_is_freed_when_a_connection_closes(tenant):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-connections", 1)
    first = tenant.connect()
    assert login_refused_eventually(tenant, tenant.user, PASSWORD).reply_code == 530
    first.close()
    # The broker forgets a closed connection asynchronously too: retry for a while.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            tenant.connect()
            return
        except pika.exceptions.AMQPConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_negative_max_connections_means_no_limit(tenant):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-connections", -1)
    assert all(tenant.connect().is_open for _ in range(3))


def max_queues_text(tenant, queue, limit) -> str:
    return (
        f"PRECONDITION_FAILED - cannot declare queue '{queue}': "
        f"queue limit in vhost '{tenant.vhost}' ({limit}) is reached"
    )


def test_max_queues_refuses_a_new_queue_over_the_limit(tenant, names):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-queues", 1)
    tenant.owner.queue_declare(names.queue("first"))
    second = names.queue("second")
    channel = tenant.channel()
    with channel_closed_with(406, max_queues_text(tenant, second, 1)):
        channel.queue_declare(second)
    assert channel.connection.is_open


def test_max_queues_allows_redeclaring_an_existing_queue(tenant, names):
    tenant.grant(".*", ".*", ".*")
    queue = names.queue()
    tenant.owner.queue_declare(queue)
    tenant.limit("max-queues", 1)
    tenant.channel().queue_declare(queue)


def test_max_queues_zero_refuses_every_new_queue(tenant, names):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-queues", 0)
    queue = names.queue()
    with channel_closed_with(406, max_queues_text(tenant, queue, 0)):
        tenant.channel().queue_declare(queue)


def test_max_queues_counts_server_named_exclusive_queues(tenant, names):
    tenant.grant(".*", ".*", ".*")
    tenant.limit("max-queues", 1)
    tenant.channel().queue_declare("", exclusive=True)
    queue = names.queue()
    with channel_closed_with(406, max_queues_text(tenant, queue, 1)):
        tenant.channel().queue_declare(queue)


def test_max_queues_is_checked_after_configure_permission(tenant, names):
    tenant.grant("", ".*", ".*")
    tenant.limit("max-queues", 0)
    queue = names.queue()
    assert_refused(tenant, lambda ch: ch.queue_declare(queue), "queue", queue)
