-- A twin is stored as a compacted state plus a log of the updates since (central/twins.py).
-- A write appends its Yjs update here and moves the twin's head (`twins.version`, a small HOT
-- update: the state and profile are TOAST pointers it does not rewrite); compaction folds the
-- log into `twins.state` and `twins.profile` up to `twins.compacted` and deletes what it
-- folded, in one transaction, so a snapshot shows either the old state and its whole log or
-- the new state and the rest of it. A read of version v is `state` plus the log rows
-- `compacted < version <= v`, applied in version order.
alter table twins add column compacted bigint;
update twins set compacted = version;
alter table twins alter column compacted set not null;
alter table twins add constraint twins_compacted check (compacted between 1 and version);
-- Room on each page for the head's new tuple, so the update stays HOT (no index entries).
alter table twins set (fillfactor = 80);

-- No foreign key to twins: its check would lock the twin's row once more per append; a twin's
-- log goes with it when the twin goes (erasure deletes both in one transaction).
create table twin_updates (
    twin_id text not null,
    version bigint not null,
    update  bytea not null,
    primary key (twin_id, version)
);
