-- A caller's grants, found by its sub (issue 24): the twins a caller may read are its own
-- (twins_owner) and those granted to it, looked up here for every semantic or hybrid search by a
-- non-superuser (regional/index_keyword.py, mbwire.access.TWINS_READABLE_SQL), not found by a
-- pass over every twin.
create index twin_grants_sub on twin_grants (sub, access, twin_id);
