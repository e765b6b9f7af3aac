"""Fleet units at one PoP: what makes a cache hit count toward the caller's fleet-wide limit.

The hubs count every request they admit in one Redis (``regional.ratelimit``), but a cache hit
never reaches them; counted only at its own PoP, a free caller got 29 reads a minute through
three PoPs. So a PoP answers a hit only by spending a unit it holds for the caller, and without
one the hit is a miss: forwarded, and charged by the hub like any read.

Units come as a lease on the PoP's own forwarded answer. Forwarding a read it has an answer
cached for, the PoP asks ``X-MB-Fleet-Lease: want=n``; the hub admitting that request takes up
to n more units for the caller in the same Redis call (at most a 50th of the tier's limit, so
none for free: every free read goes to a hub) and names them in its answer,
``units=k; hold-ms=h``, which the pipeline reads off that answer only and never passes on.
Redis spends leased units at once and logs them at the end of the hold, so no window ever
admits more than the limit, hits included: the bound is exact. The PoP may spend them until
``h`` after it *sent* the request (before Redis read its clock, so no clocks need agree);
whatever is left then lapses, spent for nothing.

What to ask for: only a read with a cached answer (an answer never cached, such as a grantee's
``no-store`` one, never takes units no hit could spend), and no more than the caller's pace
here: its cached reads in this hold period or the last, so a slow caller leases (and loses)
next to nothing.

Memory: one small record per (tier, sub) that used the cache lately, bounded in count (the
least recently used go first; their units lapse). The Worker keeps it in isolate memory: each
isolate holds its own units, which cannot loosen the bound (every unit was spent in Redis)."""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mbedge.limits import LimitDecision, merge
from mbwire import Principal

# The hub's hold, until a lease says otherwise (a lease always does); also the pace period.
DEFAULT_HOLD_S = 1.0
# A hold beyond this is not a hub's: refused, not spent for a minute.
MAX_HOLD_S = 10.0
_LEASE = re.compile(r"^ *units=([0-9]{1,9}) *; *hold-ms=([0-9]{1,9}) *\Z")


@dataclass(slots=True)
class _Held:
    units: int = 0
    until: float = 0.0
    # The fleet's count for the caller beyond the held units, when they were leased (None: the
    # hub sent none), and when its window next frees a unit.
    fleet: LimitDecision | None = None
    reset_at: float = 0.0
    # Cached reads in the current pace period (from ``period``) and in the one before.
    period: float = 0.0
    count: int = 0
    pace: int = 0


def parse_lease(value: str | None) -> tuple[int, float] | None:
    """``units=k; hold-ms=h`` as (k, seconds); None when absent, malformed or implausible."""
    m = _LEASE.match(value or "")
    if m is None or not int(m[1]) or not 0 < int(m[2]) <= MAX_HOLD_S * 1000:
        return None
    return int(m[1]), int(m[2]) / 1000


class FleetUnits:
    def __init__(self, clock: Callable[[], float], *, max_entries: int = 100_000) -> None:
        self._clock, self._max = clock, max_entries
        self._held: OrderedDict[str, _Held] = OrderedDict()

    @property
    def held(self) -> int:
        """Units spendable now, over every caller (for tests and metrics)."""
        now = self._clock()
        return sum(h.units for h in self._held.values() if now < h.until)

    def counted(self, principal: Principal) -> None:
        """A read of the principal's that found a cached answer here: its pace."""
        held, now = self._get(principal), self._clock()
        if now - held.period >= DEFAULT_HOLD_S:
            held.pace = held.count if now - held.period < 2 * DEFAULT_HOLD_S else 0
            held.period, held.count = now, 0
        held.count += 1

    def spend(self, principal: Principal, cost: int, pop: LimitDecision
              ) -> LimitDecision | None:
        """Spends ``cost`` held units: the decision to tell the caller (the PoP's and the
        fleet's counts, merged), or None when not enough are held (the read must go to a hub)."""
        held, now = self._held.get(_key(principal)), self._clock()
        if held is None or held.units < cost or now >= held.until:
            return None
        held.units -= cost
        if held.fleet is None:
            return pop
        fleet = held.fleet
        left = LimitDecision(True, fleet.limit, fleet.remaining + held.units,
                             max(1, math.ceil(held.reset_at - now)))
        return merge(pop, left)

    def want(self, principal: Principal) -> int:
        """How many units to ask for with a forwarded read that has a cached answer."""
        held = self._get(principal)
        return max(held.pace, held.count)

    def lease(self, principal: Principal, header: str | None, fleet: LimitDecision | None,
              sent_at: float) -> None:
        """Keeps the units a hub leased on this PoP's own answer (``header``), spendable until
        the hold after ``sent_at``, when the request went out."""
        found = parse_lease(header)
        if found is None:
            return
        units, hold_s = found
        held, now = self._get(principal), self._clock()
        until = sent_at + hold_s
        if now < held.until and held.units:
            # Still holding some: both lots lapse at the earlier end (never spent late).
            units, until = units + held.units, min(until, held.until)
        held.units, held.until = units, until
        if fleet is not None:
            beyond = fleet.remaining - found[0]  # the hub counted the new units as the caller's
            held.fleet = LimitDecision(True, fleet.limit, max(0, beyond), fleet.reset)
            held.reset_at = now + fleet.reset

    def _get(self, principal: Principal) -> _Held:
        key = _key(principal)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held()
            while len(self._held) > self._max:
                self._held.popitem(last=False)
        else:
            self._held.move_to_end(key)
        return held


def _key(principal: Principal) -> str:
    # The hubs count per sub and size a lease by its tier: units leased under one tier are not
    # spent under another (as the hubs' own leases, regional.ratelimit).
    return f"{principal.tier}:{principal.sub}"
