-- The sync history: see migrations/0004_runs.sql.
CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY,                  -- sortable by creation time
    connection_id TEXT NOT NULL REFERENCES connections (id),
    company_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    trigger TEXT NOT NULL,                -- schedule, request, resync, refetch
    record_id TEXT,                       -- refetch: the source id of the record
    status TEXT NOT NULL,                 -- queued, fetching, publishing, succeeded, failed, paused
    worker TEXT,                          -- the worker that ran it
    queued_at BIGINT NOT NULL,
    fetching_at BIGINT,
    publishing_at BIGINT,
    finished_at BIGINT,                  -- NULL while the run is open
    pages_fetched BIGINT NOT NULL DEFAULT 0,
    records_fetched BIGINT NOT NULL DEFAULT 0,
    records_published BIGINT NOT NULL DEFAULT 0,
    records_dead_lettered BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    error_fault TEXT,                     -- user, source, data, tributary
    resumed_from TEXT,                    -- the interrupted run this one continues
    repeats BIGINT NOT NULL DEFAULT 0     -- later scheduled runs that found nothing, folded in
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
    revision BIGINT NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);
