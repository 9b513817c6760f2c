-- Versions are ordered by (source_modified_at, revision): a resync
-- re-publishes a source version with a higher revision so that it replaces
-- the stored one. Rows written before hold revision 0, as did their events.
ALTER TABLE records ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
