-- Who announced an artifact, as far as an upload must know it. owner_sub already names the
-- announcer's sub; an upload carries no JWT (its signed URL is the proof), so central checks
-- that sub may still write the twin when the bytes arrive. A superuser's right comes from its
-- token (internal tier or admin role), not from the twin, so it is kept here as it was at the
-- announcement. Rows announced before this migration count as not superuser: at worst such a
-- pending upload is refused and announced again.
alter table artifacts add column announcer_superuser boolean not null default false;
