"""A small client for RabbitMQ's management HTTP API, for the access-control and
policies areas.

The access-control tests need users, virtual hosts, permissions, topic
permissions and vhost limits set up on the broker under test; the policies
tests, policies and operator policies (``PUT /api/policies/V/NAME``,
``PUT /api/operator-policies/V/NAME``). AMQP 0-9-1 has no
methods for that, so the suite uses the management API as RabbitMQ defines it
(``PUT /api/users/NAME``, ``PUT /api/vhosts/NAME``, ``PUT /api/permissions/V/U``,
``PUT /api/topic-permissions/V/U``, ``PUT /api/vhost-limits/V/NAME``): any
broker that offers the same calls can be tested. Standard library only
(urllib), so the suite needs nothing more to install.

The admin URL carries the credentials: ``http://guest:guest@127.0.0.1:15672/``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

#: How long one HTTP request may take before the test fails.
HTTP_TIMEOUT = 10.0

#: Hash functions of RabbitMQ's password hashing modules, by the name that
#: appears as ``hashing_algorithm`` in the API and in exported definitions.
HASHING_ALGORITHMS = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}


def password_hash(password: str, algorithm: str, salt: bytes | None = None) -> str:
    """RabbitMQ's stored form of a password: base64(salt + H(salt + utf8 password)).

    The salt is 4 random bytes (rabbit_password:generate_salt/0).
    """
    salt = os.urandom(4) if salt is None else salt
    digest = HASHING_ALGORITHMS[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


class AdminError(Exception):
    """The management API answered with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {body[:300]}")
        self.status = status
        self.body = body


@dataclass
class Response:
    status: int
    body: str

    def json(self):
        return json.loads(self.body) if self.body else None


class Admin:
    """The management API at one URL, e.g. ``http://guest:guest@127.0.0.1:15672/``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        user = unquote(parts.username or "guest")
        password = unquote(parts.password or "guest")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = host + (f":{parts.port}" if parts.port else "")
        path = parts.path.rstrip("/")
        self.base = urlunsplit((parts.scheme, netloc, path + "/api", "", ""))
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"

    # -- raw requests -------------------------------------------------------

    def request(self, method: str, path: str, body: object = None) -> Response:
        """One request; returns the status and body whatever the status is."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", self._authorization)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:
                return Response(reply.status, reply.read().decode())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read().decode(errors="replace"))

    def _expect(self, method: str, path: str, body: object, ok: tuple[int, ...]) -> Response:
        response = self.request(method, path, body)
        if response.status not in ok:
            raise AdminError(method, path, response.status, response.body)
        return response

    def put(self, path: str, body: object) -> Response:
        return self._expect("PUT", path, body, (201, 204))

    def get(self, path: str):
        return self._expect("GET", path, None, (200,)).json()

    def delete(self, path: str) -> None:
        """DELETE; a missing object is fine (cleanup may run twice)."""
        self._expect("DELETE", path, None, (204, 404))

    # -- objects --------------------------------------------------------------

    def overview(self) -> dict:
        return self.get("/overview")

    def put_vhost(self, vhost: str) -> None:
        self.put(f"/vhosts/{q(vhost)}", {})

    def delete_vhost(self, vhost: str) -> None:
        self.delete(f"/vhosts/{q(vhost)}")

    def put_user(
        self,
        user: str,
        password: str | None = None,
        *,
        tags: str = "",
        password_hash: str | None = None,
        hashing_algorithm: str | None = None,
    ) -> None:
        """Create or update a user; with neither password nor hash it has no password."""
        body: dict[str, str] = {"tags": tags}
        if password is not None:
            body["password"] = password
        if password_hash is not None:
            body["password_hash"] = password_hash
        if hashing_algorithm is not None:
            body["hashing_algorithm"] = hashing_algorithm
        self.put(f"/users/{q(user)}", body)

    def delete_user(self, user: str) -> None:
        self.delete(f"/users/{q(user)}")

    def set_permissions(
        self, vhost: str, user: str, configure: str = ".*", write: str = ".*", read: str = ".*"
    ) -> None:
        self.put(
            f"/permissions/{q(vhost)}/{q(user)}",
            {"configure": configure, "write": write, "read": read},
        )

    def clear_permissions(self, vhost: str, user: str) -> None:
        self.delete(f"/permissions/{q(vhost)}/{q(user)}")

    def set_topic_permissions(
        self, vhost: str, user: str, exchange: str, write: str = ".*", read: str = ".*"
    ) -> None:
        self.put(
            f"/topic-permissions/{q(vhost)}/{q(user)}",
            {"exchange": exchange, "write": write, "read": read},
        )

    def set_vhost_limit(self, vhost: str, name: str, value: int) -> None:
        """name is "max-connections" or "max-queues"; a negative value means no limit."""
        self.put(f"/vhost-limits/{q(vhost)}/{q(name)}", {"value": value})

    def clear_vhost_limit(self, vhost: str, name: str) -> None:
        self.delete(f"/vhost-limits/{q(vhost)}/{q(name)}")

    def put_policy(
        self,
        vhost: str,
        name: str,
        pattern: str,
        definition: dict,
        *,
        priority: int = 0,
        apply_to: str = "all",
        operator: bool = False,
    ) -> Response:
        """Set a policy (or an operator policy); RabbitMQ's PUT /api/policies/V/NAME."""
        kind = "operator-policies" if operator else "policies"
        body = {"pattern": pattern, "definition": definition, "priority": priority,
                "apply-to": apply_to}
        return self.put(f"/{kind}/{q(vhost)}/{q(name)}", body)

    def delete_policy(self, vhost: str, name: str, *, operator: bool = False) -> None:
        kind = "operator-policies" if operator else "policies"
        self.delete(f"/{kind}/{q(vhost)}/{q(name)}")


def q(segment: str) -> str:
    """One path segment, percent-encoded (the default vhost "/" is "%2F")."""
    return quote(segment, safe="")
