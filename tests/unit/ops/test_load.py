"""The open loop: requests leave on schedule even while earlier ones hang, and latency counts from
the intended send time, so a stall is measured in full (coordinated omission corrected)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.drills.load import OpenLoop, intended_times


@given(rate=st.floats(0.5, 500), span=st.floats(0, 30))
def test_schedule_is_evenly_spaced(rate: float, span: float) -> None:
    times = intended_times(rate, 0.0, span)
    assert all(0 <= t < span for t in times)
    assert abs(len(times) - span * rate) <= 1
    assert all(abs((b - a) - 1 / rate) < 1e-9 for a, b in itertools.pairwise(times))


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        intended_times(0, 0, 1)


async def test_a_stall_is_charged_to_every_request_it_held() -> None:
    # The service stalls from 0.2 s to 0.6 s: every request sent in that time answers at 0.6 s.
    gate = asyncio.Event()

    async def send(i: int) -> tuple[str, str, str, bool]:
        if 0.2 <= loop.now() < 0.6:
            await gate.wait()
        return "read", "ams", "200", True

    loop = OpenLoop(send, rate=50)
    runner = asyncio.create_task(loop.run(1.0))
    await asyncio.sleep(0.6)
    gate.set()
    await runner
    held = [s for s in loop.samples if 0.25 <= s.intended < 0.55]
    # The open loop kept sending during the stall (a closed loop would have sent one request).
    assert len(held) >= 10
    # The first request held waited about 0.35 s: latency from its intended time, not from when
    # a closed loop would have got round to sending it.
    assert max(s.latency_ms for s in held) >= 250
    assert min(s.latency_ms for s in loop.samples if s.intended > 0.7) < max(
        s.latency_ms for s in held)


async def test_too_many_in_flight_are_failures_not_unbounded_tasks() -> None:
    async def hang(i: int) -> tuple[str, str, str, bool]:
        await asyncio.sleep(0.5)
        return "read", "ams", "200", True

    loop = OpenLoop(hang, rate=200, max_in_flight=10)
    await loop.run(0.2)
    statuses = {s.status for s in loop.samples}
    assert statuses == {"200", "client-saturated"}


async def test_a_sender_that_raises_is_a_failed_sample() -> None:
    async def broken(i: int) -> tuple[str, str, str, bool]:
        raise KeyError("bug")

    loop = OpenLoop(broken, rate=100)
    await loop.run(0.05)
    assert loop.samples and all(s.status == "KeyError" and not s.ok for s in loop.samples)
