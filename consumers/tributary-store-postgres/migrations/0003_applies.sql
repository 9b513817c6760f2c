-- How many events changed each row. The upsert applies only a newer version,
-- so this can never exceed the record's versions; the fault-injection suite
-- checks exactly that ("no event applied twice").
ALTER TABLE records ADD COLUMN applies BIGINT NOT NULL DEFAULT 1;
