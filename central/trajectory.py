"""update_trajectory at central: append step ``expected_version + 1`` if the trajectory is still
at ``expected_version``, in one transaction with its ``trajectory`` feed row.

No lock is taken: the step's primary key (twin, version) decides between two concurrent appends
of the same version (the second waits on the first's index entry, then finds it and answers the
409). The 409 carries what the caller has not seen, so it can rebase at once.

A step's action and evidence are stored sealed under the twin's data key (sealing/), as
``step:<version>:action`` and ``step:<version>:evidence``: the version is known before the insert
(``expected_version + 1``), so each seal binds the step's place as well as the twin. The 409's
steps are opened with the same key. The key is looked up before the transaction opens (no key
store round trip inside it); a twin without one does not exist here (404)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency

from central import replay
from central.store import Store, WriteTx
from mbhttp import require_principal
from mbhttp.routes import read_body
from mbwire import Forbidden, NotFound, Principal, Problem
from mbwire.access import TWIN_WRITABLE_SQL, sql_params
from mbwire.checks_events import check_trajectory
from mbwire.decode import check_twin_id
from mbwire.errors import VersionConflict
from mbwire.types_events import MAX_CONFLICT_STEPS, TrajectoryIn, TrajectoryWritten
from sealing import Keyring, SealError, TwinKey

log = logging.getLogger("memorybank.central")
StoreDep = NamedDependency[Store]
STEPS_SQL = (
    "select version, action, evidence,"
    " to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " from trajectory_steps where twin_id = %s and version > %s order by version limit %s"
)


def opened_step(key: TwinKey, version: int, action: bytes, evidence: bytes | None
                ) -> tuple[str, Any]:
    """A stored step's action and evidence, opened (a 500 naming the step, never its content,
    when a value does not open: it was altered or moved from another row)."""
    try:
        return (key.open(f"step:{version}:action", action).decode(),
                None if evidence is None else key.open_json(f"step:{version}:evidence", evidence))
    except SealError:
        log.error("trajectory step %d of twin %s does not open under its key", version,
                  key.twin_id)
        raise Problem(f"twin {key.twin_id}'s stored step {version} does not open under its key "
                      "(altered, or moved from another row)") from None


async def _conflict(tx: WriteTx, key: TwinKey, twin_id: str, expected: int
                    ) -> VersionConflict:
    cur = await tx.conn.execute(
        "select coalesce(max(version), 0) from trajectory_steps where twin_id = %s", (twin_id,))
    row = await cur.fetchone()
    current = int(row[0]) if row else 0
    cur = await tx.conn.execute(STEPS_SQL, (twin_id, expected, MAX_CONFLICT_STEPS + 1))
    rows = await cur.fetchall()
    steps = []
    for r in rows[:MAX_CONFLICT_STEPS]:
        action, evidence = opened_step(key, r[0], r[1], r[2])
        steps.append({"version": r[0], "action": action, "evidence": evidence,
                      "created_at": r[3]})
    return VersionConflict(
        f"trajectory of twin {twin_id} is at version {current}, not {expected}",
        current_version=current, steps=steps, more=len(rows) > MAX_CONFLICT_STEPS)


async def append_step(store: Store, keyring: Keyring, who: Principal, twin_id: str,
                      step: TrajectoryIn) -> TrajectoryWritten:
    key = await keyring.key(twin_id)  # 404 for a twin without one (unknown, or erased)
    async with store.write() as tx:
        cur = await tx.conn.execute(
            f"select {TWIN_WRITABLE_SQL} from twins t where t.twin_id = %(twin)s",
            {"twin": twin_id, **sql_params(who)})
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"twin {twin_id} does not exist")
        if not row[0]:
            raise Forbidden(f"{who.sub} may not write twin {twin_id}")
        cur = await tx.conn.execute(
            "select coalesce(max(version), 0) from trajectory_steps where twin_id = %s",
            (twin_id,))
        head = await cur.fetchone()
        version = step.expected_version + 1
        if head is None or int(head[0]) != step.expected_version:
            raise await _conflict(tx, key, twin_id, step.expected_version)
        cur = await tx.conn.execute(
            "insert into trajectory_steps (twin_id, version, action, evidence, principal)"
            " values (%s, %s, %s, %s, %s) on conflict do nothing returning 1",
            (twin_id, version, key.seal(f"step:{version}:action", step.action.encode()),
             None if step.evidence is None
             else key.seal_json(f"step:{version}:evidence", step.evidence), who.sub))
        if await cur.fetchone() is None:  # a concurrent append took this version first
            raise await _conflict(tx, key, twin_id, step.expected_version)
        tx.feed.append(("trajectory", twin_id, version))
        tx.answer = TrajectoryWritten(twin_id=twin_id, version=version, consistency_token="")
    return replay.answered(tx)


async def post_trajectory(request: Request[Any, Any, Any], store: StoreDep,
                          keyring: NamedDependency[Keyring]) -> Response[bytes]:
    twin_id = check_twin_id(str(request.path_params["twin_id"]))
    step = check_trajectory(await read_body(request))
    who = require_principal(request)
    # Keyed: a retry of an append that committed answers it, not a 409 naming its own step.
    return await replay.answer(request, lambda: append_step(store, keyring, who, twin_id, step),
                               who.sub)


HANDLERS: dict[str, Callable[..., Any]] = {"update_trajectory": post_trajectory}
