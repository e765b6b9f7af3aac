"""Where a cell's WAL receiver stands (devstack/backup.py: ``pg_receivewal`` over the slot
``barman``), seen from the leader: how far the archive trails it, waiting until a given write is
in the backup store, and closing the current WAL segment so that everything written is in a
complete segment of the archive (what a restore of a running cell does first)."""

from __future__ import annotations

import time

import msgspec
import psycopg

from devstack.backup import RECEIVER, BackupCell, conninfo
from devstack.errors import StackError
from devstack.ports import PortPlan
from devstack.state import load

SETTLE_S = 0.2                      # sent to the receiver over loopback -> in its file
RECEIVER_SQL = ("select pg_current_wal_lsn()::text, sent_lsn::text,"
                " greatest(write_lsn, flush_lsn)::text, flush_lsn::text,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::bigint"
                " from pg_stat_replication"
                f" where application_name = '{RECEIVER}' and state = 'streaming'")


class Receiver(msgspec.Struct, frozen=True, kw_only=True):
    """Where the WAL receiver stands, seen from the leader. ``sent_lsn``: the WAL handed to it
    (over loopback it is in the receiver's file a moment later: pg_receivewal writes each message
    as it arrives); ``written_lsn``, ``flushed_lsn``: what it last reported, which without
    ``--synchronous`` it does only every 10 s (its status interval) and at each segment's end.
    ``behind_bytes``, the archive lag: WAL the leader has written and not yet sent to it."""

    leader_lsn: str
    sent_lsn: str
    written_lsn: str
    flushed_lsn: str
    behind_bytes: int


def receiver(plan: PortPlan) -> Receiver | None:
    """None when the receiver is not streaming (or no member leads)."""
    try:
        with psycopg.connect(conninfo(plan), autocommit=True) as conn:
            row = conn.execute(RECEIVER_SQL).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return Receiver(leader_lsn=str(row[0]), sent_lsn=str(row[1] or ""),
                    written_lsn=str(row[2] or ""), flushed_lsn=str(row[3] or ""),
                    behind_bytes=int(row[4] or 0))


def wait_received(plan: PortPlan, lsn: str, timeout_s: float = 30.0) -> Receiver:
    """Once the receiver has been sent WAL up to ``lsn`` (a commit acknowledged by then is in
    the backup store: its segment if complete, else the partial one a restore copies too);
    then a pause of ``SETTLE_S`` for pg_receivewal to write what it has been sent."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = receiver(plan)
        if now is not None and now.sent_lsn and lsn_int(now.sent_lsn) >= lsn_int(lsn):
            time.sleep(SETTLE_S)
            return now
        if time.monotonic() > deadline:
            raise StackError(f"the backup receiver has not received {lsn} after {timeout_s} s "
                             f"(it stands at {now.sent_lsn if now else 'nothing'})")
        time.sleep(0.02)


def close_segment(cell: BackupCell, plan: PortPlan, timeout_s: float = 30.0) -> bool:
    """Has the leader switch to a new WAL segment, writes a record in the next, and waits
    until the receiver has that record and has closed the segment it left (renamed from
    ``.partial`` after its fsync): then every write acknowledged
    before is in a complete segment (barman restores a segment still being streamed only on a
    timeline that already has a complete one, so not right after a failover). False when no
    member leads (the cell is down)."""
    try:
        with psycopg.connect(conninfo(plan), autocommit=True) as conn:
            closed = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
            # A commit record in the next segment: barman archives a streamed segment only
            # once the receiver has begun the next one.
            conn.execute("select pg_current_xact_id()")
            after = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    except psycopg.Error:
        return False
    if closed is None or after is None:
        return False
    name = str(closed[0])
    server = cell.store / cell.name
    places = [server / "streaming" / name, server / "wals" / name[:16] / name]
    wait_received(plan, str(after[0]), timeout_s)
    deadline = time.monotonic() + timeout_s
    while not any(p.exists() for p in places):
        if time.monotonic() > deadline:
            raise StackError(f"the backup receiver has not closed WAL segment {name} after "
                             f"{timeout_s:.0f} s (see logs/backup.log)")
        time.sleep(0.05)
    return True


def plan_of(cell: BackupCell) -> PortPlan | None:
    """The ports of the cell's stack (None when no stack was ever started there)."""
    current = load(cell.data_dir)
    return None if current is None else PortPlan(base=current.port_base,
                                                 regions=tuple(current.regions))


def lsn_int(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)
