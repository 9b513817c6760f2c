-- The sync history: one row per sync of one connection and data type, from
-- the moment it is asked for (or started by the schedule) to its end. Times
-- are ms since the Unix epoch. Pruned after `sync.history_days`.
CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY,                  -- sortable by creation time
    connection_id TEXT NOT NULL REFERENCES connections (id),
    company_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    trigger TEXT NOT NULL,                -- schedule, request, resync, refetch
    record_id TEXT,                       -- refetch: the source id of the record
    status TEXT NOT NULL,                 -- queued, fetching, publishing, succeeded, failed, paused
    worker TEXT,                          -- the worker that ran it
    queued_at INTEGER NOT NULL,
    fetching_at INTEGER,
    publishing_at INTEGER,
    finished_at INTEGER,                  -- NULL while the run is open
    pages_fetched INTEGER NOT NULL DEFAULT 0,
    records_fetched INTEGER NOT NULL DEFAULT 0,
    records_published INTEGER NOT NULL DEFAULT 0,
    records_dead_lettered INTEGER NOT NULL DEFAULT 0,
    records_deleted INTEGER NOT NULL DEFAULT 0,   -- tombstones for records the source no longer lists
    error TEXT,
    error_fault TEXT,                     -- user, source, data, tributary
    resumed_from TEXT,                    -- the interrupted run this one continues
    repeats INTEGER NOT NULL DEFAULT 0     -- later scheduled runs that found nothing, folded in
);
CREATE INDEX sync_runs_by_company ON sync_runs (company_id, id);
CREATE INDEX sync_runs_by_end ON sync_runs (finished_at);
-- At most one open run per connection and data type: asking for a second
-- one is refused (the API answers 409 with the open one).
CREATE UNIQUE INDEX sync_runs_one_open ON sync_runs (connection_id, data_type)
    WHERE finished_at IS NULL;

-- The revision each (connection, data type)'s events carry: raised by every
-- resync, so its events win over the versions the stores hold.
CREATE TABLE revisions (
    connection_id TEXT NOT NULL REFERENCES connections (id),
    data_type TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);

-- Deletion reconciliation: the records each connection published live, per
-- data type, with the version published and when a sync last saw each
-- (ms, the worker's clock). A full pass deletes those not seen since it
-- began.
CREATE TABLE live_ids (
    connection_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, data_type, record_id)
);

-- When each connection and data type last had a full pass (a run that
-- fetched everything the source lists).
CREATE TABLE full_passes (
    connection_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    passed_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);

-- The latest manifest of each connection and data type (also on the
-- tributary.v1.manifests topic).
CREATE TABLE manifests (
    connection_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    company_id TEXT NOT NULL,
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    as_of INTEGER NOT NULL,
    full_pass INTEGER NOT NULL,              -- 1 after a full pass
    live_count INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);
CREATE INDEX manifests_by_company ON manifests (company_id);

-- Sync settings per data type that override the configuration's for one
-- connection (JSON: see src/plan.rs).
ALTER TABLE connections ADD COLUMN sync_plan TEXT NOT NULL DEFAULT '{}';

-- When each data type of a connection is next due by schedule (ms, the
-- worker's clock); a connection is due when its earliest data type is.
CREATE TABLE type_schedule (
    connection_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    next_sync_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);
