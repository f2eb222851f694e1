"""Fixtures for the conformance suite: the broker URL, connections, unique names.

The broker URL comes from the ``--amqp-url`` pytest option or the
``WARREN_CONFORMANCE_URL`` environment variable (``python -m conformance`` sets
the latter). Every test uses names with a random suffix and deletes what it
declared, so the suite can run again and again against one long-lived broker.

The access-control area also needs the broker's management HTTP API, to create
users, vhosts, permissions and limits: ``--admin-url`` or
``WARREN_CONFORMANCE_ADMIN_URL`` (``http://user:pass@host:15672/``). Without
one, the tests that need it are skipped.

The consumer-timeout area needs a broker whose consumer_timeout is short
(seconds, not RabbitMQ's 30 minutes): ``--short-consumer-timeout-url`` or
``WARREN_CONFORMANCE_SHORT_TIMEOUT_URL``, with the timeout in milliseconds in
``--short-consumer-timeout`` or ``WARREN_CONFORMANCE_SHORT_TIMEOUT`` (default
2000). Without one, those tests are skipped.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from conformance.admin import Admin
from conformance.helpers import Cleanup, Names
from conformance.known import known_difference

URL_ENV = "WARREN_CONFORMANCE_URL"
ADMIN_URL_ENV = "WARREN_CONFORMANCE_ADMIN_URL"
SHORT_TIMEOUT_URL_ENV = "WARREN_CONFORMANCE_SHORT_TIMEOUT_URL"
SHORT_TIMEOUT_ENV = "WARREN_CONFORMANCE_SHORT_TIMEOUT"
#: The consumer_timeout (ms) of the short-timeout broker unless told otherwise.
DEFAULT_SHORT_TIMEOUT = 2000
TESTS_DIR = Path(__file__).resolve().parent


#: A broker that never answers a synchronous method would hang a blocking
#: client forever; each test gets this long before it is failed.
DEFAULT_TEST_TIMEOUT = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--amqp-url",
        default=None,
        help=f"AMQP URL of the broker under test (default: ${URL_ENV})",
    )
    parser.addoption(
        "--admin-url",
        default=None,
        help="management HTTP API of the broker under test, http://user:pass@host:15672/ "
        f"(default: ${ADMIN_URL_ENV}); without it the access-control tests are skipped",
    )
    parser.addoption(
        "--short-consumer-timeout-url",
        default=None,
        help="AMQP URL of a broker with a short consumer_timeout, for the consumer-timeout "
        f"tests (default: ${SHORT_TIMEOUT_URL_ENV}); without it they are skipped",
    )
    parser.addoption(
        "--short-consumer-timeout",
        type=int,
        default=None,
        help="that broker's consumer_timeout in milliseconds "
        f"(default: ${SHORT_TIMEOUT_ENV}, else {DEFAULT_SHORT_TIMEOUT})",
    )
    parser.addoption(
        "--conformance-timeout",
        type=float,
        default=DEFAULT_TEST_TIMEOUT,
        help="seconds before a test that gets no answer from the broker is failed",
    )


class BrokerTimeout(Exception):
    """The broker did not answer within the per-test time limit."""


@pytest.fixture(autouse=True)
def _per_test_timeout(pytestconfig: pytest.Config) -> Iterator[None]:
    """Fail (rather than hang) a test whose broker stops answering.

    Uses SIGALRM, so it works only in the main thread on Unix; elsewhere tests
    simply run without a limit.
    """
    seconds = pytestconfig.getoption("--conformance-timeout", default=DEFAULT_TEST_TIMEOUT)
    if (
        not seconds
        or not hasattr(signal, "SIGALRM")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum, frame):
        raise BrokerTimeout(f"no answer from the broker within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def broker_url(config: pytest.Config) -> str | None:
    return config.getoption("--amqp-url", default=None) or os.environ.get(URL_ENV)


def conformance_id(item: pytest.Item) -> str:
    """The test's id relative to conformance/tests/, as used in conformance/known.py."""
    path = Path(str(item.path)).resolve()
    try:
        relative = path.relative_to(TESTS_DIR).as_posix()
    except ValueError:
        relative = path.name
    return f"{relative}::{item.name}"


def server_properties(url: str) -> dict:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return dict(connection._impl.server_properties)
    finally:
        connection.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the known differences as strict xfails, only when the broker is Warren."""
    url = broker_url(config)
    if not url:
        return
    try:
        product = _text(server_properties(url).get("product"))
    except (pika.exceptions.AMQPError, OSError, ValueError):
        return  # every test will report the connection failure itself
    if "warren" not in product.lower():
        return
    for item in items:
        known = known_difference(conformance_id(item))
        if known is not None:
            reason, issue = known
            item.add_marker(pytest.mark.xfail(reason=f"{reason} (issue {issue})", strict=True))


@pytest.fixture(scope="session")
def amqp_url(pytestconfig: pytest.Config) -> str:
    url = broker_url(pytestconfig)
    if not url:
        pytest.fail(f"no broker URL: pass --amqp-url or set {URL_ENV}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def admin(pytestconfig: pytest.Config) -> Admin:
    """The management API client; skips the test when no admin URL was given."""
    url = pytestconfig.getoption("--admin-url", default=None) or os.environ.get(ADMIN_URL_ENV)
    if not url:
        pytest.skip(
            f"needs the broker's management HTTP API: pass --admin-url or set {ADMIN_URL_ENV}"
        )
    return Admin(url)


@pytest.fixture(scope="session")
def short_consumer_timeout(pytestconfig: pytest.Config) -> tuple[str, int]:
    """(URL, consumer_timeout in ms) of the broker with a short consumer_timeout;
    skips the test when none was given."""
    url = pytestconfig.getoption("--short-consumer-timeout-url", default=None) or os.environ.get(
        SHORT_TIMEOUT_URL_ENV
    )
    if not url:
        pytest.skip(
            "needs a broker with a short consumer_timeout: pass --short-consumer-timeout-url "
            f"(or set {SHORT_TIMEOUT_URL_ENV}) and --short-consumer-timeout MS (default "
            f"{DEFAULT_SHORT_TIMEOUT}). RabbitMQ: rabbitmqctl eval "
            "'application:set_env(rabbit, consumer_timeout, 2000).' (and channel_tick_interval "
            "1000); Warren: consumer_timeout = 2000 in a warren serve --settings file"
        )
    timeout = pytestconfig.getoption("--short-consumer-timeout", default=None) or int(
        os.environ.get(SHORT_TIMEOUT_ENV) or DEFAULT_SHORT_TIMEOUT
    )
    return url, timeout


@pytest.fixture
def parameters(amqp_url: str) -> pika.URLParameters:
    return pika.URLParameters(amqp_url)


@pytest.fixture
def connect(amqp_url: str, names: Names) -> Iterator[Callable[..., BlockingConnection]]:
    """connect(**overrides) opens a BlockingConnection; all are closed after the test.

    Depends on `names` so that the connections close before the cleanup runs
    (an exclusive queue can only be deleted by its own connection, or by closing it).
    """
    opened: list[BlockingConnection] = []

    def _connect(**overrides) -> BlockingConnection:
        params = pika.URLParameters(amqp_url)
        for key, value in overrides.items():
            setattr(params, key, value)
        connection = pika.BlockingConnection(params)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        if connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass


@pytest.fixture
def connection(connect: Callable[..., BlockingConnection]) -> BlockingConnection:
    return connect()


@pytest.fixture
def channel(connection: BlockingConnection) -> BlockingChannel:
    return connection.channel()


@pytest.fixture
def names(request: pytest.FixtureRequest, parameters: pika.URLParameters) -> Iterator[Names]:
    cleanup = Cleanup()
    yield Names(cleanup, request.node.name)
    cleanup.run(parameters)


@pytest.fixture
def py_amqp_channel(amqp_url: str):
    """A py-amqp channel, for the few methods pika will not send as asked."""
    import amqp

    params = pika.URLParameters(amqp_url)
    connection = amqp.Connection(
        f"{params.host}:{params.port}",
        userid=params.credentials.username,
        password=params.credentials.password,
        virtual_host=params.virtual_host,
    )
    connection.connect()
    try:
        yield connection.channel()
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - the broker may already have closed it
            pass
