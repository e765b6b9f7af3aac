"""Litestar routes derived from the action table: one handler per action a service serves, at the
table's method, path and status, with the action in the handler's ``opt`` so shared code (body
decoding, limits) reads its rules from the one entry."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler, route

from mbwire import PayloadTooLarge, UnsupportedMediaType
from mbwire import headers as h
from mbwire.actions import ACTIONS, Action
from mbwire.decode import decode_json
from mbwire.rules import check_caller, check_headers, check_query
from mbwire.types import Principal

Handler = Callable[..., Any]


def litestar_path(path: str) -> str:
    """``/v1/twins/{twin_id}`` -> ``/v1/twins/{twin_id:str}``."""
    return "/".join(
        f"{{{seg[1:-1]}:str}}" if seg.startswith("{") else seg for seg in path.split("/")
    )


def routes_for(
    impls: Mapping[str, Handler], actions: Iterable[Action] = ACTIONS,
    *, serves: Callable[[Action], bool] = lambda _: True,
) -> list[HTTPRouteHandler]:
    """One route per action this service ``serves``; every such action needs an impl (a service
    that silently lacks one would answer 404 where the contract promises an action)."""
    wanted = [a for a in actions if serves(a)]
    missing = sorted(a.name for a in wanted if a.name not in impls)
    if missing:
        raise RuntimeError(f"no handler for actions {', '.join(missing)}")
    return [
        route(
            litestar_path(a.path), http_method=[cast(HttpMethod, a.method)],
            status_code=a.status, name=a.name, opt={"action": a}, include_in_schema=False,
            guards=[_contract],
        )(impls[a.name])
        for a in wanted
    ]


async def _contract(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The action's header and query rules, before its handler runs (the edge checks them too;
    a hub may be called by another hub or a test directly)."""
    action = connection.route_handler.opt["action"]
    principal = connection.scope.get("state", {}).get("principal")
    query = connection.query_params
    check_contract(action, principal if isinstance(principal, Principal) else None,
                   connection.headers.get(h.CONSISTENCY_TOKEN),
                   connection.headers.get(h.IDEMPOTENCY_KEY),
                   {name: query.getall(name) for name in query})


def check_contract(action: Action, principal: Principal | None, token: str | None,
                   key: str | None, query: Mapping[str, Sequence[str]]) -> None:
    """``_contract``'s checks for a request without Litestar (a fast path): the caller's role or
    tier (when the hop carries one), the consistency token and idempotency key headers (400),
    the query parameters (422)."""
    if principal is not None:
        check_caller(action, principal)
    check_headers(token, key)
    check_query(action, query)


def action_of(request: Request[Any, Any, Any]) -> Action:
    action = request.route_handler.opt.get("action")
    assert isinstance(action, Action), "handler not made by routes_for"
    return action


def media_type_of(request: Request[Any, Any, Any]) -> str:
    return media_type(request.headers.get("content-type", ""))


def media_type(content_type: str) -> str:
    """A Content-Type header's media type, without parameters, lower-cased."""
    return content_type.split(";")[0].strip().lower()


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The raw body, after the action's Content-Type (415) and size (413) rules."""
    return check_body(action_of(request), media_type_of(request), await request.body())


def check_body(action: Action, media: str, body: bytes) -> bytes:
    """``body`` if the action takes it: its media type (``media_type``; 415), then its size
    (413). An action that takes no body takes whatever came."""
    if action.request is None:
        return body
    if "*/*" not in action.request_media and media not in action.request_media:
        raise UnsupportedMediaType(
            f"{action.method} {action.path} takes Content-Type "
            f"{' or '.join(action.request_media)}, got {media or 'nothing'}"
        )
    if len(body) > action.max_body:
        raise PayloadTooLarge(
            f"{action.method} {action.path} takes bodies of at most {action.max_body} bytes",
            limit=action.max_body,
        )
    return body


async def decode_body(request: Request[Any, Any, Any]) -> Any:
    """The body decoded into the action's request type (bytes stay bytes)."""
    return decode(action_of(request), await read_body(request))


def decode(action: Action, body: bytes) -> Any:
    """``body`` (already past ``read_body``'s rules) as the action's request type."""
    if action.request is bytes or action.request is None:
        return body
    return decode_json(body, action.request)


def max_body(actions: Iterable[Action] = ACTIONS) -> int:
    """The server-wide body limit: the largest any action takes (each action checks its own)."""
    return max(a.max_body for a in actions)
