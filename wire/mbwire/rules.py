"""The per-request rules an action's table entry implies, shared by the edge and the services:
its cost against the rate limit, its idempotency key, its header, query and caller checks.

Imports only msgspec and the standard library: the Worker uploads it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from mbwire import types as t
from mbwire.actions import Action, match
from mbwire.errors import BadRequest, Forbidden, Unprocessable
from mbwire.token import ConsistencyToken


class _Items(msgspec.Struct):
    items: list[msgspec.Raw] = []


def cost_of(action: Action, body: bytes) -> int:
    """Rate-limit units for one call: 1, or one per item of a batch (at least 1, at most the
    action's ``max_items``: a longer batch is refused anyway and should not drain the minute)."""
    if action.cost_items is None:
        return 1
    try:
        raw = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
        n = len(msgspec.json.decode(raw.get(action.cost_items, b"[]"), type=list[msgspec.Raw]))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nested too deep
        return 1
    return min(max(n, 1), action.max_items)


def request_cost(method: str, path: str, body: bytes) -> int:
    """``cost_of`` for a request by method and (decoded) path; 1 when no action matches (the
    router answers it anyway)."""
    found = match(method, path)
    return cost_of(found.action, body) if found is not None else 1


def idempotency_key(action: Action, header: str | None, body: bytes) -> str | None:
    """The key that makes retrying this write safe, or None (then it is never retried blind)."""
    if not action.writes:
        return None
    if "header" in action.idempotency and header:
        return header
    field = action.idempotency_field
    try:
        if "body" in action.idempotency:
            found = msgspec.json.decode(body, type=dict[str, Any]).get(field)
            return found if isinstance(found, str) and found else None
        if "items" in action.idempotency and action.cost_items:
            items = msgspec.json.decode(body, type=dict[str, Any]).get(action.cost_items)
            if not isinstance(items, list) or not items:
                return None
            keys = [i.get(field) if isinstance(i, dict) else None for i in items]
            if all(isinstance(k, str) and k for k in keys):
                return ",".join(str(k) for k in keys)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return None


IDEMPOTENCY_KEY_PATTERN = t.IDEMPOTENCY_KEY_PATTERN  # the body field's rule, for the header too
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def check_headers(token: str | None, key: str | None) -> None:
    """The contract's request headers, whatever the action: a consistency token this service
    could have issued, an idempotency key of 1-128 visible ASCII characters (400 otherwise)."""
    if token is not None:
        ConsistencyToken.parse(token)
    if key is not None and not _KEY.match(key):
        raise BadRequest("Idempotency-Key must be 1 to 128 visible ASCII characters")


def check_query(action: Action, query: Mapping[str, Sequence[str]]) -> None:
    """The action's query parameters against their schemas (length, pattern): 422 naming the
    parameter. Parameters the action does not take are ignored, as HTTP caches and proxies
    may add their own."""
    check_params(action, query)


def check_params(action: Action, values: Mapping[str, Sequence[str]],
                 where: str = "$.query") -> None:
    """The one check of an action's query parameters, whether they came in a request's query
    string or as a batch item's ``params`` (``where``: ``$.params``), so an item is refused
    exactly as the single request would be, with the same detail."""
    for param in action.query:
        given = values.get(param.name, ())
        at = [{"path": f"{where}.{param.name}"}]
        if len(given) > 1:
            raise Unprocessable(f"query parameter {param.name} is given {len(given)} times",
                                errors=at)
        if not given:
            if param.required:
                raise Unprocessable(f"query parameter {param.name} is required", errors=at)
            continue
        value, limit = given[0], param.schema.get("maxLength")
        if limit is not None and len(value) > limit:
            raise Unprocessable(f"query parameter {param.name} is longer than {limit}",
                                errors=at)
        pattern = param.schema.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            raise Unprocessable(f"query parameter {param.name} must match {pattern}",
                                errors=at)


def check_caller(action: Action, principal: t.Principal) -> None:
    """The roles or tiers the action needs (403); what the caller may do to a particular
    resource is the access policy's (``mbwire.access``), checked by the handlers."""
    if action.caller == "superuser" and not principal.is_superuser:
        raise Forbidden(f"{action.method} {action.path} needs the internal tier or the admin role")
