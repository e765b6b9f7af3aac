-- The ledger: wallets, double-entry rows, and the idempotency record of every transfer and mint.
-- Amounts are numeric (exact); each currency has a scale, and every amount is stored at it.
create table currencies (
    code  text primary key check (code ~ '^[A-Z]{3,8}$'),
    scale int not null check (scale between 0 and 18)
);
insert into currencies (code, scale) values ('TOK', 6), ('USD', 2), ('EUR', 2);

create table wallets (
    wallet_id  text primary key,
    owner_sub  text not null,
    currency   text not null references currencies (code),
    -- The invariant the code also checks: a balance never goes negative.
    balance    numeric(38, 18) not null default 0 check (balance >= 0),
    created_at timestamptz not null default now()
);
create index wallets_owner on wallets (owner_sub);

-- One row per applied transfer or mint, keyed by (caller, idempotency key): a retry with the
-- same request answers ``result``; another request under the same key is a 409.
create table ledger_transactions (
    transaction_id  uuid primary key,
    caller_sub      text not null,
    idempotency_key text not null,
    kind            text not null check (kind in ('transfer', 'mint')),
    request         jsonb not null,
    result          jsonb,
    created_at      timestamptz not null default now(),
    unique (caller_sub, idempotency_key)
);

-- Double entry: the rows of one transaction sum to zero. A mint's counter-row has no wallet
-- (the issuer), so the sum of all wallet balances equals the sum of all mints.
create table ledger_entries (
    entry_id       bigserial primary key,
    transaction_id uuid not null references ledger_transactions (transaction_id),
    wallet_id      text references wallets (wallet_id),
    currency       text not null references currencies (code),
    amount         numeric(38, 18) not null,
    balance_after  numeric(38, 18),
    counterparty   text,
    reason         text,
    created_at     timestamptz not null default now()
);
create index ledger_entries_wallet on ledger_entries (wallet_id, entry_id desc);
