"""The audit trail of a twin's personal data: who read or changed it, kept per cell in a
hash-chained log (tamper-evident: changing, dropping or reordering one record breaks every link
after it) with signed checkpoints kept apart from it.

A record names the twin by a pseudonym, ``twin_ref``: a keyed hash (HMAC-SHA256 under the
cell's audit key) of its id, so the owner's audit can be found by the twin id, and once the twin
is erased the records stay verifiable but no longer point at the person. Everything here is
pure: hubs make records, central chains them, ``memorybank audit verify`` checks them, all with
these functions."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

import msgspec

from mbwire.types import SUB_PATTERN, Wire

GENESIS = bytes(32)  # the link before the first record of a cell's chain
MAX_BATCH = 1024     # records one hub flush may carry


class AuditRecord(Wire, frozen=True):
    """One access, as a hub (or central) saw it answered."""

    at: str          # RFC 3339, UTC, microseconds
    actor: str       # the caller's sub
    action: str      # the action's name in the table
    twin_ref: str    # twin_ref(key, twin_id): 64 hex digits
    request_id: str
    outcome: int     # the HTTP status answered
    region: str


class AuditBatch(Wire, frozen=True):
    records: Annotated[list[AuditRecord], msgspec.Meta(max_length=MAX_BATCH)]


class EdgeHit(Wire, frozen=True):
    """A twin read an edge PoP answered from its cache (no hub saw it), sent to a hub of the
    twin's cell, which records it as it does its own answers (``POST /internal/edge-hits``),
    its region ``edge-<pop>``. Each field in the form central's intake takes, so one bad hit
    is refused at the hub instead of spoiling the batch it would join."""

    at: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")]
    actor: Annotated[str, msgspec.Meta(pattern=SUB_PATTERN, max_length=256)]
    action: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    twin_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    request_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
    pop: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,10}$")]


class EdgeHits(Wire, frozen=True):
    hits: Annotated[list[EdgeHit], msgspec.Meta(max_length=MAX_BATCH)]


EDGE_HITS_PATH = "/internal/edge-hits"


class AuditEntry(Wire, frozen=True):
    """A chained record, as the owner reads it (``GET /v1/twins/{id}/audit``)."""

    seq: int
    at: str
    actor: str
    action: str
    request_id: str
    outcome: int
    region: str
    cell: str


class AuditPage(Wire, frozen=True):
    items: list[AuditEntry]
    next_cursor: str | None
    consistency_token: str


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A cell's chain head at ``seq``, signed, stored apart from the chain (the blob store)."""

    cell: str
    seq: int
    hash: str        # hex of the link at seq
    at: str
    signature: str   # hex HMAC-SHA256 under the checkpoint key


def twin_ref(key: bytes, twin_id: str) -> str:
    return hmac.new(key, b"twin\x00" + twin_id.encode(), hashlib.sha256).hexdigest()


def canonical(seq: int, cell: str, record: AuditRecord) -> bytes:
    """The bytes a link covers: the record, its place in the chain and its cell."""
    return msgspec.json.encode(
        [seq, cell, record.at, record.actor, record.action, record.twin_ref,
         record.request_id, record.outcome, record.region])


def link(prev: bytes, seq: int, cell: str, record: AuditRecord) -> bytes:
    """The chain's link at ``seq``: SHA-256 over the previous link and the record."""
    return hashlib.sha256(prev + canonical(seq, cell, record)).digest()


def _checkpoint_text(cell: str, seq: int, link_hex: str, at: str) -> bytes:
    return f"memorybank-audit-checkpoint\x00{cell}\x00{seq}\x00{link_hex}\x00{at}".encode()


def sign_checkpoint(key: bytes, cell: str, seq: int, head: bytes, at: str) -> Checkpoint:
    signature = hmac.new(key, _checkpoint_text(cell, seq, head.hex(), at), hashlib.sha256)
    return Checkpoint(cell=cell, seq=seq, hash=head.hex(), at=at, signature=signature.hexdigest())


def checkpoint_holds(key: bytes, checkpoint: Checkpoint) -> bool:
    expected = hmac.new(key, _checkpoint_text(checkpoint.cell, checkpoint.seq, checkpoint.hash,
                                              checkpoint.at), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, checkpoint.signature)


# -- erasure ---------------------------------------------------------------------------------


class ErasureReceipt(Wire, frozen=True):
    """What was held of a twin before and after its erasure, signed by its cell (HMAC-SHA256
    under the cell's audit key over ``receipt_text``). The twin is named by its pseudonym."""

    receipt_id: str
    twin_ref: str
    cell: str
    erased_at: str
    erased_by: str
    held_before: dict[str, int]  # rows (and blobs) per kind, in the cell's primary
    held_after: dict[str, int]   # the same, counted in the erasing transaction after the delete
    caches: str                  # how every cache learns of it
    audit_seq: int               # the audit chain's head when erased (its record follows it)
    # The twin's data key (sealing/): every value of the twin that outlives the delete (dead
    # tuples, WAL, replicas, base backups) is ciphertext under it, and it was destroyed here.
    key_id: str = ""
    key_destroyed_at: str = ""
    copies: str = ""             # what the destroyed key leaves unreadable, and where
    signature: str = ""


class TwinErased(Wire, frozen=True):
    twin_id: str
    receipt: ErasureReceipt
    consistency_token: str


def receipt_text(r: ErasureReceipt) -> bytes:
    body = msgspec.structs.replace(r, signature="")
    return b"memorybank-erasure-receipt\x00" + msgspec.json.encode(body)


def sign_receipt(key: bytes, r: ErasureReceipt) -> ErasureReceipt:
    signature = hmac.new(key, receipt_text(r), hashlib.sha256).hexdigest()
    return msgspec.structs.replace(r, signature=signature)


def receipt_holds(key: bytes, r: ErasureReceipt) -> bool:
    expected = hmac.new(key, receipt_text(r), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, r.signature)
