"""The ``backup`` child of a cell's stack: keeps the cell's backups going (devstack/backup.py).

- **The WAL receiver**: ``barman receive-wal`` (``pg_receivewal`` over the cell's slot), as a
  child of this process, so stopping the stack's child stops it. It exits when its connection
  drops (a switchover, a failover): it is started again after ``RETRY_S`` (doubling to
  ``RETRY_MAX_S`` while it keeps failing) and reconnects to whichever member leads, where the
  slot is waiting (a Patroni permanent slot). Before each start a receiver left by someone else
  holding barman's lock is stopped (``receive-wal --stop``).
- **Maintenance**: ``barman cron`` every ``CRON_EVERY_S`` while the receiver runs (so cron never
  starts one of its own): completed WAL segments into the archive, backups waiting for their
  WAL checked, the retention policy applied.
- **Base backups**: the first as soon as the receiver streams (a new cell has one seconds after
  ``up``), then whenever the newest is older than ``BACKUP_EVERY_S``; one at a time, in a child
  process, so the receiver is watched meanwhile.

Run as ``python -m devstack.backup_agent --data-dir D --cell C --base PORT --regions R``; logs
to ``logs/backup.log`` (barman's own log is in the store: ``backups/barman.log``)."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from devstack import backup, backup_wal
from devstack.errors import StackError
from devstack.ports import PortPlan
from devstack.postgres import tool_env

POLL_S = 0.5
PROBE_EVERY_S = 5.0     # is the receiver streaming? (a query on the leader)
RETRY_S = 1.0
RETRY_MAX_S = 10.0
CRON_EVERY_S = 30.0


def backup_due(done: list[backup.BaseBackup], now: datetime,
               every_s: float = backup.BACKUP_EVERY_S) -> bool:
    """Whether to take a base backup: none is complete (or being taken), or the newest
    complete one ended more than ``every_s`` ago."""
    if any(b.status in ("STARTED", "WAITING_FOR_WALS") for b in done):
        return False
    ends = [datetime.fromisoformat(b.end_time) for b in done if b.status == "DONE" and b.end_time]
    return not ends or (now - max(ends)).total_seconds() >= every_s


class Agent:
    def __init__(self, cell: backup.BackupCell, plan: PortPlan) -> None:
        self.cell, self.plan = cell, plan
        self.receiver: subprocess.Popen[bytes] | None = None
        self.backing_up: subprocess.Popen[bytes] | None = None
        self.retry_s, self.start_at, self.cron_at, self.backup_check_at = RETRY_S, 0.0, 0.0, 0.0
        self.streaming, self.probe_at = False, 0.0

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        # Output goes to our log (stdout); same session, so our stop reaches it.
        return subprocess.Popen(backup.barman_argv(self.cell, *args), env=tool_env(),
                                stdin=subprocess.DEVNULL)

    def tick(self, now: float) -> None:
        if self.receiver is not None and self.receiver.poll() is not None:
            say(f"receiver exited ({self.receiver.returncode}); again in {self.retry_s:.0f} s")
            self.receiver, self.start_at, self.streaming = None, now + self.retry_s, False
            self.retry_s = min(self.retry_s * 2, RETRY_MAX_S)
        if self.receiver is None and now >= self.start_at:
            subprocess.run(backup.barman_argv(self.cell, "receive-wal", "--stop", self.cell.name),
                           env=tool_env(), capture_output=True, check=False, timeout=60)
            self.receiver = self._spawn("receive-wal", self.cell.name)
        if now >= self.probe_at or not self.streaming:
            self.probe_at = now + PROBE_EVERY_S
            self.streaming = (self.receiver is not None
                              and backup_wal.receiver(self.plan) is not None)
            if self.streaming:
                self.retry_s = RETRY_S
        streaming = self.streaming and self.receiver is not None
        if self.backing_up is not None and self.backing_up.poll() is not None:
            say(f"base backup finished ({self.backing_up.returncode})")
            self.backing_up = None
        if streaming and self.backing_up is None and now >= self.backup_check_at:
            self.backup_check_at = now + CRON_EVERY_S
            try:
                due = backup_due(backup.backups(self.cell), datetime.now(UTC))
            except StackError as exc:
                say(f"cannot list backups: {exc}")
                due = False
            if due:
                say("taking a base backup")
                self.backing_up = self._spawn("backup", "--wait", "--wait-timeout",
                                              str(backup.BACKUP_TIMEOUT_S), self.cell.name)
        if streaming and now >= self.cron_at:
            self.cron_at = now + CRON_EVERY_S
            subprocess.run(backup.barman_argv(self.cell, "-q", "cron"), env=tool_env(),
                           stdin=subprocess.DEVNULL, check=False, timeout=300)

    def stop(self) -> None:
        for child in (self.backing_up, self.receiver):
            if child is not None and child.poll() is None:
                child.terminate()
        for child in (self.backing_up, self.receiver):
            if child is not None:
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.backup_agent")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--base", type=int, required=True, help="the stack's port block")
    parser.add_argument("--regions", required=True, help="comma list, as the stack's")
    args = parser.parse_args(argv)
    cell = backup.cell_of(args.data_dir, args.cell)
    agent = Agent(cell, PortPlan(base=args.base, regions=tuple(args.regions.split(","))))

    def on_term(*_: object) -> None:
        # Raised wherever the agent is, a blocking barman call included (``barman cron`` may
        # take minutes; subprocess.run kills its child on the way out): the stack's stop is
        # honoured at once, not after the stop's grace period ends in a SIGKILL.
        raise Stopping

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    say(f"keeping the backups of cell {cell.name} in {cell.store}")
    try:
        while True:
            agent.tick(time.monotonic())
            time.sleep(POLL_S)
    except Stopping:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second stop must not cut the cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        agent.stop()
    say("stopped")
    return 0


class Stopping(Exception):
    """The stack stops the agent (SIGTERM or SIGINT)."""


if __name__ == "__main__":
    sys.exit(main())
