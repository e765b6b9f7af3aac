-- The agent directory (search_agents): one row per principal (JWT sub), written by
-- PUT /v1/agents/me. Only published rows are listed.
-- listed_seq is the listing's sort key, drawn while the registering transaction commits, under
-- the change feed's commit lock (0001_twins.sql): positions therefore appear in commit order on
-- every replica, and a reader paging "listed_seq > cursor" can never skip a registration that
-- commits after it passed (created_at = now() would be the transaction's START, which a slower
-- transaction can commit behind). created_at is taken at the same moment, so both orders agree.
create sequence agents_listed_seq;
create table agents (
    sub          text primary key,
    type         text not null,
    name         text not null,
    description  text not null default '',
    interests    text[] not null default '{}',   -- lower-cased tags, deduplicated
    capabilities text[] not null default '{}',
    homepage     text,
    contact      text,
    published    boolean not null default true,
    version      bigint not null default 1,
    -- Full text over name (A), interests (A) and description (B); written by central with the
    -- row (a generated column cannot call array_to_string, which is not immutable).
    tsv          tsvector not null,
    listed_seq   bigint unique,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);
create index agents_listed on agents (listed_seq) where published;
create index agents_type on agents (type, listed_seq) where published;
create index agents_tsv on agents using gin (tsv) where published;
create index agents_interests on agents using gin (interests) where published;

create function agents_assign_seq() returns trigger language plpgsql as $$
begin
    perform pg_advisory_xact_lock(1296189765);  -- the feed's commit lock ("MBFE")
    update agents set listed_seq = nextval('agents_listed_seq'),
                      created_at = clock_timestamp(), updated_at = clock_timestamp()
     where sub = new.sub and listed_seq is null;
    return null;
end $$;

create constraint trigger agents_commit_order
    after insert on agents
    deferrable initially deferred
    for each row execute function agents_assign_seq();
-- Feed kind added: 'agent' (key: sub).
