"""The limits breaker as a state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regional.breaker import Breaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_failures_in_a_row_and_skips_the_dependency() -> None:
    clock = FakeClock()
    b = Breaker(failures=3, cooldown_s=5, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    assert b.allow()
    b.failure()
    assert b.state == "open"
    clock.now += 4.9
    assert not b.allow()


def test_a_success_resets_the_count() -> None:
    b = Breaker(failures=2, clock=FakeClock())
    b.failure()
    b.success()
    b.failure()
    assert b.state == "closed"


def test_one_probe_after_the_cooldown_closes_on_success() -> None:
    clock = FakeClock()
    b = Breaker(failures=1, cooldown_s=5, clock=clock)
    b.failure()
    clock.now += 5
    assert b.allow() and b.state == "half-open"
    assert not b.allow()          # only the probe goes through
    b.success()
    assert b.state == "closed" and b.allow()


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    clock = FakeClock()
    b = Breaker(failures=1, cooldown_s=5, clock=clock)
    b.failure()
    clock.now += 5
    assert b.allow()
    b.failure()
    assert b.state == "open"
    clock.now += 4
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_a_lost_probe_is_replaced_after_a_cooldown() -> None:
    clock = FakeClock()
    b = Breaker(failures=1, cooldown_s=5, clock=clock)
    b.failure()
    clock.now += 5
    assert b.allow()               # the probe's request is cancelled and never reports
    clock.now += 5
    assert b.allow()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Breaker(failures=0)


Event = st.one_of(
    st.tuples(st.just("call"), st.booleans()),          # a call: allowed? then ok/failed
    st.tuples(st.just("wait"), st.floats(0, 10)),
)


@given(st.integers(1, 5), st.lists(Event, max_size=60))
def test_state_machine_properties(threshold: int, events: list[tuple[str, object]]) -> None:
    """Against a model: while closed every call passes; it opens exactly at the threshold-th
    failure in a row; while open nothing passes before the cooldown; at most one probe passes
    per cooldown while not closed."""
    clock = FakeClock()
    b = Breaker(failures=threshold, cooldown_s=5, clock=clock)
    run = 0                      # consecutive failures while closed (the model)
    last_pass = None             # when a call last passed while not closed
    for kind, value in events:
        if kind == "wait":
            clock.now += float(value)  # type: ignore[arg-type]
            continue
        was = b.state
        allowed = b.allow()
        if was == "closed":
            assert allowed
        elif allowed:
            assert last_pass is None or clock.now - last_pass >= 5
        if not allowed:
            continue
        if b.state != "closed":
            last_pass = clock.now
        if value:
            b.success()
            run, last_pass = 0, None
            assert b.state == "closed"
        else:
            run = run + 1 if was == "closed" else threshold
            b.failure()
            assert (b.state == "open") == (run >= threshold)
            if b.state == "open":
                run, last_pass = 0, clock.now
