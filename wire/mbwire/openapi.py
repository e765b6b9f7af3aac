"""The OpenAPI 3.1 document of the public API, generated from the action table.

Schemas come from the wire types themselves (``msgspec.json.schema_components``), so the document
is what the services decode and encode. Every action lists every status it can answer, errors
with the problem+json schema, and the bearer scheme. The edge serves it at ``/openapi.json``, each
hub at ``/schema/openapi.json``; both render it at their docs page."""

from __future__ import annotations

import html
from typing import Any

import msgspec

from mbwire import headers as h
from mbwire import types as t
from mbwire.actions import ACTIONS, JSON, OCTETS, Action
from mbwire.errors import PROBLEM_CONTENT_TYPE
from mbwire.rules import IDEMPOTENCY_KEY_PATTERN
from mbwire.token import TOKEN_PATTERN

REF = "#/components/schemas/{name}"
VERSION = "1.0.0"

_ERROR_TEXT = {
    400: "Malformed request: bad JSON, a bad header or consistency token.",
    401: "Missing, malformed, expired or forged bearer token.",
    403: "Authenticated, but not allowed.",
    404: "No such resource.",
    409: "Conflict with the current state.",
    413: "Body over the action's limit; or, for a twin write, the twin's stored state would "
         "pass its cap (`reason: twin-too-large`, `limit_bytes`: 256 KiB by default).",
    415: "Wrong Content-Type.",
    422: "Body or parameter of the wrong shape; `detail` names the failing path.",
    429: "Over the tier's rate limit; see `Retry-After`.",
    503: "No hub or replica could answer in time (e.g. `replica-behind`); see `Retry-After`.",
}

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {"description": "The request's id (echoed when the caller sent a sane one).",
                     "schema": {"type": "string"}},
    "X-Served-By": {"description": "`edge=<pop>; hub=<region>`.", "schema": {"type": "string"}},
    "RateLimit-Limit": {"schema": {"type": "integer"}},
    "RateLimit-Remaining": {"schema": {"type": "integer"}},
    "RateLimit-Reset": {"schema": {"type": "integer"}},
}
_TOKEN_HEADER = {
    "description": "The point in history the answer reflects (reads) or the write's commit "
                   "position (writes): one position per cell, up to 16 comma-separated parts "
                   "`[<cell>.]L<16 hex digits>` (the home cell's without a prefix, so tokens "
                   "from before cells are valid). Parts of one cell order as strings; keep "
                   "the greatest per cell (the SDK and the edge's session floor do).",
    "schema": {"type": "string", "pattern": TOKEN_PATTERN},
}
_TOKEN_PARAM = {
    "name": "X-Consistency-Token", "in": "header", "required": False,
    "description": "Answer only at or after this point (any region) in the cell(s) answering, "
                   "else 503 + Retry-After. Format: see the response header.",
    "schema": {"type": "string", "pattern": TOKEN_PATTERN},
}
_IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Makes the write safe to retry through any hub: a retry with the same key "
                   "and request answers the first attempt's stored status and body "
                   "(`Idempotent-Replayed: true`) and writes nothing; the same key with another "
                   "request is a 409 `idempotency-key-reused`. Kept per caller for 24 h.",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
}

_REPLAYED_HEADER = {
    "description": "`true` when this is the stored answer of an earlier attempt under the same "
                   "Idempotency-Key (nothing was written again).",
    "schema": {"type": "string", "enum": ["true"]},
}


def _ref(tp: Any) -> dict[str, Any]:
    return {"$ref": REF.format(name=tp.__name__)} if isinstance(tp, type) else {}


def _schema_of(tp: Any, inline: dict[str, Any]) -> dict[str, Any]:
    if tp is bytes:
        return {"type": "string", "contentMediaType": OCTETS}
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _ref(tp)
    return inline[repr(tp)]


def _operation(action: Action, inline: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "pattern": t.TWIN_ID_PATTERN}
         if name == "twin_id" else {"type": "string", "maxLength": 256, "pattern": t.SUB_PATTERN}}
        for name in action.path_params
    ]
    params += [{"name": p.name, "in": "query", "required": p.required,
                "description": p.description, "schema": p.schema} for p in action.query]
    params.append(_TOKEN_PARAM)
    if action.writes and "header" in action.idempotency:
        params.append(_IDEMPOTENCY_PARAM)
    ok_headers = dict(_HEADERS)
    ok_headers["X-Consistency-Token"] = _TOKEN_HEADER
    if not action.writes:
        ok_headers["X-Cache"] = {"schema": {"type": "string", "enum": ["HIT", "MISS"]}}
        ok_headers["X-Replica-Lag-Ms"] = {"schema": {"type": "string"}}
    if action.writes and "header" in action.idempotency:
        ok_headers["Idempotent-Replayed"] = _REPLAYED_HEADER
    for name in action.response_headers:
        ok_headers[name] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {
        str(action.status): {
            "description": action.summary,
            "headers": ok_headers,
            "content": {action.response_media: _media(action.response, action.example_response,
                                                       inline)},
        }
    }
    for status in action.statuses:
        headers = dict(_HEADERS)
        if status in (429, 503):
            headers["Retry-After"] = {"schema": {"type": "integer"}}
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error."),
            "headers": headers,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref(t.ProblemDetails)}},
        }
    for status, members in action.problem_members:  # problem bodies with extra members
        schema: dict[str, Any] = {"allOf": [_ref(t.ProblemDetails), _ref(members)]}
        if status == 409 and action.writes and "header" in action.idempotency:
            # A keyed write's 409 may also be `idempotency-key-reused`, a plain problem.
            schema = {"anyOf": [schema, _ref(t.ProblemDetails)]}
        responses[str(status)]["content"][PROBLEM_CONTENT_TYPE]["schema"] = schema
    op: dict[str, Any] = {
        "operationId": action.name,
        "summary": action.summary,
        "description": action.description,
        "tags": list(action.tags),
        "parameters": params,
        "responses": responses,
        "security": [{"bearer": []}],
    }
    if action.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {media: _media(action.request, action.example_request, inline)
                        for media in action.request_media},
        }
    return op


def _media(tp: Any, example: Any, inline: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _schema_of(tp, inline)}
    if example is not None:
        media["example"] = example
    return media


def document(server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a fresh dict each call)."""
    structs = sorted(
        {tp for a in ACTIONS for tp in (a.request, a.response)
         if isinstance(tp, type) and issubclass(tp, msgspec.Struct)} | {t.ProblemDetails}
        | {tp for a in ACTIONS for _, tp in a.problem_members},
        key=lambda tp: tp.__name__,
    )
    others = [tp for a in ACTIONS for tp in (a.request, a.response)
              if tp is not None and tp is not bytes and tp not in structs]
    generated, components = msgspec.json.schema_components(
        [*structs, *others], ref_template=REF
    )
    inline = {repr(tp): generated[len(structs) + i] for i, tp in enumerate(others)}
    paths: dict[str, dict[str, Any]] = {}
    for action in ACTIONS:
        paths.setdefault(action.path, {})[action.method.lower()] = _operation(action, inline)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Memory Bank",
            "version": VERSION,
            "description": "Edge-first, multi-region memory for AI agents and digital twins. "
                           "Errors are RFC 9457 `application/problem+json`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }
    # Realtime is a WebSocket, which OpenAPI cannot express as an operation (and the fuzzer must
    # not call as HTTP): described in an extension instead (regional/realtime/frames.py).
    doc["x-realtime"] = REALTIME
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


REALTIME: dict[str, Any] = {
    "operationId": "subscribe_realtime",
    "path": "/v1/realtime",
    "protocol": "WebSocket (RFC 6455), JSON text frames",
    "auth": "Authorization: Bearer <JWT> at the upgrade, or (browsers) the subprotocols "
            "'bearer, <JWT>' (the edge echoes 'bearer')",
    "client_ops": [
        '{"op": "subscribe", "channels": ["twin:<id>", "community", "global"], "since"?: seq, '
        '"yjs"?: bool, "state_vectors"?: {"twin:<id>": base64}, "consistency_token"?: token}',
        '{"op": "unsubscribe", "channels": [...]}',
        '{"op": "auth", "token": "<JWT>"} (a fresh token for the same caller, before expires_at)',
    ],
    "server_frames": [
        '{"channel", "event", "data", "consistency_token", "seq"}',
        '{"op": "subscribed", "channels", "seq", "consistency_token", "hub", "expires_at"}',
        '{"op": "authed", "expires_at"}',
        '{"op": "error", "channel", "status", "detail", "retry_after"?}',
        '{"op": "gap", "since", "oldest", "detail"}',
        '{"op": "ping", "at"}',
    ],
    "metering": "each subscribe costs one unit of the caller's rate limit (over it: an error "
                "frame with status 429 and retry_after; the socket stays open); a subscribe "
                "replays at most 1000 rows (more: a gap frame)",
    "close_codes": {"1001": "hub stopping: reconnect with since",
                    "1012": "hub lost: reconnect with since",
                    "4008": "slow consumer: reconnect with since",
                    "4401": "not authenticated, or token-expired (exp + leeway passed): "
                            "reconnect with a fresh token and since",
                    "4403": "token-mismatch: an auth op for another caller",
                    "4429": "over the caller's connection limit across all regions"},
    "refusals": [401, 404, 429, 503],
}


def encoded(server_url: str | None = None) -> bytes:
    return msgspec.json.encode(document(server_url))


def reference_page(doc_url: str) -> bytes:
    """A docs page that needs no script and no network: every action, its statuses and its body
    types, rendered on the server. Links to the JSON document for tools."""
    rows = []
    for a in ACTIONS:
        req = getattr(a.request, "__name__", "") if a.request is not None else ""
        res = getattr(a.response, "__name__", "")
        rows.append(
            f"<tr><td><code>{a.method}</code></td><td><code>{html.escape(a.path)}</code></td>"
            f"<td><b>{html.escape(a.summary)}</b><br>{html.escape(a.description)}</td>"
            f"<td>{html.escape(req)}</td><td>{a.status} {html.escape(res)}</td>"
            f"<td>{', '.join(str(s) for s in a.statuses)}</td></tr>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Memory Bank API</title>"
        "<style>body{font:14px system-ui;margin:2em}td{vertical-align:top;padding:4px 8px;"
        "border-bottom:1px solid #ddd}</style></head><body><h1>Memory Bank API v1</h1>"
        f"<p>Machine-readable: <a href='{html.escape(doc_url)}'>{html.escape(doc_url)}</a>. "
        "Auth: <code>Authorization: Bearer &lt;JWT&gt;</code>. Errors: RFC 9457 "
        f"<code>{PROBLEM_CONTENT_TYPE}</code>. Reads and writes carry "
        f"<code>{h.CONSISTENCY_TOKEN}</code>.</p><table><tr><th>method</th><th>path</th>"
        "<th>what</th><th>request</th><th>answer</th><th>errors</th></tr>"
        + "".join(rows) + "</table></body></html>"
    )
    return page.encode()


__all__ = ["JSON", "document", "encoded", "reference_page"]
