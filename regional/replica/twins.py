"""Twin rows on the replica: ``twin_on`` (on a connection the caller holds, e.g. a snapshot's)
and the ``Replica``'s own one-shot reads of a twin (``twin``, with the replay position it reflects
read in the same round trip; ``twin_state``, the CRDT state for sync). Rows, not views: access is
decided by the reads in ``regional.twins`` (``mbwire.access``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from mbwire import ConsistencyToken
from regional.replica.pool import POSITION_SQL, ReplicaPool

# A twin's grants as one JSON object {sub: access}, read with the twin in one statement.
_GRANTS = (
    "coalesce((select jsonb_object_agg(g.sub, g.access) from twin_grants g"
    " where g.twin_id = t.twin_id), '{}'::jsonb)"
)
_WHERE_TWIN = " from twins t where t.twin_id = %s"


@dataclass(frozen=True, slots=True)
class TwinRow:
    twin_id: str
    owner_sub: str
    version: int
    profile: dict[str, Any]
    grants: dict[str, str]


async def twin_on(conn: psycopg.AsyncConnection[Any], twin_id: str) -> TwinRow | None:
    """The twin on ``conn`` (a batch reads many on one snapshot's connection)."""
    cur = await conn.execute(
        "select t.owner_sub, t.version, t.profile, " + _GRANTS + _WHERE_TWIN, (twin_id,)
    )
    row = await cur.fetchone()
    return None if row is None else TwinRow(twin_id, row[0], row[1], row[2], row[3])


class TwinRowReads(ReplicaPool):
    """The pool's twin reads (``Replica`` has them)."""

    async def twin(self, twin_id: str) -> tuple[TwinRow | None, ConsistencyToken]:
        """The twin as the replica has it, and the replay position the answer reflects at least.
        The position is read by its own statement before the twin's (whose snapshot is taken
        after it, so it shows at least that position); both are sent in one pipeline, one round
        trip instead of two."""
        async with self.connection() as conn:
            async with conn.pipeline() as pipeline:
                position = await conn.execute(POSITION_SQL)
                found = await conn.execute(
                    "select t.owner_sub, t.version, t.profile, " + _GRANTS + _WHERE_TWIN,
                    (twin_id,),
                )
                await pipeline.sync()
                at, row = await position.fetchone(), await found.fetchone()
        assert at is not None
        token = ConsistencyToken.from_pg_lsn(at[0])
        return (None if row is None else TwinRow(twin_id, row[0], row[1], row[2], row[3])), token

    async def twin_state(self, twin_id: str) -> tuple[bytes, TwinRow] | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                "select t.state, t.owner_sub, t.version, " + _GRANTS + _WHERE_TWIN,
                (twin_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return bytes(row[0]), TwinRow(twin_id, row[1], row[2], {}, row[3])
