"""Twin rows on the replica: ``twin_on`` (on a connection the caller holds, e.g. a snapshot's)
and the ``Replica``'s own one-shot reads of a twin (``twin``, with the replay position it reflects
read in the same round trip; ``twin_state``, the CRDT state for sync; ``twin_log_after``, the
logged updates after a version, which Yjs providers are sent). Rows, not views: access is
decided by the reads in ``regional.twins`` (``mbwire.access``).

A twin is stored as a compacted state and profile plus the log of updates since (central/twins.py,
migration 0008), read in one statement, so one snapshot: when the log is empty (compacted twins,
most of them) the stored profile is the answer; otherwise the state and the log are read instead
and the profile is rendered from them (``folded``), exactly as central renders it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import pycrdt

from crdt import TwinDoc
from mbwire import ConsistencyToken
from regional.replica.pool import POSITION_SQL, ReplicaPool

# A twin's grants as one JSON object {sub: access}, read with the twin in one statement.
_GRANTS = (
    "coalesce((select jsonb_object_agg(g.sub, g.access) from twin_grants g"
    " where g.twin_id = t.twin_id), '{}'::jsonb)"
)
_WHERE_TWIN = " from twins t where t.twin_id = %s"
# The twin's log since its compacted state, in version order (empty for a compacted twin).
_LOG = ("array(select u.update from twin_updates u where u.twin_id = t.twin_id"
        " and u.version > t.compacted and u.version <= t.version order by u.version)")
PROFILE_COLUMNS = (
    "case when t.version = t.compacted then t.profile end,"
    " case when t.version > t.compacted then t.state end,"
    f" case when t.version > t.compacted then {_LOG} end"
)
"""Three columns (on ``twins t``) that ``folded`` turns into the profile at the head version."""
STATE_COLUMNS = f"t.state, {_LOG}"
"""Two columns (on ``twins t``) that ``folded_state`` turns into the state at the head."""


def folded(profile: dict[str, Any] | None, state: bytes | None,
           log: list[bytes] | None) -> dict[str, Any]:
    """The profile at the head: the stored one, or the state with its log applied."""
    if profile is not None:
        return profile
    assert state is not None and log is not None
    return TwinDoc.load(bytes(state), log=log).profile()


def folded_state(state: bytes, log: list[bytes]) -> bytes:
    """The state at the head as one update (what sync diffs against)."""
    return bytes(state) if not log else pycrdt.merge_updates(bytes(state), *map(bytes, log))


_TWIN_ROW = f"select t.owner_sub, t.version, {PROFILE_COLUMNS}, " + _GRANTS + _WHERE_TWIN


def _row(twin_id: str, row: Any) -> TwinRow | None:
    if row is None:
        return None
    return TwinRow(twin_id, row[0], row[1], folded(row[2], row[3], row[4]), row[5])


@dataclass(frozen=True, slots=True)
class TwinRow:
    twin_id: str
    owner_sub: str
    version: int
    profile: dict[str, Any]
    grants: dict[str, str]


async def twin_on(conn: psycopg.AsyncConnection[Any], twin_id: str) -> TwinRow | None:
    """The twin on ``conn`` (a batch reads many on one snapshot's connection)."""
    cur = await conn.execute(_TWIN_ROW, (twin_id,))
    return _row(twin_id, await cur.fetchone())


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
                found = await conn.execute(_TWIN_ROW, (twin_id,))
                await pipeline.sync()
                at, row = await position.fetchone(), await found.fetchone()
        assert at is not None
        token = ConsistencyToken.from_pg_lsn(at[0])
        return _row(twin_id, row), token

    async def twin_state(self, twin_id: str) -> tuple[bytes, TwinRow] | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                f"select {STATE_COLUMNS}, t.owner_sub, t.version, " + _GRANTS + _WHERE_TWIN,
                (twin_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return folded_state(row[0], row[1]), TwinRow(twin_id, row[2], row[3], {}, row[4])

    async def twin_log_after(self, twin_id: str, after: int, limit: int = 512,
                             ) -> list[tuple[int, bytes]]:
        """The twin's logged updates after version ``after`` (at most ``limit``, oldest first):
        applied in order to a document at ``after`` they make it the twin at the last one's
        version. Empty, or starting past ``after + 1``, when compaction folded what follows
        ``after`` into the state (then diff the state instead)."""
        async with self.connection() as conn:
            cur = await conn.execute(
                "select u.version, u.update from twin_updates u join twins t using (twin_id)"
                " where u.twin_id = %s and u.version > greatest(%s, t.compacted)"
                " and u.version <= t.version order by u.version limit %s",
                (twin_id, after, limit),
            )
            return [(row[0], bytes(row[1])) for row in await cur.fetchall()]
