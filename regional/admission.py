"""The hub's admission step after the hop is verified: the fleet-wide rate limit per ``sub``.
Its counts go back to the edge in ``X-MB-Fleet-*`` headers (also on a 429)."""

from __future__ import annotations

import logging
from typing import Any

from mbwire import Principal
from regional.ratelimit import FleetLimiter, FleetUnavailable

log = logging.getLogger("memorybank.admission")


class FleetAdmission:
    def __init__(self, limiter: FleetLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, principal: Principal, state: dict[str, Any]) -> None:
        try:
            decision = await self.limiter.hit(principal.sub, principal.tier)
        except FleetUnavailable as exc:
            # Fail open: the edge PoPs still limit, and an outage of the limits store must not
            # become an outage of the service.
            log.warning("%s; admitting %s on PoP limits alone", exc, principal.sub)
            return
        state["response_headers"] = decision.headers()
        if not decision.allowed:
            raise decision.problem()
