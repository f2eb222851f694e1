"""The cluster mode's keys (cluster.*, replication.*): issue 19."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from broker.settings import (
    KEYS,
    ClusterSettings,
    EtcdSettings,
    Listener,
    Settings,
    SettingsError,
    load_settings,
    parse_settings,
)
from broker.settings.rabbitmq_keys import RABBITMQ_KEYS

SECRET = "change-me-to-a-long-random-string"

#: docs/settings.md's example, with the endpoints spaced unevenly.
FULL = (
    "cluster.name = prod\n"
    "cluster.node_name = warren-1\n"
    "cluster.etcd.endpoints = http://10.0.0.1:2379,http://10.0.0.2:2379 ,  http://10.0.0.3:2379\n"
    "replication.listener = 10.0.0.11:5679\n"
    f"replication.secret = {SECRET}\n"
)
REQUIRED = ("cluster.name", "cluster.node_name", "cluster.etcd.endpoints", "replication.listener", "replication.secret")


def parse(text: str) -> Settings:
    return parse_settings(text, "rabbitmq.conf", environ={})


def errors(text: str, path: str = "rabbitmq.conf") -> list[str]:
    with pytest.raises(SettingsError) as excinfo:
        parse_settings(text, path, environ={})
    return [str(problem) for problem in excinfo.value.problems]


def without(key: str, text: str = FULL) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith(key + " "))


def replaced(key: str, value: str, text: str = FULL) -> str:
    return without(key, text) + f"{key} = {value}\n"


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


# -- a valid file ------------------------------------------------------------------------


def test_a_full_file_gives_the_cluster_settings_with_their_defaults():
    s = parse(FULL)
    assert s.cluster == ClusterSettings(
        name="prod",
        node_name="warren-1",
        etcd=EtcdSettings(
            endpoints=("http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"),
            prefix="/warren/prod",
        ),
        replication_listener=Listener("10.0.0.11", 5679),
        advertise_host="10.0.0.11",
        secret=SECRET,
    )
    assert s.cluster.etcd.lease_ttl == 5
    assert s.cluster.min_followers == 1
    assert s.cluster.secret == SECRET
    assert (s.cluster.etcd.cacertfile, s.cluster.etcd.certfile, s.cluster.etcd.keyfile) == (None, None, None)
    # the rest of the settings are untouched
    assert dataclasses.replace(s, cluster=None) == Settings()
    assert set(s.origins) == set(REQUIRED)


def test_every_optional_key(certs):
    path = certs / "rabbitmq.conf"
    path.write_text(
        "cluster.name = prod\n"
        "cluster.node_name = warren-1@host-1.example\n"
        "cluster.advertise_host = host-1.example\n"
        "cluster.etcd.endpoints = https://etcd-1.example:2379/, https://[fd00::1]:2379\n"
        "cluster.etcd.prefix = /apps/warren\n"
        "cluster.etcd.ssl.cacertfile = ca.pem\n"
        f"cluster.etcd.ssl.certfile = {certs}/client.pem\n"
        "cluster.etcd.ssl.keyfile = ./client.key\n"
        "cluster.etcd.lease_ttl = 10\n"
        "replication.listener = 0.0.0.0:5679\n"
        "replication.min_followers = 0\n"
        "replication.secret = '0123456789abcdef'\n"
    )
    cluster = load_settings(path, environ={}).cluster
    assert cluster == ClusterSettings(
        name="prod",
        node_name="warren-1@host-1.example",
        etcd=EtcdSettings(
            endpoints=("https://etcd-1.example:2379", "https://[fd00::1]:2379"),
            prefix="/apps/warren",
            cacertfile=str(certs / "ca.pem"),
            certfile=str(certs / "client.pem"),
            keyfile=str(certs / "client.key"),
            lease_ttl=10,
        ),
        replication_listener=Listener("0.0.0.0", 5679),
        advertise_host="host-1.example",
        min_followers=0,
        secret="0123456789abcdef",
    )


def test_each_cluster_key_is_read():
    """As test_settings_schema's test_every_key_has_a_setting_that_reads_it, on top of FULL."""
    samples = {
        "cluster.name": "other",
        "cluster.node_name": "warren-2",
        "cluster.advertise_host": "10.0.0.99",
        "cluster.etcd.endpoints": "http://10.0.0.9:2379",
        "cluster.etcd.prefix": "/x",
        "cluster.etcd.lease_ttl": "2",
        "replication.listener": "10.0.0.12:5680",
        "replication.min_followers": "10",
        "replication.secret": "x" * 16,
    }
    files = {"cluster.etcd.ssl.cacertfile", "cluster.etcd.ssl.certfile", "cluster.etcd.ssl.keyfile"}  # above
    assert {k.pattern for k in KEYS if k.pattern.startswith(("cluster.", "replication."))} == set(samples) | files
    for key, value in samples.items():
        s = parse(replaced(key, value))
        assert key in s.origins
        assert s.cluster != parse(FULL).cluster, key


def test_an_https_endpoint_needs_no_tls_file():
    cluster = parse(replaced("cluster.etcd.endpoints", "https://etcd.example:2379")).cluster
    assert cluster is not None and cluster.etcd.cacertfile is None and cluster.etcd.https


def test_an_ipv6_listener_gives_its_ip_as_the_advertised_host():
    cluster = parse(replaced("replication.listener", "[fd00::11]:5679")).cluster
    assert cluster is not None and cluster.advertise_host == "fd00::11"


def test_no_cluster_key_is_a_single_node():
    assert parse("").cluster is None
    assert parse("heartbeat = 5\nwarren.data_dir = /tmp/x\n").cluster is None
    assert Settings().cluster is None


def test_the_data_dir_is_left_to_the_server():
    # warren serve --data-dir may give it: the file alone cannot tell
    assert parse(FULL).data_dir is None


# -- required keys -----------------------------------------------------------------------


@pytest.mark.parametrize("key", REQUIRED)
def test_each_missing_required_key_is_reported_at_the_first_cluster_key(key):
    text = "heartbeat = 5\n" + without(key)
    first_line, first_key = next(
        (n, line.split(" ")[0]) for n, line in enumerate(text.splitlines(), 1) if line.startswith(("cluster.", "replication."))
    )
    assert errors(text) == [f"rabbitmq.conf:{first_line}: {first_key}: cluster mode needs {key} too"]


def test_a_lone_cluster_key_names_every_missing_one():
    assert errors("replication.min_followers = 2\n") == [
        "rabbitmq.conf:1: replication.min_followers: cluster mode needs cluster.name, cluster.node_name, "
        "cluster.etcd.endpoints, replication.listener and replication.secret too"
    ]
    assert errors(without("replication.secret", without("cluster.name"))) == [
        "rabbitmq.conf:1: cluster.node_name: cluster mode needs cluster.name and replication.secret too"
    ]


def test_a_bad_value_counts_as_given():
    assert errors(replaced("replication.secret", "short")) == [
        "rabbitmq.conf:5: replication.secret: expected at least 16 characters, got 5 "
        "(the same long random string on every node)"
    ]


# -- bad values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.1:2379", "expected http://HOST:PORT or https://HOST:PORT (e.g. http://10.0.0.1:2379), got '10.0.0.1:2379'"),
        ("ftp://10.0.0.1:2379", "got 'ftp://10.0.0.1:2379'"),
        ("HTTP://10.0.0.1:2379", "got 'HTTP://10.0.0.1:2379'"),
        ("http://10.0.0.1", "expected http://HOST:PORT"),
        ("http://10.0.0.1:", "expected http://HOST:PORT"),
        ("http://:2379", "expected http://HOST:PORT"),
        ("http://10.0.0.1:0", "expected a port between 1 and 65535, got 0"),
        ("http://10.0.0.1:2379/v3", "expected no path or query after HOST:PORT"),
        ("http://root:pw@10.0.0.1:2379", "expected no user or password in the URL"),
        ("http://etcd one:2379", "expected an IP address or a host name"),
        ("http://0.0.0.0:2379", "not the wildcard 0.0.0.0"),
        ("http://[10.0.0.1]:2379", "expected"),  # (an IPv6 address in brackets)
        ("http://10.0.0.1:2379,", "expected URLs separated by commas, with none empty"),
        ("http://10.0.0.1:2379, , http://10.0.0.2:2379", "with none empty"),
        ("http://10.0.0.1:2379, http://10.0.0.1:2379/", "lists http://10.0.0.1:2379 twice"),
        ("http://10.0.0.1:2379 http://10.0.0.2:2379", "expected"),
    ],
)
def test_bad_endpoints(value, message):
    found = errors(replaced("cluster.etcd.endpoints", value))
    assert len(found) == 1, found
    assert found[0].startswith("rabbitmq.conf:5: cluster.etcd.endpoints: ")
    assert message in found[0]


@pytest.mark.parametrize("value", ["warren 1", "warren/1", "wärren-1", "warren:1", "''"])
def test_bad_node_names(value):
    shown = "" if value == "''" else value
    assert errors(replaced("cluster.node_name", value)) == [
        f"rabbitmq.conf:5: cluster.node_name: expected a name of letters, digits, -, _, . and @ "
        f"(e.g. warren-1), got {shown!r}"
    ]


def test_a_short_secret_is_refused_without_being_shown():
    secret = "fifteen-chars.."
    assert len(secret) == 15
    found = errors(replaced("replication.secret", secret))
    assert found == [
        "rabbitmq.conf:5: replication.secret: expected at least 16 characters, got 15 "
        "(the same long random string on every node)"
    ]
    assert parse(replaced("replication.secret", secret + "!")).cluster is not None


def test_the_secret_is_never_shown():
    s = parse(FULL)
    assert SECRET not in repr(s)
    assert SECRET not in s.describe()
    assert "cluster 'prod' node 'warren-1': replication listener 10.0.0.11:5679" in s.to_lines()[-1]


@pytest.mark.parametrize(("given", "missing"), [("certfile", "keyfile"), ("keyfile", "certfile")])
def test_a_client_certificate_needs_its_key(certs, given, missing):
    path = certs / "rabbitmq.conf"
    path.write_text(
        replaced("cluster.etcd.endpoints", "https://10.0.0.1:2379") + f"cluster.etcd.ssl.{given} = client.pem\n"
    )
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={})
    assert str(excinfo.value) == (
        f"{path}:6: cluster.etcd.ssl.{given}: needs cluster.etcd.ssl.{missing} too (a client certificate goes with its key)"
    )


def test_tls_files_need_an_https_endpoint(certs):
    path = certs / "rabbitmq.conf"
    path.write_text(FULL + "cluster.etcd.ssl.cacertfile = ca.pem\n")
    with pytest.raises(SettingsError, match=r":6: cluster.etcd.ssl.cacertfile: no cluster.etcd.endpoints URL is https://"):
        load_settings(path, environ={})
    path.write_text(replaced("cluster.etcd.endpoints", "http://10.0.0.1:2379, https://10.0.0.2:2379")
                    + "cluster.etcd.ssl.cacertfile = ca.pem\n")
    cluster = load_settings(path, environ={}).cluster
    assert cluster is not None and cluster.etcd.cacertfile == str(certs / "ca.pem")


def test_a_missing_tls_file_is_refused():
    assert "no such file" in errors(replaced("cluster.etcd.ssl.cacertfile", "/nonexistent/ca.pem"))[0]


@pytest.mark.parametrize(("listener", "shown"), [("5679", "*:5679"), ("0.0.0.0:5679", "0.0.0.0:5679"),
                                                 (":::5679", "[::]:5679"), ("[::]:5679", "[::]:5679")])
def test_a_wildcard_listener_needs_an_advertised_host(listener, shown):
    text = replaced("replication.listener", listener)
    assert errors(text) == [
        f"rabbitmq.conf:5: replication.listener: listens on every interface ({shown}): set "
        "cluster.advertise_host, the address other nodes and clients reach this node at"
    ]
    cluster = parse(text + "cluster.advertise_host = warren-1.example\n").cluster
    assert cluster is not None and cluster.advertise_host == "warren-1.example"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.0.0.0", "expected an address other machines can reach, not the wildcard 0.0.0.0"),
        ("::", "not the wildcard ::"),
        ("warren 1", "expected an IP address or a host name (letters, digits, - and .), got 'warren 1'"),
        ("''", "got ''"),
        ("warren_1", "got 'warren_1'"),
    ],
)
def test_bad_advertised_hosts(value, message):
    found = errors(FULL + f"cluster.advertise_host = {value}\n")
    assert len(found) == 1 and found[0].startswith("rabbitmq.conf:6: cluster.advertise_host: "), found
    assert message in found[0]


def test_an_advertised_ip_is_normalised():
    cluster = parse(FULL + "cluster.advertise_host = [FD00::0011]\n").cluster
    assert cluster is not None and cluster.advertise_host == "fd00::11"


@pytest.mark.parametrize("value", ["-1", "11", "one", "1.0"])
def test_min_followers_out_of_range(value):
    assert errors(FULL + f"replication.min_followers = {value}\n") == [
        "rabbitmq.conf:6: replication.min_followers: expected an integer between 0 and 10, got "
        + (value if re.fullmatch(r"-?\d+", value) else repr(value))
    ]


def test_min_followers_bounds():
    for value in (0, 10):
        cluster = parse(FULL + f"replication.min_followers = {value}\n").cluster
        assert cluster is not None and cluster.min_followers == value


@pytest.mark.parametrize("value", ["1", "61", "5s"])
def test_lease_ttl_out_of_range(value):
    found = errors(FULL + f"cluster.etcd.lease_ttl = {value}\n")
    assert len(found) == 1 and "cluster.etcd.lease_ttl: expected an integer between 2 and 60" in found[0]


@pytest.mark.parametrize(("value", "message"), [("warren", "starting with /"), ("/warren/", "not ending with /"),
                                                ("/", "not ending with /")])
def test_bad_prefixes(value, message):
    found = errors(FULL + f"cluster.etcd.prefix = {value}\n")
    assert len(found) == 1 and found[0].startswith("rabbitmq.conf:6: cluster.etcd.prefix: expected a key prefix"), found
    assert message in found[0]


def test_a_name_that_makes_a_bad_default_prefix():
    assert errors(replaced("cluster.name", "prod/")) == [
        "rabbitmq.conf:5: cluster.name: ends with /, so the default cluster.etcd.prefix, '/warren/prod/', would "
        "too: drop the / or set cluster.etcd.prefix"
    ]
    cluster = parse(replaced("cluster.name", "prod/") + "cluster.etcd.prefix = /warren/prod\n").cluster
    assert cluster is not None and cluster.name == "prod/"


def test_every_problem_is_reported_together():
    found = errors(
        "cluster.node_name = a b\n"
        "cluster.etcd.endpoints = ftp://x\n"
        "replication.listener = 5679\n"
        "replication.secret = short\n"
        "cluster.etcd.ssl.certfile = /nonexistent/client.pem\n"
        "replication.min_followers = 11\n"
    )
    assert [f.split(": ")[1] for f in found] == [
        "cluster.node_name", "cluster.node_name", "cluster.etcd.endpoints", "replication.listener",
        "replication.secret", "cluster.etcd.ssl.certfile", "cluster.etcd.ssl.certfile", "replication.min_followers",
    ]
    assert "rabbitmq.conf:1: cluster.node_name: cluster mode needs cluster.name too" in found[:2]


# -- names --------------------------------------------------------------------------------


def test_misspelt_cluster_keys_get_a_suggestion():
    assert errors("cluster.nodename = warren-1\n") == [
        "rabbitmq.conf:1: cluster.nodename: unknown key; did you mean cluster.node_name?"
    ]
    assert errors("replication.secrets = x\n") == [
        "rabbitmq.conf:1: replication.secrets: unknown key; did you mean replication.secret?"
    ]
    assert errors("cluster.etcd.endpoint = http://a:1\n") == [
        "rabbitmq.conf:1: cluster.etcd.endpoint: unknown key; did you mean cluster.etcd.endpoints?"
    ]


def test_rabbitmqs_cluster_name_points_to_warrens():
    assert errors("cluster_name = prod\n") == [
        "rabbitmq.conf:1: cluster_name: a RabbitMQ setting that Warren does not have (docs/settings.md lists "
        "them); Warren's is cluster.name (docs/cluster.md)"
    ]


def test_the_cluster_keys_are_not_rabbitmqs():
    """Keys outside warren.* that RabbitMQ does not have: none of them may be one of RabbitMQ's."""
    ours = {k.pattern for k in KEYS if k.pattern.startswith(("cluster.", "replication."))}
    assert ours and not any(p.startswith(("cluster.", "replication.")) for p in RABBITMQ_KEYS)


# -- the model ---------------------------------------------------------------------------


def etcd(**changes: object) -> EtcdSettings:
    endpoints = ("http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379")
    return EtcdSettings(**{"endpoints": endpoints, "prefix": "/warren/prod", **changes})  # type: ignore[arg-type]


def cluster(**changes: object) -> ClusterSettings:
    fields = {"name": "prod", "node_name": "warren-1", "etcd": etcd(), "replication_listener": Listener("10.0.0.11", 5679),
              "advertise_host": "10.0.0.11", "secret": SECRET, **changes}
    return ClusterSettings(**fields)  # type: ignore[arg-type]


def test_every_cluster_settings_instance_is_valid():
    assert cluster() == parse(FULL).cluster
    for changes, message in [
        ({"name": ""}, "cluster.name: must not be empty"),
        ({"node_name": "a b"}, "cluster.node_name: expected a name"),
        ({"etcd": None}, "cluster.etcd: expected EtcdSettings"),
        ({"replication_listener": "10.0.0.11:5679"}, "replication.listener: expected Listener"),
        ({"advertise_host": "0.0.0.0"}, "cluster.advertise_host: expected an address other machines can reach"),
        ({"min_followers": 11}, "replication.min_followers: expected an integer between 0 and 10, got 11"),
        ({"min_followers": True}, "replication.min_followers: expected int"),
        ({"secret": "short"}, "replication.secret: expected at least 16 characters, got 5"),
        ({"secret": b"0123456789abcdefgh"}, "replication.secret: expected str, got bytes"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            cluster(**changes)
    with pytest.raises(ValueError) as excinfo:
        cluster(secret="not-long-enough")
    assert "not-long-enough" not in str(excinfo.value)
    with pytest.raises(TypeError):
        ClusterSettings("prod", "warren-1", etcd(), Listener(None, 5679))  # type: ignore[call-arg]


def test_every_etcd_settings_instance_is_valid():
    assert etcd(endpoints=("http://a:1/",)).endpoints == ("http://a:1",)
    for changes, message in [
        ({"endpoints": ()}, "cluster.etcd.endpoints: expected at least one URL"),
        ({"endpoints": "http://a:1"}, "cluster.etcd.endpoints: expected a tuple of URLs"),
        ({"endpoints": ("a:1",)}, "cluster.etcd.endpoints: expected http://HOST:PORT"),
        ({"endpoints": ("http://a:1", "http://a:1")}, "cluster.etcd.endpoints: lists the same URL twice"),
        ({"prefix": "warren"}, "cluster.etcd.prefix: expected a key prefix starting with /"),
        ({"endpoints": ("https://a:1",), "certfile": "/c.pem"}, "cluster.etcd.ssl.certfile: needs cluster.etcd.ssl.keyfile"),
        ({"cacertfile": "/ca.pem"}, "cluster.etcd.ssl.cacertfile: no cluster.etcd.endpoints URL is https://"),
        ({"lease_ttl": 61}, "cluster.etcd.lease_ttl: expected an integer between 2 and 60, got 61"),
        ({"lease_ttl": 1}, "cluster.etcd.lease_ttl: expected an integer between 2 and 60, got 1"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            etcd(**changes)


def test_overrides_check_and_forget_the_cluster_keys():
    s = parse("heartbeat = 5\n" + FULL)
    single = s.with_overrides(cluster=None)
    assert single.cluster is None
    assert dict(single.origins) == {"heartbeat": "rabbitmq.conf:1"}
    assert Settings().with_overrides(cluster=cluster()).cluster == cluster()
    with pytest.raises(ValueError, match="cluster: expected ClusterSettings"):
        Settings().with_overrides(cluster="prod")


# -- docs/settings.md ------------------------------------------------------------------------


def test_the_documented_example_reads_as_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text(encoding="utf-8")
    start = doc.index("\n### Cluster (high availability)\n")
    section = doc[start : doc.index("\n## ", start)]
    example, line = re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)
    s = parse(example)
    assert s.cluster == cluster(min_followers=1)
    assert s.to_lines()[-1] == line.strip()
    assert "(cluster.md)" in section
