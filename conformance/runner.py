"""Run the conformance suite against a broker URL and report the matrix.

    python -m conformance --url amqp://user:pass@host:port/vhost \
        [--admin-url http://user:pass@host:15672/] [--markdown FILE] [--junit FILE] [-k EXPR]
        [--short-consumer-timeout-url URL [--short-consumer-timeout MS]]

Without --url, a Warren broker is started in-process (broker.testing) for the
run, and a second one with a consumer_timeout of 2 seconds for the
consumer-timeout area. Without --admin-url (the broker's management HTTP API),
the access-control area is skipped; without --short-consumer-timeout-url (a
broker whose consumer_timeout is that short), the consumer-timeout area. The exit code is pytest's: 0 when every test passed (or is a known,
documented difference), non-zero otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import pytest

from conformance.matrix import MatrixCollector

TESTS_DIR = Path(__file__).resolve().parent / "tests"
URL_ENV = "WARREN_CONFORMANCE_URL"
ADMIN_URL_ENV = "WARREN_CONFORMANCE_ADMIN_URL"
SHORT_TIMEOUT_URL_ENV = "WARREN_CONFORMANCE_SHORT_TIMEOUT_URL"
SHORT_TIMEOUT_ENV = "WARREN_CONFORMANCE_SHORT_TIMEOUT"
#: The consumer_timeout (ms) of the in-process short-timeout Warren.
IN_PROCESS_SHORT_TIMEOUT = 2000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Run the AMQP 0-9-1 behaviour suite against a broker.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"broker URL, amqp://user:pass@host:port/vhost (default ${URL_ENV}; "
        "without either, start Warren in-process)",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(ADMIN_URL_ENV),
        help="management HTTP API of the broker, http://user:pass@host:15672/ "
        f"(default ${ADMIN_URL_ENV}); needed by the access-control tests, "
        "which are skipped without it",
    )
    parser.add_argument(
        "--short-consumer-timeout-url",
        default=os.environ.get(SHORT_TIMEOUT_URL_ENV),
        help="a broker whose consumer_timeout is a few seconds (default "
        f"${SHORT_TIMEOUT_URL_ENV}); needed by the consumer-timeout tests, which are "
        "skipped without it",
    )
    parser.add_argument(
        "--short-consumer-timeout",
        metavar="MS",
        type=int,
        default=int(os.environ[SHORT_TIMEOUT_ENV]) if os.environ.get(SHORT_TIMEOUT_ENV) else None,
        help=f"that broker's consumer_timeout in milliseconds (default ${SHORT_TIMEOUT_ENV}, "
        "else 2000)",
    )
    parser.add_argument("--markdown", metavar="FILE", help="write the matrix as Markdown")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    parser.add_argument("-k", metavar="EXPR", dest="keyword", help="pytest -k expression")
    parser.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="further pytest arguments, after --"
    )
    return parser.parse_args(argv)


def redact(url: str) -> str:
    """The URL with its password replaced, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def describe_broker(url: str) -> str:
    """'<product> <version> at <url>' from the server's connection.start properties."""
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError as exc:
        return f"unreachable ({exc!r}) at {redact(url)}"
    try:
        properties = connection._impl.server_properties
    finally:
        connection.close()

    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value or "?")

    product, version = text(properties.get("product")), text(properties.get("version"))
    return f"{product} {version} at {redact(url)}"


@contextlib.contextmanager
def in_process_warren() -> Iterator[tuple[str, str]]:
    """Start Warren in this process; imported lazily so RabbitMQ runs need no broker code.

    Yields the URLs of two brokers: one with RabbitMQ's defaults, one with a
    consumer_timeout of `IN_PROCESS_SHORT_TIMEOUT` ms (the consumer-timeout
    area). Their log goes to a file, so it does not interleave with the matrix.
    """
    from broker.logging import configure_logging
    from broker.settings import Listener, Settings
    from broker.testing import BrokerThread, run_broker_in_thread

    log_path = Path(tempfile.mkdtemp(prefix="warren-conformance-")) / "broker.log"
    with log_path.open("w", encoding="utf-8") as log:
        configure_logging(json=True, stream=log)
        short = BrokerThread(settings=Settings(
            listeners_tcp=(Listener("127.0.0.1", 0),), consumer_timeout=IN_PROCESS_SHORT_TIMEOUT,
        ))
        short.start()
        try:
            with run_broker_in_thread() as url:
                print(f"conformance: Warren started in-process at {redact(url)} (and at "
                      f"{redact(short.url)} with consumer_timeout {IN_PROCESS_SHORT_TIMEOUT}), "
                      f"log in {log_path}")
                yield url, short.url
        finally:
            short.stop()


def run_suite(
    url: str,
    *,
    admin_url: str | None = None,
    short_timeout_url: str | None = None,
    short_timeout: int | None = None,
    markdown: str | None = None,
    junit: str | None = None,
    keyword: str | None = None,
    extra: Sequence[str] = (),
) -> int:
    """Run the tests against url, print the matrix, write the reports; return the exit code."""
    os.environ[URL_ENV] = url
    broker = describe_broker(url)
    args = [str(TESTS_DIR), f"--amqp-url={url}", "-p", "no:cacheprovider", "-q"]
    if admin_url:
        args.append(f"--admin-url={admin_url}")
    if short_timeout_url:
        args.append(f"--short-consumer-timeout-url={short_timeout_url}")
    if short_timeout is not None:
        args.append(f"--short-consumer-timeout={short_timeout}")
    # Use the suite's own settings, whatever project the caller stands in.
    args += ["--rootdir", str(TESTS_DIR), "-c", os.devnull, "-o", "addopts="]
    if junit:
        args += ["--junitxml", junit, "-o", "junit_suite_name=amqp-conformance"]
    if keyword:
        args += ["-k", keyword]
    args += [a for a in extra if a != "--"]
    collector = MatrixCollector()
    exit_code = pytest.main(args, plugins=[collector])

    print()
    print(f"AMQP 0-9-1 conformance matrix: {broker}")
    if admin_url:
        print(f"management API: {redact(admin_url)}")
    if short_timeout_url:
        print(f"short consumer_timeout broker: {redact(short_timeout_url)}")
    print(collector.as_text())
    print()
    print(f"conformance: {collector.summary_line()}")
    if markdown:
        Path(markdown).write_text(
            collector.as_markdown("AMQP 0-9-1 conformance matrix", broker), encoding="utf-8"
        )
        print(f"Markdown matrix written to {markdown}")
    if junit:
        print(f"JUnit XML written to {junit}")
    return int(exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = {
        "admin_url": args.admin_url,
        "short_timeout_url": args.short_consumer_timeout_url,
        "short_timeout": args.short_consumer_timeout,
        "markdown": args.markdown,
        "junit": args.junit,
        "keyword": args.keyword,
        "extra": args.pytest_args,
    }
    if args.url:
        return run_suite(args.url, **options)
    try:
        broker = in_process_warren()
        url, short_url = broker.__enter__()
    except ImportError as exc:
        print(
            f"conformance: no --url given and Warren cannot be started in-process ({exc}); "
            "pass --url amqp://user:pass@host:port/vhost",
            file=sys.stderr,
        )
        return 2
    if not options["short_timeout_url"]:
        options["short_timeout_url"] = short_url
        options["short_timeout"] = IN_PROCESS_SHORT_TIMEOUT
    try:
        return run_suite(url, **options)
    finally:
        broker.__exit__(None, None, None)
