"""What dies with a machine: a child's whole process tree and, for a Postgres node, its
postmaster's tree too (Patroni starts Postgres in a session of its own, so the node's Patroni
and its Postgres are two trees). Found from ``stack.json`` (PID and create time) and the node's
``postmaster.pid``, so only the stack's own processes are ever signalled."""

from __future__ import annotations

import signal

import psutil

from devstack import liveness, procs, state
from devstack.launcher import Stack


def tree(pid: int) -> list[psutil.Process]:
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def signal_all(processes: list[psutil.Process], sig: signal.Signals) -> list[int]:
    sent = []
    for p in processes:
        try:
            p.send_signal(sig)  # psutil refuses a PID recycled since it was looked up
            sent.append(p.pid)
        except psutil.Error:
            pass
    return sent


def machine(stack: Stack, name: str) -> list[psutil.Process]:
    """Every process of the child ``name``: what a SIGKILL of its machine takes."""
    current = state.load(stack.data_dir)
    record = current.record(name) if current else None
    proc = procs.find(record) if record else None
    found = tree(proc.pid) if proc else []
    master = liveness.postmaster(stack.data_dir, name)
    return found + (tree(master.pid) if master else [])
