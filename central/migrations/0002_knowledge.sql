-- Knowledge and artifacts. A document (curated knowledge, or a text artifact's text) is split into
-- chunks; each chunk's embedding is computed once, at central, and stored with it, so the vectors
-- reach every region by streaming replication with the text (no region embeds a document again).
-- Keyword search is Postgres full text over the same chunks, on each region's replica.
create table knowledge_docs (
    doc_id     text primary key,
    kind       text not null check (kind in ('knowledge', 'artifact')),
    -- An artifact's text belongs to a twin (and is readable as the twin is); knowledge to no one.
    twin_id    text references twins (twin_id) on delete cascade,
    owner_sub  text not null,
    title      text not null,
    tags       text[] not null default '{}',
    source     text,
    version    bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((kind = 'artifact') = (twin_id is not null))
);
create index knowledge_docs_twin on knowledge_docs (twin_id) where twin_id is not null;
create index knowledge_docs_tags on knowledge_docs using gin (tags);

create table knowledge_chunks (
    doc_id    text not null references knowledge_docs (doc_id) on delete cascade,
    n         int not null,
    body      text not null,
    tsv       tsvector generated always as (to_tsvector('english', body)) stored,
    -- Which embedder made the vector (its name says model and dimension): vectors of different
    -- embedders never share an index.
    embedder  text not null,
    embedding real[] not null,
    primary key (doc_id, n)
);
create index knowledge_chunks_tsv on knowledge_chunks using gin (tsv);

create table artifacts (
    artifact_id  text primary key,
    twin_id      text not null references twins (twin_id) on delete cascade,
    owner_sub    text not null,
    content_type text not null,
    size         bigint not null check (size >= 0),
    sha256       text not null,
    metadata     jsonb not null default '{}',
    status       text not null default 'pending' check (status in ('pending', 'stored')),
    blob_key     text not null,
    created_at   timestamptz not null default now(),
    stored_at    timestamptz
);
create index artifacts_twin on artifacts (twin_id);
-- Feed kinds added: 'knowledge' (key: doc_id; a document written, replaced or deleted: the
-- follower reads what the replica now holds) and 'artifact' (key: artifact_id).
