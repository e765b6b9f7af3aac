"""Personal data at rest: every twin's values sealed (AES-256-GCM) under the twin's own data
key, data keys wrapped by the cell's key-encryption key and kept in the cell's key store, never
in the database. Erasure destroys the data key, which reaches every copy (WAL, replicas,
backups) the deletes cannot.

    aead.py     the sealed format: associated data binds twin, field and key version
    kek.py      key-encryption keys: a local directory, or AWS KMS (boto3)
    store.py    the cell's key store: wrapped data keys, the blind-index key, rotation
    keyring.py  a process's bounded cache of opened keys, and what services call
"""

from sealing.aead import SealError, is_sealed
from sealing.keyring import Keyring, TwinKey
from sealing.store import Destroyed, KeyStore, Rotation

__all__ = ["Destroyed", "KeyStore", "Keyring", "Rotation", "SealError", "TwinKey", "is_sealed"]
