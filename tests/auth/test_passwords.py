"""broker.auth.passwords: RabbitMQ's password hashes, byte for byte.

The vectors below were made by a RabbitMQ 3.10.8 node (the reference broker
of docs/compatibility.md), in two ways:

- "api": PUT /api/users/NAME {"password": ..., "tags": ""} on the management
  API, then GET /api/users/NAME for ``password_hash`` and ``hashing_algorithm``
  (the node's default module, SHA-256);
- "eval": ``rabbitmqctl eval 'base64:encode(rabbit_password:hash(Module,
  <<"..."/utf8>>)).'`` for the modules the node is not configured with
  (SHA-512, MD5): the very function the internal user database calls.

The other direction (hashes made here, imported into RabbitMQ with
``password_hash``/``hashing_algorithm``, then a pika login with the password
and a refused one with a wrong password) is test_passwords_reference.py, which
runs when a reference node is given.
"""

from __future__ import annotations

import base64
import doctest
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.auth import passwords
from broker.auth.passwords import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    MD5,
    SHA256,
    SHA512,
    hash_password,
    validate_password_hash,
    verify_password,
)

#: (password, password_hash, hashing_algorithm, how RabbitMQ 3.10.8 made it)
RABBITMQ_VECTORS = [
    ("guest", "ttFpXR8Ha6VMd2aJcoNQ84laKAyOS8vZazudbK7P+9FLAjqU", SHA256, "api"),
    (
        "correct horse battery staple",
        "lMeNr5OsNLT52n6Z3BEE2fC48tm7TRnGXvpSZoJNn8P4gZMw",
        SHA256,
        "api",
    ),
    ("pässwörd ✓ 日本", "DkkASRVfNHgvYj7blmri3NCJjAFL5CJATnFG6BxGdY78beAX", SHA256, "api"),
    ("s3cr#t", "YS1WCuxg1ygQFJaMwckcFgi2kGdY0ZrVLM+vM0XCTb+tyZGJ", SHA256, "api"),
    ("s3cr#t", "2/Z/hF8sExQB7z2n1i3aVSJys1jrQdx+U8ixucv+rKWnQ+1J", SHA256, "eval"),
    (
        "s3cr#t",
        "mkt/QYkFIdYRZ65KwfcPkSVi3nNDnyodb0CvbhlKI4v3Ggpm6DLI0eClXZzwzNTA/GPEjkPlYpCbnPKqfRXIGdGlyVs=",
        SHA512,
        "eval",
    ),
    ("s3cr#t", "S4xyKPLtOj7KnOwH8jGG9zRkBlk=", MD5, "eval"),
    (
        "Jürgen-ß-日本",
        "sG+bvm0XkCw4vzhlbFJCra22yh+gyddttkqgaisDt/qH0LhuU3uwYewpqH4P6rfKYz7srIArpRZw3Ts1ruBT5rbF4b8=",
        SHA512,
        "eval",
    ),
    ("Jürgen-ß-日本", "5KHxLf3RuVfM1riq4fagJn7lnaY=", MD5, "eval"),
]

#: RabbitMQ stores a real hash for the password "" (PUT {"password": ""}), yet
#: refuses the login: blank passwords are rejected before the hash is looked at.
RABBITMQ_EMPTY_PASSWORD_HASH = "FKDxa3/m96AWuWav9JzluTLb7Wzz4DgoUJTZSuEPX2r4+7SI"

vector_ids = [f"{alg.rsplit('_', 1)[1]}-{how}-{pw!r}" for pw, _, alg, how in RABBITMQ_VECTORS]


@pytest.mark.parametrize(("password", "password_hash", "algorithm", "how"), RABBITMQ_VECTORS, ids=vector_ids)
def test_hashes_made_by_rabbitmq_verify(password, password_hash, algorithm, how):
    assert verify_password(password, password_hash, algorithm)


@pytest.mark.parametrize(("password", "password_hash", "algorithm", "how"), RABBITMQ_VECTORS, ids=vector_ids)
def test_hashes_made_by_rabbitmq_refuse_other_passwords(password, password_hash, algorithm, how):
    assert not verify_password(password + "x", password_hash, algorithm)
    assert not verify_password(password.upper(), password_hash, algorithm)
    assert not verify_password("guest" if password != "guest" else "Guest", password_hash, algorithm)


@pytest.mark.parametrize(("password", "password_hash", "algorithm", "how"), RABBITMQ_VECTORS, ids=vector_ids)
def test_same_salt_gives_rabbitmqs_hash_exactly(password, password_hash, algorithm, how):
    salt = base64.b64decode(password_hash)[:4]
    assert hash_password(password, algorithm, salt=salt) == password_hash


@pytest.mark.parametrize(("password", "password_hash", "algorithm", "how"), RABBITMQ_VECTORS, ids=vector_ids)
def test_a_hash_checked_against_the_wrong_algorithm_does_not_match(password, password_hash, algorithm, how):
    for other in ALGORITHMS:
        if other != algorithm:
            assert not verify_password(password, password_hash, other)


def test_the_layout_is_salt_then_digest_of_salt_and_utf8_password():
    salt = bytes.fromhex("01020304")
    for algorithm, name in ALGORITHMS.items():
        raw = base64.b64decode(hash_password("pässword", algorithm, salt=salt))
        assert raw == salt + hashlib.new(name, salt + "pässword".encode()).digest()


def test_default_algorithm_is_rabbitmqs_sha256():
    assert DEFAULT_ALGORITHM == SHA256 == "rabbit_password_hashing_sha256"
    assert len(base64.b64decode(hash_password("x"))) == 4 + 32
    assert len(base64.b64decode(hash_password("x", SHA512))) == 4 + 64
    assert len(base64.b64decode(hash_password("x", MD5))) == 4 + 16


def test_each_hash_has_a_fresh_random_salt():
    hashes = {hash_password("same password") for _ in range(20)}
    assert len(hashes) == 20
    assert all(verify_password("same password", h) for h in hashes)


def test_empty_hash_means_no_password():
    for algorithm in ALGORITHMS:
        assert not verify_password("", "", algorithm)
        assert not verify_password("guest", "", algorithm)
    validate_password_hash("")  # a valid hash: "this user has no password"


def test_empty_password_never_logs_in_even_with_its_own_hash():
    salt = base64.b64decode(RABBITMQ_EMPTY_PASSWORD_HASH)[:4]
    assert hash_password("", SHA256, salt=salt) == RABBITMQ_EMPTY_PASSWORD_HASH
    assert not verify_password("", RABBITMQ_EMPTY_PASSWORD_HASH, SHA256)
    assert not verify_password(b"", RABBITMQ_EMPTY_PASSWORD_HASH, SHA256)


def test_bytes_password_is_taken_as_is_and_str_as_utf8():
    h = hash_password("Jürgen")
    assert verify_password("Jürgen".encode(), h)
    assert not verify_password("Jürgen".encode("latin-1"), h)
    assert verify_password("Jürgen", hash_password("Jürgen".encode()))
    # bytes that are not UTF-8 hash fine (AMQP passwords are bytes)
    assert verify_password(b"\xff\xfe", hash_password(b"\xff\xfe", SHA512), SHA512)


@pytest.mark.parametrize("algorithm", ["sha256", "rabbit_password_hashing_sha1", "", "SHA256", None])
def test_unknown_algorithm_is_a_clear_value_error(algorithm):
    for call in (
        lambda: hash_password("x", algorithm),
        lambda: verify_password("x", hash_password("x"), algorithm),
        lambda: verify_password("x", "", algorithm),
        lambda: validate_password_hash("", algorithm),
    ):
        with pytest.raises(ValueError) as excinfo:
            call()
        message = str(excinfo.value)
        assert repr(algorithm) in message
        assert all(name in message for name in ALGORITHMS)


@pytest.mark.parametrize(
    "bad_hash",
    [
        "not base64!",
        "dGVzdA==",  # base64, but 4 bytes: no digest
        "ttFpXR8Ha6VMd2aJcoNQ84laKAyOS8vZazudbK7P+9FLAjq",  # bad padding
        "ttFpXR8Ha6VMd2aJcoNQ84laKAyOS8vZazudbK7P+9FLAjqU\n",  # stray byte
        "S4xyKPLtOj7KnOwH8jGG9zRkBlk=",  # an MD5 hash, read as SHA-256
        "ttFpXR8Ha6VMd2aJ✓",  # not ASCII
    ],
)
def test_malformed_hashes_never_match_and_are_reported_by_validate(bad_hash):
    assert not verify_password("guest", bad_hash, SHA256)
    assert not verify_password("s3cr#t", bad_hash, SHA256)
    with pytest.raises(ValueError, match="password hash"):
        validate_password_hash(bad_hash, SHA256)


@pytest.mark.parametrize(("password", "password_hash", "algorithm", "how"), RABBITMQ_VECTORS, ids=vector_ids)
def test_validate_accepts_rabbitmqs_hashes(password, password_hash, algorithm, how):
    validate_password_hash(password_hash, algorithm)


def test_a_salt_is_four_bytes():
    with pytest.raises(ValueError, match="4 bytes"):
        hash_password("x", salt=b"abc")
    with pytest.raises(ValueError, match="4 bytes"):
        hash_password("x", salt=b"abcde")


def test_digests_are_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(passwords.hmac, "compare_digest", spy)
    h = hash_password("guest")
    assert verify_password("guest", h)
    assert not verify_password("nope", h)
    assert len(calls) == 2


def test_module_doctest_uses_a_rabbitmq_vector():
    result = doctest.testmod(passwords)
    assert result.attempted >= 1
    assert result.failed == 0


passwords_text = st.text(min_size=1, max_size=64)
algorithms = st.sampled_from(sorted(ALGORITHMS))


@given(password=passwords_text, algorithm=algorithms)
def test_property_a_hash_verifies_its_password(password, algorithm):
    password_hash = hash_password(password, algorithm)
    validate_password_hash(password_hash, algorithm)
    assert verify_password(password, password_hash, algorithm)
    assert verify_password(password.encode(), password_hash, algorithm)


@given(password=passwords_text, other=passwords_text, algorithm=algorithms)
def test_property_a_hash_refuses_any_other_password(password, other, algorithm):
    password_hash = hash_password(password, algorithm)
    assert verify_password(other, password_hash, algorithm) == (other == password)


@given(password=passwords_text, salt=st.binary(min_size=4, max_size=4), algorithm=algorithms)
def test_property_the_salt_is_the_first_four_bytes(password, salt, algorithm):
    raw = base64.b64decode(hash_password(password, algorithm, salt=salt))
    assert raw[:4] == salt
    assert raw[4:] == hashlib.new(ALGORITHMS[algorithm], salt + password.encode()).digest()


@given(garbage=st.text(max_size=120), algorithm=algorithms)
def test_property_verify_never_raises_on_any_stored_text(garbage, algorithm):
    assert verify_password("guest", garbage, algorithm) in (True, False)


def test_definitions_may_give_a_clear_password_not_both() -> None:
    # rabbit_auth_backend_internal:put_user: `password` is hashed at import,
    # `password_hash` is taken as is, and both at once are refused.
    from broker.auth.access import AccessControl

    access = AccessControl()
    problems = access.load({"users": [
        {"name": "alice", "password": "s3cret", "tags": ""},
        {"name": "bob", "password": "x", "password_hash": "", "tags": ""},
    ]})  # fmt: skip
    assert access.users["alice"].check_password("s3cret")
    assert not access.users["alice"].check_password("wrong")
    assert "bob" not in access.users
    assert problems == ["users[1]: both_password_and_password_hash_are_provided"]
