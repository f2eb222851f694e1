"""The management API's policies and operator policies, as RabbitMQ 3.10 serves them.

    GET  /api/policies[/V]                      vhost access; the list is filtered
    GET PUT DELETE /api/policies/V/NAME         administrator, or policymaker with
                                                access to V (rabbit_mgmt_wm_policy)
    GET  /api/operator-policies[/V]             vhost access; filtered
    GET PUT DELETE /api/operator-policies/V/NAME  administrator

Read off the reference node (and rabbit_mgmt_wm_policy{,ies}.erl,
rabbit_mgmt_wm_operator_policy{,ies}.erl):

- An item is `{"vhost", "name", "pattern", "apply-to", "definition",
  "priority"}`; lists are sorted by priority (lowest first).
- PUT takes `{"pattern", "definition", "priority"?, "apply-to"?}`: without
  `pattern` or `definition` it is 400 `[{key_missing,pattern}]`; priority
  defaults to 0 and apply-to to "all". 201 when new, 204 when it replaced
  one; 404 `vhost_not_found` for a vhost that does not exist.
- A refused policy is 400 with RabbitMQ's text, "Validation failed\\n\\n...\\n"
  (broker.core.policies), HTML-escaped for policies (rabbit_mgmt_format:
  escape_html_tags) and not for operator policies, as RabbitMQ answers them.
- DELETE answers 204, or 404 when there is no such policy.
- Every refusal is a 401: "User not authorised to access object" for the
  items, "User not authorised to access virtual host" for a vhost's list,
  "Not administrator user" for an operator policy.

A policy set here applies at once to every queue and exchange of the vhost
(VHost.set_policy), and is stored with the vhost's durable definitions.
"""

from __future__ import annotations

from typing import Any

from broker.core.policies import Policy, PolicyInvalid, validate_policy
from broker.core.vhost import VHost
from broker.management.authz import ApiUser, require_admin, sees_vhost, user_of
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.query import reply_item, reply_list
from broker.management.router import Router

__all__ = ["add_routes", "escape_html_tags"]

_NOT_AUTHORISED = "User not authorised to access object"


def escape_html_tags(text: str) -> str:
    """RabbitMQ's rabbit_mgmt_format:escape_html_tags: <, > and & only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _missing_keys(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in body]
    if missing:
        raise HttpError.bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the policy endpoints on `router`."""
    vhosts = context.vhosts
    access = context.access

    def may_use_vhost(user: ApiUser, name: str) -> bool:
        # rabbit_mgmt_util:user_matches_vhost: a vhost that does not exist
        # passes here, and the handler answers 404 for it.
        return name not in vhosts or sees_vhost(access, user, name)

    def visible(user: ApiUser) -> list[VHost]:
        # filter_vhost: an administrator sees every vhost's, others those they may open.
        return [vhosts[name] for name in vhosts if sees_vhost(access, user, name)]

    def listing(request: Request, operator: bool) -> Response:
        user = user_of(request)
        name = request.params.get("vhost")
        if name is not None:
            if not may_use_vhost(user, name):
                raise HttpError.not_authorised("User not authorised to access virtual host")
            if name not in vhosts:
                raise HttpError.not_found()
            chosen = [vhosts[name]] if sees_vhost(access, user, name) else []
        else:
            chosen = visible(user)
        items = [
            policy.as_json()
            for vhost in chosen
            for policy in vhost.policies.listing(operator=operator)
        ]
        return reply_list(request, items, default_sort=("priority",))

    def authorise_item(request: Request, operator: bool) -> VHost | None:
        """The path's vhost (None if it does not exist), once the user may act on it."""
        if operator:
            require_admin(request)
        else:
            user = user_of(request)
            name = request.params["vhost"]
            if not (user.is_admin or (user.is_policymaker and may_use_vhost(user, name))):
                raise HttpError.not_authorised(_NOT_AUTHORISED)
        return vhosts.get(request.params["vhost"])

    def found(request: Request, operator: bool) -> tuple[VHost, Policy]:
        vhost = authorise_item(request, operator)
        if vhost is None:
            raise HttpError.not_found()
        policy = vhost.policies.get(request.params["name"], operator=operator)
        if policy is None:
            raise HttpError.not_found()
        return vhost, policy

    def get_item(request: Request, operator: bool) -> Response:
        _vhost, policy = found(request, operator)
        return reply_item(request, policy.as_json())

    def put_item(request: Request, operator: bool) -> Response:
        vhost = authorise_item(request, operator)
        if vhost is None:
            raise HttpError(404, "not_found", "vhost_not_found")
        body = request.json_object()
        _missing_keys(body, ("pattern", "definition"))
        try:
            policy = validate_policy(
                vhost.name,
                request.params["name"],
                pattern=body["pattern"],
                definition=body["definition"],
                priority=body.get("priority", 0),
                apply_to=body.get("apply-to", "all"),
                operator=operator,
            )
        except PolicyInvalid as invalid:
            text = str(invalid)
            raise HttpError.bad_request(text if operator else escape_html_tags(text)) from None
        if vhost.set_policy(policy):
            return Response(201, [("content-length", "0")])
        return Response.empty(204)

    def delete_item(request: Request, operator: bool) -> Response:
        vhost, policy = found(request, operator)
        vhost.clear_policy(policy.name, operator=operator)
        return Response.empty(204)

    for path, operator in (("/api/policies", False), ("/api/operator-policies", True)):

        def bind(handler: Any, op: bool = operator) -> Any:
            return lambda request: handler(request, op)

        router.add(path, bind(listing))
        router.add(path + "/{vhost}", bind(listing))
        router.add(path + "/{vhost}/{name}", bind(get_item))
        router.add(path + "/{vhost}/{name}", bind(put_item), methods=["PUT"])
        router.add(path + "/{vhost}/{name}", bind(delete_item), methods=["DELETE"])
