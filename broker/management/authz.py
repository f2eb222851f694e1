"""Who may use the management API, and for what (rabbit_mgmt_util's checks).

A *management user* has one of the tags administrator, monitoring,
policymaker or management; anyone else is refused after a good password
("Not management user"). Then each endpoint applies one family of checks:

- any management user (overview, whoami, health checks; lists are filtered);
- `require_admin`: administrator ("Not administrator user");
- `require_monitor`: administrator or monitoring ("Not monitor user");
- `require_vhost`: administrator, or a permission record in the path's vhost
  ("User not authorised to access virtual host"); monitoring alone does not do;
- `sees_vhost` / `visible_vhosts`: what a list shows each user.

Every refusal is a 401 `not_authorised`: RabbitMQ's management API never
answers 403 (only a failed login carries `WWW-Authenticate`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from broker.auth.access import AccessControl, LoginRefused, LoopbackOnly
from broker.management.messages import HttpError, Request

__all__ = [
    "ApiUser",
    "MANAGEMENT_TAGS",
    "authenticator",
    "require_admin",
    "require_monitor",
    "require_vhost",
]

MANAGEMENT_TAGS = frozenset({"administrator", "monitoring", "policymaker", "management"})


@dataclass(frozen=True)
class ApiUser:
    """The user of one API request, with its tags."""

    name: str
    tags: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.tags

    @property
    def is_monitor(self) -> bool:
        return self.is_admin or "monitoring" in self.tags

    @property
    def is_policymaker(self) -> bool:
        return self.is_admin or "policymaker" in self.tags


@dataclass(frozen=True)
class _HttpPeer:
    """A request's peer as the access control sees a login's origin."""

    peer_text: str

    @property
    def is_loopback(self) -> bool:
        host = self.peer_text.rsplit(":", 1)[0].strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback


def authenticator(access: AccessControl) -> Callable[[str, str, Request], ApiUser | None]:
    """The HTTP app's `authenticate(username, password, request)` over the broker's users."""

    def authenticate(username: str, password: str, request: Request) -> ApiUser | None:
        peer = _HttpPeer(request.peer)
        try:
            access.authenticate(username, password, peer)
        except LoopbackOnly:
            access.login_failed(peer, "http")
            # RabbitMQ's words over HTTP for a loopback-only user.
            raise HttpError.not_authorised("User can only log in via localhost") from None
        except LoginRefused:
            access.login_failed(peer, "http")
            return None
        access.login_succeeded("http")
        tags = access.user_tags(username)
        if not MANAGEMENT_TAGS.intersection(tags):
            raise HttpError.not_authorised("Not management user")
        return ApiUser(username, tags)

    return authenticate


def user_of(request: Request) -> ApiUser:
    user = request.user
    assert isinstance(user, ApiUser), "a route with auth=True always has a user"
    return user


def require_admin(request: Request) -> ApiUser:
    user = user_of(request)
    if not user.is_admin:
        raise HttpError.not_authorised("Not administrator user")
    return user


def require_monitor(request: Request) -> ApiUser:
    user = user_of(request)
    if not user.is_monitor:
        raise HttpError.not_authorised("Not monitor user")
    return user


def sees_vhost(access: AccessControl, user: ApiUser, vhost: str) -> bool:
    """May `user` act in `vhost` through the API (administrator, or a permission record)?"""
    return user.is_admin or access.may_open(user.name, vhost)


def require_vhost(access: AccessControl, request: Request, vhost: str) -> ApiUser:
    user = user_of(request)
    if not sees_vhost(access, user, vhost):
        raise HttpError.not_authorised("User not authorised to access virtual host")
    return user
