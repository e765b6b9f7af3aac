"""The Litestar pieces that central and the hubs share: the one problem+json exit for every
error, request ids and W3C trace context, log lines that escape what clients sent, and the
guard that admits only signed hops."""

from mbhttp.context import REQUEST_ID_HEADER, RequestContextMiddleware, request_id_of
from mbhttp.guard import principal_of, require_principal
from mbhttp.logs import setup_logging
from mbhttp.problems import exception_handlers
from mbhttp.tracing import setup_tracing

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "exception_handlers",
    "principal_of",
    "request_id_of",
    "require_principal",
    "setup_logging",
    "setup_tracing",
]
