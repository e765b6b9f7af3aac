"""Keyword search and the caller's readable twins. The tenant rule is the access policy's own
SQL (``mbwire.access.TWINS_READABLE_SQL``): the readable set filters inside the keyword index's
search, and inside the query when Postgres ranks.

Two kinds of chunk answer one query. Knowledge's ``tsv`` holds its English lexemes; a twin's
chunk's holds the keyed hashes of its lexemes (``central.knowledge``: its text is sealed). So
the query's lexemes are made by Postgres, hashed with the cell's blind-index key here, and both
sets are asked for at once. ``keyword_rank`` ranks: the hub's keyword index (BM25, its index
service: ``regional.index_words``), or, when that cannot answer, Postgres on the replica (both
sets OR-ed into one tsquery, the GIN index used for both, ``ts_rank`` over every match).
``keyword_show`` reads the page's rows: a knowledge hit's snippet is ``ts_headline``'s; a twin's
chunk is opened with its twin's key (the caller may read that twin: the tenant rule chose the
row) and its snippet made here (``headline``), with the title, tags and source of its
artifact's sealed metadata (``reveal``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from blobs.room import labels_of
from mbwire import ConsistencyToken, NotFound, Principal, Unavailable
from mbwire.access import TWINS_READABLE_SQL, sql_params
from regional.index_words import WordHit
from regional.reads.artifacts import metadata_of
from regional.replica import Replica
from regional.vectors import Scope
from sealing import Keyring, SealError

log = logging.getLogger("memorybank.search")

# Knowledge is readable by all; a twin's text (artifacts, events) as its twin is (owner, grant,
# superuser). Judged on the chunk: a twin's chunks carry its id and knowledge's none (migration
# 0015, as ``knowledge_docs`` checks for documents), and the caller's readable twins are one
# hashed set for the statement, not a probe of the document and its twin per matching chunk.
TENANT_SQL = f"(%(superuser)s or c.twin_id is null or c.twin_id in ({TWINS_READABLE_SQL}))"

# An event's time as a hit shows it (RFC 3339, UTC, microseconds); null for other kinds.
OCCURRED = ("to_char(d.occurred_at at time zone 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
_HASHED = re.compile(r"^h[0-9a-f]{16}$")  # what Keyring.blind makes: safe as tsquery text

# ts_headline's options for knowledge, and ``headline``'s equivalent for a twin's chunk.
HEADLINE = "MaxFragments=1, MaxWords=35, MinWords=12"
MAX_WORDS = 35
_WORD = re.compile(r"\w+")


class WordSearch(Protocol):
    """The hub's keyword index, as its worker asks it (``regional.index_client``)."""

    async def words(self, terms: list[str], scope: Scope, limit: int,
                    token: ConsistencyToken | None = None, wait_s: float = 0.0,
                    ) -> tuple[list[WordHit], ConsistencyToken]: ...


@dataclass(frozen=True, slots=True)
class KeywordHit:
    doc_id: str
    score: float
    snippet: str
    title: str
    kind: str
    twin_id: str | None
    source: str | None
    tags: list[str]
    occurred_at: str | None = None  # an event's (RFC 3339, UTC)


@dataclass(frozen=True, slots=True)
class Revealed:
    """A twin's chunk opened: its text, and its artifact's title, tags and source."""

    text: str
    title: str
    tags: list[str]
    source: str | None


def filter_sql(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The request's filters as SQL conditions over ``d`` (knowledge_docs) and ``c`` (its
    chunks), with parameters."""
    terms: list[str] = []
    params: dict[str, Any] = {}
    if scope.tags:
        terms.append("d.tags && %(tags)s::text[]")
        params["tags"] = list(scope.tags)
    if scope.sources:
        terms.append("d.source = any(%(sources)s::text[])")
        params["sources"] = list(scope.sources)
    for key in ("kind", "twin_id"):
        if getattr(scope, key) is not None:
            terms.append(f"d.{key} = %({key})s")
            params[key] = getattr(scope, key)
    if scope.twin_id is not None:  # one twin's chunks: the (twin_id, tsv) index finds only them
        terms.append("c.twin_id = %(twin_id)s")
    if scope.not_twin is not None:
        terms.append("d.twin_id is distinct from %(not_twin)s")
        params["not_twin"] = scope.not_twin
    return "".join(f" and {t}" for t in terms), params


async def blinded(keys: Keyring, terms: Sequence[str]) -> list[str]:
    """``terms`` as twins' documents are indexed by them (keyed hashes); none on a hub without
    a key store (it could show no twin's text anyway: knowledge is still searched)."""
    if not terms or keys.store is None:
        return []
    return await keys.blind(list(terms))


async def readable_twins(replica: Replica, principal: Principal) -> frozenset[str] | None:
    """The twins whose text (artifacts, events) this caller may read (None: a superuser reads
    every twin)."""
    if principal.is_superuser:
        return None
    async with replica.connection() as conn:
        return await readable_on(conn, principal)


async def readable_on(conn: Any, principal: Principal) -> frozenset[str]:
    """``readable_twins`` on a connection the caller holds (not for a superuser): its own twins
    and those granted to it, each by its index, neither every twin that has a document (which
    grew with every text event a twin logged) nor every twin."""
    cur = await conn.execute(TWINS_READABLE_SQL, sql_params(principal))
    return frozenset(r[0] for r in await cur.fetchall())


def any_word(query: str) -> str:
    """The query as ``websearch_to_tsquery`` text that matches a chunk holding ANY of its words
    (ranked by how many and how often): a natural-language question rarely has every one of its
    words in the passage that answers it, and requiring all of them found nothing on the
    retrieval set (nDCG@10 0.00 against 0.70 with any word; bench/retrieval_quality.py)."""
    return " or ".join(re.findall(r"\w+", query))


def headline(text: str, lexemes: Sequence[str]) -> str:
    """A twin's chunk's snippet, as ``ts_headline`` makes knowledge's (which cannot run over a
    sealed body): at most ``MAX_WORDS`` words from a little before the densest run of matched
    words, each match in ``<b></b>``. A word matches a query lexeme it starts with (an English
    lexeme is its word's stem: "keeper" for "keepers", "trim" for "trims")."""
    words = list(_WORD.finditer(text))
    if not words:
        return text[:240]
    stems = tuple(s for s in lexemes if s)
    hit = [bool(stems) and w.group().lower().startswith(stems) for w in words]
    start, most = 0, -1
    for i in (i for i, h in enumerate(hit) if h):
        s = max(0, min(i - 3, len(words) - MAX_WORDS))
        n = sum(hit[s:s + MAX_WORDS])
        if n > most:
            start, most = s, n
    end = min(len(words), start + MAX_WORDS)
    out, pos = [], words[start].start()
    for i in range(start, end):
        w = words[i]
        out.append(text[pos:w.start()])
        out.append(f"<b>{w.group()}</b>" if hit[i] else w.group())
        pos = w.end()
    return "".join(out)


async def reveal(keys: Keyring, doc_id: str, twin_id: str, n: int, sealed: bytes,
                 metadata: bytes | None) -> Revealed | None:
    """A twin's chunk opened with its key, or None when it cannot be shown: the twin's key is
    gone (erased since the row was read) or the value does not open (logged, by id)."""
    try:
        key = await keys.key(twin_id)
        text = key.open(f"chunk:{doc_id}:{n}", sealed).decode()
        title, tags, source = labels_of(doc_id, metadata_of(key, doc_id, metadata))
    except NotFound:
        return None
    except (SealError, UnicodeDecodeError):
        log.error("document %s chunk %d of twin %s does not open under its key",
                  doc_id, n, twin_id)
        return None
    return Revealed(text, title, tags, source)


# The query's lexemes, and (not for a superuser) the twins whose text the caller may read: one
# round trip for both sides of a hybrid query.
_LEXEMES_READABLE = (
    "select tsvector_to_array(to_tsvector('english', %(q)s)),"
    f" case when %(superuser)s then null else array({TWINS_READABLE_SQL}) end")

# The page's rows for the keyword index's hits, in its order (a chunk gone from the replica
# since the index read it is simply not there).
_PAGE_OF = (
    "select h.doc_id, h.rank, ts_headline('english', c.body, {q}, '" + HEADLINE + "'),"
    " d.title, d.kind, d.twin_id, d.source, d.tags, h.n, c.sealed, a.metadata, " + OCCURRED +
    " from unnest(%(docs)s::text[], %(ns)s::int[], %(ranks)s::float8[]) with ordinality"
    " h(doc_id, n, rank, o)"
    " join knowledge_chunks c on c.doc_id = h.doc_id and c.n = h.n"
    " join knowledge_docs d on d.doc_id = h.doc_id"
    " left join artifacts a on a.artifact_id = h.doc_id and d.kind = 'artifact'"
    " order by h.o")

# Bounds the query's terms sent to the keyword index (a question of a thousand words still
# asks for its first thousand distinct lexemes and their hashes).
TERMS_MAX = 1000


@dataclass(frozen=True, slots=True)
class Asked:
    """A query as the searches ask it: any of its words (``any_word``), their English lexemes
    and keyed hashes, and the twins whose text the caller may read (None: a superuser)."""

    words: str
    lexemes: list[str]
    hashed: list[str]
    readable: frozenset[str] | None

    @property
    def terms(self) -> int:
        """Distinct lexemes (hybrid fusion weighs its keyword side by how many)."""
        return len(set(self.lexemes))

    def tsquery(self) -> tuple[str, dict[str, Any]]:
        """The words and their hashes as one tsquery: SQL, written out wherever it is used (not
        joined from a CTE, so the planner sees a constant and uses the GIN index: joined, it
        scanned every chunk, 28 ms at 10k chunks), and its parameters."""
        if not self.hashed:
            return "websearch_to_tsquery('english', %(q)s)", {"q": self.words}
        return ("(websearch_to_tsquery('english', %(q)s) || %(hq)s::tsquery)",
                {"q": self.words, "hq": " | ".join(self.hashed)})


async def ask(replica: Replica, principal: Principal, query: str) -> Asked:
    """The query's lexemes and the caller's readable twins in one statement, then the hashes."""
    words = any_word(query)
    async with replica.connection() as conn:
        cur = await conn.execute(_LEXEMES_READABLE, {**sql_params(principal), "q": words})
        found = await cur.fetchone()
    lexemes: list[str] = list(found[0]) if found else []
    readable = None if found is None or found[1] is None else frozenset(found[1])
    hashed = [h for h in await blinded(replica.keys, lexemes) if _HASHED.match(h)]
    return Asked(words, lexemes, hashed, readable)


@dataclass(slots=True)
class Ranked:
    """A keyword query's ranking: documents by their best chunk's score, best first, and what
    it reflects at least. Rows are read for the page only (``keyword_show``), unless Postgres
    ranked (``shown``: it read them in the ranking statement)."""

    hits: list[WordHit]
    answered: ConsistencyToken
    asked: Asked
    shown: dict[str, KeywordHit] | None = None

    def scored(self) -> list[tuple[str, float]]:
        return [(h.doc_id, h.score) for h in self.hits]


async def keyword_rank(
    replica: Replica, principal: Principal, asked: Asked, scope: Scope, limit: int,
    index: WordSearch | None = None, token: ConsistencyToken | None = None, wait_s: float = 0.0,
) -> Ranked:
    """At most ``limit`` documents for the query's words, by their best chunk.

    The hub's keyword index (``index``: BM25, ``regional.index_words``) ranks when it covers the
    caller's token (or is current, without one) within ``wait_s``; else Postgres ranks on the
    replica (``ts_rank`` over every match), so keyword search stays in the region whatever
    its index service does."""
    if index is not None:
        terms = list(dict.fromkeys([*asked.lexemes, *asked.hashed]))[:TERMS_MAX]
        try:
            ranked, mark = await index.words(terms, replace(scope, readable=asked.readable),
                                             limit, token, wait_s)
        except Unavailable as exc:  # ReplicaBehind too: behind the token, not current, busy
            log.info("keyword search on the replica: the index did not answer (%s)", exc)
        else:
            return Ranked(ranked, mark, asked)
    where, params = filter_sql(scope)
    q, tsq = asked.tsquery()
    async with replica.connection() as conn:
        answered = await replica.floor(conn)
        # Ranked first, carrying only (document, chunk, rank) through the sorts; the page's
        # chunks, documents and artifacts are read after, for ``limit`` rows. The documents
        # are joined while ranking only when a filter is on them.
        docs = " join knowledge_docs d using (doc_id)" if where else ""
        sql = (
            f"with ranked as (select c.doc_id, c.n, ts_rank(c.tsv, {q}) as rank"
            f" from knowledge_chunks c{docs} where c.tsv @@ {q} and {TENANT_SQL}{where}),"
            " best as (select distinct on (doc_id) doc_id, n, rank from ranked"
            " order by doc_id, rank desc, n),"
            " page as (select * from best order by rank desc, doc_id limit %(limit)s)"
            " select b.doc_id, b.rank,"
            f" ts_headline('english', c.body, {q}, '{HEADLINE}'),"
            " d.title, d.kind, d.twin_id, d.source, d.tags, b.n, c.sealed, a.metadata,"
            f" {OCCURRED}"
            " from page b join knowledge_chunks c on c.doc_id = b.doc_id and c.n = b.n"
            " join knowledge_docs d on d.doc_id = b.doc_id"
            " left join artifacts a on a.artifact_id = b.doc_id and d.kind = 'artifact'"
            " order by b.rank desc, b.doc_id"
        )
        params.update({**sql_params(principal), **tsq}, limit=limit)
        cur = await conn.execute(sql, params)
        rows = await cur.fetchall()
    shown = await _hits(replica.keys, rows, asked.lexemes)
    return Ranked([WordHit(h.doc_id, 0, h.score) for h in shown], answered, asked,
                  {h.doc_id: h for h in shown})


async def keyword_show(replica: Replica, ranked: Ranked, docs: Sequence[str]
                       ) -> list[KeywordHit]:
    """These of the ranking's documents as shown (their rows read from the replica, for these
    only: a headline costs), in the ranking's order; one gone since it was ranked is left out."""
    wanted = set(docs)
    if ranked.shown is not None:
        return [ranked.shown[h.doc_id] for h in ranked.hits if h.doc_id in wanted]
    page = [h for h in ranked.hits if h.doc_id in wanted]
    if not page:
        return []
    q, params = ranked.asked.tsquery()
    params.update(docs=[h.doc_id for h in page], ns=[h.n for h in page],
                  ranks=[h.score for h in page])
    async with replica.connection() as conn:
        cur = await conn.execute(_PAGE_OF.format(q=q), params)
        rows = await cur.fetchall()
    return await _hits(replica.keys, rows, ranked.asked.lexemes)


async def _hits(keys: Keyring, rows: Sequence[Any], lexemes: Sequence[str]) -> list[KeywordHit]:
    hits = []
    for r in rows:
        if r[9] is None:
            hits.append(KeywordHit(r[0], float(r[1]), r[2], r[3], r[4], r[5], r[6], list(r[7])))
            continue
        opened = await reveal(keys, r[0], r[5], r[8], r[9], r[10])
        if opened is None:
            continue
        if r[4] == "event":  # titled by its type; no tags or source
            hits.append(KeywordHit(r[0], float(r[1]), headline(opened.text, lexemes), r[3],
                                   r[4], r[5], None, [], r[11]))
        else:
            hits.append(KeywordHit(r[0], float(r[1]), headline(opened.text, lexemes),
                                   opened.title, r[4], r[5], opened.source, opened.tags))
    return hits
