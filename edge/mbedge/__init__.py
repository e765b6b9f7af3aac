"""The edge's pure core: auth, PoP rate limit, cache-first reads, routing to the nearest healthy
hub with failover, forwarding with a signed hop. No runtime imports: the Worker
(``edge/entry.py``) and the local server (``edge/mbasgi/app.py``) supply the ports.

    edge = Edge(EdgeSettings.from_env(env), Ports(fetch=..., limiter=..., cache=..., health=...,
                                                   background=...))
    response = await edge.handle(EdgeRequest(method, path, headers, query, body))
"""

from mbedge.cache import MemoryCache
from mbedge.limits import LimitDecision, SlidingWindowLimiter
from mbedge.messages import EdgeRequest, EdgeResponse, FetchFailed, HubRequest, HubResponse
from mbedge.pipeline import Edge
from mbedge.ports import Background, CacheStore, Fetch, PopLimiter, Ports
from mbedge.settings import EdgeSettings

__all__ = [
    "Background",
    "CacheStore",
    "Edge",
    "EdgeRequest",
    "EdgeResponse",
    "EdgeSettings",
    "Fetch",
    "FetchFailed",
    "HubRequest",
    "HubResponse",
    "LimitDecision",
    "MemoryCache",
    "PopLimiter",
    "Ports",
    "SlidingWindowLimiter",
]
