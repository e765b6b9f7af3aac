"""One exit for every error: whatever is raised leaves as RFC 9457 ``application/problem+json``
with ``type, title, status, detail, instance, request_id``, and never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from mbhttp.context import request_id_of
from mbwire import headers as h
from mbwire.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE, Problem, Unprocessable

log = logging.getLogger("memorybank.errors")

# Litestar's own errors, as (type slug, title) by status.
_HTTP = {
    400: ("bad-request", "Bad request"), 401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"), 404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"), 409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable content"), 429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def render(request: Request[Any, Any, Any], problem: Problem) -> Response[Any]:
    request_id = request_id_of(request)
    return Response(
        content=problem.body(instance=request.url.path, request_id=request_id),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers={**problem.headers(), **_id_header(request_id)},
    )


def _id_header(request_id: str) -> dict[str, str]:
    """``X-Request-Id`` for problems raised where the request-context middleware does not run
    (no route matched, wrong method), so the header and the body's ``request_id`` agree."""
    return {h.REQUEST_ID: request_id}


def _problem(request: Request[Any, Any, Any], exc: Problem) -> Response[Any]:
    return render(request, exc)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    # Litestar's message names the failing field; keep it, drop the framework's wording around it.
    errors = exc.extra if isinstance(exc.extra, list) else []
    return render(request, Unprocessable(str(exc.detail), errors=errors))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own errors (no route, wrong method, body too large) in the same shape."""
    status = exc.status_code
    slug, title = _HTTP.get(status, ("http-error", "HTTP error"))
    request_id = request_id_of(request)
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": str(exc.detail),
        "instance": request.url.path,
        "request_id": request_id,
    }
    return Response(content=body, status_code=status, media_type=PROBLEM_CONTENT_TYPE,
                    headers={**(exc.headers or {}), **_id_header(request_id)})


UNEXPECTED = "The server hit an unexpected error; it has been logged."


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return render(request, unexpected(request.method, request.url.path))


def unexpected(method: str, path: str) -> Problem:
    """What no handler expected, as it is answered: a bare 500 (no detail of the error). Call it
    while handling the error: the error is logged here, with its traceback."""
    log.exception("unhandled error on %s %s", method, path)
    return Problem(UNEXPECTED)




def exception_handlers() -> ExceptionHandlersMap:
    return {
        Problem: _problem,
        ValidationException: _validation,
        HTTPException: _http,
        Exception: _unexpected,
    }
