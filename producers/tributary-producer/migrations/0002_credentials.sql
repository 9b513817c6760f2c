-- Connection credentials (OAuth tokens, API keys), encrypted: see src/secrets.rs.
CREATE TABLE credentials (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id),
    key_id TEXT NOT NULL,            -- which key sealed them
    nonce BLOB NOT NULL,             -- 24 random bytes, fresh at every save
    ciphertext BLOB NOT NULL,        -- XChaCha20-Poly1305, connection id as associated data
    updated_at INTEGER NOT NULL
);

-- OAuth2 authorization in progress: the state sent to the source.
CREATE TABLE authorizations (
    state TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id),
    created_at INTEGER NOT NULL
);
