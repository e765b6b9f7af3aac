-- Recall (issue 27): an event may carry text (what recall searches) and the time it happened.
-- The text is sealed under the twin's key like the payload (field ``event_text:<seq>``); the
-- time is plaintext, as every other time is (SQL orders by it).
alter table events add column text bytea;
alter table events add column occurred_at timestamptz;

-- A text event is also a document of its twin, kind 'event' (``event/<event_id>``), chunked,
-- sealed and keyword-indexed by blind hashes like an artifact's text, in the transaction that
-- stores the event; its title is the event's type, and it carries the event's time.
alter table knowledge_docs drop constraint knowledge_docs_kind_check;
alter table knowledge_docs add constraint knowledge_docs_kind_check
    check (kind in ('knowledge', 'artifact', 'event'));
alter table knowledge_docs drop constraint knowledge_docs_check;
alter table knowledge_docs add constraint knowledge_docs_check
    check ((kind = 'knowledge') = (twin_id is null));
alter table knowledge_docs add column occurred_at timestamptz;

-- Its chunks' vectors come later, off log_event's acknowledgement (central/memories.py): until
-- then a chunk's ``embedder`` is '' (no hub indexes it) and it has no sealed vector.
alter table knowledge_chunks drop constraint knowledge_chunks_sealed_embedding;
alter table knowledge_chunks add constraint knowledge_chunks_sealed_embedding
    check ((sealed is null and sealed_embedding is null)
           or (sealed is not null and (sealed_embedding is not null or embedder = '')));
create index knowledge_chunks_unembedded on knowledge_chunks (doc_id, n) where embedder = '';

-- A twin's chunks carry its id, so a search within one twin (recall) asks one GIN index for that
-- twin's matches only: the blind-index key is the cell's, so a hashed word is the same hash in
-- every twin of the cell, and a global index returned every twin's matches to be filtered by a
-- join (28 ms at 13.6k memories over two twins; bench/recall_bench.py). btree_gin ships with
-- Postgres (contrib) and lets a GIN index lead with a plain column.
create extension if not exists btree_gin;
alter table knowledge_chunks add column twin_id text;
update knowledge_chunks c set twin_id = d.twin_id from knowledge_docs d
    where d.doc_id = c.doc_id and d.twin_id is not null;
create index knowledge_chunks_twin_tsv on knowledge_chunks using gin (twin_id, tsv)
    where twin_id is not null;
