"""Key-encryption keys: what wraps each twin's data key. One per cell, held outside the
database (so outside its WAL, replicas and backups: restoring an old backup never brings back
a key that could open an erased twin), each version named by a label the wrapped key records.

Two providers behind one interface:

- ``LocalKek``: the local stack's. Versions are 32-byte files ``kek/<label>.key`` (mode 0600)
  in the cell's key directory, the current one named by ``kek/current``; a wrap is AES-256-GCM
  with the twin id bound as associated data (a wrapped key moved to another twin's record does
  not open).
- ``KmsKek``: AWS KMS through boto3 (any endpoint: moto's server stands in for it in the
  tests). A version is a KMS key id; the twin id and cell ride as the encryption context; a
  retired version is scheduled for deletion (KMS's minimum pending window, 7 days)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KekError(Exception):
    """A wrapped key that does not unwrap, or a provider that cannot be reached."""


class KekMissing(KekError):
    """The version a wrapped key names is gone (retired by a rotation)."""


class Kek(Protocol):
    def current(self) -> str: ...
    def wrap(self, label: str, context: str, key: bytes) -> bytes: ...
    def unwrap(self, label: str, context: str, wrapped: bytes) -> bytes: ...
    def new_version(self) -> str:
        """Makes a new version current and names it (a rotation's first step)."""
        ...

    def retire(self, label: str) -> None:
        """Destroys a version nothing is wrapped under any more (a rotation's last step)."""
        ...


def _write_private(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Writes ``data`` to ``path`` whole or not at all, readable by us alone, and durable (the
    rename too, unless the caller syncs the directory itself once for many)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        _sync_dir(path.parent)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalKek:
    def __init__(self, root: Path) -> None:
        self.root = root / "kek"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keys: dict[str, AESGCM] = {}
        if not (self.root / "current").exists():
            self.new_version()

    def current(self) -> str:
        return (self.root / "current").read_text().strip()

    def _aead(self, label: str) -> AESGCM:
        aead = self._keys.get(label)
        if aead is None:
            try:
                aead = AESGCM((self.root / f"{label}.key").read_bytes())
            except FileNotFoundError:
                raise KekMissing(f"key-encryption key {label} is retired") from None
            self._keys[label] = aead
        return aead

    def wrap(self, label: str, context: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead(label).encrypt(nonce, key, context.encode())

    def unwrap(self, label: str, context: str, wrapped: bytes) -> bytes:
        try:
            return self._aead(label).decrypt(wrapped[:12], wrapped[12:], context.encode())
        except InvalidTag:
            raise KekError(f"a data key does not unwrap under {label} for {context}") from None

    def new_version(self) -> str:
        label = f"v{len(list(self.root.glob('*.key'))) + 1}-{secrets.token_hex(4)}"
        _write_private(self.root / f"{label}.key", AESGCM.generate_key(256))
        _write_private(self.root / "current", label.encode())
        return label

    def retire(self, label: str) -> None:
        if label == self.current():
            raise KekError("the current key-encryption key cannot be retired")
        (self.root / f"{label}.key").unlink(missing_ok=True)
        self._keys.pop(label, None)
        _sync_dir(self.root)


class KmsKek:
    """AWS KMS: ``key_id`` is the version new keys are wrapped under until a rotation names
    another; the current one is kept in the key directory (``kek/current``) so every process
    of the cell agrees on it."""

    def __init__(self, root: Path, key_id: str, *, endpoint: str = "", region: str = "",
                 cell: str = "") -> None:
        import boto3  # only a cell configured for KMS needs it

        self.root = root / "kek"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cell = cell
        self.client: Any = boto3.client(
            "kms", endpoint_url=endpoint or None, region_name=region or "us-east-1")
        if not (self.root / "current").exists():
            _write_private(self.root / "current", key_id.encode())

    def current(self) -> str:
        return (self.root / "current").read_text().strip()

    def _context(self, context: str) -> dict[str, str]:
        return {"twin": context, "cell": self.cell}

    def wrap(self, label: str, context: str, key: bytes) -> bytes:
        try:
            out = self.client.encrypt(KeyId=label, Plaintext=key,
                                      EncryptionContext=self._context(context))
        except Exception as exc:  # botocore's errors are many; all mean "not wrapped"
            raise KekError(f"KMS would not wrap under {label}: {exc}") from None
        return bytes(out["CiphertextBlob"])

    def unwrap(self, label: str, context: str, wrapped: bytes) -> bytes:
        try:
            out = self.client.decrypt(KeyId=label, CiphertextBlob=wrapped,
                                      EncryptionContext=self._context(context))
        except self.client.exceptions.KMSInvalidStateException:
            raise KekMissing(f"KMS key {label} is retired") from None
        except Exception as exc:
            raise KekError(f"KMS would not unwrap under {label}: {exc}") from None
        return bytes(out["Plaintext"])

    def new_version(self) -> str:
        label = str(self.client.create_key(
            Description=f"memorybank key-encryption key, cell {self.cell}")["KeyMetadata"]["KeyId"])
        _write_private(self.root / "current", label.encode())
        return label

    def retire(self, label: str) -> None:
        if label == self.current():
            raise KekError("the current key-encryption key cannot be retired")
        self.client.schedule_key_deletion(KeyId=label, PendingWindowInDays=7)
