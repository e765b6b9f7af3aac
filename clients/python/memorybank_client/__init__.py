"""memorybank-client: typed sync and async clients for the Memory Bank API.

``AsyncMemoryBank`` and ``MemoryBank`` offer the same resources (``twins``, ``knowledge``,
``artifacts``, ``wallets``, ``agents``) and ``regions()``, ``batch()``: one method per action of
the service's action table, generated from it (``memorybank_client._generated``); answers are
the service's own wire types (``memorybank_client.types``, from ``mbwire``); error answers
raise the ``ProblemError`` tree (``memorybank_client.errors``, built from mbwire's error tree:
every public error class there is exported here under its name). ``BUILDERS`` holds each action's
builder by the table's name: ``mb.send(BUILDERS["get_twin_profile"]("ada"))``."""

from memorybank_client import errors as _errors
from memorybank_client._calls import Call, Options
from memorybank_client._generated import BUILDERS
from memorybank_client.aio import AsyncMemoryBank

# The error names the type checker knows (each a ProblemError to it); at run time every class of
# the tree is exported, see the end of this file.
from memorybank_client.errors import BadRequest as BadRequest
from memorybank_client.errors import Conflict as Conflict
from memorybank_client.errors import Forbidden as Forbidden
from memorybank_client.errors import NotFound as NotFound
from memorybank_client.errors import PayloadTooLarge as PayloadTooLarge
from memorybank_client.errors import ProblemError as ProblemError
from memorybank_client.errors import RateLimited as RateLimited
from memorybank_client.errors import ReplicaBehind as ReplicaBehind
from memorybank_client.errors import Unauthorized as Unauthorized
from memorybank_client.errors import Unavailable as Unavailable
from memorybank_client.errors import Unprocessable as Unprocessable
from memorybank_client.errors import UnsupportedMediaType as UnsupportedMediaType
from memorybank_client.errors import UpstreamTimeout as UpstreamTimeout
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

# A class mbwire adds to its error tree is exported too, with no edit here (the names above are
# the ones the type checker sees).
_added = {cls.__name__: cls for cls in _errors.COUNTERPARTS.values() if cls.__name__ not in __all__}
globals().update(_added)
__all__ += sorted(_added)
