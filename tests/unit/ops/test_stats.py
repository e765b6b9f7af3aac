"""RTO, steady state and percentiles from samples alone: examples with known answers, and
properties over any timeline hypothesis draws."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.drills.stats import (
    Sample,
    Steady,
    back_to_steady,
    failed_by_status,
    first_success,
    is_steady,
    percentile,
    phase,
)


def timeline(rate: float, end: float, *, fail: tuple[float, float] = (0, 0), op_failing: str = "w",
             latency: float = 0.01) -> list[Sample]:
    """Alternating reads and writes every 1/rate s; writes intended inside ``fail`` fail."""
    out = []
    for i in range(int(end * rate)):
        t = i / rate
        op = "w" if i % 2 else "r"
        bad = fail[0] <= t < fail[1] and op == op_failing
        out.append(Sample(t, t + latency, op, "ams", "503" if bad else "200", not bad))
    return out


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0


def test_a_fault_nothing_notices_recovers_at_once() -> None:
    samples = timeline(20, 30)
    assert first_success(samples, 10.0) == 0.0
    assert back_to_steady(samples, 10.0, 30.0, 10.0) == 0.0


def test_writes_failing_for_a_while() -> None:
    # Writes fail from 10 s to 14 s; reads never do. RTO₁ is the first write after the burst
    # (14.05 intended + 10 ms), and steady starts once a 5 s window holds no failure.
    samples = timeline(20, 40, fail=(10.0, 14.0))
    assert first_success(samples, 10.0) == 4.06
    rto = back_to_steady(samples, 10.0, 40.0, 10.0)
    assert rto is not None and 3.5 <= rto <= 4.0


def test_never_recovering_is_none() -> None:
    samples = timeline(20, 30, fail=(10.0, 31.0))
    assert first_success(samples, 10.0) is None
    assert back_to_steady(samples, 10.0, 30.0, 10.0) is None


def test_slow_but_successful_is_not_steady() -> None:
    before = timeline(20, 10)
    slow = [Sample(s.intended + 10, s.done + 10.5, s.op, s.region, s.status, s.ok)
            for s in timeline(20, 20)]
    p95 = phase(before, 0, 10).p95_ms
    assert p95 is not None
    assert not is_steady(slow[:100], p95, Steady())
    assert back_to_steady(before + slow, 10.0, 30.0, p95) is None


def test_failed_by_status_counts_only_failures() -> None:
    samples = [*timeline(10, 10, fail=(0, 5)), Sample(1, 2, "r", "iad", "ConnectError", False)]
    assert failed_by_status(samples) == {"503": 25, "ConnectError": 1}


@given(rate=st.integers(5, 40), fault=st.floats(2, 10), burst=st.floats(0, 8))
def test_rto_properties(rate: int, fault: float, burst: float) -> None:
    end = fault + burst + 12
    samples = timeline(rate, end, fail=(fault, fault + burst))
    first = first_success(samples, fault)
    steady = back_to_steady(samples, fault, end, 10.0)
    # A burst ends, so both are found; nothing recovers before the burst's last failure.
    assert first is not None and steady is not None
    failures = [s.intended for s in samples if not s.ok]
    if failures:
        assert fault + first >= max(failures)
        assert fault + steady + Steady().window_s > max(failures)
    else:
        assert first == 0.0


@given(st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=200),
       st.floats(0, 100))
def test_percentile_is_one_of_the_values_and_monotone(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert p <= (percentile(values, min(100.0, q + 1)) or 0)
