"""Twin rows read on the primary itself, opened with the cell's key store (sealing/): what a test
checks a write against, without a hub or a cache in between."""

from __future__ import annotations

from typing import Any

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from regional.replica.twins import PROFILE_COLUMNS, folded
from sealing import KeyStore, TwinKey

from .conftest import LiveStack


def key_store(live: LiveStack) -> KeyStore:
    """The stack's key store (devstack.apps: ``<data dir>/keys``, beside its blobs)."""
    return KeyStore(live.stack.data_dir / "keys")


def twin_key(live: LiveStack, twin_id: str) -> TwinKey | None:
    data = key_store(live).get(twin_id)
    return None if data is None else TwinKey(twin_id, data.key_id, data.version,
                                             AESGCM(data.key))


def primary_profiles(live: LiveStack, twins: list[str]) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each twin's head version and profile at it, read on the primary: the stored profile, or
    the compacted state with its update log applied (regional/replica/twins.py), opened."""
    with psycopg.connect(live.topology.postgres.primary) as conn:
        rows = conn.execute(f"select t.twin_id, t.version, {PROFILE_COLUMNS} from twins t"
                            " where t.twin_id = any(%s)", (twins,)).fetchall()
    found = {}
    for twin_id, version, *columns in rows:
        key = twin_key(live, twin_id)
        assert key is not None, f"twin {twin_id} has rows but no data key"
        found[twin_id] = (version, folded(key, *columns))
    return found


def primary_profile(live: LiveStack, twin_id: str) -> dict[str, Any] | None:
    found = primary_profiles(live, [twin_id]).get(twin_id)
    return None if found is None else found[1]
