-- Sync leases: which worker syncs a connection now, and when it is next due.
-- Times are ms since the Unix epoch, by the database's clock.
CREATE TABLE sync_leases (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id),
    owner TEXT,                      -- the worker holding it; NULL when free
    claimed_at INTEGER NOT NULL,     -- when the current or last holder claimed it
    expires_at INTEGER NOT NULL,     -- free for others after this
    next_sync_at INTEGER NOT NULL,   -- due at or after this
    requested_at INTEGER NOT NULL    -- a sync asked for; due if after claimed_at
);
