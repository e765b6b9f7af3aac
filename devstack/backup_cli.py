"""``memorybank backup list|now|check`` and ``memorybank restore``: each cell's backups
(devstack/backup.py) and point-in-time recovery (devstack/restore.py) from the command line.

    memorybank backup list [--cell C] [--json]   base backups and where the WAL archive stands
    memorybank backup now [--cell C]             a base backup now, waiting for it
    memorybank backup check [--cell C]           barman's checks and pg_verifybackup (exit 0 iff
                                                 all pass)
    memorybank restore --to-time T | --to-lsn L | --latest --target DIR [--cell C]
                       [--backup ID] [--port N] [--settle]  a new cluster directory, ready to
                                                 start (--settle: recovered, ready to adopt)"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import msgspec

from devstack import backup, backup_wal, restore
from devstack.errors import ConfigError
from devstack.launcher import Stack
from devstack.ports import PortPlan
from devstack.state import load


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser) -> None:
    verbs = sub.add_parser("backup", help="each cell's base backups and WAL archive (barman)")
    verb = verbs.add_subparsers(dest="verb", required=True)
    for name, text in (("list", "each cell's base backups and how far its WAL is archived"),
                       ("now", "a base backup of each cell (or one) now, waiting for it"),
                       ("check", "barman's checks and pg_verifybackup of the latest backup")):
        one = verb.add_parser(name, parents=[common], help=text)
        one.add_argument("--cell", default=None, help="only this cell (default: every)")
        if name == "list":
            one.add_argument("--json", action="store_true", help="print JSON")
    rest = sub.add_parser("restore", parents=[common], help="build a new Postgres cluster "
                          "directory from a cell's backups, up to a time or an LSN")
    to = rest.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-time", type=_aware_time, metavar="T",
                    help="ISO 8601 with a time zone, e.g. 2026-12-05T10:30:00Z")
    to.add_argument("--to-lsn", metavar="L", help="a WAL position, e.g. 0/1A2B3C4")
    to.add_argument("--latest", action="store_true",
                    help="everything the archive holds (the segment being streamed too)")
    rest.add_argument("--target", type=Path, required=True,
                      help="a new (or empty) directory for the cluster")
    rest.add_argument("--cell", default=None, help="the cell (default: the home cell)")
    rest.add_argument("--backup", default=None, metavar="ID",
                      help="the base backup to start from (default: the closest before T)")
    rest.add_argument("--port", type=int, default=restore.DEFAULT_PORT,
                      help=f"where the restored cluster listens (default {restore.DEFAULT_PORT})")
    rest.add_argument("--settle", action="store_true",
                      help="also run its recovery to the end and give it back its own settings:"
                           " ready to become the cell's primary (the README's runbook)")


def _aware_time(raw: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{raw!r} has no time zone (add Z or +HH:MM)")
    return when


def cells(data_dir: Path, only: str | None) -> list[tuple[backup.BackupCell, PortPlan]]:
    """Every cell of the fleet whose stack lives in ``data_dir`` (or ``only``), with its ports."""
    stack = Stack(data_dir)
    links = stack.links()
    found = [(links.cell if links else None, stack.data_dir)]
    found += [(name, other.data_dir) for name, other in stack.cell_stacks().items()]
    out = []
    for name, directory in found:
        cell = backup.cell_of(directory, name)
        current = load(directory)
        if current is None or (only is not None and cell.name != only):
            continue
        out.append((cell, PortPlan(base=current.port_base, regions=tuple(current.regions))))
    if not out:
        raise ConfigError(f"no cell {only!r} in this stack" if only else "no cells here")
    return out


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cmd_backup(args: argparse.Namespace, data_dir: Path) -> int:
    chosen = cells(data_dir, args.cell)
    if args.verb == "now":
        for cell, _ in chosen:
            print(f"cell {cell.name}: taking a base backup ...", file=sys.stderr, flush=True)
            took = backup.take(cell)
            print(f"cell {cell.name}: {took.backup_id} {took.status} {took.begin_time} -> "
                  f"{took.end_time} {_size(took.size_bytes)} (WAL {took.begin_lsn} to "
                  f"{took.end_lsn})", flush=True)
        return 0
    if args.verb == "check":
        ok = True
        for cell, _ in chosen:
            for name, passed, hint in backup.check(cell):
                ok &= passed
                print(f"cell {cell.name}: {name:<48} {'OK' if passed else 'FAILED'} {hint}")
        return 0 if ok else 1
    report = {}
    for cell, plan in chosen:
        listed, receiving = backup.backups(cell), backup_wal.receiver(plan)
        report[cell.name] = {"store": str(cell.store), "backups": listed, "receiver": receiving}
        if args.json:
            continue
        print(f"cell {cell.name}: backup store {cell.store}")
        if receiving is None:
            print("  WAL: the receiver is not streaming now (see logs/backup.log)")
        else:
            print(f"  WAL: received up to {receiving.sent_lsn} (reported written "
                  f"{receiving.written_lsn}, flushed {receiving.flushed_lsn}); the leader is at "
                  f"{receiving.leader_lsn}, {receiving.behind_bytes} bytes ahead")
        for b in listed:
            print(f"  {b.backup_id}  {b.status:<16} {b.begin_time[:19]} -> {b.end_time[:19]}"
                  f"  {_size(b.size_bytes):>10}  WAL {b.begin_lsn} to {b.end_lsn}"
                  f" (timeline {b.timeline})  {b.retention}")
        if not listed:
            print("  no base backup yet")
    if args.json:
        print(msgspec.json.encode(report).decode())
    return 0


def cmd_restore(args: argparse.Namespace, data_dir: Path) -> int:
    (cell, _), = cells(data_dir, args.cell) if args.cell else cells(data_dir, None)[:1]
    print(f"cell {cell.name}: restoring into {args.target} ...", file=sys.stderr, flush=True)
    done = restore.restore(cell, args.target, to_time=args.to_time, to_lsn=args.to_lsn,
                           backup_id=args.backup, port=args.port)
    upto = done.to_time or done.to_lsn or "the end of the archived WAL"
    if args.settle:
        restore.settle(done)
        print(f"restored cell {done.cell} from base backup {done.backup_id} up to {upto} into "
              f"{done.target}, recovered and stopped: move it to the cell's pg/primary (README:"
              " \"Backups and point-in-time recovery\")")
        return 0
    print(f"restored cell {done.cell} from base backup {done.backup_id} up to {upto} into "
          f"{done.target}\nstart it (recovery runs, then it promotes and takes writes on port "
          f"{done.port}):\n  {done.start_command()}\nthen: psql {done.url}\nto make it the "
          "cell's new primary, see README: \"Backups and point-in-time recovery\".")
    return 0
