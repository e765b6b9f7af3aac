-- Feed order without a commit lock (issue 21). 0001 drew each feed row's seq while its writer
-- committed, under an advisory lock held to the end of the transaction: under synchronous
-- commit that end comes after the standby's acknowledgement, so every feed-writing commit of the
-- cell queued behind the previous one's round trip to the standby.
--
-- Now a writer commits its row with seq null, taking no lock, and a sequencer (central/
-- sequencer.py; every shard runs one, one ticks at a time) gives the committed rows their seq in
-- a transaction of its own: sequencer transactions commit one after the other (this lock), each
-- numbering only rows already committed, so seq still grows in the order rows become visible on
-- every replica, and "seq > cursor" still never skips a row. Only the ticks wait on each other's
-- round trip to the standby; one tick numbers every row that committed meanwhile.
-- A follower that must not miss a committed row before its tick (the hubs' cache, near cache
-- and index: regional/replica/feed.py) also reads the rows still pending (seq is null).
-- The agent directory's listed_seq is drawn the same way, in the same tick.
drop trigger change_feed_commit_order on change_feed;
drop function change_feed_assign_seq();
drop trigger agents_commit_order on agents;
drop function agents_assign_seq();

create index change_feed_pending on change_feed (id) where seq is null;
create index agents_pending on agents (sub) where listed_seq is null;

-- One tick: numbers up to max_rows pending feed rows and agent registrations; returns how many,
-- or -1 when another tick holds the lock and wait is false. Every statement after the lock sees
-- every commit before it (READ COMMITTED takes a snapshot per statement).
create function feed_sequence(max_rows integer, wait boolean) returns integer
language plpgsql as $$
declare
    fed integer;
    listed integer;
begin
    if wait then
        perform pg_advisory_xact_lock(1296189765);  -- 0x4D424645, "MBFE": the ticks' lock
    elsif not pg_try_advisory_xact_lock(1296189765) then
        return -1;
    end if;
    update change_feed f set seq = t.seq
      from (select id, nextval('change_feed_seq') as seq
              from (select id from change_feed where seq is null order by id limit max_rows) p
             order by id) t
     where f.id = t.id;
    get diagnostics fed = row_count;
    update agents a set listed_seq = t.seq, created_at = clock_timestamp(),
                        updated_at = clock_timestamp()
      from (select sub, nextval('agents_listed_seq') as seq
              from (select sub from agents where listed_seq is null order by sub limit max_rows) p
             order by sub) t
     where a.sub = t.sub;
    get diagnostics listed = row_count;
    return fed + listed;
end $$;
