-- Events (log_event) and trajectories (update_trajectory).
-- Events are range-partitioned by the time central stored them, so retention drops whole
-- partitions (cheap, no vacuum debt) instead of deleting rows. Central creates the partitions
-- ahead of time; the default partition catches anything outside them, so an insert never fails
-- for want of a partition.
create table events (
    twin_id         text not null,
    event_id        bigint generated always as identity,
    type            text not null,
    payload         jsonb not null,
    principal       text not null,
    idempotency_key text,
    created_at      timestamptz not null default now(),
    -- The event's place in its twin's log, drawn from event_heads under the head's row lock,
    -- which is held until commit: seq n+1 commits after seq n, so a replica that shows n+1
    -- shows every earlier one, and a cursor over seq never skips a row that commits late
    -- (created_at is the transaction's start, so it is not a commit order).
    seq             bigint not null,
    primary key (created_at, event_id)
) partition by range (created_at);
create table events_default partition of events default;
create index events_twin on events (twin_id, created_at, event_id);
create index events_twin_seq on events (twin_id, seq);

-- Each twin's last event seq (one row per twin that has events).
create table event_heads (
    twin_id text primary key,
    seq     bigint not null
);

-- A retried idempotency key is stored once per principal: the key's first arrival is recorded
-- here (not partitioned, so uniqueness holds across partitions).
create table event_keys (
    principal       text not null,
    idempotency_key text not null,
    created_at      timestamptz not null default now(),
    primary key (principal, idempotency_key)
);

-- A twin's trajectory: ordered, versioned steps; version n is the n-th step.
create table trajectory_steps (
    twin_id    text not null,
    version    bigint not null check (version > 0),
    action     text not null,
    evidence   jsonb,
    principal  text not null,
    created_at timestamptz not null default now(),
    primary key (twin_id, version)
);
