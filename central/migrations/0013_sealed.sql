-- Personal data sealed at rest (issue "Personal data", item 1; sealing/): every value below is
-- AES-256-GCM ciphertext under its twin's own data key, which lives in the cell's key store,
-- never in this database. What stays plaintext, and why: ids, owners and grantees (who may
-- read is decided in SQL), versions, sequence numbers and times (order and cursors), an
-- event's type (a label the caller picks from a small set, filtered on), artifact sizes,
-- hashes, content types and statuses, and the search index's terms of a twin's text, stored
-- as keyed hashes under the cell's blind-index key (never the words), and its vectors (in the
-- hub's index only). All of it is in the twin's cell only and deleted with the twin.
--
-- Rows written in plaintext before this migration cannot be sealed by SQL (the keys are not
-- in the database), so it refuses a database that holds twins.
do $$
begin
    if exists (select 1 from twins) then
        raise exception 'migration 0013 seals personal data and this database holds twins '
            'written in plaintext: export them (GET /v1/twins/{id}/export), start from an empty '
            'database and create them again';
    end if;
end $$;

alter table twins alter column profile type bytea using convert_to(profile::text, 'UTF8');
alter table events alter column payload type bytea using convert_to(payload::text, 'UTF8');
alter table trajectory_steps alter column action type bytea using convert_to(action, 'UTF8');
alter table trajectory_steps alter column evidence type bytea
    using convert_to(evidence::text, 'UTF8');
alter table artifacts alter column metadata drop default;
alter table artifacts alter column metadata type bytea using convert_to(metadata::text, 'UTF8');
alter table artifacts alter column metadata drop not null;

-- A chunk of knowledge (public) keeps its body and its words; a chunk of a twin's text keeps
-- neither: ``sealed`` holds the body, ``tsv`` the blind-index hashes of its words (central
-- writes both kinds' tsv, so it is never null). A twin's document (knowledge_docs) keeps its
-- tags and source as blind-index hashes too, and the artifact's id as its title.
alter table knowledge_chunks alter column tsv drop expression;
alter table knowledge_chunks alter column tsv set not null;
alter table knowledge_chunks alter column body drop not null;
alter table knowledge_chunks add column sealed bytea;
alter table knowledge_chunks add constraint knowledge_chunks_sealed
    check ((body is null) = (sealed is not null));
-- A twin's chunk's vector is sealed too (``sealed_embedding``, float32, under the twin's key;
-- ``embedding`` left empty): a vector can be inverted into much of its text, and sealed it is
-- shredded with the twin's key in every copy. Hubs open it when they index the chunk.
alter table knowledge_chunks add column sealed_embedding bytea;
alter table knowledge_chunks add constraint knowledge_chunks_sealed_embedding
    check ((sealed is null) = (sealed_embedding is null));
