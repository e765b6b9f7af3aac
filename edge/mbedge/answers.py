"""What the edge answers with, other than a hub's own response: which of a hub's headers it
passes back and which hub it names, its own documentation pages, a cached answer, a JSON body,
and a problem+json for any ``mbwire.Problem``. Pure: bytes and dicts in, ``EdgeResponse`` out."""

from __future__ import annotations

import re

import msgspec

from mbedge.cache import CachedAnswer
from mbedge.messages import EdgeResponse, HubResponse
from mbwire import Problem, actions, openapi
from mbwire import headers as h
from mbwire.errors import PROBLEM_CONTENT_TYPE

PASSED_BACK = (
    "content-type", h.CONSISTENCY_TOKEN, h.REPLICA_LAG_MS, h.RETRY_AFTER, "location", "etag",
    "www-authenticate", h.IDEMPOTENT_REPLAYED, "cache-control",
    # ... and whatever an action declares it answers (X-Twin-Version, Content-Disposition, ...).
    *sorted({name.lower() for a in actions.ACTIONS for name in a.response_headers}),
)
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")


def passed_back(response: HubResponse) -> dict[str, str]:
    """The hub's headers the caller gets (``PASSED_BACK``); internal ones never leave."""
    return {k: v for k in PASSED_BACK if (v := response.headers.get(k)) is not None}


def no_store(headers: dict[str, str]) -> None:
    """Marks an answer never to be stored by any cache on its way (a pinned cell's)."""
    held = headers.get("cache-control", "")
    if "no-store" not in held.lower():
        headers["cache-control"] = f"{held}, no-store" if held else "no-store"


def hub_of(response: HubResponse, routed_to: str) -> str:
    """Which hub answered: its ``X-MB-Hub``, else the ``hub=`` part of its ``X-Served-By``."""
    named = response.headers.get(h.HUB, "").strip()
    if not named:
        for part in response.headers.get(h.SERVED_BY, "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "hub":
                named = value.strip()
    return named if _REGION.match(named) else routed_to


# The API's documentation, served without auth: the OpenAPI document and a reference page.
DOCS = {
    "/openapi.json": ("application/json", openapi.encoded()),
    "/docs": ("text/html; charset=utf-8", openapi.reference_page("/openapi.json")),
}


def json_answer(status: int, body: object) -> EdgeResponse:
    return EdgeResponse(status, {"content-type": "application/json"}, msgspec.json.encode(body))


def cached_answer(entry: CachedAnswer) -> EdgeResponse:
    """A cache hit, with the consistency token it was stored under."""
    headers = {"content-type": entry.content_type}
    if entry.token:
        headers[h.CONSISTENCY_TOKEN] = entry.token
    return EdgeResponse(200, headers, entry.body)


def problem_answer(problem: Problem, instance: str, rid: str) -> EdgeResponse:
    """Any error of mbwire's tree as problem+json, naming the path and the request id."""
    headers = {k.lower(): v for k, v in problem.headers().items()}
    headers["content-type"] = PROBLEM_CONTENT_TYPE
    body = msgspec.json.encode(problem.body(instance=instance[:200], request_id=rid))
    return EdgeResponse(problem.status, headers, body)
