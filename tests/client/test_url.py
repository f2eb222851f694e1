"""URL parsing follows RabbitMQ's URI spec (https://www.rabbitmq.com/uri-spec.html)."""

import pytest

from broker.client.url import parse_url


@pytest.mark.parametrize(
    "url, expected",
    [
        # The spec's own examples (appendix A), our reading of "/" noted below.
        ("amqp://user:pass@host:10000/vhost",
         dict(username="user", password="pass", host="host", port=10000, vhost="vhost")),
        ("amqp://user%61:%61pass@ho%61st:10000/v%2fhost",
         dict(username="usera", password="apass", host="hoast", port=10000, vhost="v/host")),
        ("amqp://", dict(username="guest", password="guest", host="localhost", port=5672,
                         vhost="/")),
        ("amqp://:@/", dict(username="", password="", host="localhost", vhost="/")),
        ("amqp://user@", dict(username="user", password="guest")),
        ("amqp://user:pass@", dict(username="user", password="pass")),
        ("amqp://host", dict(host="host", port=5672)),
        ("amqp://:10000", dict(host="localhost", port=10000)),
        ("amqp:///vhost", dict(host="localhost", vhost="vhost")),
        ("amqp://host/%2f", dict(host="host", vhost="/")),
        ("amqp://host/%2F", dict(host="host", vhost="/")),
        ("amqp://[::1]", dict(host="::1", port=5672)),
        ("amqp://[::1]:5673/v", dict(host="::1", port=5673, vhost="v")),
        ("amqps://host", dict(host="host", port=5671, tls=True)),
        ("AMQP://host", dict(host="host", tls=False)),
    ],
)
def test_spec_examples(url: str, expected: dict) -> None:
    params = parse_url(url)
    for key, value in expected.items():
        assert getattr(params, key) == value, key


def test_trailing_slash_is_the_default_vhost() -> None:
    # The spec would read "" here; like pika and aio-pika we read the default
    # vhost, because that is what "amqp://guest:guest@localhost/" means to people.
    assert parse_url("amqp://guest:guest@localhost/").vhost == "/"


def test_query_options() -> None:
    params = parse_url(
        "amqp://h/?heartbeat=5&frame_max=8192&channel_max=10&connection_timeout=2500")
    assert (params.heartbeat, params.frame_max, params.channel_max) == (5, 8192, 10)
    assert params.connection_timeout == 2.5


def test_tls_query_options() -> None:
    params = parse_url("amqps://h/?verify=verify_none&server_name_indication=example.com")
    assert params.tls_options["verify"] == "verify_none"
    assert params.server_hostname == "example.com"
    context = params.make_ssl_context()
    assert context.check_hostname is False


@pytest.mark.parametrize("url", [
    "http://host/", "amqp://host/a/b", "amqp://host:notaport/", "amqp://h/?heartbeat=x",
    "amqp://h/?connection_timeout=soon",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)
