"""memorybank-client: typed sync and async clients for the Memory Bank API.

``AsyncMemoryBank`` and ``MemoryBank`` offer the same resources (``twins``, ``knowledge``,
``artifacts``) and ``regions()``; answers are msgspec Structs (``memorybank_client.types``);
error answers raise the ``ProblemError`` tree (``memorybank_client.errors``)."""

from memorybank_client.aio import AsyncMemoryBank
from memorybank_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    ReplicaBehind,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    UpstreamTimeout,
)
from memorybank_client.pages import iterate, paginate
from memorybank_client.sync import MemoryBank

__all__ = [
    "AsyncMemoryBank",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "MemoryBank",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "ReplicaBehind",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "UpstreamTimeout",
    "iterate",
    "paginate",
]
