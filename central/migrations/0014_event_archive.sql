-- The cold tier of events (issue 25, central/archive.py). A daily partition past the retention is
-- exported to a Parquet file in the cell's blob store, checked against the partition (row count
-- and checksum), and then dropped in the same transaction that records the file here. So a
-- snapshot (a hub's replica included) sees each day's events either in their partition or in
-- this catalog, never in both and never in neither.

-- One row per archived file (a day's partition; a later file of the same day, from rows that
-- reached an old day's default partition after its first export, gets a key of its own).
create table event_archive (
    key         text primary key,          -- the blob's key: archive/events/YYYY/MM/DD/...
    day         date not null,
    rows        bigint not null,           -- rows the file holds now
    checksum    numeric not null,          -- central/archive_files.py: the sum of row hashes
    bytes       bigint not null,
    sha256      text not null,             -- of the file's bytes as stored
    archived_at timestamptz not null default now(),
    scrubbed_at timestamptz                -- last rewritten without erased twins' rows
);
create index event_archive_day on event_archive (day);

-- Which twins each file holds and their seq range: a hub reads these on its replica to find the
-- files of one twin's page (regional/reads/archive.py), and central finds the files holding
-- erased twins' rows to rewrite them (a twin with rows here and no row in ``twins`` was erased).
create table event_archive_twins (
    twin_id   text not null,
    day       date not null,
    key       text not null references event_archive (key),
    rows      bigint not null,
    first_seq bigint not null,
    last_seq  bigint not null,
    primary key (twin_id, day, key)
);
create index event_archive_twins_key on event_archive_twins (key);
