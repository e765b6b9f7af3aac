"""A process's keyring: the twins' data keys it has opened, bounded (``items``, default 10,000:
about 1.5 MB) and each kept at most ``ttl_s`` (default 300 s), in front of the cell's key
store. Central seals with it; hubs open with it. An erasure's change-feed row makes every hub
forget the twin's key (``forget``); the TTL bounds a key's life in a process that missed it.

``TwinKey`` seals and opens one twin's values (``field`` names the column, see
``sealing.aead``). A twin without a key (never created here, or erased) is ``NotFound``; a cell
without a key store answers its twins' personal data 503, as a hub without a blob store does
artifacts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mbwire import NotFound, Unavailable
from sealing.aead import SealError, is_sealed, open_sealed, seal
from sealing.kek import Kek, KekError, KmsKek
from sealing.store import DataKey, Destroyed, KeyStore, Rotation

ITEMS = 10_000
TTL_S = 300.0


@dataclass(frozen=True, slots=True)
class TwinKey:
    twin_id: str
    key_id: str
    version: int
    aead: AESGCM

    def seal(self, field: str, plaintext: bytes) -> bytes:
        return seal(self.aead, self.version, self.twin_id, field, plaintext)

    def open(self, field: str, blob: bytes) -> bytes:
        return open_sealed(self.aead, self.twin_id, field, bytes(blob))

    def seal_json(self, field: str, value: Any) -> bytes:
        return self.seal(field, msgspec.json.encode(value))

    def open_json(self, field: str, blob: bytes) -> Any:
        return msgspec.json.decode(self.open(field, blob))


class Keyring:
    def __init__(self, store: KeyStore | None, *, items: int = ITEMS,
                 ttl_s: float = TTL_S) -> None:
        self.store = store
        self.items = items
        self.ttl_s = ttl_s
        self._keys: OrderedDict[str, tuple[float, TwinKey]] = OrderedDict()
        self._index: bytes | None = None
        self.misses = 0

    @classmethod
    def configure(cls, *, keys_dir: str, kms_key_id: str = "", kms_endpoint: str = "",
                  kms_region: str = "", cell: str = "", items: int = ITEMS,
                  ttl_s: float = TTL_S) -> Keyring:
        if not keys_dir:
            return cls(None, items=items, ttl_s=ttl_s)
        root = Path(keys_dir)
        kek: Kek | None = None
        if kms_key_id:
            kek = KmsKek(root, kms_key_id, endpoint=kms_endpoint, region=kms_region, cell=cell)
        return cls(KeyStore(root, kek), items=items, ttl_s=ttl_s)

    @classmethod
    def from_settings(cls, settings: Any) -> Keyring:
        """From a service's settings (central's or a hub's: the same ``keys_*``/``kms_*``
        fields and ``cell``)."""
        return cls.configure(
            keys_dir=settings.keys_dir, kms_key_id=settings.kms_key_id,
            kms_endpoint=settings.kms_endpoint, kms_region=settings.kms_region,
            cell=settings.cell, items=settings.keys_cache_items, ttl_s=settings.keys_ttl_s)

    def require(self) -> KeyStore:
        if self.store is None:
            raise Unavailable("personal data cannot be read or written here: this service has "
                              "no key store (KEYS_DIR)", retry_after=60)
        return self.store

    def cached(self, twin_id: str) -> TwinKey | None:
        """The twin's key when this process holds it (no I/O): the hot path's first try."""
        hit = self._keys.get(twin_id)
        if hit is None or hit[0] < time.monotonic():
            return None
        self._keys.move_to_end(twin_id)
        return hit[1]

    def _keep(self, data: DataKey) -> TwinKey:
        key = TwinKey(data.twin_id, data.key_id, data.version, AESGCM(data.key))
        self._keys[data.twin_id] = (time.monotonic() + self.ttl_s, key)
        self._keys.move_to_end(data.twin_id)
        while len(self._keys) > self.items:
            self._keys.popitem(last=False)
        return key

    async def key(self, twin_id: str) -> TwinKey:
        """The twin's key, from this process or the key store; NotFound when it has none."""
        hit = self.cached(twin_id)
        if hit is not None:
            return hit
        store = self.require()
        self.misses += 1
        try:
            data = await asyncio.to_thread(store.get, twin_id)
        except KekError as exc:
            raise Unavailable(f"the key store could not open twin {twin_id}'s key: {exc}",
                              retry_after=5) from None
        if data is None:
            raise NotFound(f"twin {twin_id} has no data key in its cell (erased, or never "
                           "created)")
        return self._keep(data)

    async def create(self, twin_id: str) -> TwinKey:
        """The twin's key, made if it has none yet (a twin's creation, at central)."""
        store = self.require()
        try:
            data = await asyncio.to_thread(store.get_or_create, twin_id)
        except KekError as exc:
            raise Unavailable(f"the key store could not make a key: {exc}",
                              retry_after=5) from None
        return self._keep(data)

    async def destroy(self, twin_id: str) -> Destroyed | None:
        self.forget(twin_id)
        return await asyncio.to_thread(self.require().destroy, twin_id)

    def forget(self, twin_id: str) -> None:
        self._keys.pop(twin_id, None)

    async def rotate(self) -> Rotation:
        rotation = await asyncio.to_thread(self.require().rotate)
        self._keys.clear()
        return rotation

    async def blind(self, terms: list[str]) -> list[str]:
        """Keyword-index terms as keyed hashes under the cell's blind-index key: what a twin's
        text is indexed by, and what a query's words are looked up by (16 hex digits each,
        prefixed ``h`` so no English word is one)."""
        if self._index is None:
            self._index = await asyncio.to_thread(self.require().index_key)
        key = self._index
        return ["h" + hmac.new(key, t.encode(), hashlib.sha256).hexdigest()[:16] for t in terms]


__all__ = ["Keyring", "SealError", "TwinKey", "is_sealed"]
