-- The workers' state in PostgreSQL, in schema tributary_state (the
-- connection's search_path): the same tables as the SQLite state store's
-- migrations 0001-0003. Times are ms since the Unix epoch.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL,
    source TEXT NOT NULL,
    settings TEXT NOT NULL,          -- connector settings, JSON
    status TEXT NOT NULL,            -- linked, pending_auth, deauthorized, unlinked
    status_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE cursors (
    connection_id TEXT NOT NULL REFERENCES connections (id),
    data_type TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);

-- Encrypted: see src/secrets.rs.
CREATE TABLE credentials (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id),
    key_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE authorizations (
    state TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id),
    created_at BIGINT NOT NULL
);

-- By the database's clock: see migrations/0003_leases.sql.
CREATE TABLE sync_leases (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id),
    owner TEXT,
    claimed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    next_sync_at BIGINT NOT NULL,
    requested_at BIGINT NOT NULL
);
