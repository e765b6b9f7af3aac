"""Stand-ins for what the Workers runtime hands edge/entry.py, in the runtime's documented shapes.

Python side: the `workers` SDK's wrappers (WorkerEntrypoint, Request, Response, Blob, fetch).
JS side: the bindings and the Cache API, as @cloudflare/workers-types declares them. Pyodide
passes a JS method's keyword arguments as one trailing options object; these stand-ins take both
forms and refuse an option the interface does not declare, so a misspelt `expirationTtl` or
`key` fails here. test_edge_sdk_contract holds every name below to the SDK's source and to the
types (both pinned, fetched by scripts/edge-bundle), so neither side can drift unnoticed."""

from __future__ import annotations

import types
from typing import Any

# interface.method -> the options object's fields (workers-types).
JS_OPTIONS = {
    "RateLimit.limit": {"key", "delta"},
    "KVNamespace.put": {"expiration", "expirationTtl", "metadata"},
}
# workers.types.FetchKwargs: what workers.fetch accepts as keyword arguments.
FETCH_OPTIONS = {"headers", "body", "method", "redirect", "cf", "fetcher"}
# The IncomingRequestCfProperties entry.py reads.
CF_FIELDS = {"colo", "latitude", "longitude"}


def js_options(interface: str, options: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict:
    given = {**(options or {}), **kwargs}
    unknown = set(given) - JS_OPTIONS[interface]
    if unknown:
        raise TypeError(f"{interface}: no option {sorted(unknown)} in its options interface")
    return given


class JsResponse:
    """A JS Response: what Response.js_object and a Cache API hit are."""

    def __init__(self, body: bytes | None, status: int, headers: dict[str, str]) -> None:
        self.body, self.status, self.headers = body, status, headers

    async def arrayBuffer(self) -> Any:
        return types.SimpleNamespace(to_bytes=lambda: self.body or b"")


class Response:
    """workers.Response(body=None, status=None, status_text="", headers=None, web_socket=None)."""

    def __init__(self, body: Any = None, status: int | None = None, status_text: str = "",
                 headers: dict[str, str] | None = None) -> None:
        if body is not None and not isinstance(body, str | bytes):
            raise TypeError(f"Unsupported type in Response: {type(body).__name__}")
        self.body = body.encode() if isinstance(body, str) else body
        self.status, self.headers = status or 200, dict(headers or {})

    @property
    def js_object(self) -> JsResponse:
        return JsResponse(self.body, self.status, self.headers)

    async def bytes(self) -> bytes:
        return self.body or b""


class Blob:
    """workers.Blob(blob_parts, content_type=None, endings=None)."""

    def __init__(self, blob_parts: Any, content_type: str | None = None,
                 endings: str | None = None) -> None:
        self.parts = blob_parts

    @property
    def js_object(self) -> Any:
        return self.parts


class Request:
    """workers.Request as the runtime hands it to fetch(): js_object, headers, bytes()."""

    def __init__(self, url: str, method: str, headers: dict[str, str], body: bytes,
                 cf: dict[str, str] | None) -> None:
        cf_object = types.SimpleNamespace(**cf) if cf else None
        self._js = types.SimpleNamespace(url=url, method=method, cf=cf_object)
        self._headers, self._body = headers, body

    @property
    def js_object(self) -> Any:
        return self._js

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def bytes(self) -> bytes:
        return self._body


class WorkerEntrypoint:
    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx, self.env = ctx, env


class RateLimit:
    """interface RateLimit { limit(options: RateLimitOptions): Promise<RateLimitOutcome> }"""

    def __init__(self, allow: int) -> None:
        self.allow, self.calls = allow, 0
        self.keys: list[str] = []

    async def limit(self, options: dict[str, Any] | None = None, /, **kwargs: Any) -> Any:
        given = js_options("RateLimit.limit", options, kwargs)
        if not isinstance(given.get("key"), str):
            raise TypeError("RateLimitOptions.key (a string) is required")
        self.calls += 1
        self.keys.append(given["key"])
        return types.SimpleNamespace(success=self.calls <= self.allow)


class KVNamespace:
    """interface KVNamespace { get(key): Promise<string | null>; put(key, value, options?) }"""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.options: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def put(self, key: str, value: str, options: dict[str, Any] | None = None, /,
                  **kwargs: Any) -> None:
        self.options[key] = js_options("KVNamespace.put", options, kwargs)
        self.data[key] = value


class Cache:
    """abstract class Cache { match(request, options?); put(request, response) }"""

    def __init__(self) -> None:
        self.entries: dict[str, JsResponse] = {}

    async def match(self, request: str, options: Any = None) -> JsResponse | None:
        return self.entries.get(request)

    async def put(self, request: str, response: JsResponse) -> None:
        if not isinstance(response, JsResponse):
            raise TypeError("Cache.put takes a JS Response (workers.Response(...).js_object)")
        self.entries[request] = response


class ExecutionContext:
    def __init__(self) -> None:
        self.pending: list[Any] = []

    def waitUntil(self, promise: Any) -> None:
        self.pending.append(promise)
