"""After recovery: every acknowledged write, looked up on the primary itself (SQL, not through a
hub or cache), and where the primary is.

The primary is ``postgres.primary`` of ``memorybank status --json``. Once the stack runs Patroni
the status also lists ``postgres.patroni`` (REST URLs of the members): then the leader named by
``GET /cluster`` is the primary, wherever failover moved it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ops.drills.ops import Acked
from regional.replica.twins import PROFILE_COLUMNS, folded
from sealing import KeyStore, TwinKey


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    acknowledged: int
    lost: int  # RPO in writes: must be 0
    lost_examples: list[Acked]
    primary: str


def primary_url(status: Mapping[str, Any]) -> str:
    """The primary's libpq URL from a status report (``status --json`` decoded)."""
    pg = status["postgres"]
    for rest in _patroni_urls(pg):
        try:
            cluster = httpx.get(f"{rest}/cluster", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            continue
        for member in cluster.get("members", []):
            if member.get("role") in ("leader", "standby_leader") and member.get("port"):
                return _with_host_port(pg["primary"], member.get("host", "127.0.0.1"),
                                       int(member["port"]))
    return str(pg["primary"])


def _patroni_urls(pg: Mapping[str, Any]) -> list[str]:
    raw = pg.get("patroni") or []
    if isinstance(raw, Mapping):
        return [str(u) for u in raw.values()]
    return [str(u) for u in raw]


def _with_host_port(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def missing(acked: Sequence[Acked], profiles: Mapping[str, dict[str, Any]]) -> list[Acked]:
    """The acknowledged writes the primary's twins do not show (``profiles``: id -> profile)."""
    lost = []
    for write in acked:
        profile = profiles.get(write.twin_id)
        if profile is None:
            lost.append(write)
        elif write.op == "patch" and (profile.get("d") or {}).get(write.key) != write.value:
            lost.append(write)
    return lost


def verify(acked: Sequence[Acked], status: Mapping[str, Any], wait_s: float = 60.0) -> Verdict:
    """Reads every twin the writes touched from the primary; waits up to ``wait_s`` for it to
    answer (after a primary kill it may still be coming back)."""
    deadline, url = time.monotonic() + wait_s, primary_url(status)
    while True:
        try:
            profiles = _profiles(url, sorted({w.twin_id for w in acked}),
                                 KeyStore(Path(status["keys_dir"])))
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            url = primary_url(status)
    lost = missing(acked, profiles)
    return Verdict(acknowledged=len(acked), lost=len(lost), lost_examples=lost[:20],
                   primary=f"{urlsplit(url).hostname}:{urlsplit(url).port}")


def _profiles(url: str, twins: list[str], keys: KeyStore) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        rows = conn.execute(f"select t.twin_id, {PROFILE_COLUMNS} from twins t"
                            " where t.twin_id = any(%s)", (twins,)).fetchall()
    # The stored profile, or the state with the log since it (regional/replica/twins.py),
    # opened with the cell's key store (a twin without a key is missing: erased).
    profiles = {}
    for twin_id, *columns in rows:
        data = keys.get(twin_id)
        if data is not None:
            key = TwinKey(twin_id, data.key_id, data.version, AESGCM(data.key))
            profiles[twin_id] = folded(key, *columns)
    return profiles
