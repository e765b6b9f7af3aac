-- The audit trail of twins' personal data (mbwire/audit.py, central/audit.py).
--
-- Hubs send what they answered to `POST /internal/audit`, which only appends to
-- `audit_pending`: an insert of new rows, so taking a batch waits on no other commit. Shard 0's
-- chainer moves pending rows into `audit_log` (its own transaction, under an advisory lock of
-- its own), each with `link = sha256(previous link || the record, its seq and the cell)`, so
-- changing, dropping or reordering a row breaks every link after it; signed checkpoints of the
-- head go to the blob store, apart from this table.
create table audit_pending (
    id     bigserial primary key,
    record jsonb not null          -- one mbwire.audit.AuditRecord, as checked at intake
);

-- `at` is taken only in the form 2026-01-02T03:04:05.123456Z (central/audit.py), which
-- timestamptz keeps to the microsecond: the link is recomputed from the row alone, with `at`
-- written back in that form (to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')).
create table audit_log (
    seq        bigint primary key,  -- 1, 2, ... per cell, no gaps
    at         timestamptz not null,
    actor      text not null,
    action     text not null,
    twin_ref   text not null,       -- the twin's pseudonym (mbwire.audit.twin_ref)
    request_id text not null,
    outcome    int not null,
    region     text not null,
    link       bytea not null
);
-- A twin's trail, paged by seq (GET /v1/twins/{twin_id}/audit at the hubs).
create index audit_log_twin on audit_log (twin_ref, seq);
