"""Every header the tiers exchange, named once (lower-case: HTTP names are case-insensitive, and
the edge core and ASGI both see them lower-cased).

Public (the contract): what clients send and see. Internal: only between edge, hub and central;
the edge forwards only the headers it names (``mbedge.forward``), never a caller's copy
of these."""

from __future__ import annotations

import re

# Public.
REQUEST_ID = "x-request-id"
# A caller's X-Request-Id that is echoed, logged and forwarded; any other is replaced.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CONSISTENCY_TOKEN = "x-consistency-token"
REPLICA_LAG_MS = "x-replica-lag-ms"
SERVED_BY = "x-served-by"
CACHE = "x-cache"
IDEMPOTENCY_KEY = "idempotency-key"
# On a write's answer: "true" when it is the stored answer of an earlier attempt under the key.
IDEMPOTENT_REPLAYED = "idempotent-replayed"
RETRY_AFTER = "retry-after"
RATELIMIT_LIMIT = "ratelimit-limit"
RATELIMIT_REMAINING = "ratelimit-remaining"
RATELIMIT_RESET = "ratelimit-reset"
TWIN_VERSION = "x-twin-version"
DEBUG_GEO = "x-debug-geo"

# Internal: hub -> edge.
HUB = "x-mb-hub"
FLEET_LIMIT = "x-mb-fleet-limit"
FLEET_REMAINING = "x-mb-fleet-remaining"
FLEET_RESET = "x-mb-fleet-reset"
# Edge -> hub "want=<n>": units this PoP would like for cache hits; hub -> edge
# "units=<k>; hold-ms=<ms>": units spent in the fleet limiter for the caller, which the PoP may
# spend on the caller's cache hits within the hold (mbedge.fleet). Never passed to a client.
FLEET_LEASE = "x-mb-fleet-lease"
# Internal: the signed hop (edge -> hub, hub -> central).
PRINCIPAL = "x-mb-principal"
HOP = "x-mb-hop"
EDGE = "x-mb-edge"

