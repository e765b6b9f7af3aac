"""Restarts the stack's crashed children, as Fly.io restarts a dead machine in production.

``memorybank up`` starts it last, as one more child recorded in ``stack.json`` under the name
``supervisor``; ``down`` stops it first, so it never fights a deliberate stop. Every ``POLL_S`` it
reads ``stack.json`` and restarts each recorded child whose process is gone (a crash or a
``kill -9``) through the launcher's own restart (same spec, same ports, under the state lock),
with the backoff and crash-loop cap of ``devstack.restarts``. Children in ``held`` (stopped by
``Stack.stop_process``), children of a lost region (``lost_regions``: a dead region's machines
cannot be restarted; restarted once it is back) and children with no record (never started, or
stopped by ``down``) are left alone. It covers every child, Patroni's processes included
(Patroni itself restarts its Postgres). Every ``RECLONE_EVERY_S`` it also has a replica re-cloned
that fell behind the leader's WAL past its slot's bound (``devstack.reclone``). Run as
``python -m devstack.supervisor --data-dir D``; logs to ``logs/supervisor.log``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from devstack import apps, children, procs, reclone, state
from devstack.health import TcpCheck
from devstack.layout import region_of_child
from devstack.procs import ProcessRecord, ProcessSpec
from devstack.restarts import ChildBackoff, Policy

NAME = "supervisor"
POLL_S = 0.5
RECLONE_EVERY_S = 5.0
DEFAULT_POLICY = Policy()


def spec(data_dir: Path, *, pg_bin: Path | None, redis_server: Path | None,
         factories: Mapping[str, str], hub_workers: int) -> ProcessSpec:
    """How ``up`` starts it: with what the launcher was given, so restarts use the same specs."""
    argv = [sys.executable, "-m", "devstack.supervisor", "--data-dir", str(data_dir),
            "--hub-workers", str(hub_workers)]
    if pg_bin is not None:
        argv += ["--pg-bin", str(pg_bin)]
    if redis_server is not None:
        argv += ["--redis-server", str(redis_server)]
    for service, factory in factories.items():
        if apps.DEFAULT_FACTORIES.get(service) != factory:
            argv += ["--factory", f"{service}={factory}"]
    return ProcessSpec(name=NAME, argv=tuple(argv), env=apps.base_env(),
                       log=children.log_path(data_dir, NAME), cwd=apps.REPO_ROOT,
                       check=TcpCheck("127.0.0.1", 0))  # never probed: it serves nothing


def stop(record: ProcessRecord) -> None:
    """SIGTERM to the supervisor alone: the children it restarted are its descendants, and
    ``procs.stop`` would kill them with it (``down`` stops them next, each its own way)."""
    proc = procs.find(record)
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except psutil.TimeoutExpired:
        proc.kill()


class Supervisor:
    def __init__(self, data_dir: Path, restart: Callable[[str], bool],
                 policy: Policy = DEFAULT_POLICY, say: Callable[[str], None] = print) -> None:
        self.data_dir, self._restart, self.policy, self._say = data_dir, restart, policy, say
        self.books: dict[str, ChildBackoff] = {}
        self.lost: set[str] = set()
        self.recloned_at = 0.0

    def tick(self, now: float) -> bool:
        """One poll; False when this supervisor should exit (``down`` ran, or another replaced
        it in ``stack.json``)."""
        current = state.load(self.data_dir)
        me = current.record(NAME) if current else None
        if current is None or me is None or me.pid != os.getpid():
            return False
        lost = set(current.lost_regions)
        for region in sorted(lost ^ self.lost):
            self._say(f"region {region} " + ("lost: leaving its children dead" if region in lost
                                             else "is back: restarting its children"))
        self.lost = lost
        for name in children.all_names(current):
            record = current.record(name)
            if name in current.held or record is None or \
                    region_of_child(current.topology, name) in lost:
                self.books.pop(name, None)  # a fresh start once it is ours again
                continue
            book = self.books.setdefault(name, ChildBackoff())
            decision = book.observe(now, procs.is_alive(record), self.policy)
            if decision == "restart":
                self._say(f"{name} (pid {record.pid}) died; restart {book.failures}")
                try:
                    if self._restart(name):
                        self._say(f"{name} restarted and healthy")
                except Exception as exc:  # one child's failing start must not stop the rest
                    self._say(f"{name} failed to restart: {exc}")
            elif decision == "give_up":
                self._say(f"CRASH LOOP: {name} died {book.failures} times without staying up "
                          f"{self.policy.healthy_reset_s:.0f} s; NOT restarting it any more. "
                          f"See {children.log_path(self.data_dir, name)}, then `memorybank up`.")
        if current.topology is not None and current.topology.postgres.patroni and \
                now - self.recloned_at >= RECLONE_EVERY_S:
            self.recloned_at = now
            try:
                for name in reclone.check(current.topology.postgres):
                    self._say(f"pg-{name} needs WAL the leader no longer holds: re-cloning it")
            except Exception as exc:  # a check that fails must not stop the restarts
                self._say(f"replica re-clone check failed: {exc}")
        return True


def main(argv: list[str] | None = None) -> int:
    from devstack.launcher import Stack  # the launcher imports this module

    parser = argparse.ArgumentParser(prog="python -m devstack.supervisor")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pg-bin", type=Path)
    parser.add_argument("--redis-server", type=Path)
    parser.add_argument("--hub-workers", type=int, default=1)
    parser.add_argument("--factory", action="append", default=[], help="SERVICE=module:factory")
    args = parser.parse_args(argv)
    factories = dict(f.split("=", 1) for f in args.factory)
    stack = Stack(args.data_dir, pg_bin=args.pg_bin, redis_server=args.redis_server,
                  factories=factories, hub_workers=args.hub_workers)

    def say(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    supervisor = Supervisor(stack.data_dir, stack.restart_crashed, say=say)
    say(f"supervising {stack.data_dir}")
    began = time.monotonic()
    # ``up`` records us right after the spawn; until then a False only means "not yet".
    while supervisor.tick(time.monotonic()) or time.monotonic() - began < 10:
        time.sleep(POLL_S)
    say("no longer recorded in stack.json; exiting")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
