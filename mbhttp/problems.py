"""One exit for every error: whatever is raised leaves as RFC 9457 ``application/problem+json``
with ``type, title, status, detail, instance, request_id``, and never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from mbhttp.context import request_id_of
from mbwire.errors import PROBLEM_CONTENT_TYPE, BadRequest, Problem

log = logging.getLogger("memorybank.errors")

_HTTP_SLUGS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
    415: "unsupported-media-type", 422: "unprocessable", 429: "rate-limited",
    503: "unavailable",
}


def render(request: Request[Any, Any, Any], problem: Problem) -> Response[Any]:
    return Response(
        content=problem.body(instance=request.url.path, request_id=request_id_of(request)),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers(),
    )


def _problem(request: Request[Any, Any, Any], exc: Problem) -> Response[Any]:
    return render(request, exc)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    # Litestar's message names the failing field; keep it, drop the framework's wording around it.
    errors = exc.extra if isinstance(exc.extra, list) else []
    return render(request, BadRequest(str(exc.detail), errors=errors))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    problem = Problem(str(exc.detail))
    problem.status = exc.status_code  # type: ignore[misc]
    problem.slug = _HTTP_SLUGS.get(exc.status_code, "http-error")  # type: ignore[misc]
    problem.title = _HTTP_TITLES.get(exc.status_code, "HTTP error")  # type: ignore[misc]
    response = render(request, problem)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return render(request, Problem("The server hit an unexpected error; it has been logged."))


_HTTP_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
    415: "Unsupported media type", 422: "Unprocessable content", 429: "Too many requests",
    503: "Service unavailable",
}


def exception_handlers() -> ExceptionHandlersMap:
    return {
        Problem: _problem,
        ValidationException: _validation,
        HTTPException: _http,
        Exception: _unexpected,
    }
