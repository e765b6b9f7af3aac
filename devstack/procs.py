"""Children of a stack: how one is started detached, recognised later, and stopped.

A child is recorded by PID *and* its kernel create time (psutil): a PID alone may have been
recycled by an unrelated process since ``up``, and that one must never be signalled."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psutil

from devstack.health import Check, tail

# The user Postgres runs as when we are root (it refuses to run as root).
UNPRIVILEGED_USER = "nobody"


@dataclass(frozen=True, slots=True)
class RunAs:
    user: str
    uid: int
    gid: int


def unprivileged() -> RunAs | None:
    """Who to run Postgres as: ``nobody`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return RunAs(UNPRIVILEGED_USER, entry.pw_uid, entry.pw_gid)


def _privileges(run_as: RunAs | None) -> tuple[int | None, int | None, list[int] | None]:
    """Popen's user, group and extra_groups; extra_groups=[] drops root's supplementary groups."""
    if run_as is None:
        return None, None, None
    return run_as.uid, run_as.gid, []


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """Everything needed to (re)start one child."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    log: Path
    check: Check
    cwd: Path
    stop_signal: signal.Signals = signal.SIGTERM
    run_as: RunAs | None = None
    # How long the first health check may take (central applies migrations at start).
    start_timeout: float = 60.0


class ProcessRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A started child, as stored in ``stack.json`` (never its environment: it holds secrets)."""

    name: str
    pid: int
    create_time: float
    command: list[str]
    log: str
    stop_signal: int = signal.SIGTERM


def spawn(spec: ProcessSpec) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Starts a child in its own session (so a Ctrl-C in our terminal does not reach it), with
    stdout and stderr appended to its log file."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    spec.cwd.mkdir(parents=True, exist_ok=True)
    with spec.log.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n".encode())
        log.flush()
        user, group, extra_groups = _privileges(spec.run_as)
        proc = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=spec.env,
            cwd=spec.cwd,
            start_new_session=True,
            close_fds=True,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    record = ProcessRecord(
        name=spec.name,
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        command=list(spec.argv),
        log=str(spec.log),
        stop_signal=int(spec.stop_signal),
    )
    return proc, record


def find(record: ProcessRecord) -> psutil.Process | None:
    """The live process a record names, or None when it is gone (or its PID was recycled)."""
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 0.1:
            return None
    except psutil.Error:
        return None
    return proc if _running(proc) else None


def is_alive(record: ProcessRecord) -> bool:
    return find(record) is not None


def _running(proc: psutil.Process) -> bool:
    """False once the process has exited, zombie included: a child orphaned by an earlier ``up``
    stays a zombie until PID 1 gets round to reaping it, which can take seconds."""
    try:
        if proc.status() != psutil.STATUS_ZOMBIE:
            return proc.is_running()
    except psutil.Error:
        return False
    try:
        os.waitpid(proc.pid, os.WNOHANG)  # ours (started by this process): collect it now
    except ChildProcessError:
        pass
    return False


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Waits until every process exited; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if _running(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


def _kill(processes: list[psutil.Process]) -> None:
    for p in processes:
        try:
            p.kill()  # psutil checks the create time first: a recycled PID is not signalled
        except psutil.Error:
            pass
    _wait_gone(processes, timeout=5)


def leftovers(record: ProcessRecord) -> list[psutil.Process]:
    """Processes of a child's session other than the child itself: its workers, even once the
    child died (a granian worker whose server was killed keeps serving on the shared port).
    ``spawn`` made the child a session leader, so its session id is its PID; a process that
    started before the child cannot be one of its own."""
    found = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            if (proc.pid != record.pid and os.getsid(proc.pid) == record.pid
                    and proc.info["create_time"] >= record.create_time - 0.1):
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


def listening_ports(ports: set[int]) -> set[int] | None:
    """Which of ``ports`` something listens on (TCP, IPv4 or IPv6), from the kernel's socket
    tables; None where there are none to read (not Linux)."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)  # the header
                for line in f:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == _LISTEN:
                        port = int(fields[1].rpartition(":")[2], 16)
                        if port in ports:
                            found.add(port)
        except FileNotFoundError:
            if table == "/proc/net/tcp":
                return None
    return found


def listeners(ports: list[int]) -> dict[int, set[int]]:
    """Which PIDs listen on each of ``ports`` (TCP, any address), as the kernel says. The
    owners are found by psutil's walk over every process's open files (a stack's hundred
    processes and their Postgres backends: ~0.1 s of CPU), so it runs only when the socket
    tables show one of the ports listening: before a child starts, none does."""
    wanted = set(ports)
    out: dict[int, set[int]] = {p: set() for p in ports}
    if listening_ports(wanted) == set():
        return out
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted:
            if conn.pid is not None:
                out[conn.laddr.port].add(conn.pid)
    return out


def stop(record: ProcessRecord, timeout: float = 15.0) -> None:
    """Sends the child's stop signal (SIGINT: Postgres's fast shutdown), waits up to ``timeout``
    seconds, then SIGKILLs; then makes sure none of the child's own children (granian workers,
    Postgres backends) outlive it, nor workers left by a child that already died."""
    proc = find(record)
    if proc is None:
        _kill(leftovers(record))
        return
    try:
        descendants = proc.children(recursive=True)
        proc.send_signal(record.stop_signal)
    except psutil.NoSuchProcess:
        return
    _kill(_wait_gone([proc], timeout))
    _kill(_wait_gone(descendants, timeout=5))


def run_checked(argv: list[str], *, log: Path, run_as: RunAs | None, env: dict[str, str]) -> None:
    """Runs a one-shot tool (initdb, pg_basebackup) to completion, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    user, group, extra_groups = _privileges(run_as)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd="/", check=False, user=user, group=group, extra_groups=extra_groups,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(argv[0]).name} exited with {result.returncode}; last lines of {log}:\n"
            + tail(log)
        )
