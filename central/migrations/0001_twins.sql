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
-- seq is assigned in COMMIT order, not insert order: a deferred constraint trigger draws it while
-- the transaction commits, under an advisory lock that is released only after the commit is
-- visible. So a follower reading "seq > cursor" can never skip a row that commits late, and the
-- lock is held for the commit itself, never while the writer talks to its client.
create sequence change_feed_seq;
create table change_feed (
    id           bigint generated always as identity primary key,
    seq          bigint unique,
    kind         text not null,
    key          text not null,
    version      bigint,
    committed_at timestamptz not null default now()
);

create function change_feed_assign_seq() returns trigger language plpgsql as $$
begin
    perform pg_advisory_xact_lock(1296189765);  -- 0x4D424645, "MBFE": the feed's commit lock
    update change_feed set seq = nextval('change_feed_seq') where id = new.id;
    return null;
end $$;

create constraint trigger change_feed_commit_order
    after insert on change_feed
    deferrable initially deferred
    for each row execute function change_feed_assign_seq();
