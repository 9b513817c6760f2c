//! The workers' durable state: connections, their encrypted credentials,
//! OAuth2 authorizations in progress and the cursor of each (connection,
//! data type), in SQLite.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tributary_connector_api::{ConnectionInfo, Cursor};
use tributary_schemas::model::Connection;
use tributary_schemas::{DataType, Timestamp};

use crate::ProducerError;
use crate::secrets::Sealed;

/// A connection as stored, with its lifecycle status.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    pub info: ConnectionInfo,
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl StoredConnection {
    /// The connection as a record of the common data model.
    pub fn to_record(&self) -> Connection {
        Connection {
            id: self.info.connection_id.clone(),
            company_id: self.info.company_id.clone(),
            source: self.info.source.clone(),
            status: self.status.clone(),
            status_reason: self.status_reason.clone(),
            created_at: self.created_at,
        }
    }
}

#[derive(Clone)]
pub struct StateStore {
    pool: SqlitePool,
}

impl StateStore {
    pub async fn open(path: &Path) -> Result<Self, ProducerError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A saved cursor must survive a crash: sync to disk at commit.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| ProducerError::State(format!("open {}: {e}", path.display())))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| ProducerError::State(format!("migrate {}: {e}", path.display())))?;
        Ok(StateStore { pool })
    }

    /// Adds a connection as `linked`; an existing id is left as it is.
    /// Returns whether it was added.
    pub async fn add_connection(
        &self,
        info: &ConnectionInfo,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        self.add_connection_with_status(info, "linked", now).await
    }

    /// Adds a connection with `status` (`linked`, or `pending_auth` when a
    /// person must grant access first); an existing id is left as it is.
    pub async fn add_connection_with_status(
        &self,
        info: &ConnectionInfo,
        status: &str,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        let done = sqlx::query(
            "INSERT INTO connections (id, company_id, source, settings, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&info.connection_id)
        .bind(&info.company_id)
        .bind(&info.source)
        .bind(info.settings.to_string())
        .bind(status)
        .bind(now.millis())
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn connections(&self) -> Result<Vec<StoredConnection>, ProducerError> {
        let rows = sqlx::query(
            "SELECT id, company_id, source, settings, status, status_reason, created_at, updated_at FROM connections ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(state_err)?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let settings: String = r.get(3);
                let settings = serde_json::from_str(&settings).map_err(|e| {
                    ProducerError::State(format!("connection {id} has unreadable settings: {e}"))
                })?;
                Ok(StoredConnection {
                    info: ConnectionInfo {
                        connection_id: id,
                        company_id: r.get(1),
                        source: r.get(2),
                        settings,
                    },
                    status: r.get(4),
                    status_reason: r.get(5),
                    created_at: Timestamp(r.get(6)),
                    updated_at: Timestamp(r.get(7)),
                })
            })
            .collect()
    }

    /// One connection, if it exists.
    pub async fn connection(&self, id: &str) -> Result<Option<StoredConnection>, ProducerError> {
        Ok(self
            .connections()
            .await?
            .into_iter()
            .find(|c| c.info.connection_id == id))
    }

    pub async fn set_settings(
        &self,
        connection_id: &str,
        settings: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        sqlx::query("UPDATE connections SET settings = ?, updated_at = ? WHERE id = ?")
            .bind(settings.to_string())
            .bind(now.millis())
            .bind(connection_id)
            .execute(&self.pool)
            .await
            .map_err(state_err)?;
        Ok(())
    }

    /// The sealed credentials of a connection.
    pub async fn sealed_credentials(
        &self,
        connection_id: &str,
    ) -> Result<Option<Sealed>, ProducerError> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, nonce, ciphertext FROM credentials WHERE connection_id = ?",
        )
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(row.map(|(key_id, nonce, ciphertext)| Sealed {
            key_id,
            nonce,
            ciphertext,
        }))
    }

    /// Replaces a connection's sealed credentials; durable at return
    /// (synchronous=FULL).
    pub async fn save_sealed_credentials(
        &self,
        connection_id: &str,
        sealed: &Sealed,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        sqlx::query(
            "INSERT INTO credentials (connection_id, key_id, nonce, ciphertext, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (connection_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(connection_id)
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(())
    }

    /// Unlinks a connection: it stops syncing and its credentials are
    /// erased. Its records stay, and its history.
    pub async fn unlink(
        &self,
        connection_id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        let mut tx = self.pool.begin().await.map_err(state_err)?;
        for sql in [
            "DELETE FROM credentials WHERE connection_id = ?",
            "DELETE FROM authorizations WHERE connection_id = ?",
        ] {
            sqlx::query(sql)
                .bind(connection_id)
                .execute(&mut *tx)
                .await
                .map_err(state_err)?;
        }
        sqlx::query(
            "UPDATE connections SET status = 'unlinked', status_reason = ?, updated_at = ? WHERE id = ?",
        )
        .bind(reason)
        .bind(now.millis())
        .bind(connection_id)
        .execute(&mut *tx)
        .await
        .map_err(state_err)?;
        tx.commit().await.map_err(state_err)
    }

    /// Remembers the OAuth2 `state` sent for a connection's authorization.
    pub async fn start_authorization(
        &self,
        state: &str,
        connection_id: &str,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        sqlx::query(
            "INSERT INTO authorizations (state, connection_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(state)
        .bind(connection_id)
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(())
    }

    /// Consumes an OAuth2 `state`: the connection it was sent for, if it
    /// was issued and is younger than `max_age_ms`. A state works once.
    pub async fn take_authorization(
        &self,
        state: &str,
        now: Timestamp,
        max_age_ms: i64,
    ) -> Result<Option<String>, ProducerError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM authorizations WHERE state = ? RETURNING connection_id, created_at",
        )
        .bind(state)
        .fetch_optional(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(row
            .filter(|(_, created)| now.millis() - created <= max_age_ms)
            .map(|(id, _)| id))
    }

    pub async fn set_status(
        &self,
        connection_id: &str,
        status: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        sqlx::query(
            "UPDATE connections SET status = ?, status_reason = ?, updated_at = ? \
             WHERE id = ? AND (status <> ? OR COALESCE(status_reason, '') <> COALESCE(?, ''))",
        )
        .bind(status)
        .bind(reason)
        .bind(now.millis())
        .bind(connection_id)
        .bind(status)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(())
    }

    pub async fn cursor(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<Option<Cursor>, ProducerError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT cursor FROM cursors WHERE connection_id = ? AND data_type = ?")
                .bind(connection_id)
                .bind(data_type.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(state_err)?;
        Ok(row.map(|(c,)| Cursor(c)))
    }

    pub async fn save_cursor(
        &self,
        connection_id: &str,
        data_type: DataType,
        cursor: &Cursor,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        sqlx::query(
            "INSERT INTO cursors (connection_id, data_type, cursor, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (connection_id, data_type) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(connection_id)
        .bind(data_type.as_str())
        .bind(&cursor.0)
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(state_err)?;
        Ok(())
    }
}

fn state_err(e: sqlx::Error) -> ProducerError {
    ProducerError::State(e.to_string())
}
