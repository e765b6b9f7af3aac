"""``export_twin``'s read: everything held about a twin, composed of the other reads on one
connection (the caller holds it in one repeatable-read snapshot, so the parts agree): the twin
and its grants (``manage``: the owner or a superuser), its events, its trajectory and its
artifacts' metadata, each list oldest first and at most ``MAX_EXPORT_ITEMS``, and the twin's
audit trail. Every personal value is stored sealed under the twin's data key and answered opened
(``keys``: the replica's keyring); the answer is built in memory and written nowhere."""

from __future__ import annotations

from mbwire import ConsistencyToken, Principal, cells
from mbwire.types_events import MAX_EXPORT_ITEMS, TwinExport
from regional.reads.artifacts import artifact_list_on
from regional.reads.audit import audit_page_on
from regional.reads.history import events_page, trajectory_page
from regional.reads.twins import Conn, grant_list_of, twin_row_allowed_on
from sealing import Keyring


async def twin_export_on(conn: Conn, keys: Keyring, principal: Principal, twin_id: str,
                         answered: ConsistencyToken, *, cap: int = MAX_EXPORT_ITEMS,
                         audit_ref: str | None = None) -> TwinExport:
    """The export as ``conn``'s snapshot has it; ``answered``: the position it reflects;
    ``audit_ref``: the twin's pseudonym in the audit trail (its records are exported too)."""
    twin = await twin_row_allowed_on(conn, keys, principal, twin_id, "manage")
    grants = grant_list_of(principal, twin_id, twin)
    # Access is decided once, above: the parts need no check of their own.
    key = await keys.key(twin_id)
    events = await events_page(conn, key, limit=cap)
    trajectory = await trajectory_page(conn, key, limit=cap)
    artifacts = await artifact_list_on(conn, twin_id, cap + 1, keys)
    audit, more_audit = (await audit_page_on(conn, audit_ref, limit=cap) if audit_ref
                         else ([], False))
    return TwinExport(
        twin_id=twin_id, owner=twin.owner_sub, version=twin.version, profile=twin.profile,
        grants=grants.grants, events=events.items, trajectory_version=trajectory.version,
        trajectory=trajectory.steps, artifacts=artifacts[:cap], residency=cells.served().zone,
        audit=audit,
        truncated=(events.next_cursor is not None or trajectory.next_cursor is not None
                   or len(artifacts) > cap or more_audit),
        consistency_token=str(answered),
    )
