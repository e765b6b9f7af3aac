-- Stored answers of keyed writes (central/replay.py): one row per (caller, Idempotency-Key),
-- claimed at the start of the write's transaction and given its answer before COMMIT, so a
-- committed write always has its answer here and a rolled-back one never leaves a row. A retry
-- answers the stored status and body instead of writing again. `token` is the commit's
-- position, set right after COMMIT on the same connection (null if that was lost: a replay then
-- answers the primary's current position, which is after the commit).
create table write_keys (
    principal       text not null,
    idempotency_key text not null,
    action          text not null,
    digest          bytea not null,   -- sha256 of method, path, query and body
    status          int,
    body            jsonb,
    token           text,
    created_at      timestamptz not null default now(),
    primary key (principal, idempotency_key)
);
create index write_keys_created on write_keys (created_at);
