-- Twins: the Yjs document (compacted V1 full state), the JSON profile materialised from it,
-- and a version that counts the writes that changed the state.
create table twins (
    twin_id    text primary key,
    owner_sub  text not null,
    state      bytea not null,
    profile    jsonb not null,
    version    bigint not null check (version >= 1),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index twins_owner on twins (owner_sub);

create table twin_grants (
    twin_id    text not null references twins (twin_id) on delete cascade,
    sub        text not null,
    access     text not null check (access in ('read', 'write')),
    granted_by text not null,
    granted_at timestamptz not null default now(),
    primary key (twin_id, sub)
);

-- The change feed: one row per committed write, replicated with the data, so a hub that reads it
-- from its own replica never hears of a change before that replica can show it.
-- seq is assigned in COMMIT order, not insert order: the writer takes the feed lock as the last
-- statement of its transaction and holds it through COMMIT (see central/store.py), so a follower
-- reading "seq > cursor" can never skip a row that commits late.
create sequence change_feed_seq;
create table change_feed (
    seq          bigint primary key,
    kind         text not null,
    key          text not null,
    version      bigint,
    committed_at timestamptz not null default now()
);
