"""A cell's key store: each twin's data key, wrapped by the cell's key-encryption key, one
record a twin under ``deks/`` in the cell's key directory; and the cell's blind-index key
(``index.key``), which turns keyword-index terms of twins' text into keyed hashes.

The directory is the cell's, never the database's: no WAL segment, replica or base backup
holds a data key, so destroying a twin's record (erasure) leaves every copy of its rows
ciphertext nobody can open. The store keeps no copy of a destroyed record (its own retention
is none: production puts the directory on an in-zone volume whose snapshots expire within
the erasure deadline, and says so in the receipt).

Records are written whole (temporary file, fsync, rename); a twin's is created exclusively,
so two creates of one twin never hold two keys."""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealing.kek import Kek, KekMissing, LocalKek, _sync_dir, _write_private

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
INDEX = "~index"  # the blind-index key's context (never a twin id: those have no "~" first)


class Record(msgspec.Struct, frozen=True):
    twin_id: str
    key_id: str       # names this data key in receipts and logs (never the key)
    version: int      # the data key's version, bound into every value it seals
    kek: str          # the key-encryption key version it is wrapped under
    wrapped: str      # base64
    created_at: str


@dataclass(frozen=True, slots=True)
class DataKey:
    twin_id: str
    key_id: str
    version: int
    key: bytes


@dataclass(frozen=True, slots=True)
class Destroyed:
    key_id: str
    destroyed_at: str


@dataclass(frozen=True, slots=True)
class Rotation:
    old: str
    new: str
    rewrapped: int
    seconds: float


def _file_name(twin_id: str) -> str:
    # Twin ids are ours ([A-Za-z0-9_~-]); escape anything else so no id can leave the folder.
    return _SAFE.sub(lambda m: f"%{ord(m.group()):02x}", twin_id) + ".json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class KeyStore:
    def __init__(self, root: Path, kek: Kek | None = None) -> None:
        self.root = root
        self.deks = root / "deks"
        self.deks.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.kek = kek if kek is not None else LocalKek(root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Held by a destroy and by the re-wrap of one record, so a rotation never writes back
        a record an erasure has just destroyed."""
        fd = os.open(self.deks / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, twin_id: str) -> Path:
        return self.deks / _file_name(twin_id)

    def _read(self, path: Path) -> Record | None:
        try:
            return msgspec.json.decode(path.read_bytes(), type=Record)
        except FileNotFoundError:
            return None

    def _unwrap(self, record: Record) -> DataKey:
        key = self.kek.unwrap(record.kek, record.twin_id, base64.b64decode(record.wrapped))
        return DataKey(record.twin_id, record.key_id, record.version, key)

    def get(self, twin_id: str) -> DataKey | None:
        """The twin's data key, or None when it has none (never created, or destroyed)."""
        for _ in range(3):  # a rotation may retire the version between our read and unwrap
            record = self._read(self._path(twin_id))
            if record is None:
                return None
            try:
                return self._unwrap(record)
            except KekMissing:
                continue
        raise KekMissing(f"the data key of twin {twin_id} names a retired key-encryption key")

    def _new_record(self, path: Path, context: str, prefix: str) -> tuple[Record, bytes] | None:
        """A fresh key wrapped under the current key-encryption key, its record created at
        ``path`` whole (written and fsync'd under a temporary name, then linked) and only if
        none is there: None when a concurrent create got there first (keep theirs)."""
        key = AESGCM.generate_key(256)
        label = self.kek.current()
        record = Record(context, f"{prefix}-{secrets.token_hex(8)}", 1, label,
                        base64.b64encode(self.kek.wrap(label, context, key)).decode(), _now())
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, msgspec.json.encode(record))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # exclusive
        except FileExistsError:
            return None
        finally:
            os.unlink(tmp)
        _sync_dir(path.parent)
        return record, key

    def get_or_create(self, twin_id: str) -> DataKey:
        found = self.get(twin_id)
        if found is not None:
            return found
        made = self._new_record(self._path(twin_id), twin_id, "dek")
        if made is None:  # a concurrent create of this twin keeps its own
            existing = self.get(twin_id)
            assert existing is not None
            return existing
        record, key = made
        return DataKey(twin_id, record.key_id, record.version, key)

    def destroy(self, twin_id: str) -> Destroyed | None:
        """Deletes the twin's record (crypto-shredding every copy of its sealed values)."""
        path = self._path(twin_id)
        with self._locked():
            record = self._read(path)
            if record is None:
                return None
            path.unlink(missing_ok=True)
            _sync_dir(self.deks)
        return Destroyed(record.key_id, _now())

    def key_id(self, twin_id: str) -> str | None:
        record = self._read(self._path(twin_id))
        return None if record is None else record.key_id

    def records(self) -> Iterator[Path]:
        return (p for p in self.deks.iterdir() if p.suffix == ".json" and p.name[0] != ".")

    def index_key(self) -> bytes:
        """The cell's blind-index key (made on first use, wrapped like a data key)."""
        path = self.root / "index.key"
        for _ in range(3):
            record = self._read(path)
            if record is None:
                made = self._new_record(path, INDEX, "idx")
                if made is not None:
                    return made[1]
                continue  # another process made it first: read theirs
            try:
                return self._unwrap(record).key
            except KekMissing:
                continue
        raise KekMissing("the blind-index key names a retired key-encryption key")

    def rotate(self) -> Rotation:
        """A new key-encryption key, every record re-wrapped under it, then the old one
        retired. Readers go on meanwhile (a record names the version it is wrapped under, and
        both exist until the walk finds none left under the old); a key created during the walk
        under the old version is caught by the next pass."""
        started = time.perf_counter()
        old = self.kek.current()
        self.index_key()  # exists before the walk, so the walk re-wraps it
        new = self.kek.new_version()
        rewrapped = 0
        while True:
            moved = 0
            for path in [*self.records(), self.root / "index.key"]:
                with self._locked():
                    record = self._read(path)
                    if record is None or record.kek == new:
                        continue
                    key = self._unwrap(record).key
                    _write_private(path, msgspec.json.encode(msgspec.structs.replace(
                        record, kek=new, wrapped=base64.b64encode(
                            self.kek.wrap(new, record.twin_id, key)).decode())), sync_dir=False)
                moved += 1
            _sync_dir(self.deks)  # every rename of the pass durable before the old one goes
            _sync_dir(self.root)
            rewrapped += moved
            if moved == 0:
                break
        if old != new:
            self.kek.retire(old)
        return Rotation(old, new, rewrapped, time.perf_counter() - started)
