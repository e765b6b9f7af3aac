"""A twin's audit trail on the replica (``audit_page_on``): its chained records by the twin's
pseudonym, oldest first, paged by ``seq``. ``get_twin_audit`` and the twin export call it."""

from __future__ import annotations

from mbwire import cells
from mbwire.audit import AuditEntry
from regional.reads.twins import Conn

_AT = "to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_PAGE_SQL = (f"select seq, {_AT}, actor, action, request_id, outcome, region from audit_log"
             " where twin_ref = %s and seq > %s order by seq limit %s")


async def audit_page_on(conn: Conn, ref: str, *, limit: int,
                        after: int = 0) -> tuple[list[AuditEntry], bool]:
    """Up to ``limit`` records of the twin named ``ref`` after ``seq`` ``after``, and whether
    more follow. The caller has checked access to the twin on the same snapshot."""
    cur = await conn.execute(_PAGE_SQL, (ref, after, limit + 1))
    rows = await cur.fetchall()
    cell = cells.served().name
    items = [AuditEntry(seq=r[0], at=r[1], actor=r[2], action=r[3], request_id=r[4],
                        outcome=r[5], region=r[6], cell=cell) for r in rows[:limit]]
    return items, len(rows) > limit
