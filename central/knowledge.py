"""Knowledge ingest at central: a document, its chunks and their vectors in one transaction.

Two halves, so text artifacts (central/artifacts.py) are stored by the same code as curated
knowledge: ``prepare`` chunks and embeds (the slow part, outside any transaction, so a
write never holds row locks or a pooled connection while a model runs), and ``store_document``
writes inside the caller's transaction with the feed row the hubs' indexes follow.

Each chunk is embedded here, once; its vector travels to every region in the chunk's row by
streaming replication, so no hub embeds a document again.

The title is the start of the first chunk's text (``title\\n\\nbody`` is what is chunked): the
schema keeps full text and vectors per chunk, so this is how a title is found by keyword and by
meaning, and it keeps what is indexed, what is embedded and what is shown one and the same text.

What is stored in the clear, and what is not: knowledge (public) keeps its chunks' text in
``body`` and its words in ``tsv`` (``to_tsvector('english', body)``). A twin's document (a text
artifact's) keeps none of its text: each chunk's text is sealed under the twin's data key
(``sealed``, field ``chunk:<doc_id>:<n>``, ``body`` null), ``tsv`` holds the keyed hashes of
its lexemes (the cell's blind-index key, ``Keyring.blind``; the set of them, no positions or
counts, so the order of its words is not kept), its tags and source are keyed hashes too (so
filters still match them), and its title is the artifact's id (the real one, a user's file
name as often as not, is the start of its first sealed chunk and in the artifact's sealed
metadata, where a hub reads it to show a hit). Its chunks' vectors are sealed too
(``sealed_embedding``, field ``vector:<doc_id>:<n>``, float32; ``embedding`` empty): a vector
can be inverted into much of the text it was made from. Knowledge's vectors are plaintext."""

from __future__ import annotations

import array
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency

from central import replay
from central.popular import PopularRanker
from central.store import Store, WriteTx
from knowledge.chunk import chunk
from knowledge.embed import Embedder
from mbhttp import require_principal
from mbhttp.routes import decode_body
from mbwire import Conflict, NotFound, PayloadTooLarge, Unavailable, Unprocessable
from mbwire import headers as h
from mbwire.decode import check_id
from mbwire.types import DOC_ID_PATTERN, DocKind, KnowledgeDeleted, KnowledgeIn, KnowledgeWritten
from sealing import Keyring, TwinKey

_DOC_ID = re.compile(DOC_ID_PATTERN)
# Chunks one ingest may embed. Why a limit below the 1 MiB body: the ingest answers only after
# its commit, and the hub waits for central at most HUB_CENTRAL_TIMEOUT_S (10 s). The offline
# embedder did 45 chunks of ~800 characters a second on 2 busy cores (a 1 MiB document is
# ~1,500 chunks: a 504 whose write still lands later); through the stack 120 chunks took
# 2.5-4.2 s, 250 always timed out. 128 (~100 KB) fits with room; CENTRAL_MAX_DOC_CHUNKS raises
# it for a faster (remote, batched) embedder.
MAX_DOC_CHUNKS = 128
_KEYED_IDS = uuid.UUID("6d62b1f0-6b6e-4f77-9c1e-0d0c5e7a1a07")  # namespace of keyed default ids
StoreDep = NamedDependency[Store]
PopularDep = NamedDependency[PopularRanker]


class PreparedDocument(msgspec.Struct, frozen=True):
    """A document ready to store: its chunks in order, one unit vector per chunk, and the
    embedder that made them (its name is stored with every vector)."""

    title: str
    chunks: list[str]
    vectors: list[list[float]]
    embedder: str


def check_text(field: str, value: str) -> None:
    """Text Postgres can store: no NUL, no lone surrogate. Checked before the embedder runs, so
    a value the database would refuse costs no model time and stores nothing (422)."""
    if "\x00" in value:
        raise Unprocessable(f"{field} contains U+0000 (NUL), which cannot be stored",
                            errors=[{"path": f"$.{field}"}])
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Unprocessable(
            f"{field} contains a lone surrogate (not valid UTF-8)", errors=[{"path": f"$.{field}"}]
        ) from None


async def prepare(
    embedder: Embedder, title: str, body: str, *, max_chunks: int = MAX_DOC_CHUNKS
) -> PreparedDocument:
    """Chunks ``title\\n\\nbody`` and embeds every chunk in one batch. No I/O but the embedder.
    More than ``max_chunks`` chunks is a 413, before any model time is spent."""
    check_text("title", title)
    check_text("body", body)
    if not title.strip() or not body.strip():
        raise Unprocessable("title and body must hold more than whitespace")
    chunks = chunk(f"{title.strip()}\n\n{body}")
    if len(chunks) > max_chunks:
        raise PayloadTooLarge(
            f"the document makes {len(chunks)} chunks; one ingest takes at most {max_chunks}"
            " (split it into several documents)", limit=max_chunks,
        )
    vectors = await embedder.embed(chunks)
    # The vectors are stored for good and searched in every region: an embedder that broke its
    # contract must not leave rows that silently never match (503: the service is at fault).
    if len(vectors) != len(chunks) or any(len(v) != embedder.dim for v in vectors):
        raise Unavailable(f"embedder {embedder.name} answered vectors of the wrong shape")
    return PreparedDocument(title=title, chunks=chunks, vectors=vectors, embedder=embedder.name)


# A replace keeps the document's kind and twin: a knowledge id can never overwrite (and so
# publish) an artifact's text, nor move an artifact to another twin. The row lock taken here
# serialises concurrent writers of one id before its chunks are replaced.
_UPSERT_DOC = """
insert into knowledge_docs (doc_id, kind, twin_id, owner_sub, title, tags, source)
values (%(doc_id)s, %(kind)s, %(twin_id)s, %(owner_sub)s, %(title)s, %(tags)s, %(source)s)
on conflict (doc_id) do update
    set title = excluded.title, tags = excluded.tags, source = excluded.source,
        version = knowledge_docs.version + 1, updated_at = now()
    where knowledge_docs.kind = excluded.kind
      and knowledge_docs.twin_id is not distinct from excluded.twin_id
returning version
"""


async def store_document(
    tx: WriteTx, prepared: PreparedDocument, *, doc_id: str, kind: DocKind,
    twin_id: str | None, owner_sub: str, tags: Sequence[str], source: str | None,
    key: TwinKey | None = None, keyring: Keyring | None = None,
) -> int:
    """Creates the document or replaces it (version + 1) with exactly ``prepared``'s chunks,
    and appends its feed row; inside the caller's transaction. Returns the stored version;
    ``Conflict`` if ``doc_id`` is another kind's document (or another twin's). A twin's
    document (``twin_id`` set) needs the twin's ``key`` and the ``keyring``: its text is
    sealed and its words, tags and source hashed (see the module's docstring)."""
    title = prepared.title
    if twin_id is not None:
        if key is None or keyring is None or key.twin_id != twin_id:
            raise ValueError(f"document {doc_id} of twin {twin_id} needs the twin's key")
        title = doc_id
        tags = await keyring.blind(list(tags))
        source = (await keyring.blind([source]))[0] if source is not None else None
    cur = await tx.conn.execute(_UPSERT_DOC, {
        "doc_id": doc_id, "kind": kind, "twin_id": twin_id, "owner_sub": owner_sub,
        "title": title, "tags": list(tags), "source": source,
    })
    row = await cur.fetchone()
    if row is None:
        raise Conflict(f"document {doc_id} exists as another kind or twin's document")
    version = int(row[0])
    await tx.conn.execute("delete from knowledge_chunks where doc_id = %s", (doc_id,))
    pairs = list(enumerate(zip(prepared.chunks, prepared.vectors, strict=True)))
    terms = (await hashed_lexemes(tx, keyring, prepared.chunks)
             if twin_id is not None and keyring is not None else [])
    async with tx.conn.cursor() as c:
        if twin_id is None:
            await c.executemany(
                "insert into knowledge_chunks (doc_id, n, body, tsv, embedder, embedding)"
                " values (%s, %s, %s, to_tsvector('english', %s), %s, %s::real[])",
                [(doc_id, n, text, text, prepared.embedder, vector)
                 for n, (text, vector) in pairs])
        else:
            assert key is not None
            await c.executemany(
                "insert into knowledge_chunks (doc_id, n, sealed, tsv, embedder, embedding,"
                " sealed_embedding, twin_id)"
                " values (%s, %s, %s, array_to_tsvector(%s::text[]), %s, '{}', %s, %s)",
                [(doc_id, n, key.seal(f"chunk:{doc_id}:{n}", text.encode()), terms[n],
                  prepared.embedder, key.seal(f"vector:{doc_id}:{n}", pack_vector(vector)),
                  twin_id)
                 for n, (text, vector) in pairs])
    tx.feed.append((feed_kind(twin_id), doc_id, version))
    return version


def feed_kind(twin_id: str | None) -> str:
    """The feed row a document's change makes: ``knowledge`` for the public corpus (announced
    on the ``global`` channel), ``memory`` for a twin's document (a text artifact's chunks, a
    text event's memory): the hubs' indexes follow both, no channel carries a twin's."""
    return "knowledge" if twin_id is None else "memory"


def pack_vector(vector: Sequence[float]) -> bytes:
    """A vector as the float32 bytes a twin's chunk seals (``regional.index`` unpacks them)."""
    return array.array("f", vector).tobytes()


# Each chunk's lexemes as Postgres's English configuration makes them (the keyword search
# makes a query's the same way): the text passes through the statement, nothing is stored.
_LEXEMES = ("select tsvector_to_array(to_tsvector('english', t))"
            " from unnest(%s::text[]) with ordinality u(t, n) order by n")


async def hashed_lexemes(tx: WriteTx, keyring: Keyring, chunks: list[str]) -> list[list[str]]:
    """Each chunk's lexemes as keyed hashes (``Keyring.blind``): what a twin's chunk is found
    by, without its words."""
    cur = await tx.conn.execute(_LEXEMES, (chunks,))
    lexemes = [list(r[0]) for r in await cur.fetchall()]
    distinct = sorted({t for terms in lexemes for t in terms})
    hashed = dict(zip(distinct, await keyring.blind(distinct), strict=True))
    return [[hashed[t] for t in terms] for terms in lexemes]


async def delete_document(tx: WriteTx, doc_id: str, *, kind: DocKind) -> bool:
    """Deletes the document of this kind and its chunks (cascade), with its feed row. The row
    carries no version: the document is gone, and a follower reads what its replica holds."""
    cur = await tx.conn.execute(
        "delete from knowledge_docs where doc_id = %s and kind = %s returning twin_id",
        (doc_id, kind))
    row = await cur.fetchone()
    if row is None:
        return False
    tx.feed.append((feed_kind(row[0]), doc_id, None))
    return True


def default_doc_id(sub: str, idempotency_key: str | None) -> str:
    """A new id; with an ``Idempotency-Key``, the same id for the same caller and key: the edge
    retries a keyed write blind (to another hub, after a timeout that may have committed), and
    the retry must replace its first attempt, not add a second copy of the document."""
    if not idempotency_key:
        return uuid.uuid4().hex
    return uuid.uuid5(_KEYED_IDS, f"{sub}\n{idempotency_key}").hex


async def ingest(request: Request[Any, Any, Any], store: StoreDep,
                 popular: PopularDep) -> Response[bytes]:
    principal = require_principal(request)
    doc: KnowledgeIn = await decode_body(request)
    if doc.source is not None:
        check_text("source", doc.source)
    prepared = await prepare(embedder_of(request), doc.title, doc.body,
                             max_chunks=request.app.state.max_doc_chunks)
    doc_id = doc.id or default_doc_id(principal.sub, request.headers.get(h.IDEMPOTENCY_KEY))

    async def run() -> KnowledgeWritten:
        async with store.write() as tx:
            await store_document(tx, prepared, doc_id=doc_id, kind="knowledge", twin_id=None,
                                 owner_sub=principal.sub, tags=doc.tags, source=doc.source)
            tx.answer = KnowledgeWritten(id=doc_id, chunks=len(prepared.chunks),
                                         consistency_token="")
        return replay.answered(tx)
    try:
        return await replay.answer(request, run, principal.sub)
    finally:  # the popular documents (central/popular.py), ranked after the commit
        popular.changed("knowledge")


async def delete(request: Request[Any, Any, Any], store: StoreDep,
                 popular: PopularDep) -> Response[bytes]:
    principal = require_principal(request)
    doc_id = check_id(str(request.path_params["doc_id"]), _DOC_ID, "document id", "doc_id")

    async def run() -> KnowledgeDeleted:
        async with store.write() as tx:
            if not await delete_document(tx, doc_id, kind="knowledge"):
                raise NotFound(f"no knowledge document {doc_id}")
            tx.answer = KnowledgeDeleted(id=doc_id, consistency_token="")
        return replay.answered(tx)
    try:
        return await replay.answer(request, run, principal.sub)
    finally:  # the popular documents (central/popular.py), ranked after the commit
        popular.changed("knowledge")


def embedder_of(request: Request[Any, Any, Any]) -> Embedder:
    """The service's embedder, made in central's lifespan. Read from the app's state, not
    injected: Litestar validates an injected value against its annotation, and a Protocol
    cannot be checked at run time."""
    embedder: Embedder = request.app.state.embedder
    return embedder


HANDLERS: dict[str, Callable[..., Any]] = {"ingest_knowledge": ingest, "delete_knowledge": delete}
