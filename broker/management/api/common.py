"""What the endpoints share: vhost lookups, the API user's AMQP permissions, errors.

Actions over HTTP go through the same core methods AMQP clients reach
(declare, delete, bind, purge, get), with the AMQP permissions of the API
user, and their refusals answered as RabbitMQ's management plugin answers
them (notes section 1.2):

- a permission refused on configure, bind or purge: 401 not_authorised
  "Access refused.";
- an AMQP precondition (inequivalent arguments, in use, not empty): 400
  bad_request with the reply text without its "PRECONDITION_FAILED - ";
- a missing object: 404 "Object Not Found".
"""

from __future__ import annotations

from typing import Any

from broker.auth.access import UserAccess
from broker.core.vhost import VHost
from broker.management.authz import ApiUser, sees_vhost
from broker.management.context import ManagementContext
from broker.management.messages import ACCESS_REFUSED, HttpError
from protocol.constants import ReplyCode
from protocol.errors import AMQPError

__all__ = [
    "DEFAULT_EXCHANGE_ALIAS",
    "api_access",
    "body_bool",
    "bool_query",
    "exchange_name",
    "http_error",
    "plain_text",
    "vhost_for_write",
    "vhost_or_404",
    "visible_vhosts",
]

#: How a path names the default exchange "" (rabbit_mgmt_util:id/2).
DEFAULT_EXCHANGE_ALIAS = "amq.default"


def exchange_name(segment: str) -> str:
    """The exchange a path segment names: `amq.default` is the default exchange ""."""
    return "" if segment == DEFAULT_EXCHANGE_ALIAS else segment


def vhost_or_404(context: ManagementContext, name: str) -> VHost:
    vhost = context.vhosts.get(name)
    if vhost is None:
        raise HttpError.not_found()
    return vhost


def vhost_for_write(context: ManagementContext, name: str) -> VHost:
    """The vhost a PUT creates something in: 404 `vhost_not_found` when missing."""
    vhost = context.vhosts.get(name)
    if vhost is None:
        raise HttpError(404, "not_found", "vhost_not_found")
    return vhost


def visible_vhosts(context: ManagementContext, user: ApiUser) -> list[VHost]:
    """The vhosts whose queues, exchanges and bindings `user` sees in lists:
    all for an administrator, else those it has permissions in (a monitoring
    user without permissions sees none, as in RabbitMQ)."""
    vhosts = context.vhosts
    return [vhosts[name] for name in vhosts if sees_vhost(context.access, user, name)]


def api_access(context: ManagementContext, user: ApiUser, vhost: VHost) -> UserAccess:
    """The API user's AMQP permissions in `vhost` (as a connection of theirs would have)."""
    return context.access.access(user.name, vhost.name)


def plain_text(error: AMQPError) -> str:
    """The reply text without RabbitMQ's "CODE_NAME - " prefix."""
    text = error.reply_text
    try:
        prefix = ReplyCode(error.reply_code).name + " - "
    except ValueError:
        return text
    return text[len(prefix) :] if text.startswith(prefix) else text


def http_error(error: AMQPError) -> HttpError:
    """An AMQP refusal of an API action, as RabbitMQ's management plugin answers it."""
    code = error.reply_code
    if code == ReplyCode.ACCESS_REFUSED:
        return HttpError.not_authorised(ACCESS_REFUSED)
    if code == ReplyCode.NOT_FOUND:
        return HttpError.not_found()
    return HttpError.bad_request(plain_text(error))


def bool_query(request: Any, name: str) -> bool:
    """A query flag such as `if-empty=true`."""
    return str(request.query.get(name, "")).lower() == "true"


def body_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean field of a JSON body (`durable`, `auto_delete`, `internal`), as
    rabbit_mgmt_util:parse_bool reads it: true and false, and also the strings
    "true" and "false", which rabbitmqadmin sends for every `durable=...` it
    declares. Anything else (`"maybe"`, `1`, `null`, `"False"`) is RabbitMQ's
    400 `["not_boolean", VALUE]`, the value as it came."""
    value = body.get(name, default)
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise HttpError(400, "bad_request", ["not_boolean", value])
