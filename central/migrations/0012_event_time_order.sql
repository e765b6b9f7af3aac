-- Events listings bounded to the partitions they need (issue "Reads at scale", item 4).
-- A twin's events take their created_at from its head row, never earlier than the event before
-- them: greatest(the head's time, now()) under the head's row lock (central/events.py). So within
-- a twin, created_at never decreases with seq, and a listing cursor can carry the day of the last
-- event it answered: every later event is in that day's partition or a newer one, and the hub's
-- query names that floor so Postgres prunes every older partition (regional/reads/history.py).
-- Existing heads start at -infinity: their next event takes now().
alter table event_heads add column at timestamptz not null default '-infinity';
