"""Who leads a cell's Postgres, and moving the lead on purpose: a settled cluster (a leader, every
other member streaming from it, a synchronous standby named) and Patroni's planned switchover,
which ``memorybank switchover`` and the drills use. Patroni's own failover needs none of this."""

from __future__ import annotations

import time

import httpx

from devstack.errors import StackError
from devstack.patroni import live_postgres
from devstack.topology import PostgresUrls


def settled(urls: PostgresUrls) -> bool:
    """A leader runs, every other member streams from it and Patroni names a synchronous
    standby (only that one may be promoted: until then a lost leader cannot fail over)."""
    others = [m for n, m in urls.members.items() if n != urls.leader]
    return (urls.leader is not None and all(m.state == "streaming" for m in others)
            and any(m.role == "sync_standby" for m in others))


def wait_settled(urls: PostgresUrls, within_s: float, leader: str | None = None) -> PostgresUrls:
    """The members once ``settled`` (and led by ``leader``, if given); StackError after
    ``within_s`` naming each member's role and state then."""
    deadline = time.monotonic() + within_s
    while True:
        live = live_postgres(urls)
        if settled(live) and leader in (None, live.leader):
            return live
        if time.monotonic() > deadline:
            seen = ", ".join(f"{n} {m.role}/{m.state}" for n, m in live.members.items())
            raise StackError(f"Postgres did not settle within {within_s:.0f} s: {seen}")
        time.sleep(0.5)


def switchover(rest: list[str], leader: str, candidate: str, timeout: float = 60.0) -> str:
    """A planned move of the leader lock (``POST /switchover``, to any member that answers):
    the leader checkpoints and stops, ``candidate`` (the synchronous standby) promotes, the old
    leader restarts as its replica. Returns Patroni's answer once the candidate leads."""
    for url in rest:
        try:
            answer = httpx.post(f"{url}/switchover", timeout=timeout,
                                json={"leader": leader, "candidate": candidate})
        except httpx.HTTPError:
            continue
        if answer.status_code != 200:
            raise StackError(f"Patroni refused the switchover ({answer.status_code}): "
                             f"{answer.text.strip()}")
        return answer.text.strip()
    raise StackError("no Patroni member answered: nothing was switched")
