-- A twin's newest text artifacts, and everyone's (issue 24): what get_recommendations shows a
-- twin with nothing to go on (regional/recommend.py, _NEWEST_ARTIFACTS), read newest first by
-- these indexes and stopped at the page, not sorted from every artifact per call.
create index knowledge_docs_artifacts_newest on knowledge_docs (updated_at desc, doc_id)
    where kind = 'artifact';
create index knowledge_docs_twin_artifacts_newest on knowledge_docs (twin_id, updated_at desc, doc_id)
    where kind = 'artifact';
