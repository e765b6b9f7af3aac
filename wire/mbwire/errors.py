"""The error tree. Leaves name what happened; one handler per service renders any of them as
``application/problem+json`` (RFC 9457). Driver errors are translated where the driver is called."""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://memorybank.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def headers(self) -> dict[str, str]:
        return {}

    def body(self, *, instance: str, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "request_id": request_id,
        }
        body.update(self.extra)
        return body


class BadRequest(Problem):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(Problem):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def headers(self) -> dict[str, str]:
        detail = self.detail.replace('"', "'")
        return {"WWW-Authenticate": f'Bearer realm="memory-bank", error="invalid_token", '
                                    f'error_description="{detail}"'}


class Forbidden(Problem):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(Problem):
    status, title, slug = 404, "Not found", "not-found"


class MethodNotAllowed(Problem):
    status, title, slug = 405, "Method not allowed", "method-not-allowed"

    def __init__(self, detail: str | None = None, *, allow: str = "", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class Conflict(Problem):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(Problem):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(Problem):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class Unprocessable(Problem):
    status, title, slug = 422, "Unprocessable content", "unprocessable"


class _Retryable(Problem):
    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(_Retryable):
    status, title, slug = 429, "Too many requests", "rate-limited"


class Unavailable(_Retryable):
    status, title, slug = 503, "Service unavailable", "unavailable"


class ReplicaBehind(Unavailable):
    title, slug = "Replica behind consistency token", "replica-behind"


class UpstreamUnavailable(Unavailable):
    title, slug = "No upstream could answer", "upstream-unavailable"


class UpstreamTimeout(Problem):
    status, title, slug = 504, "Upstream timed out", "upstream-timeout"


class Unimplemented(Problem):
    """A part of the contract that is not built yet (e.g. realtime WebSockets)."""

    status, title, slug = 501, "Not implemented", "not-implemented"


class VersionConflict(Conflict):
    """A versioned append built on a stale version; the body carries what the caller lacks
    (update_trajectory: ``current_version``, ``steps``, ``more``)."""

    title, slug = "Version conflict", "version-conflict"
