"""A read's position from the replay clock instead of a statement: only for a connection to the
server instance the clock polls, only while the clock ticks; else the statement."""

from __future__ import annotations

from typing import Any

from mbwire import ConsistencyToken
from regional.replica import ReplicaPool


class Clock:
    def __init__(self, position: int, instance: str, healthy: bool = True) -> None:
        self.position, self.instance, self.healthy = position, instance, healthy


class Conn:
    """Stands for a pooled connection (weak-referenceable, like psycopg's)."""


class Pool(ReplicaPool):
    statements = 0

    @staticmethod
    async def position_on(conn: Any) -> ConsistencyToken:
        Pool.statements += 1
        return ConsistencyToken(7)


async def test_the_clock_answers_for_its_own_instance_only() -> None:
    pool = Pool("postgresql://127.0.0.1:1/x")
    conn, other = Conn(), Conn()
    pool._instance[conn] = "2026-12-05 05:00:00+00"
    pool._instance[other] = "2026-12-05 06:00:00+00"  # the replica restarted since the clock's
    assert await pool.floor(conn) == ConsistencyToken(7)  # no clock: a statement
    pool.clock = Clock(1000, "2026-12-05 05:00:00+00")
    assert await pool.floor(conn) == ConsistencyToken(1000)
    assert await pool.floor(other) == ConsistencyToken(7)
    pool.clock = Clock(1000, "2026-12-05 05:00:00+00", healthy=False)  # stopped ticking
    assert await pool.floor(conn) == ConsistencyToken(7)
    pool.clock = Clock(0, "2026-12-05 05:00:00+00")  # not polled yet
    assert await pool.floor(conn) == ConsistencyToken(7)
    pool.clock = Clock(1000, "")  # a new instance, before its first poll
    assert await pool.floor(conn) == ConsistencyToken(7)
    assert Pool.statements == 5
