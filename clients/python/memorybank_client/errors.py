"""Problem+json answers as exceptions, mirroring the server's error tree, so callers catch at
the level they care about::

    ProblemError                 any answer >= 400 (status, type, title, detail, request_id, body)
    ├── BadRequest               400
    ├── Unauthorized             401
    ├── Forbidden                403
    ├── NotFound                 404
    ├── Conflict                 409
    ├── PayloadTooLarge          413
    ├── UnsupportedMediaType     415
    ├── Unprocessable            422
    ├── RateLimited              429 (retry_after)
    ├── Unavailable              503 (retry_after)
    │   └── ReplicaBehind        503 replica-behind
    └── UpstreamTimeout          504

Connection failures that outlast the retries surface as httpx's own ``httpx.TransportError``."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec


class ProblemError(Exception):
    status: int = 0

    def __init__(self, status: int, body: dict[str, Any], *, retry_after: float | None = None,
                 ) -> None:
        self.status = status
        self.body = body
        self.type: str = str(body.get("type", "about:blank"))
        self.title: str = str(body.get("title", ""))
        self.detail: str = str(body.get("detail", self.title))
        self.request_id: str | None = body.get("request_id")
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}")


class BadRequest(ProblemError):
    status = 400


class Unauthorized(ProblemError):
    status = 401


class Forbidden(ProblemError):
    status = 403


class NotFound(ProblemError):
    status = 404


class Conflict(ProblemError):
    status = 409


class PayloadTooLarge(ProblemError):
    status = 413


class UnsupportedMediaType(ProblemError):
    status = 415


class Unprocessable(ProblemError):
    status = 422


class RateLimited(ProblemError):
    status = 429


class Unavailable(ProblemError):
    status = 503


class ReplicaBehind(Unavailable):
    pass


class UpstreamTimeout(ProblemError):
    status = 504


_BY_STATUS: dict[int, type[ProblemError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
                UnsupportedMediaType, Unprocessable, RateLimited, Unavailable, UpstreamTimeout)
}


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the service sends delta-seconds), None when absent or unreadable."""
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def from_response(response: httpx.Response) -> ProblemError:
    """The exception for an error answer; a body that is not problem+json (a proxy's HTML page)
    still maps by status, with a synthesised body."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        body = {"type": "about:blank", "title": response.reason_phrase,
                "status": response.status_code, "detail": response.text[:500]}
    if "request_id" not in body and "x-request-id" in response.headers:
        body["request_id"] = response.headers["x-request-id"]
    cls = _BY_STATUS.get(response.status_code, ProblemError)
    if cls is Unavailable and str(body.get("type", "")).endswith("/replica-behind"):
        cls = ReplicaBehind
    return cls(response.status_code, body, retry_after=retry_after(response))
