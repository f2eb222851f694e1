"""The user name EXTERNAL takes from a client certificate, byte for byte RabbitMQ's.

Certificates with awkward subjects are made with `openssl req -utf8 -subj`;
their subject as Python's ssl module decodes it (the same decoder as
`getpeercert()`) is rendered by `broker.session.info.distinguished_name` and
compared with:

- the name RabbitMQ 3.10.8 derives (`expected`, read off
  rabbit_ssl:peer_cert_auth_name; re-checked live below when RabbitMQ is
  installed);
- `openssl x509 -subject -nameopt RFC2253`, which is the same string except
  where RabbitMQ departs from OpenSSL (`openssl` given): the names of some
  attribute types, the order inside a multi-valued RDN, and `~`.
"""

from __future__ import annotations

import glob
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from tls_helpers import OPENSSL, make_key, openssl

from broker.session.info import common_names, distinguished_name, escape_rdn_value

#: (openssl -subj, RabbitMQ 3.10.8's DN, its common_name user, openssl RFC2253 if different)
CASES: list[tuple[str, str, str | None, str | None]] = [
    ("/C=GB/O=Acme Ltd/OU=Team, Inc/CN=acl-client",
     r"CN=acl-client,OU=Team\, Inc,O=Acme Ltd,C=GB", "acl-client", None),
    (r"/O=Plus\+Co/CN=a\+b", r"CN=a\+b,O=Plus\+Co", "a+b", None),
    ("/CN=#hash", r"CN=\#hash", "#hash", None),
    ("/CN=mid#hash", "CN=mid#hash", "mid#hash", None),
    ("/CN=Zoë Ünïcode/O=日本語",
     r"O=\E6\97\A5\E6\9C\AC\E8\AA\9E,CN=Zo\C3\AB \C3\9Cn\C3\AFcode", "Zoë Ünïcode", None),
    ("/CN= lead and trail ", r"CN=\ lead and trail\ ", " lead and trail ", None),
    ("/UID=u1/CN= ", r"CN=\ ,UID=u1", " ", None),
    ('/CN=q"uote;semi<lt>gt\\\\back=eq',
     r'CN=q\"uote\;semi\<lt\>gt\\back=eq', 'q"uote;semi<lt>gt\\back=eq', None),
    ("/CN=tab\tin", r"CN=tab\09in", "tab\tin", None),
    ("/CN=del\x7fx/O=ctl\x01y", r"O=ctl\01y,CN=del\7Fx", "del\x7fx", None),
    ("/CN=first/CN=second", "CN=second,CN=first", "first,second", None),
    # Multi-valued RDNs: RabbitMQ keeps the certificate's order, OpenSSL reverses it.
    ("/O=Acme/CN=alice+UID=a123", "CN=alice+UID=a123,O=Acme", "alice",
     "UID=a123+CN=alice,O=Acme"),
    ("/CN=x+emailAddress=a@b.c+OU=u", "CN=x+OU=u+EMAILADDRESS=a@b.c", "x",
     "emailAddress=a@b.c+OU=u+CN=x"),
    # '~' (and DEL, above) is escaped by RabbitMQ; OpenSSL leaves '~' alone.
    ("/CN=~tilde", r"CN=\7Etilde", "~tilde", "CN=~tilde"),
    # RabbitMQ's attribute names, and dotted OIDs for types it does not name.
    ("/emailAddress=a@example.com/DC=com/DC=example/CN=x",
     "CN=x,DC=example,DC=com,EMAILADDRESS=a@example.com", "x",
     "CN=x,DC=example,DC=com,emailAddress=a@example.com"),
    ("/SN=Smith/GN=John/initials=JS/generationQualifier=Jr/title=Dr/serialNumber=1234"
     "/pseudonym=jj/street=1 Main St/L=London/ST=England",
     "ST=England,L=London,2.5.4.9=1 Main St,PSEUDONYM=jj,SERIALNUMBER=1234,TITLE=Dr,"
     "GENERATIONQUALIFIER=Jr,INITIALS=JS,GIVENNAME=John,SN=Smith", None,
     "ST=England,L=London,street=1 Main St,pseudonym=jj,serialNumber=1234,title=Dr,"
     "generationQualifier=Jr,initials=JS,GN=John,SN=Smith"),
    ("/businessCategory=Retail/postalCode=SW1/CN=unknowns",
     "CN=unknowns,2.5.4.17=SW1,2.5.4.15=Retail", "unknowns",
     "CN=unknowns,postalCode=SW1,businessCategory=Retail"),
]

decode_cert = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One self-signed certificate per case (the issuer does not matter here)."""
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed (apt-get install openssl)")
    directory = tmp_path_factory.mktemp("dn")
    key = make_key(directory, "key.pem")
    paths = []
    for index, (subject, *_rest) in enumerate(CASES):
        path = directory / f"case{index}.pem"
        openssl("req", "-x509", "-new", "-key", str(key), "-utf8", "-subj", subject,
                "-days", "2", "-out", str(path), cwd=directory)
        paths.append(path)
    return paths


def _subject(path: Path):
    if decode_cert is None:
        pytest.skip("this Python's ssl module has no _test_decode_cert")
    return decode_cert(str(path))["subject"]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_the_dn_is_rabbitmqs_and_openssls_rfc2253_but_where_they_differ(certificates, index):
    subject, expected, _cn, openssl_differs = CASES[index]
    rdns = _subject(certificates[index])
    assert distinguished_name(rdns) == expected
    shown = openssl("x509", "-in", str(certificates[index]), "-noout", "-subject",
                    "-nameopt", "RFC2253", cwd=certificates[index].parent)
    assert shown.startswith("subject=") and shown.endswith("\n")
    assert shown[len("subject="):-1] == (openssl_differs or expected)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_the_common_name_user_is_rabbitmqs(certificates, index):
    assert common_names(_subject(certificates[index])) == CASES[index][2]


def _rabbitmq_plugins() -> str | None:
    given = os.environ.get("WARREN_RABBITMQ_PLUGINS")
    if given:
        return given
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10*/plugins"))
    return found[-1] if found else None


PLUGINS = _rabbitmq_plugins()

#: Runs RabbitMQ's own rabbit_ssl:peer_cert_auth_name/1 on each certificate,
#: with verify_peer (RabbitMQ refuses to name a user otherwise), printing the
#: DN and CN user names as hex (or not_found).
RABBIT_NAMES = r"""
application:load(rabbit),
application:set_env(rabbit, ssl_options, [{verify, verify_peer}, {fail_if_no_peer_cert, false}]),
Hex = fun(not_found) -> "not_found"; (B) -> binary_to_list(binary:encode_hex(B)) end,
lists:foreach(fun(F) ->
    {ok, Pem} = file:read_file(F),
    [{'Certificate', Der, _}] = public_key:pem_decode(Pem),
    application:set_env(rabbit, ssl_cert_login_from, distinguished_name),
    Dn = rabbit_ssl:peer_cert_auth_name(Der),
    application:set_env(rabbit, ssl_cert_login_from, common_name),
    Cn = rabbit_ssl:peer_cert_auth_name(Der),
    io:format("~s ~s~n", [Hex(Dn), Hex(Cn)])
  end, [FILES]),
halt().
"""


@pytest.mark.skipif(PLUGINS is None or shutil.which("erl") is None,
                    reason="RabbitMQ 3.10 is not installed (its plugins directory and erl)")
def test_rabbitmq_itself_names_the_same_users(certificates):
    assert PLUGINS is not None
    files = ",".join(f'"{path}"' for path in certificates)
    ebin = [f"{PLUGINS}/{name}/ebin" for name in ("rabbit_common-*", "rabbit-*")]
    paths = [found for pattern in ebin for found in glob.glob(pattern)]
    done = subprocess.run(
        ["erl", "-noshell", *[arg for path in paths for arg in ("-pa", path)],
         "-eval", RABBIT_NAMES.replace("FILES", files)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    lines = done.stdout.split()
    names = [
        tuple(None if part == "not_found" else bytes.fromhex(part).decode("utf-8")
              for part in (lines[2 * i], lines[2 * i + 1]))
        for i in range(len(certificates))
    ]
    assert names == [(expected, cn) for _subject, expected, cn, _openssl in CASES]


# -- without certificates ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("", ""),
        ("#", r"\#"),
        ("##", r"\##"),
        ("a#", "a#"),
        (" ", r"\ "),
        ("  ", r"\ \ "),
        ("a b", "a b"),
        ("a,b+c;d<e>f\"g\\h", r"a\,b\+c\;d\<e\>f\"g\\h"),
        ("=", "="),
        ("é", r"\C3\A9"),
        ("~", r"\7E"),
        ("}", "}"),
        ("\x00", r"\00"),
        ("😀", r"\F0\9F\98\80"),
    ],
)
def test_escape_rdn_value(value, escaped):
    assert escape_rdn_value(value) == escaped


def test_rdns_are_reversed_and_a_multi_valued_rdn_is_joined_with_plus():
    rdns = (
        (("domainComponent", "org"),),
        (("organizationName", "Example"),),
        (("commonName", "alice"), ("userId", "a1")),
    )
    assert distinguished_name(rdns) == "CN=alice+UID=a1,O=Example,DC=org"
    assert common_names(rdns) == "alice"
    assert distinguished_name(()) == "" and common_names(()) is None


def test_an_attribute_type_openssl_does_not_know_is_its_dotted_oid():
    assert distinguished_name(((("1.3.6.1.4.1.99999.1", "v"),),)) == "1.3.6.1.4.1.99999.1=v"
