"""Hashes made by broker.auth.passwords, imported into a real RabbitMQ, log in.

Runs only against a reference node, given by both of:

    WARREN_REFERENCE_URL=amqp://guest:guest@127.0.0.1:5673/
    WARREN_REFERENCE_MANAGEMENT_URL=http://guest:guest@127.0.0.1:15673/

For each algorithm: a user is created with ``password_hash`` and
``hashing_algorithm`` from `hash_password`, given permissions on "/", and must
log in over AMQP (pika, PLAIN) with the password and be refused with another;
then a user created by RabbitMQ from a cleartext password must verify here.
Users are named ``warren-test-<random>`` and deleted afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from broker.auth.passwords import ALGORITHMS, hash_password, verify_password

AMQP_URL = os.environ.get("WARREN_REFERENCE_URL")
MANAGEMENT_URL = os.environ.get("WARREN_REFERENCE_MANAGEMENT_URL")

pytestmark = pytest.mark.skipif(
    not (AMQP_URL and MANAGEMENT_URL),
    reason="needs WARREN_REFERENCE_URL and WARREN_REFERENCE_MANAGEMENT_URL (a RabbitMQ node)",
)

PASSWORDS = ["guest", "pässwörd ✓ 日本", "with spaces and #hash"]


def _api(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    assert MANAGEMENT_URL
    parts = urllib.parse.urlsplit(MANAGEMENT_URL)
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    request = urllib.request.Request(
        f"{base}/api{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(credentials).decode(),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        data = response.read()
    return json.loads(data) if data else None


def _logs_in(user: str, password: str) -> bool:
    import pika

    assert AMQP_URL
    parts = urllib.parse.urlsplit(AMQP_URL)
    parameters = pika.ConnectionParameters(
        host=parts.hostname,
        port=parts.port or 5672,
        virtual_host="/",
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
    )
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.ProbableAuthenticationError:
        return False
    return True


@pytest.fixture
def user() -> Iterator[str]:
    name = f"warren-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        try:
            _api("DELETE", f"/users/{name}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("password", PASSWORDS)
def test_rabbitmq_accepts_our_hash(user, algorithm, password):
    password_hash = hash_password(password, algorithm)
    _api(
        "PUT",
        f"/users/{user}",
        {"password_hash": password_hash, "hashing_algorithm": algorithm, "tags": ""},
    )
    _api("PUT", f"/permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"})
    stored = _api("GET", f"/users/{user}")
    assert (stored["password_hash"], stored["hashing_algorithm"]) == (password_hash, algorithm)
    assert _logs_in(user, password)
    assert not _logs_in(user, password + "x")


@pytest.mark.parametrize("password", PASSWORDS)
def test_rabbitmqs_hash_verifies_here(user, password):
    _api("PUT", f"/users/{user}", {"password": password, "tags": ""})
    stored = _api("GET", f"/users/{user}")
    assert verify_password(password, stored["password_hash"], stored["hashing_algorithm"])
    assert not verify_password(password + "x", stored["password_hash"], stored["hashing_algorithm"])
