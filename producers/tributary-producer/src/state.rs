//! The workers' durable state: connections and the cursor of each
//! (connection, data type), in SQLite.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tributary_connector_api::{ConnectionInfo, Cursor};
use tributary_schemas::model::Connection;
use tributary_schemas::{DataType, Timestamp};

use crate::ProducerError;

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

    /// Adds a connection; an existing id is left as it is. Returns whether it was added.
    pub async fn add_connection(
        &self,
        info: &ConnectionInfo,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        let done = sqlx::query(
            "INSERT INTO connections (id, company_id, source, settings, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 'linked', ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&info.connection_id)
        .bind(&info.company_id)
        .bind(&info.source)
        .bind(info.settings.to_string())
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
