-- Current version of every record, deleted ones kept as tombstones so an
-- older version arriving late can never bring them back.
CREATE TABLE records (
    company_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    source_modified_at INTEGER NOT NULL,  -- ms since the epoch: the version
    fetched_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    data TEXT,                            -- the record as JSON
    PRIMARY KEY (company_id, data_type, record_id)
);

CREATE INDEX records_by_version ON records (company_id, data_type, source_modified_at, record_id);

-- Latest sync outcome per company, data type and connection.
CREATE TABLE sync_status (
    company_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    source TEXT NOT NULL,
    last_run_id TEXT NOT NULL,
    last_started_at INTEGER NOT NULL,
    last_finished_at INTEGER NOT NULL,
    last_status TEXT NOT NULL,
    last_error TEXT,
    last_success_at INTEGER,
    runs INTEGER NOT NULL,
    failed_runs INTEGER NOT NULL,
    records_fetched INTEGER NOT NULL,
    PRIMARY KEY (company_id, data_type, connection_id)
);

-- Next offset to read per topic partition, written in the same transaction
-- as the rows it covers.
CREATE TABLE checkpoints (
    projection TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);
