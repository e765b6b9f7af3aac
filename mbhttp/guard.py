"""Only signed hops get in: a hub admits what the edge signed, central what a hub signed.
The verified principal is kept in ``scope["state"]["principal"]``.

The signature covers the path as it came on the wire (``raw_path``: Litestar's router rewrites
``scope["path"]`` without its trailing slash before guards run), the raw query string and the
body. The guard reads the body to check its digest; Litestar 2 keeps what ``Request.body()``
read in the scope's state, so the handler's own ``await request.body()`` gets the same bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from mbhttp.context import request_id_of
from mbwire import HopError, HopSigner, Principal, Unauthorized

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]
# Runs after the hop is verified, with the principal (e.g. the fleet-wide rate limit).
Admission = Callable[[Principal, dict[str, Any], Any], Awaitable[None]]


def hop_guard(
    signer: HopSigner,
    open_paths: frozenset[str] = frozenset({"/healthz"}),
    admit: Admission | None = None,
) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        path = connection.scope["path"]
        if path in open_paths or path.startswith("/schema"):
            return
        headers = connection.scope.get("state", {}).get("raw_headers") or {
            k.decode("latin-1"): v.decode("latin-1") for k, v in connection.scope["headers"]
        }
        request_id = str(connection.scope.get("state", {}).get("request_id") or "")
        body = await Request[Any, Any, Any](connection.scope, connection.receive).body()
        try:
            principal = verify_hop(signer, connection.scope, headers, request_id, body)
        except HopError as exc:
            raise Unauthorized(f"{exc}; call this service through the edge") from None
        state = connection.scope.setdefault("state", {})
        state["principal"] = principal
        state["body"] = body  # admission prices a batch by its items
        if admit is not None and principal is not None:
            await admit(principal, state, connection.scope)

    return guard


def verify_hop(signer: HopSigner, scope: Any, headers: Mapping[str, str], request_id: str,
               body: bytes) -> Principal | None:
    """The hop check of an ASGI request whose body has been read (the guard's, and a fast
    path's): the signature over the method, the path as it came on the wire, the raw query, the
    request id and the body; its freshness; its nonce, spent here (``HopSigner.verify``). The
    principal it carries (None: an anonymous hop); ``HopError`` if it does not verify."""
    raw_path = scope.get("raw_path")
    wire_path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    return signer.verify(
        str(scope.get("method", "GET")), wire_path, headers, request_id,
        query=scope.get("query_string", b"").decode("latin-1"), body=body,
    )


def principal_of(request: Request[Any, Any, Any]) -> Principal | None:
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else None


def require_principal(request: Request[Any, Any, Any]) -> Principal:
    return required(principal_of(request))


def required(principal: Principal | None) -> Principal:
    """The caller a handler needs: an anonymous hop (a probe's) is a 401."""
    if principal is None:
        raise Unauthorized("this call needs an authenticated caller")
    return principal


__all__ = ["hop_guard", "principal_of", "request_id_of", "require_principal", "required",
           "verify_hop"]
