"""Runtime parameters, as RabbitMQ 3.10's management plugin serves them
(rabbit_mgmt_wm_parameters.erl, rabbit_mgmt_wm_parameter.erl):

    GET  /api/parameters                       every parameter but policies
    GET  /api/parameters/COMPONENT[/V]         one component's (any vhost / one vhost)
    GET PUT DELETE /api/parameters/COMPONENT/V/NAME

Warren keeps two of RabbitMQ's components, and they are what the lists show
(`rabbitmqadmin list parameters` reads /api/parameters):

- `operator_policy`: the operator policies (/api/operator-policies), one
  parameter each, `value` {pattern, definition, priority, apply-to};
- `vhost-limits`: a vhost's limits (/api/vhost-limits), one parameter named
  `limits` whose `value` is every limit set ({"max-connections": 10}).

`/api/parameters/policy[/V[/NAME]]` shows the policies the same way, as
RabbitMQ does; they may not be set or cleared here ("policies may not be set
using this method", 400). A PUT or DELETE sets or clears an operator policy
or a vhost's limits as the dedicated endpoints do. Any other component
(federation-upstream, shovel...) belongs to a plugin Warren does not have:
its lists are empty, and a PUT is refused as RabbitMQ refuses a component it
does not know: 400 "Validation failed\\n\\ncomponent NAME not found\\n".

Who: as for policies (rabbit_mgmt_util:is_authorized_policies), an
administrator, or a policymaker with access to the vhost; lists show the
vhosts the user may see. Setting or clearing an operator policy or a limit
takes an administrator, as on /api/operator-policies and /api/vhost-limits
(RabbitMQ lets a policymaker do it through this path).
"""

from __future__ import annotations

from typing import Any

from broker.core.policies import OperatorPolicy, PolicyInvalid, validate_policy
from broker.core.vhost import VHost
from broker.management.api.policies import escape_html_tags
from broker.management.authz import require_admin, sees_vhost, user_of
from broker.management.context import ManagementContext
from broker.management.messages import HttpError, Request, Response
from broker.management.query import reply_item, reply_list
from broker.management.router import Router

__all__ = ["add_routes"]

_NOT_AUTHORISED = "User not authorised to access object"
_LIMITS = "vhost-limits"
_OPERATOR = OperatorPolicy.COMPONENT
_POLICY = "policy"
#: rabbit_vhost_limit's names, and the VHostLimits attribute of each.
_LIMIT_NAMES = {"max-connections": "max_connections", "max-queues": "max_queues"}


def _invalid(problems: list[str]) -> HttpError:
    text = "Validation failed\n\n" + "".join(p + "\n" for p in problems)
    return HttpError.bad_request(escape_html_tags(text))


def _items(vhost: VHost, component: str | None) -> list[dict[str, Any]]:
    """The parameters of `vhost`: of `component`, or (None) every one but policies."""
    items: list[dict[str, Any]] = []
    if component in (None, _OPERATOR):
        items += [p.as_parameter() for p in vhost.policies.listing(operator=True)]
    limits = vhost.limits.as_dict()
    if component in (None, _LIMITS) and limits:
        items.append({"value": limits, "vhost": vhost.name, "component": _LIMITS, "name": "limits"})
    if component == _POLICY:
        items += [p.as_parameter() for p in vhost.policies.listing()]
    return items


def add_routes(router: Router, context: ManagementContext) -> None:
    """Register the runtime parameter endpoints on `router`."""
    vhosts = context.vhosts
    access = context.access

    def authorise(request: Request) -> None:
        user = user_of(request)
        name = request.params.get("vhost")
        may_use = name is None or name not in vhosts or sees_vhost(access, user, name)
        if not (user.is_admin or (user.is_policymaker and may_use)):
            raise HttpError.not_authorised(_NOT_AUTHORISED)

    @router.route("/api/parameters")
    @router.route("/api/parameters/{component}")
    @router.route("/api/parameters/{component}/{vhost}")
    def listing(request: Request) -> Response:
        authorise(request)
        user = user_of(request)
        name = request.params.get("vhost")
        if name is not None and name not in vhosts:
            raise HttpError.not_found()
        chosen = [name] if name is not None else list(vhosts)
        items = [
            item
            for n in chosen
            if sees_vhost(access, user, n)
            for item in _items(vhosts[n], request.params.get("component"))
        ]
        return reply_list(request, items, default_sort=())

    def found(request: Request) -> tuple[VHost, dict[str, Any]]:
        authorise(request)
        params = request.params
        vhost = vhosts.get(params["vhost"])
        if vhost is None:
            raise HttpError.not_found()
        for item in _items(vhost, params["component"]):
            if item["name"] == params["name"]:
                return vhost, item
        raise HttpError.not_found()

    @router.route("/api/parameters/{component}/{vhost}/{name}")
    def get_item(request: Request) -> Response:
        return reply_item(request, found(request)[1])

    @router.route("/api/parameters/{component}/{vhost}/{name}", "PUT")
    def put_item(request: Request) -> Response:
        authorise(request)
        params = request.params
        vhost = vhosts.get(params["vhost"])
        if vhost is None:
            raise HttpError(404, "not_found", "vhost_not_found")
        body = request.json_object()
        if "value" not in body:
            raise HttpError.bad_request("[{key_missing,value}]")
        component, name, value = params["component"], params["name"], body["value"]
        if component == _POLICY:
            raise HttpError.bad_request("policies may not be set using this method")
        if component in (_OPERATOR, _LIMITS):
            require_admin(request)
        if component == _OPERATOR:
            return put_operator_policy(vhost, name, value)
        if component == _LIMITS:
            return put_limits(vhost, name, value)
        raise _invalid([f"component {component} not found"])

    def put_operator_policy(vhost: VHost, name: str, value: Any) -> Response:
        if not isinstance(value, dict):
            raise _invalid([f"{name} should be an object"])
        try:
            policy = validate_policy(
                vhost.name,
                name,
                pattern=value.get("pattern", ""),
                definition=value.get("definition", {}),
                priority=value.get("priority", 0),
                apply_to=value.get("apply-to", "all"),
                operator=True,
            )
            problems: list[str] = []
        except PolicyInvalid as invalid:
            problems = list(invalid.problems)
        # rabbit_policy's operator policy validation: these keys are mandatory.
        problems += [
            f'Key "{key}" not found in {name}'
            for key in ("pattern", "priority", "definition")
            if key not in value
        ]
        if problems:
            raise _invalid(problems)
        created = vhost.set_policy(policy)
        return Response(201, [("content-length", "0")]) if created else Response.empty(204)

    def put_limits(vhost: VHost, name: str, value: Any) -> Response:
        if name != "limits":
            # RabbitMQ stores it, and then fails (500) on it; Warren keeps a
            # vhost's limits in the one parameter "limits" only.
            raise _invalid([f"vhost limits are the parameter 'limits', not '{name}'"])
        if not isinstance(value, dict):
            raise _invalid([f"limits should be an object, actually was {value}"])
        unknown = [f'{{<<"{k}">>,{v}}}' for k, v in value.items() if k not in _LIMIT_NAMES]
        if unknown:
            raise _invalid([f"Unrecognised terms [{','.join(unknown)}] in limits"])
        for key, limit in value.items():
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise _invalid([f'{key} should be a number, actually was <<"{limit}">>'])
        for key, attribute in _LIMIT_NAMES.items():
            setattr(vhost.limits, attribute, value.get(key))
        vhost.stored()
        return Response.empty(204)

    @router.route("/api/parameters/{component}/{vhost}/{name}", "DELETE")
    def delete_item(request: Request) -> Response:
        component = request.params["component"]
        if component == _POLICY:
            authorise(request)
            raise HttpError.bad_request("policies may not be cleared using this method")
        vhost, item = found(request)
        require_admin(request)
        if component == _OPERATOR:
            vhost.clear_policy(item["name"], operator=True)
        else:  # vhost-limits: the one parameter "limits"
            for attribute in _LIMIT_NAMES.values():
                setattr(vhost.limits, attribute, None)
            vhost.stored()
        return Response.empty(204)
