"""``disaster``: both members that may lead are lost with their data directories (a bad disk
controller, an operator's ``rm -rf``, a zone gone with both), so no node of the cell can lead
and none may be promoted: the replicas are not candidates. The cell comes back from its backup
store (devstack/backup.py) by the runbook's command, the drill's one manual step:

1. ``lose_both``: the two members are held (the supervisor must not restart them), SIGKILLed
   with their Postgres, and their data directories deleted.
2. ``restore_from_backups`` (after the hold): ``memorybank restore --latest --target <the old
   leader's data directory> --settle``, i.e. the newest base backup and every WAL segment the
   receiver got, up to the one it was writing, replayed to its end and promoted; then both
   members are let go: the restored one leads (Patroni allows it: it was the leader named in
   the synchronous key), the other clones from it, the replicas follow its new timeline
   (``pg_rewind`` where they had received more than the archive) and central and the hubs
   reconnect by themselves.
3. ``failover.settle`` closes the cycle.

The report's RPO is what the verification finds: every acknowledged write the load made is
looked up on the restored primary, and each one lost is named. The archive is asynchronous
(``pg_receivewal`` without ``--synchronous``): what the leader had written and not yet sent to
the receiver when it died is lost, the archive lag at that moment (``memorybank backup list``
shows it; over loopback, milliseconds)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import backup, patroni, postgres, procs, restore
from devstack.errors import StackError
from devstack.launcher import Stack
from devstack.layout import CANDIDATES
from ops.drills.machines import machine, signal_all

if TYPE_CHECKING:
    from ops.drills.faults import Ctx

def _members() -> list[str]:
    return [f"pg-{m}" for m in CANDIDATES]


def member_dir(stack: Stack, member: str) -> Path:
    """A member's Postgres data directory."""
    return postgres.pg_data_root(stack.data_dir, procs.unprivileged()) / member


def _cell(ctx: Ctx) -> backup.BackupCell:
    links = ctx.stack.links()
    return backup.cell_of(ctx.stack.data_dir, links.cell if links else None)


async def lose_both(ctx: Ctx) -> None:
    pg = await asyncio.to_thread(patroni.live_postgres, ctx.stack.topology().postgres)
    if pg.leader is None:
        raise StackError("no Postgres member leads: nothing to lose")
    ctx.lost_leader = pg.leader
    names = _members()
    await asyncio.to_thread(ctx.stack.hold_processes, names)
    doomed = [p for name in names for p in machine(ctx.stack, name)]
    sent = signal_all(doomed, signal.SIGKILL)
    await asyncio.sleep(0.5)  # the kernel reaps them: their files are closed
    for member in CANDIDATES:
        shutil.rmtree(member_dir(ctx.stack, member), ignore_errors=True)
    ctx.note(f"both members that may lead lost: SIGKILL {', '.join(names)} ({len(sent)} pids), "
             f"their data directories deleted; {pg.leader} led")


async def restore_from_backups(ctx: Ctx) -> None:
    member = ctx.lost_leader or CANDIDATES[0]
    target = member_dir(ctx.stack, member)
    began = time.monotonic()
    built = await asyncio.to_thread(restore.restore, _cell(ctx), target,
                                    port=restore.free_port())
    await asyncio.to_thread(restore.settle, built)
    took = time.monotonic() - began
    ctx.manual.append(f"the runbook's command: `memorybank restore --latest --target {target} "
                      f"--settle` ({took:.1f} s: base backup {built.backup_id} and the WAL "
                      "after it)")
    ordered = [f"pg-{member}"] + [n for n in _members() if n != f"pg-{member}"]
    await asyncio.to_thread(ctx.stack.hold_processes, ordered, False)
    for name in ordered:  # the restored one first: the other clones from it
        await asyncio.to_thread(ctx.stack.start_process, name)
    ctx.note(f"restored {member} from the backup store in {took:.1f} s and let both members "
             f"go ({time.monotonic() - began:.1f} s in all)")
