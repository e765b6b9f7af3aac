"""Erasure (``DELETE /v1/twins/{twin_id}``): everything the cell holds of a twin is deleted in
one transaction, and the answer is a receipt signed by the cell.

Under the twin's stripe lock (no merge of it runs meanwhile) and its row lock, the transaction
counts what is held per kind (the twin's row, its Yjs log, grants, events, trajectory steps,
artifacts, their text documents with chunks and vectors, and the artifacts' bytes), deletes the
bytes from the blob store, deletes the rows (grants, artifacts and documents with their chunks go
with the twin row), appends change-feed rows (``twin``, ``grant``, a ``memory`` row for each of its
documents and an ``artifact`` row for each artifact: so every hub drops its Redis and near-cache
views and its index's vectors of them once its replica shows the erasure), records the twin's
pseudonym in ``erased_twins`` (so its id is never created again: 409), counts again (``held_after``)
and stores the receipt. Last, before the commit, it destroys the twin's data key in the cell's key
store (sealing/): rows deleted here survive as dead tuples, in WAL segments, on replicas and in base
backups until vacuum, recycling and retention, and all of them are ciphertext under that key, so
none can be opened from that moment. A commit that fails after it leaves the twin unreadable and
still present; the retry (the key already gone) erases it whole. The resident document is dropped
after the commit, and each hub forgets the key when its replica shows the erasure."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency
from psycopg.types.json import Jsonb

from blobs.room import ArtifactBlobs
from central import replay
from central.knowledge import feed_kind
from central.settings import CentralSettings
from central.store import Store, WriteTx
from central.twins import TwinWriter
from mbhttp import require_principal
from mbwire import Forbidden, NotFound, Principal, cells
from mbwire.audit import ErasureReceipt, TwinErased, sign_receipt, twin_ref
from mbwire.decode import check_twin_id
from sealing import Keyring

KINDS = ("profile", "updates", "grants", "events", "trajectory_steps", "artifacts",
         "documents")
_COUNTS = """select
  (select count(*) from twins where twin_id = %(t)s),
  (select count(*) from twin_updates where twin_id = %(t)s),
  (select count(*) from twin_grants where twin_id = %(t)s),
  (select count(*) from events where twin_id = %(t)s),
  (select count(*) from trajectory_steps where twin_id = %(t)s),
  (select count(*) from artifacts where twin_id = %(t)s),
  (select count(*) from knowledge_docs where twin_id = %(t)s)"""
_DELETES = (
    "delete from twin_updates where twin_id = %(t)s",
    "delete from events where twin_id = %(t)s",
    "delete from event_heads where twin_id = %(t)s",
    "delete from trajectory_steps where twin_id = %(t)s",
    "delete from twins where twin_id = %(t)s",  # grants, artifacts, documents, chunks cascade
)
CACHES = ("every hub's Redis and near-cache views, opened keys and search-index vectors, "
          "through the change feed of this commit; edge caches hold a twin's answers at most 5 s")
COPIES = ("dead tuples, WAL segments, streaming replicas and base backups of the cell keep "
          "the twin's profile, log, events, trajectory, artifacts' bytes, metadata, text and "
          "vectors only as ciphertext under the destroyed data key, which no store holds any "
          "more; until vacuum, WAL recycling and backup retention they also keep its ids, "
          "event types, artifact sizes, types and digests, and its text's index terms, tags "
          "and sources as keyed hashes under the cell's index key (never the words)")


async def _counts(tx: WriteTx, twin_id: str) -> dict[str, int]:
    cur = await tx.conn.execute(_COUNTS, {"t": twin_id})
    row = await cur.fetchone()
    assert row is not None
    return dict(zip(KINDS, (int(n) for n in row), strict=True))


async def erase(store: Store, writer: TwinWriter, blobs: ArtifactBlobs, keyring: Keyring,
                key: bytes, who: Principal, twin_id: str) -> TwinErased:
    async with writer.lock(twin_id):
        try:
            async with store.write() as tx:
                head = await tx.lock_twin(twin_id)
                if head is None:
                    raise NotFound(f"twin {twin_id} does not exist")
                if head.owner_sub != who.sub and not who.is_superuser:
                    raise Forbidden(f"only the owner of twin {twin_id} (or an admin) may "
                                    "erase it")
                before = await _counts(tx, twin_id)
                key_id = await asyncio.to_thread(keyring.require().key_id, twin_id)
                before["data_key"] = int(key_id is not None)
                cur = await tx.conn.execute(
                    "select artifact_id, blob_key, status from artifacts where twin_id = %s",
                    (twin_id,))
                artifacts = await cur.fetchall()
                cur = await tx.conn.execute(
                    "select doc_id from knowledge_docs where twin_id = %s", (twin_id,))
                docs = [r[0] for r in await cur.fetchall()]
                stored = [r[1] for r in artifacts if r[2] == "stored"]
                before["blobs"] = len(stored)
                blob_store = blobs.require()[0] if stored else None
                for blob in stored:  # before the commit: a failed erasure is retried whole
                    assert blob_store is not None
                    await blob_store.delete(blob)
                for sql in _DELETES:
                    await tx.conn.execute(sql, {"t": twin_id})
                ref = twin_ref(key, twin_id)
                await tx.conn.execute("insert into erased_twins (twin_ref) values (%s)"
                                      " on conflict do nothing", (ref,))
                tx.feed += [("twin", twin_id, None), ("grant", twin_id, None)]
                tx.feed += [(feed_kind(twin_id), d, None) for d in docs]
                tx.feed += [("artifact", r[0], None) for r in artifacts]
                after = await _counts(tx, twin_id)
                after["blobs"] = sum([await blob_store.exists(b) for b in stored]) \
                    if blob_store is not None else 0
                cur = await tx.conn.execute("select coalesce(max(seq), 0) from audit_log")
                seq = await cur.fetchone()
                destroyed = await keyring.destroy(twin_id)  # the last step before the commit
                after["data_key"] = int(await asyncio.to_thread(keyring.require().key_id,
                                                                twin_id) is not None)
                receipt = sign_receipt(key, ErasureReceipt(
                    receipt_id=cells.new_id(uuid.uuid4().hex), twin_ref=ref,
                    cell=cells.served().name,
                    erased_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    erased_by=who.sub, held_before=before, held_after=after, caches=CACHES,
                    audit_seq=int(seq[0]) if seq else 0,
                    key_id=destroyed.key_id if destroyed else (key_id or ""),
                    key_destroyed_at=destroyed.destroyed_at if destroyed else "",
                    copies=COPIES))
                await tx.conn.execute(
                    "insert into erasure_receipts (receipt_id, erased_by, receipt)"
                    " values (%s, %s, %s)",
                    (receipt.receipt_id, who.sub, Jsonb(msgspec.to_builtins(receipt))))
                tx.answer = TwinErased(twin_id=twin_id, receipt=receipt, consistency_token="")
        finally:
            writer.docs.drop(twin_id)
    return replay.answered(tx)


async def erase_twin(request: Request[Any, Any, Any], store: NamedDependency[Store],
                     writer: NamedDependency[TwinWriter], blobs: NamedDependency[ArtifactBlobs],
                     keyring: NamedDependency[Keyring],
                     settings: NamedDependency[CentralSettings]) -> Response[bytes]:
    who = require_principal(request)
    twin_id = check_twin_id(str(request.path_params["twin_id"]))
    key = settings.audit_key.encode()
    return await replay.answer(
        request, lambda: erase(store, writer, blobs, keyring, key, who, twin_id), who.sub)


HANDLERS = {"erase_twin": erase_twin}
