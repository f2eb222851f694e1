"""Users, vhosts and permissions on a real Warren, with real clients.

Users and vhosts are made through the broker's own model (`broker.access`,
`broker.vhosts`, on the broker's thread); the clients (pika, py-amqp) log in
over real sockets. The exact texts were read off RabbitMQ 3.10.8
(/work/notes/access-control.md, conformance/tests/test_access_control.py,
which checks the same cases against both brokers through the HTTP API).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amqp
import pika
import pytest
from pika.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from broker.auth.permissions import Permission, TopicPermission
from broker.auth.users import User
from broker.settings import HTTPListener, Listener
from broker.testing import BrokerThread

#: Hashes RabbitMQ 3.10.8 made for the password "s3cr#t" (tests/auth/test_passwords.py).
RABBITMQ_HASHES = {
    "rabbit_password_hashing_sha256": "2/Z/hF8sExQB7z2n1i3aVSJys1jrQdx+U8ixucv+rKWnQ+1J",
    "rabbit_password_hashing_sha512": "mkt/QYkFIdYRZ65KwfcPkSVi3nNDnyodb0CvbhlKI4v3Ggpm6DLI0eClXZzwzNTA/GPEjkPlYpCbnPKqfRXIGdGlyVs=",
    "rabbit_password_hashing_md5": "S4xyKPLtOj7KnOwH8jGG9zRkBlk=",
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=tmp_path / "data")
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def _url(thread: BrokerThread, user: str, password: str, vhost: str = "/") -> str:
    assert thread.broker is not None
    from urllib.parse import quote

    return (
        f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:"
        f"{thread.broker.port}/{quote(vhost, safe='')}"
    )


def _connect(thread: BrokerThread, user: str, password: str, vhost: str = "/") -> Any:
    return pika.BlockingConnection(pika.URLParameters(_url(thread, user, password, vhost)))


ALL = Permission()


def _add_user(thread: BrokerThread, name: str, password: str = "pw", vhost: str = "/",
              permission: Permission | None = ALL, tags: tuple[str, ...] = ()) -> None:
    def add() -> None:
        assert thread.broker is not None
        thread.broker.access.put_user(User.with_password(name, password, tags))
        if permission is not None:
            thread.broker.access.set_permission(name, vhost, permission)

    thread.run_sync(add)


@pytest.mark.parametrize("algorithm", sorted(RABBITMQ_HASHES))
def test_a_user_exported_from_rabbitmq_logs_in_with_its_password(broker, algorithm) -> None:
    def add() -> None:
        broker.broker.access.put_user(User("exported", RABBITMQ_HASHES[algorithm], algorithm))
        broker.broker.access.set_permission("exported", "/", Permission())

    broker.run_sync(add)
    connection = _connect(broker, "exported", "s3cr#t")
    connection.channel().queue_declare("", exclusive=True)
    connection.close()
    with pytest.raises(ProbableAuthenticationError):
        _connect(broker, "exported", "wrong")


def test_a_refused_login_is_403_in_rabbitmqs_words_counted_and_logged(broker) -> None:
    client = amqp.Connection(f"127.0.0.1:{broker.broker.port}", userid="nobody", password="x")
    with pytest.raises(amqp.exceptions.AccessRefused) as refused:
        client.connect()
    assert refused.value.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. "
        "For details see the broker logfile."
    )
    assert broker.run_sync(lambda: broker.broker.access.failed_logins) == 1


def test_a_user_without_a_password_cannot_log_in_with_one(broker) -> None:
    def add() -> None:
        broker.broker.access.put_user(User("certonly"))
        broker.broker.access.set_permission("certonly", "/", Permission())

    broker.run_sync(add)
    for password in ("", "anything"):
        with pytest.raises(ProbableAuthenticationError):
            _connect(broker, "certonly", password)


def test_connection_open_of_an_unknown_vhost_and_of_a_forbidden_one(broker) -> None:
    _add_user(broker, "alice", vhost="/", permission=None)
    with pytest.raises(ProbableAccessDeniedError) as unknown:
        _connect(broker, "alice", "pw", "nowhere")
    assert "NOT_ALLOWED - vhost nowhere not found" in str(unknown.value)
    with pytest.raises(ProbableAccessDeniedError) as forbidden:
        _connect(broker, "alice", "pw", "/")
    assert "NOT_ALLOWED - access to vhost '/' refused for user 'alice'" in str(forbidden.value)


def test_vhosts_are_separate_and_deleting_one_deletes_its_contents_durably(tmp_path) -> None:
    data = tmp_path / "data"
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        thread.run_sync(lambda: thread.broker.vhosts.create("tenant"))
        _add_user(thread, "tom", vhost="tenant")
        tenant = _connect(thread, "tom", "pw", "tenant")
        channel = tenant.channel()
        channel.queue_declare("orders", durable=True)
        channel.basic_publish("", "orders", b"kept", pika.BasicProperties(delivery_mode=2))
        channel.queue_declare("doomed", durable=True)
        # The same name in "/" is another queue.
        root = _connect(thread, "guest", "guest")
        assert root.channel().queue_declare("orders", durable=True).method.message_count == 0
        root.close()
    finally:
        tenant.close()
        thread.stop()
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        tenant = _connect(thread, "tom", "pw", "tenant")
        channel = tenant.channel()
        assert channel.queue_declare("orders", passive=True).method.message_count == 1
        thread.run_sync(lambda: thread.broker.vhosts.delete("tenant"))
        with pytest.raises(ConnectionClosedByBroker) as forced:
            tenant.process_data_events(time_limit=2)
            tenant.channel()
        assert forced.value.reply_code == 320
        assert forced.value.reply_text == "CONNECTION_FORCED - vhost 'tenant' is deleted"
    finally:
        thread.stop()
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        assert thread.run_sync(lambda: "tenant" in thread.broker.vhosts) is False
        thread.run_sync(lambda: thread.broker.vhosts.create("tenant"))
        assert thread.run_sync(lambda: list(thread.broker.vhosts["tenant"].queues)) == []
        # Its users' permissions went with it.
        assert thread.run_sync(lambda: thread.broker.access.may_open("tom", "tenant")) is False
    finally:
        thread.stop()


def test_users_and_permissions_survive_a_restart(tmp_path) -> None:
    data = tmp_path / "data"
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        _add_user(thread, "carol", "pw1", permission=Permission("^c", "^c", "^c"),
                  tags=("monitoring",))
    finally:
        thread.stop()
    thread = BrokerThread(data_dir=data)
    thread.start()
    try:
        connection = _connect(thread, "carol", "pw1")
        channel = connection.channel()
        channel.queue_declare("c-queue")
        with pytest.raises(ChannelClosedByBroker) as refused:
            connection.channel().queue_declare("other")
        assert refused.value.reply_code == 403
        assert thread.run_sync(lambda: thread.broker.access.users["carol"].tags) == ("monitoring",)
        connection.close()
    finally:
        thread.stop()


def test_each_method_checks_its_permission_with_rabbitmqs_text(broker) -> None:
    _add_user(broker, "dave", permission=Permission(configure="^d-", write="^d-", read="^d-"))
    connection = _connect(broker, "dave", "pw")
    prefix = "ACCESS_REFUSED - access to"
    suffix = "in vhost '/' refused for user 'dave'"
    cases = [
        (lambda ch: ch.queue_declare("q"), f"{prefix} queue 'q' {suffix}"),
        (lambda ch: ch.exchange_declare("x", "fanout"), f"{prefix} exchange 'x' {suffix}"),
        (lambda ch: ch.basic_get("missing"), f"{prefix} queue 'missing' {suffix}"),
        (lambda ch: ch.queue_purge("missing"), f"{prefix} queue 'missing' {suffix}"),
        (lambda ch: ch.queue_bind("d-q", "amq.direct"), f"{prefix} exchange 'amq.direct' {suffix}"),
        (lambda ch: ch.basic_consume("q", lambda *a: None), f"{prefix} queue 'q' {suffix}"),
        (lambda ch: ch.queue_declare("", exclusive=True), f"{prefix} queue 'amq.gen-"),
    ]
    for action, text in cases:
        channel = connection.channel()
        channel.queue_declare("d-q")
        with pytest.raises(ChannelClosedByBroker) as refused:
            action(channel)
        assert refused.value.reply_code == 403
        assert refused.value.reply_text.startswith(text), refused.value.reply_text
    # Publishing to the default exchange needs write on amq.default.
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as refused:
        channel.basic_publish("", "d-q", b"x")
    assert refused.value.reply_text == f"{prefix} exchange 'amq.default' {suffix}"
    connection.close()


def test_a_revoked_permission_applies_to_the_next_publish_of_an_open_channel(broker) -> None:
    _add_user(broker, "erin")
    connection = _connect(broker, "erin", "pw")
    channel = connection.channel()
    channel.queue_declare("e-q")
    channel.confirm_delivery()
    channel.basic_publish("", "e-q", b"allowed")
    broker.run_sync(lambda: broker.broker.access.set_permission("erin", "/", Permission(write="^$")))
    with pytest.raises(ChannelClosedByBroker) as refused:
        channel.basic_publish("", "e-q", b"refused now")
    assert refused.value.reply_code == 403
    connection.close()


def test_topic_permissions_check_routing_and_binding_keys(broker) -> None:
    _add_user(broker, "fay")
    broker.run_sync(lambda: broker.broker.access.set_topic_permission(
        "fay", "/", TopicPermission("amq.topic", write="^{username}\\.", read="^fay\\.")))
    connection = _connect(broker, "fay", "pw")
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("amq.topic", "fay.news", b"ok")
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "fay.#")
    with pytest.raises(ChannelClosedByBroker) as refused:
        channel.basic_publish("amq.topic", "bob.news", b"no")
    assert refused.value.reply_text == (
        "ACCESS_REFUSED - access to topic 'bob.news' in exchange 'amq.topic' in vhost '/' "
        "refused for user 'fay'"
    )
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker):
        channel.queue_bind(queue, "amq.topic", "#")
    connection.close()


def test_vhost_limits_refuse_connections_and_queues(broker) -> None:
    def limit() -> None:
        vhost, _ = broker.broker.vhosts.create("small")
        vhost.limits.max_connections = 1
        vhost.limits.max_queues = 1
        broker.broker.access.set_permission("guest", "small", Permission())

    broker.run_sync(limit)
    first = _connect(broker, "guest", "guest", "small")
    with pytest.raises(ProbableAccessDeniedError) as refused:
        _connect(broker, "guest", "guest", "small")
    assert ("NOT_ALLOWED - access to vhost 'small' refused for user 'guest': "
            "connection limit (1) is reached") in str(refused.value)
    channel = first.channel()
    channel.queue_declare("one")
    with pytest.raises(ChannelClosedByBroker) as refused_queue:
        channel.queue_declare("two")
    assert refused_queue.value.reply_text == (
        "PRECONDITION_FAILED - cannot declare queue 'two': queue limit in vhost 'small' (1) "
        "is reached"
    )
    first.close()
    time.sleep(0.1)
    _connect(broker, "guest", "guest", "small").close()  # the slot came back


def test_impersonator_may_publish_another_user_id(broker) -> None:
    _add_user(broker, "svc", tags=("impersonator",))
    connection = _connect(broker, "svc", "pw")
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("imp", exclusive=True)
    channel.basic_publish("", "imp", b"x", pika.BasicProperties(user_id="someone-else"))
    connection.close()


def _outward_address() -> str | None:
    """A local address that is not loopback (the peer of a connection to itself)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.250", 9))  # no packet is sent for a UDP connect
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_guest_may_log_in_from_loopback_only(tmp_path) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    thread = BrokerThread(host="0.0.0.0", data_dir=tmp_path / "data")
    thread.start()
    try:
        _add_user(thread, "remote")
        port = thread.broker.port
        with pytest.raises(ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@{address}:{port}/"))
        pika.BlockingConnection(pika.URLParameters(f"amqp://remote:pw@{address}:{port}/")).close()
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/")).close()
    finally:
        thread.stop()


def test_the_login_throttle_doubles_after_free_failures_and_forgets() -> None:
    from broker.auth.access import LoginThrottle

    throttle = LoginThrottle(free_failures=2, first_delay=0.5, max_delay=3.0, window=60)
    delays = [throttle.failed("10.0.0.9", now=float(i)) for i in range(7)]
    assert delays == [0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert throttle.failed("10.0.0.8", now=7.0) == 0.0  # another address is not slowed
    assert throttle.failed("10.0.0.9", now=200.0) == 0.0  # a quiet minute forgets
    small = LoginThrottle(max_addresses=2)
    for host in ("a", "b", "c"):
        small.failed(host, now=0.0)
    assert list(small._failures) == ["b", "c"]  # bounded


def test_repeated_failed_logins_from_one_address_are_answered_later(tmp_path) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    thread = BrokerThread(host="0.0.0.0", data_dir=tmp_path / "data")
    thread.start()
    try:
        _add_user(thread, "remote")
        port = thread.broker.port

        def refused_after() -> float:
            started = time.monotonic()
            with pytest.raises(ProbableAuthenticationError):
                pika.BlockingConnection(pika.URLParameters(f"amqp://remote:bad@{address}:{port}/"))
            return time.monotonic() - started

        quick = [refused_after() for _ in range(3)]
        slowed = refused_after()
        # The fourth waits the throttle's 0.5 s on top of what a refusal takes.
        assert slowed - max(quick) >= 0.4, (quick, slowed)
        # Loopback clients (and good logins) are not held up meanwhile.
        started = time.monotonic()
        with pytest.raises(ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://remote:bad@127.0.0.1:{port}/"))
        pika.BlockingConnection(pika.URLParameters(f"amqp://remote:pw@{address}:{port}/")).close()
        assert time.monotonic() - started < 2 * max(quick) + 0.4
        assert thread.run_sync(lambda: thread.broker.access.throttle.delayed) == 1
    finally:
        thread.stop()


def _throttled_broker(tmp_path: Path, **keys: str) -> BrokerThread:
    """A broker whose login throttle comes from a settings file (loopback
    included, so that the test can fail logins from 127.0.0.1)."""
    from broker.settings import load_settings

    conf = tmp_path / "warren.conf"
    conf.write_text("".join(f"warren.login_throttle.{key} = {value}\n" for key, value in
                            {"include_loopback": "true", **keys}.items()))
    thread = BrokerThread(settings=load_settings(conf, environ={}).with_overrides(
        listeners_tcp=(Listener("127.0.0.1", 0),),
        management_tcp=HTTPListener(0, "127.0.0.1"), prometheus_tcp=HTTPListener(0, "127.0.0.1"),
    ))
    thread.start()
    _add_user(thread, "remote")
    return thread


def _refused_after(url: str) -> float:
    started = time.monotonic()
    with pytest.raises(ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(url))
    return time.monotonic() - started


def test_the_configured_login_throttle_delays_the_answer(tmp_path) -> None:
    thread = _throttled_broker(tmp_path, free_failures="1", first_delay="1200",
                               max_delay="1500", window="60000")
    try:
        bad = f"amqp://remote:bad@127.0.0.1:{thread.broker.port}/"
        free = _refused_after(bad)
        first = _refused_after(bad)
        second = _refused_after(bad)  # doubled, but capped at max_delay
        assert free < 1.0, free
        assert 1.2 <= first < 1.2 + 1.0, first
        assert 1.5 <= second < 1.5 + 1.0, second
        # A good login from the same address is answered at once meanwhile.
        started = time.monotonic()
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://remote:pw@127.0.0.1:{thread.broker.port}/")).close()
        assert time.monotonic() - started < 1.0
        access = thread.broker.access
        assert thread.run_sync(lambda: (access.failed_logins, access.throttle.delayed)) == (3, 2)
    finally:
        thread.stop()


def test_parallel_failed_logins_from_one_address_are_capped(tmp_path) -> None:
    # Each failure waits 2 s; at most 2 answers may wait: of 6 parallel
    # guesses, 2 are checked and answered late, 4 are refused at once
    # without their password being looked at.
    from concurrent.futures import ThreadPoolExecutor

    thread = _throttled_broker(tmp_path, free_failures="0", first_delay="2000",
                               max_delay="2000", max_pending="2")
    try:
        bad = f"amqp://remote:bad@127.0.0.1:{thread.broker.port}/"
        with ThreadPoolExecutor(6) as pool:
            times = sorted(pool.map(lambda _: _refused_after(bad), range(6)))
        assert all(t < 1.5 for t in times[:4]), times
        assert all(2.0 <= t < 3.5 for t in times[4:]), times
        access = thread.broker.access
        assert thread.run_sync(lambda: (access.throttle.shed, access.failed_logins)) == (4, 2)
        # All six are failed attempts for rabbitmq_auth_attempts_failed_total.
        assert thread.run_sync(lambda: access.auth_attempts["amqp091"][1]) == 6
        # The answers are sent: the address may try again (and is delayed again).
        assert thread.run_sync(lambda: access.throttle.pending("127.0.0.1")) == 0
        assert _refused_after(bad) >= 2.0
    finally:
        thread.stop()


def test_losing_the_impersonator_tag_applies_to_the_next_publish(broker) -> None:
    """Publishes share validated properties (an envelope per routing key):
    a permission or tag change makes the channel check them again."""
    _add_user(broker, "svc2", tags=("impersonator",))
    connection = _connect(broker, "svc2", "pw")
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("imp2", exclusive=True)
    other = pika.BasicProperties(user_id="someone-else")
    channel.basic_publish("", "imp2", b"1", other)
    broker.run_sync(lambda: broker.broker.access.put_user(User.with_password("svc2", "pw")))
    with pytest.raises(ChannelClosedByBroker) as refused:
        channel.basic_publish("", "imp2", b"2", other)
    assert refused.value.reply_code == 406
    connection.close()


def test_serve_config_makes_the_files_vhosts_users_permissions_and_limits(tmp_path) -> None:
    conf = tmp_path / "broker.conf"
    conf.write_text(
        'vhost shop\n    description "the shop"\n'
        "user carl\n"
        f'    password-hash "{RABBITMQ_HASHES["rabbit_password_hashing_sha256"]}"\n'
        "    tags management\n"
        'permission carl on shop configure ".*" write ".*" read ".*"\n'
        "limit shop max-queues 1\n"
        "queue orders durable\n",
        encoding="utf-8",
    )
    thread = BrokerThread(data_dir=tmp_path / "data", config_path=conf)
    thread.start()
    try:
        connection = _connect(thread, "carl", "s3cr#t", "shop")
        channel = connection.channel()
        channel.queue_declare("one")
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.queue_declare("two")
        assert refused.value.reply_code == 406  # the file's limit
        connection.close()
        assert thread.run_sync(lambda: "orders" in thread.broker.vhosts["/"].queues)
        assert thread.run_sync(lambda: thread.broker.vhosts["shop"].description) == "the shop"
    finally:
        thread.stop()


def test_serve_config_sets_user_limits(tmp_path) -> None:
    # Once refused (Warren had no user limits); now set on the user, as
    # rabbitmqctl set_user_limits (enforcement: tests/management/test_user_limits.py).
    conf = tmp_path / "broker.conf"
    conf.write_text("user dan\n    max-connections 3\n    max-channels -1\n", encoding="utf-8")
    thread = BrokerThread(config_path=conf)
    thread.start()
    try:
        limits = thread.run_sync(lambda: dict(thread.broker.access.users["dan"].limits))
        assert limits == {"max-connections": 3, "max-channels": -1}
    finally:
        thread.stop()
