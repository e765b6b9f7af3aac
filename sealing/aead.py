"""The sealed format of one value: AES-256-GCM under a twin's data key, with the twin id, the
field and the key's version bound as associated data, so a ciphertext copied into another
twin's row, another field or under another key version fails to open.

    byte 0       FORMAT (0xA5): a sealed value, never the first byte of JSON text
    bytes 1-2    the data key's version (big-endian)
    bytes 3-14   the nonce: 96 random bits from the OS for every value sealed
    bytes 15-    the ciphertext, then GCM's 16-byte tag

Nonces are random, never counters, so no state has to survive a crash or be shared between
central's shards for them never to repeat: NIST SP 800-38D bounds a key to 2^32 random-nonce
messages, and a twin's key seals one value per write (a twin would need four billion writes
to reach it; ``MAX_SEALS_PER_KEY`` is where a future data-key rotation must step in).

Associated data is ``b"mb1" NUL twin_id NUL field NUL version``. A field names the column and,
where the row has one, its place (``update:17``, ``event``, ``chunk:doc_id:3``)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mbwire.errors import Problem

FORMAT = 0xA5
HEADER = 3
NONCE = 12
TAG = 16
OVERHEAD = HEADER + NONCE + TAG
MAX_SEALS_PER_KEY = 2**32


class SealError(Problem):
    """A value that does not open under the twin's key: altered, moved, or not sealed. The
    server holds something it cannot vouch for: a 500 wherever it is not caught (a retry
    cannot help, so not a 503), and never the value."""

    title, slug = "Stored value does not open", "sealed-value"


def _ad(twin_id: str, field: str, version: int) -> bytes:
    return b"mb1\x00%s\x00%s\x00%d" % (twin_id.encode(), field.encode(), version)


def seal(aead: AESGCM, version: int, twin_id: str, field: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    body = aead.encrypt(nonce, plaintext, _ad(twin_id, field, version))
    return bytes((FORMAT, version >> 8, version & 0xFF)) + nonce + body


def version_of(blob: bytes) -> int:
    """The data key version a sealed value names (SealError when it is not sealed)."""
    if len(blob) < OVERHEAD or blob[0] != FORMAT:
        raise SealError("the value is not sealed")
    return (blob[1] << 8) | blob[2]


def open_sealed(aead: AESGCM, twin_id: str, field: str, blob: bytes) -> bytes:
    version = version_of(blob)
    view = memoryview(blob)
    try:
        return aead.decrypt(view[HEADER:HEADER + NONCE], view[HEADER + NONCE:],
                            _ad(twin_id, field, version))
    except InvalidTag:
        raise SealError(f"a sealed {field.split(':')[0]} of twin {twin_id} does not open "
                        "under its key (altered, or moved from another row)") from None


def is_sealed(blob: bytes | None) -> bool:
    return blob is not None and len(blob) >= OVERHEAD and blob[0] == FORMAT
