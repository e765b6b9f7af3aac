-- Erasure (central/erasure.py): the pseudonyms of erased twins (an erased id is never created
-- again) and the signed receipts of erasures, by receipt id (marked with the cell).
create table erased_twins (
    twin_ref   text primary key,
    erased_at  timestamptz not null default now()
);

create table erasure_receipts (
    receipt_id text primary key,
    erased_by  text not null,
    receipt    jsonb not null
);
