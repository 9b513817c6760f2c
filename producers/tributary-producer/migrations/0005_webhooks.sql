-- Outbound webhooks: see consumers/tributary-webhooks. Times are ms since
-- the Unix epoch, by the dispatcher's clock.

-- Who is told what: a URL, the event types it wants, optionally one
-- company only, and its signing secret sealed like connection credentials
-- (the subscription id as associated data).
CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,            -- JSON array of event type names
    company_id TEXT,                      -- NULL: every company
    description TEXT NOT NULL DEFAULT '',
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    removed_at INTEGER                    -- removed: nothing new is sent; its log stays
);

-- One message to one subscription, from its creation to its end; its log
-- of attempts is webhook_attempts. A replay is a new row with the same
-- message_id (the `webhook-id` header), so receivers deduplicate it.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id),
    event_type TEXT NOT NULL,
    company_id TEXT,
    payload TEXT NOT NULL,                -- the JSON body, as signed
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,                 -- pending, delivered, failed, cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,              -- NULL once it ended
    claimed_by TEXT,                      -- the dispatcher sending it now
    claimed_until INTEGER,
    last_attempt_at INTEGER,
    last_status_code INTEGER,
    last_error TEXT,
    finished_at INTEGER,
    replay_of TEXT                        -- the delivery this one replays
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,                  -- NULL: no answer
    error TEXT,                           -- NULL: delivered
    PRIMARY KEY (delivery_id, attempt)
);

-- The dispatcher's checkpoint: the next offset of each topic partition it
-- read, written in the transaction that queues what it read.
CREATE TABLE webhook_checkpoints (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The last status the dispatcher saw of each connection, so a connection
-- event that changes nothing tells no one.
CREATE TABLE webhook_connection_status (
    connection_id TEXT PRIMARY KEY,
    status TEXT NOT NULL
);

-- Reconciliation checks the dispatcher owes: after a manifest, whether the
-- store holds what it says (count and digest), checked `due_at` (a grace
-- for the store to catch up), and once more before telling a mismatch.
CREATE TABLE webhook_checks (
    company_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL,             -- 1, then 2 after a first mismatch
    PRIMARY KEY (company_id, data_type)
);
