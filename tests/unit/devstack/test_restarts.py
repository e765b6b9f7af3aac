"""The supervisor's restart policy: immediate first restart, doubling backoff, crash-loop cap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devstack.restarts import ChildBackoff, Policy

POLICY = Policy(first_s=0.5, max_s=10.0, healthy_reset_s=30.0, loop_cap=8)


def test_first_restart_is_immediate_then_the_pause_doubles_up_to_the_cap() -> None:
    assert [POLICY.delay(n) for n in range(0, 8)] == [0.0, 0.5, 1, 2, 4, 8, 10, 10]


@given(st.integers(min_value=0, max_value=10_000))
def test_delay_is_monotone_and_bounded(n: int) -> None:
    assert 0 <= POLICY.delay(n) <= POLICY.delay(n + 1) <= POLICY.max_s


@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.booleans()), max_size=200))
def test_never_restarts_before_the_backoff_nor_past_the_cap(
        steps: list[tuple[float, bool]]) -> None:
    book, now, last_restart, restarts_since_healthy = ChildBackoff(), 0.0, None, 0
    up_since: float | None = None
    for gap, alive in steps:
        now += gap
        before = book.failures
        decision = book.observe(now, alive, POLICY)
        if alive:
            up_since = now if up_since is None else up_since
            if now - up_since >= POLICY.healthy_reset_s:
                restarts_since_healthy = 0
            assert decision == "ok"
            continue
        up_since = None
        if decision == "restart":
            restarts_since_healthy += 1
            if last_restart is not None and before > 0:
                assert now - last_restart >= POLICY.delay(before) - 1e-9
            last_restart = now
        assert restarts_since_healthy <= POLICY.loop_cap
        assert book.failures == restarts_since_healthy


def test_a_crash_loop_gives_up_once_loudly_then_stays_quiet() -> None:
    book, now, decisions = ChildBackoff(), 0.0, []
    for _ in range(200):
        now += 0.25
        decisions.append(book.observe(now, False, POLICY))
    assert decisions.count("restart") == POLICY.loop_cap
    assert decisions.count("give_up") == 1
    assert decisions[-1] == "given_up"
    # Someone starts it by hand: it is watched again, and restarted at its next crash once
    # it has stayed up long enough to earn a fresh start.
    assert book.observe(now + 1, True, POLICY) == "ok"
    assert book.observe(now + 40, True, POLICY) == "ok"
    assert book.observe(now + 41, False, POLICY) == "restart"


def test_healthy_for_the_reset_time_forgives_earlier_crashes() -> None:
    book = ChildBackoff()
    for t in (0.0, 0.6, 2.0, 5.0):
        assert book.observe(t, False, POLICY) == "restart"
    assert book.failures == 4
    book.observe(6.0, True, POLICY)
    book.observe(36.0, True, POLICY)
    assert book.failures == 0
    assert book.observe(37.0, False, POLICY) == "restart"
