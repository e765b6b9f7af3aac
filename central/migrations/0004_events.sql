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
    primary key (created_at, event_id)
) partition by range (created_at);
create table events_default partition of events default;
create index events_twin on events (twin_id, created_at, event_id);

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
