//! The SQLite store backend: the store projection and its queries, for a
//! single machine.
//!
//! Contract:
//! - One row per (company, data type, record id) holding the newest version
//!   seen (by source modification time). An older or equal version never
//!   overwrites a newer one, so replays and out-of-order events change
//!   nothing. Deletes keep a tombstone row with `deleted = 1`.
//! - The checkpoint (next offset per topic partition) is written in the same
//!   transaction as the rows: after any crash the store and its checkpoint
//!   agree, and the projector resumes exactly after the last applied batch.

use std::path::Path;
use std::time::Duration;
use tributary_telemetry::crash_point;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tributary_projection::{Batch, Change, Checkpoint, Projection, ProjectionError};
use tributary_schemas::{Event, SyncRunEvent, SyncRunStatus};
use tributary_store::StoreError;

const PROJECTION: &str = "sql-store";

/// The SQLite store; cheap to clone (a pool).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn unavailable(e: sqlx::Error) -> ProjectionError {
    ProjectionError::of_store(PROJECTION, false, e)
}

/// Why a batch failed: the data itself (SQLite's TOOBIG, CONSTRAINT and
/// MISMATCH result codes), which no retry can fix, or anything else (a busy
/// or full database, an I/O error), which a retry may.
fn apply_error(e: sqlx::Error) -> ProjectionError {
    let refused = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            // Extended result codes carry the primary one in the low byte.
            .is_some_and(|code| matches!(code & 0xff, 18..=20)),
        _ => false,
    };
    ProjectionError::of_store(PROJECTION, refused, e)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The checkpoint must be as durable as the rows it covers.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| err(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(SqliteStore { pool })
    }

    async fn apply_batch(&self, batch: &Batch) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut stored = Checkpoint::new();
        for (topic, partition, _) in batch.positions.iter() {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT next_offset FROM checkpoints WHERE projection = ? AND topic = ? AND partition = ?")
                    .bind(PROJECTION)
                    .bind(topic)
                    .bind(partition)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((next,)) = row {
                stored.advance(topic, partition, next);
            }
        }
        for item in stored.unapplied(batch) {
            match &item.change {
                Change::Record(event) => upsert_record(&mut tx, event).await?,
                Change::SyncRun(run) => upsert_sync_run(&mut tx, run).await?,
                // Not on the topics a store reads.
                Change::Manifest(_) | Change::DeadLetter(_) => {}
            }
        }
        for (topic, partition, next) in batch.positions.iter() {
            sqlx::query(
                "INSERT INTO checkpoints (projection, topic, partition, next_offset) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
            )
            .bind(PROJECTION)
            .bind(topic)
            .bind(partition)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        }
        crash_point("store.before_commit");
        tx.commit().await?;
        crash_point("store.after_commit");
        Ok(())
    }
}

/// Live and deleted counts per data type of company `$1`.
const COUNTS: &str = "SELECT data_type, SUM(deleted = 0) AS records, SUM(deleted = 1) AS deleted, \
             MAX(source_modified_at) AS newest FROM records WHERE company_id = $1 GROUP BY data_type";

tributary_store::impl_read_store!(SqliteStore, counts = COUNTS);

async fn upsert_record(tx: &mut sqlx::SqliteConnection, event: &Event) -> Result<(), sqlx::Error> {
    let data = match &event.record {
        Some(record) => {
            Some(serde_json::to_string(record).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
        }
        None => None,
    };
    // The WHERE guards the version: only a newer one (by modification
    // time, then revision) replaces the row.
    sqlx::query(
        "INSERT INTO records (company_id, data_type, record_id, connection_id, source, event_id, source_modified_at, fetched_at, deleted, data, revision) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (company_id, data_type, record_id) DO UPDATE SET \
           connection_id = excluded.connection_id, source = excluded.source, event_id = excluded.event_id, \
           source_modified_at = excluded.source_modified_at, fetched_at = excluded.fetched_at, \
           deleted = excluded.deleted, data = excluded.data, revision = excluded.revision, applies = records.applies + 1 \
         WHERE (excluded.source_modified_at, excluded.revision) > (records.source_modified_at, records.revision)",
    )
    .bind(&event.company_id)
    .bind(&event.data_type)
    .bind(&event.source_record_id)
    .bind(&event.connection_id)
    .bind(&event.source)
    .bind(&event.event_id)
    .bind(event.source_modified_at.millis())
    .bind(event.fetched_at.millis())
    .bind(event.deleted)
    .bind(data)
    .bind(event.revision)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn upsert_sync_run(
    tx: &mut sqlx::SqliteConnection,
    run: &SyncRunEvent,
) -> Result<(), sqlx::Error> {
    let succeeded = run.status == SyncRunStatus::Succeeded;
    sqlx::query(
        "INSERT INTO sync_status (company_id, data_type, connection_id, source, last_run_id, last_started_at, last_finished_at, \
           last_status, last_error, last_success_at, runs, failed_runs, records_fetched) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (company_id, data_type, connection_id) DO UPDATE SET \
           source = excluded.source, last_run_id = excluded.last_run_id, last_started_at = excluded.last_started_at, \
           last_finished_at = excluded.last_finished_at, last_status = excluded.last_status, last_error = excluded.last_error, \
           last_success_at = COALESCE(excluded.last_success_at, sync_status.last_success_at), \
           runs = sync_status.runs + excluded.runs, failed_runs = sync_status.failed_runs + excluded.failed_runs, \
           records_fetched = sync_status.records_fetched + excluded.records_fetched \
         WHERE excluded.last_started_at > sync_status.last_started_at",
    )
    .bind(&run.company_id)
    .bind(&run.data_type)
    .bind(&run.connection_id)
    .bind(&run.source)
    .bind(&run.event_id)
    .bind(run.started_at.millis())
    .bind(run.finished_at.millis())
    .bind(run.status.as_str())
    .bind(&run.error)
    .bind(succeeded.then_some(run.finished_at.millis()))
    .bind(1 + run.repeats.max(0))
    .bind(i64::from(!succeeded))
    .bind(run.records_fetched)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for SqliteStore {
    fn name(&self) -> &'static str {
        PROJECTION
    }

    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        let rows: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT topic, partition, next_offset FROM checkpoints WHERE projection = ?",
        )
        .bind(PROJECTION)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
    }

    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError> {
        self.apply_batch(batch).await.map_err(apply_error)
    }
}
