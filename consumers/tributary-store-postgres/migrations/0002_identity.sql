-- A random id made once per store: projectors put it in their consumer
-- group id, so that an emptied or replaced store never inherits the group
-- offsets of the one before it.
CREATE TABLE store_identity (
    id TEXT PRIMARY KEY
);

INSERT INTO store_identity (id) VALUES (md5(random()::text || clock_timestamp()::text));
