"""The API's documentation as a service serves it: the OpenAPI document generated from the action
table and a reference page rendered on the server (no script, no CDN: it works offline)."""

from __future__ import annotations

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from mbwire import openapi


def docs_routes(prefix: str = "/schema") -> list[HTTPRouteHandler]:
    document = openapi.encoded()
    page = openapi.reference_page(f"{prefix}/openapi.json")

    @get(f"{prefix}/openapi.json", sync_to_thread=False, include_in_schema=False)
    def openapi_json() -> Response[bytes]:
        return Response(document, media_type="application/json")

    @get(prefix, sync_to_thread=False, include_in_schema=False)
    def reference() -> Response[bytes]:
        return Response(page, media_type="text/html; charset=utf-8")

    return [openapi_json, reference]
