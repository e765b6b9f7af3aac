-- Popular items (issue 24): a twin with neither profile nor events is recommended the agents and
-- knowledge documents whose tags are the most common (regional/recommend.py). Ranking them
-- aggregated the whole directory or knowledge base on every such request; now central ranks them
-- when they change (central/popular.py: off the commit path, at most once a second per kind and
-- shard) and the hubs read the top rows, with the rest of the cell's data, from their replicas.
--
-- A row's score is the sum over its tags of how many ranked rows carry the tag (agents: the
-- listed ones; knowledge: kind 'knowledge'); ties go to the newest (an agent's listing position;
-- a document's updated_at, then its id). The hub rebuilds a caller's own ranking from these rows
-- (its own listing does not count towards the frequencies): each row keeps its tags' counts.
create table popular_items (
    kind       text not null check (kind in ('agent', 'knowledge')),
    rank       integer not null check (rank >= 1),
    id         text not null,              -- an agent's sub, a document's id
    title      text not null,              -- its name or title when ranked
    score      bigint not null,
    tags       text[] not null,            -- its tags, most common first, then by name
    freqs      bigint[] not null,          -- each tag's count, in the same order
    listed_seq bigint,                     -- an agent's listing position; null for knowledge
    primary key (kind, rank)
);

-- Per kind: when it was last ranked, and the first row left out (its score and listing
-- position; null when every row is kept). Every row not kept ranks at or below it, which is what
-- lets a hub prove a caller's adjusted ranking of the kept rows exact (regional/popular.py).
create table popular_state (
    kind         text primary key check (kind in ('agent', 'knowledge')),
    refreshed_at timestamptz not null,
    bound_score  bigint,
    bound_seq    bigint
);

-- One ranking of one kind, its top rows: 50 documents (the API's limit is at most 50), 200
-- agents (more, so that a caller's adjusted ranking still finds its top 50 among them). Rankings of a kind run one
-- at a time (this lock), and READ COMMITTED takes a snapshot per statement, so each one sees
-- every commit before it took the lock: a later ranking never holds older data than an earlier
-- one. Returns how many rows it kept.
create function popular_refresh(which text) returns integer
language plpgsql as $$
declare
    keep constant integer := case which when 'agent' then 200 else 50 end;
    kept integer;
    b_score bigint;
    b_seq bigint;
begin
    perform pg_advisory_xact_lock(1296191567, hashtext(which));  -- 0x4D42504F, "MBPO"
    delete from popular_items where kind = which;
    if which = 'agent' then
        insert into popular_items (kind, rank, id, title, score, tags, freqs, listed_seq)
        with freq as (select u.tag, count(*) c from agents a, unnest(a.interests) u(tag)
                      where a.published and a.listed_seq is not null group by u.tag)
        select 'agent', row_number() over (order by coalesce(sum(f.c), 0) desc,
                                                    a.listed_seq desc),
               a.sub, a.name, coalesce(sum(f.c), 0),
               coalesce(array_agg(f.tag order by f.c desc, f.tag)
                        filter (where f.tag is not null), '{}'),
               coalesce(array_agg(f.c order by f.c desc, f.tag)
                        filter (where f.tag is not null), '{}'),
               a.listed_seq
        from agents a left join lateral unnest(a.interests) u(tag) on true
             left join freq f on f.tag = u.tag
        where a.published and a.listed_seq is not null
        group by a.sub, a.name, a.listed_seq
        order by 5 desc, a.listed_seq desc limit keep + 1;
    elsif which = 'knowledge' then
        insert into popular_items (kind, rank, id, title, score, tags, freqs)
        with freq as (select u.tag, count(*) c from knowledge_docs d, unnest(d.tags) u(tag)
                      where d.kind = 'knowledge' group by u.tag)
        select 'knowledge', row_number() over (order by coalesce(sum(f.c), 0) desc,
                                                        d.updated_at desc, d.doc_id),
               d.doc_id, d.title, coalesce(sum(f.c), 0),
               coalesce(array_agg(f.tag order by f.c desc, f.tag)
                        filter (where f.tag is not null), '{}'),
               coalesce(array_agg(f.c order by f.c desc, f.tag)
                        filter (where f.tag is not null), '{}')
        from knowledge_docs d left join lateral unnest(d.tags) u(tag) on true
             left join freq f on f.tag = u.tag
        where d.kind = 'knowledge'
        group by d.doc_id, d.title, d.updated_at
        order by 5 desc, d.updated_at desc, d.doc_id limit keep + 1;
    else
        raise exception 'no popular ranking of kind %', which;
    end if;
    -- The row past ``keep`` (if any) is the bound, not an item.
    delete from popular_items where kind = which and rank = keep + 1
        returning score, listed_seq into b_score, b_seq;
    insert into popular_state (kind, refreshed_at, bound_score, bound_seq)
        values (which, clock_timestamp(), b_score, b_seq)
        on conflict (kind) do update set refreshed_at = excluded.refreshed_at,
            bound_score = excluded.bound_score, bound_seq = excluded.bound_seq;
    select count(*) into kept from popular_items where kind = which;
    return kept;
end $$;

select popular_refresh('agent'), popular_refresh('knowledge');
