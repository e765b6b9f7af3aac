"""memorybank-client: typed sync and async clients for the Memory Bank API.

``AsyncMemoryBank`` and ``MemoryBank`` offer the same resources (``twins``, ``knowledge``,
``artifacts``, ``wallets``, ``agents``) and ``regions()``, ``batch()``: one method per action of
the service's action table, generated from it (``memorybank_client._generated``); answers are
the service's own wire types (``memorybank_client.types``, from ``mbwire``); error answers
raise the ``ProblemError`` tree (``memorybank_client.errors``). ``BUILDERS`` holds each action's
builder by the table's name: ``mb.send(BUILDERS["get_twin_profile"]("ada"))``."""

from memorybank_client._calls import Call, Options
from memorybank_client._generated import BUILDERS
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
    "BUILDERS",
    "AsyncMemoryBank",
    "BadRequest",
    "Call",
    "Conflict",
    "Forbidden",
    "MemoryBank",
    "NotFound",
    "Options",
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
