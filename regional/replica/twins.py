"""Twin rows on the replica: ``twin_on`` (on a connection the caller holds, e.g. a snapshot's)
and the ``Replica``'s own one-shot reads of a twin (``twin``, with the replay position it reflects
read in the same round trip; ``twin_state``, the CRDT state for sync; ``twin_log_after``, the
logged updates after a version, which Yjs providers are sent). Rows, not views: access is
decided by the reads in ``regional.twins`` (``mbwire.access``). ``twin_access_on`` reads only
who may do what (owner, grants, version): no personal data, so no key.

A twin is stored as a compacted state and profile plus the log of updates since (central/twins.py,
migration 0008), read in one statement, so one snapshot: when the log is empty (compacted twins,
most of them) the stored profile is the answer; otherwise the state and the log are read instead
and the profile is rendered from them (``folded``), exactly as central renders it.

Every one of those values is sealed under the twin's data key (migration 0013, central/store.py:
fields ``state``, ``profile``, ``update:<version>``) and opened here with the pool's keyring
(``ReplicaPool.keys``; ``cached`` first, so a hot twin costs no I/O). The key is asked for only
once a row is found, so a read of an id that does not exist never reaches the key store. A row
whose twin has no key any more is being erased (central destroys the key with the rows, and
the replica shows the deletes a moment later): it reads as gone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import pycrdt

from crdt import TwinDoc
from mbwire import ConsistencyToken, NotFound
from regional.replica.pool import POSITION_SQL, ReplicaPool
from sealing import Keyring, TwinKey

# A twin's grants as one JSON object {sub: access}, read with the twin in one statement.
_GRANTS = (
    "coalesce((select jsonb_object_agg(g.sub, g.access) from twin_grants g"
    " where g.twin_id = t.twin_id), '{}'::jsonb)"
)
_WHERE_TWIN = " from twins t where t.twin_id = %s"
# The twin's log since its compacted state, in version order (empty for a compacted twin). It
# holds every version after ``compacted`` (central appends the next one, compaction deletes a
# prefix), so the i-th update is version compacted + 1 + i: the field it is sealed as.
_LOG = ("array(select u.update from twin_updates u where u.twin_id = t.twin_id"
        " and u.version > t.compacted and u.version <= t.version order by u.version)")
PROFILE_COLUMNS = (
    "case when t.version = t.compacted then t.profile end,"
    " case when t.version > t.compacted then t.state end,"
    f" case when t.version > t.compacted then {_LOG} end, t.compacted"
)
"""Four columns (on ``twins t``) that ``folded`` turns into the profile at the head version."""
STATE_COLUMNS = f"t.state, {_LOG}, t.compacted"
"""Three columns (on ``twins t``) that ``folded_state`` turns into the state at the head."""


def opened_log(key: TwinKey, log: list[bytes], compacted: int) -> list[bytes]:
    return [key.open(f"update:{compacted + 1 + i}", u) for i, u in enumerate(log)]


def folded(key: TwinKey, profile: bytes | None, state: bytes | None,
           log: list[bytes] | None, compacted: int) -> dict[str, Any]:
    """The profile at the head (``PROFILE_COLUMNS``, opened): the stored one, or the state with
    its log applied."""
    if profile is not None:
        opened: dict[str, Any] = key.open_json("profile", profile)
        return opened
    assert state is not None and log is not None
    return TwinDoc.load(key.open("state", state),
                        log=opened_log(key, log, compacted)).profile()


def folded_state(key: TwinKey, state: bytes, log: list[bytes], compacted: int) -> bytes:
    """The state at the head as one update (what sync diffs against), opened."""
    base = key.open("state", state)
    return base if not log else pycrdt.merge_updates(base, *opened_log(key, log, compacted))


async def key_of(keys: Keyring, twin_id: str) -> TwinKey | None:
    """The twin's key (None: it has none, so it is being erased)."""
    key = keys.cached(twin_id)
    if key is not None:
        return key
    try:
        return await keys.key(twin_id)
    except NotFound:
        return None


_ACCESS_ROW = "select t.owner_sub, t.version, " + _GRANTS + _WHERE_TWIN
_TWIN_ROW = f"select t.owner_sub, t.version, {_GRANTS}, {PROFILE_COLUMNS}" + _WHERE_TWIN


@dataclass(frozen=True, slots=True)
class TwinAccess:
    """Who may do what with a twin, and its head version: all a decision on access needs."""

    twin_id: str
    owner_sub: str
    version: int
    grants: dict[str, str]


@dataclass(frozen=True, slots=True)
class TwinRow(TwinAccess):
    profile: dict[str, Any]


async def _row(keys: Keyring, twin_id: str, row: Any) -> TwinRow | None:
    if row is None:
        return None
    key = await key_of(keys, twin_id)
    if key is None:
        return None
    return TwinRow(twin_id=twin_id, owner_sub=row[0], version=row[1], grants=row[2],
                   profile=folded(key, row[3], row[4], row[5], row[6]))


async def twin_on(conn: psycopg.AsyncConnection[Any], twin_id: str, keys: Keyring,
                  ) -> TwinRow | None:
    """The twin on ``conn`` (a batch reads many on one snapshot's connection), opened with
    ``keys``."""
    cur = await conn.execute(_TWIN_ROW, (twin_id,))
    return await _row(keys, twin_id, await cur.fetchone())


async def twin_access_on(conn: psycopg.AsyncConnection[Any], twin_id: str,
                         ) -> TwinAccess | None:
    """Who may do what with the twin on ``conn`` (no profile read, nothing to open)."""
    cur = await conn.execute(_ACCESS_ROW, (twin_id,))
    row = await cur.fetchone()
    return None if row is None else TwinAccess(twin_id, row[0], row[1], row[2])


class TwinRowReads(ReplicaPool):
    """The pool's twin reads (``Replica`` has them)."""

    async def twin(self, twin_id: str) -> tuple[TwinRow | None, ConsistencyToken]:
        """The twin as the replica has it, and the replay position the answer reflects at least:
        the replay clock's (``ReplicaPool.floor``), else read by its own statement before the
        twin's (whose snapshot is taken after it, so it shows at least that position), both
        sent in one pipeline, one round trip instead of two."""
        async with self.connection() as conn:
            if (token := self.clock_floor(conn)) is not None:  # no position statement
                row = await (await conn.execute(_TWIN_ROW, (twin_id,))).fetchone()
                return await _row(self.keys, twin_id, row), token
            async with conn.pipeline() as pipeline:
                position = await conn.execute(POSITION_SQL)
                found = await conn.execute(_TWIN_ROW, (twin_id,))
                await pipeline.sync()
                at, row = await position.fetchone(), await found.fetchone()
        assert at is not None
        token = ConsistencyToken.from_pg_lsn(at[0])
        return await _row(self.keys, twin_id, row), token

    async def twin_state(self, twin_id: str) -> tuple[bytes, TwinAccess] | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                f"select {STATE_COLUMNS}, t.owner_sub, t.version, " + _GRANTS + _WHERE_TWIN,
                (twin_id,),
            )
            row = await cur.fetchone()
        if row is None or (key := await key_of(self.keys, twin_id)) is None:
            return None
        return (folded_state(key, row[0], row[1], row[2]),
                TwinAccess(twin_id, row[3], row[4], row[5]))

    async def twin_log_after(self, twin_id: str, after: int, limit: int = 512,
                             ) -> list[tuple[int, bytes]]:
        """The twin's logged updates after version ``after`` (at most ``limit``, oldest first),
        opened: applied in order to a document at ``after`` they make it the twin at the last
        one's version. Empty, or starting past ``after + 1``, when compaction folded what
        follows ``after`` into the state (then diff the state instead)."""
        async with self.connection() as conn:
            cur = await conn.execute(
                "select u.version, u.update from twin_updates u join twins t using (twin_id)"
                " where u.twin_id = %s and u.version > greatest(%s, t.compacted)"
                " and u.version <= t.version order by u.version limit %s",
                (twin_id, after, limit),
            )
            rows = await cur.fetchall()
        if not rows or (key := await key_of(self.keys, twin_id)) is None:
            return []
        return [(v, key.open(f"update:{v}", u)) for v, u in rows]
