"""What every Memory Bank service agrees on: wire types, the error tree, the hop signature,
the consistency token.

Imports only msgspec and the standard library, because the edge Worker uploads it too.

Error tree (catch at the level you care about)::

    Problem                      any RFC 9457 problem; status + title as class attributes
    ├── BadRequest (400)
    ├── Unauthorized (401)       carries a WWW-Authenticate challenge
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)   carries the Allow header
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── Unprocessable (422)
    ├── RateLimited (429)        carries retry_after
    ├── Unavailable (503)        carries retry_after
    │   ├── ReplicaBehind        the replica has not replayed the caller's token in time
    │   └── UpstreamUnavailable  no hub / central could answer
    ├── UpstreamTimeout (504)
    └── Unimplemented (501)      not built yet (realtime WebSockets)
"""

from mbwire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    RateLimited,
    ReplicaBehind,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from mbwire.hop import HopError, HopSigner
from mbwire.token import ConsistencyToken
from mbwire.types import (
    Principal,
    TwinCreate,
    TwinCreated,
    TwinGrant,
    TwinView,
    TwinWritten,
    Wire,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "ConsistencyToken",
    "Forbidden",
    "HopError",
    "HopSigner",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "Principal",
    "Problem",
    "RateLimited",
    "ReplicaBehind",
    "TwinCreate",
    "TwinCreated",
    "TwinGrant",
    "TwinView",
    "TwinWritten",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "Wire",
]
