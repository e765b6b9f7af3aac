"""The edge's checks on a request before anything is spent on it: which action it invokes (404,
405), whether its path is spelled exactly once (404), whether a signed URL is its proof instead
of a JWT, and the action's header, query and body-size rules (400, 422, 413). Pure functions
over the action table (``mbwire.actions``), used by ``mbedge.pipeline``."""

from __future__ import annotations

from urllib.parse import parse_qs

from mbedge.messages import EdgeRequest
from mbwire import MethodNotAllowed, NotFound, PayloadTooLarge, actions, rules
from mbwire import headers as h


def match_action(method: str, path: str) -> actions.Match:
    """The action a request invokes; 404 for a path no action serves, 405 for a wrong method."""
    found = actions.match(method, path)
    if found is not None:
        return found
    allowed = actions.methods_at(path)
    if allowed:
        raise MethodNotAllowed(f"{path[:100]!r} takes {', '.join(allowed)}, not {method[:10]}",
                               allow=", ".join(allowed))
    raise NotFound(f"no action at {path[:100]!r}; see /openapi.json for the API")


# The last path segment of every signed-URL action: a cheap test before the table is matched.
_SIGNED_TAILS = frozenset(
    a.path.rsplit("/", 1)[1] for a in actions.ACTIONS if a.auth == "signed-url"
)


def signed_url(method: str, path: str) -> bool:
    """Whether the request is for an action whose proof is its signed URL, not a JWT."""
    if path.rsplit("/", 1)[1] not in _SIGNED_TAILS:
        return False
    found = actions.match(method, path)
    return found is not None and found.action.auth == "signed-url"


def exact_path(raw: str) -> None:
    """One spelling per resource: a trailing or doubled slash is a 404 naming the path, not the
    same resource under a second name (which would dodge the cache keys, invalidation scopes
    and rules the edge keys on exact paths, while the hub's router quietly normalised it)."""
    if raw.endswith("/") or "//" in raw:
        meant = "/" + "/".join(p for p in raw.split("/") if p)
        raise NotFound(f"no such path {raw[:100]!r}; did you mean {meant[:100]!r}?")


def check_request(action: actions.Action, req: EdgeRequest, max_body_bytes: int) -> None:
    """The action's header, query and body-size rules (400/422/413); the body limit is the
    action's or the edge's, whichever is smaller."""
    rules.check_headers(req.header(h.CONSISTENCY_TOKEN), req.header(h.IDEMPOTENCY_KEY))
    rules.check_query(action, parse_qs(req.query, keep_blank_values=True))
    limit = min(action.max_body, max_body_bytes)
    if len(req.body) > limit:
        raise PayloadTooLarge(
            f"{action.method} {action.path} takes bodies of at most {limit} bytes",
            limit=limit,
        )
