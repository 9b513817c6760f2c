-- Connections and sync cursors of the connector workers.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL,
    source TEXT NOT NULL,
    settings TEXT NOT NULL,          -- connector settings, JSON
    status TEXT NOT NULL,            -- linked, pending_auth, deauthorized, unlinked
    status_reason TEXT,
    created_at INTEGER NOT NULL,     -- ms since the epoch
    updated_at INTEGER NOT NULL
);

CREATE TABLE cursors (
    connection_id TEXT NOT NULL REFERENCES connections (id),
    data_type TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);
