"""What a drill measured, computed from its samples alone (no I/O, so it is unit-tested).

Times are seconds since the load started. A sample's latency runs from its *intended* send time
(open loop), not from when it went out, so a stall that delays sending is counted in full: the
coordinated-omission correction.

Definitions the report uses:

- **first success (RTO₁)**: from the fault to the first success of the kind of request that
  failed first after it (a central kill fails writes, not reads); 0 when nothing failed.
- **steady**: a ``window_s`` window with at least ``min_samples`` requests, an error rate under
  ``max_error_rate`` and a p95 within ``p95_factor`` times the p95 before the fault (plus
  ``slack_ms``, since on a shared 2-core machine a 10 ms p95 doubles on noise alone).
- **back to steady (RTO₂)**: from the fault to the start of the first steady window starting at
  or after it, given the error burst (if any) has ended; None: not within the run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import msgspec


class Sample(msgspec.Struct, frozen=True, array_like=True):
    intended: float  # when the schedule said to send it
    done: float  # when its final answer (after retries) arrived
    op: str  # patch, create, read, grants
    region: str  # the edge it was sent to first
    status: str  # "200", "503", "ConnectError", ...
    ok: bool

    @property
    def latency_ms(self) -> float:
        return (self.done - self.intended) * 1000


class Steady(msgspec.Struct, frozen=True, kw_only=True):
    window_s: float = 5.0
    max_error_rate: float = 0.01
    p95_factor: float = 2.0
    slack_ms: float = 25.0
    min_samples: int = 10
    step_s: float = 0.5


DEFAULT_STEADY = Steady()


class Phase(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def phase(samples: Sequence[Sample], start: float, end: float) -> Phase:
    """Requests intended in ``[start, end)``; percentiles over the successful ones, since a
    failure's latency is its timeout, not the service's speed."""
    inside = [s for s in samples if start <= s.intended < end]
    ok = [s.latency_ms for s in inside if s.ok]
    return Phase(requests=len(inside), failed=sum(not s.ok for s in inside),
                 p50_ms=_round(percentile(ok, 50)), p95_ms=_round(percentile(ok, 95)),
                 p99_ms=_round(percentile(ok, 99)))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def failed_by_status(samples: Sequence[Sample]) -> dict[str, int]:
    return dict(sorted(Counter(s.status for s in samples if not s.ok).items()))


def first_success(samples: Sequence[Sample], fault_at: float) -> float | None:
    """RTO₁: seconds from the fault to the first success of the op that failed first after it;
    0.0 when nothing failed, None when it never succeeded again."""
    after = sorted((s for s in samples if s.intended >= fault_at), key=lambda s: s.intended)
    first_fail = next((s for s in after if not s.ok), None)
    if first_fail is None:
        return 0.0
    later = [s.done for s in after
             if s.ok and s.op == first_fail.op and s.intended >= first_fail.intended]
    return round(min(later) - fault_at, 3) if later else None


def is_steady(window: Sequence[Sample], baseline_p95_ms: float | None, rule: Steady) -> bool:
    if len(window) < rule.min_samples:
        return False
    failed = sum(not s.ok for s in window)
    if failed / len(window) >= rule.max_error_rate:
        return False
    p95 = percentile([s.latency_ms for s in window if s.ok], 95)
    if baseline_p95_ms is None or p95 is None:
        return True
    return p95 <= baseline_p95_ms * rule.p95_factor + rule.slack_ms


def back_to_steady(samples: Sequence[Sample], fault_at: float, end: float,
                   baseline_p95_ms: float | None, rule: Steady = DEFAULT_STEADY) -> float | None:
    """RTO₂: seconds from the fault to the start of the first steady window at or after it
    (the window must end by ``end``, when the load stopped); None when none was steady."""
    ordered = sorted(samples, key=lambda s: s.intended)
    start = fault_at
    while start + rule.window_s <= end + 1e-9:
        window = [s for s in ordered if start <= s.intended < start + rule.window_s]
        # A window before the last failure is not "back": the error burst is not over yet.
        if is_steady(window, baseline_p95_ms, rule) and not _fails_later(ordered, window):
            return round(start - fault_at, 3)
        start += rule.step_s
    return None


def _fails_later(ordered: Sequence[Sample], window: Sequence[Sample]) -> bool:
    """More than the steady rule's share of failures after this window: the burst goes on."""
    if not window:
        return True
    tail = [s for s in ordered if s.intended >= window[-1].intended]
    return bool(tail) and sum(not s.ok for s in tail) / len(tail) >= 0.05
