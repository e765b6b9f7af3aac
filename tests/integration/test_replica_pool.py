"""The replica pool's transactions: ``Replica.snapshot`` is one repeatable-read, read-only
transaction opened by a single ``BEGIN`` (its characteristics are the connection's), and a
statement outside it runs on its own, as every other hub read does."""

from __future__ import annotations

from regional.replica import Replica
from tests.integration.conftest import LiveStack


async def test_a_snapshot_is_repeatable_read_and_read_only_and_nothing_else_is(
        live: LiveStack) -> None:
    replica = Replica(live.topology.postgres.replicas["iad"])
    await replica.open()
    try:
        async with replica.snapshot() as (conn, answered):
            assert answered.lsn > 0
            cur = await conn.execute(
                "select current_setting('transaction_isolation'),"
                " current_setting('transaction_read_only'), now() = statement_timestamp()")
            assert await cur.fetchone() == ("repeatable read", "on", False)
        async with replica.connection() as conn:
            cur = await conn.execute("select now() = statement_timestamp()")
            assert await cur.fetchone() == (True,)  # autocommit: its own transaction
    finally:
        await replica.close()
