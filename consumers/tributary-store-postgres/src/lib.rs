//! The PostgreSQL store backend: the store projection and its queries, for
//! running at scale.
//!
//! Same contract as the SQLite backend (see `tributary-store`): one row per
//! record at its newest version, tombstones for deletes, and the checkpoint
//! written in the same transaction as the rows.
//!
//! Writes are batched: the records of a batch go in one
//! `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO UPDATE … WHERE newer`
//! statement, after keeping only the newest version of each record within the
//! batch (a statement may not update one row twice).
//!
//! Several projector processes may apply the same partition during a
//! rebalance: each transaction first locks the checkpoint rows of its
//! partitions (in a fixed order, so two transactions cannot deadlock), then
//! skips what the checkpoint says was applied. A revoked partition's batch
//! is thus either applied whole with its checkpoint, or skipped.

use tributary_telemetry::crash_point;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tributary_projection::{
    Batch, Change, Checkpoint, Projection, ProjectionError, newest_per_record,
};
use tributary_schemas::{Event, SyncRunEvent, SyncRunStatus};
use tributary_store::{StoreError, sql};

const PROJECTION: &str = "sql-store";

/// The PostgreSQL store; cheap to clone (a pool).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn unavailable(e: sqlx::Error) -> ProjectionError {
    ProjectionError::of_store(PROJECTION, false, e)
}

/// Why a batch failed: the data itself (SQLSTATE classes 22 data exception,
/// e.g. a NUL character, which PostgreSQL text and jsonb cannot hold; 23
/// integrity constraint; 54 program limit, e.g. a value too large), which no
/// retry can fix, or anything else, which a retry may.
fn apply_error(e: sqlx::Error) -> ProjectionError {
    let refused = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| ["22", "23", "54"].iter().any(|c| code.starts_with(c))),
        _ => false,
    };
    ProjectionError::of_store(PROJECTION, refused, e)
}

/// Hides the password of a connection URL, for messages.
impl PostgresStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let err = |message: String| StoreError::Open {
            path: tributary_telemetry::redact_url(url),
            message,
        };
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|e| err(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(PostgresStore { pool })
    }

    /// This store's identity, made when its schema was created.
    pub async fn identity(&self) -> Result<String, StoreError> {
        let (id,): (String,) = sqlx::query_as("SELECT id FROM store_identity")
            .fetch_one(&self.pool)
            .await
            .map_err(sql::query_error)?;
        Ok(id)
    }

    async fn apply_batch(&self, batch: &Batch) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let stored = lock_checkpoints(&mut tx, &batch.positions).await?;
        // Only what was not applied before, newest version per record.
        let mut events = Vec::new();
        let mut runs: Vec<&SyncRunEvent> = Vec::new();
        for item in stored.unapplied(batch) {
            match &item.change {
                Change::Record(event) => events.push(event),
                Change::SyncRun(run) => runs.push(run),
                // Not on the topics a store reads.
                Change::Manifest(_) | Change::DeadLetter(_) => {}
            }
        }
        upsert_records(&mut tx, newest_per_record(events)).await?;
        for run in runs {
            upsert_sync_run(&mut tx, run).await?;
        }
        let (topics, partitions, offsets) = unzip_positions(&batch.positions);
        sqlx::query(
            "UPDATE checkpoints c SET next_offset = GREATEST(c.next_offset, p.next_offset) \
             FROM UNNEST($2::text[], $3::int[], $4::bigint[]) AS p(topic, partition, next_offset) \
             WHERE c.projection = $1 AND c.topic = p.topic AND c.partition = p.partition",
        )
        .bind(PROJECTION)
        .bind(&topics)
        .bind(&partitions)
        .bind(&offsets)
        .execute(&mut *tx)
        .await?;
        crash_point("store.before_commit");
        tx.commit().await?;
        crash_point("store.after_commit");
        Ok(())
    }
}

fn unzip_positions(positions: &Checkpoint) -> (Vec<String>, Vec<i32>, Vec<i64>) {
    let mut topics = Vec::new();
    let mut partitions = Vec::new();
    let mut offsets = Vec::new();
    for (topic, partition, offset) in positions.iter() {
        topics.push(topic.to_string());
        partitions.push(partition);
        offsets.push(offset);
    }
    (topics, partitions, offsets)
}

/// Locks the checkpoint rows of `positions` (creating missing ones) in key
/// order and returns what they hold.
async fn lock_checkpoints(
    tx: &mut Transaction<'_, Postgres>,
    positions: &Checkpoint,
) -> Result<Checkpoint, sqlx::Error> {
    let (topics, partitions, _) = unzip_positions(positions);
    sqlx::query(
        "INSERT INTO checkpoints (projection, topic, partition, next_offset) \
         SELECT $1, topic, partition, 0 FROM UNNEST($2::text[], $3::int[]) AS p(topic, partition) \
         ORDER BY topic, partition ON CONFLICT DO NOTHING",
    )
    .bind(PROJECTION)
    .bind(&topics)
    .bind(&partitions)
    .execute(&mut **tx)
    .await?;
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT c.topic, c.partition, c.next_offset FROM checkpoints c \
         JOIN UNNEST($2::text[], $3::int[]) AS p(topic, partition) ON c.topic = p.topic AND c.partition = p.partition \
         WHERE c.projection = $1 ORDER BY c.topic, c.partition FOR UPDATE OF c",
    )
    .bind(PROJECTION)
    .bind(&topics)
    .bind(&partitions)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// A batch of records as one array per column, for `UNNEST`.
#[derive(Default)]
struct RecordColumns<'a> {
    company_id: Vec<&'a str>,
    data_type: Vec<&'a str>,
    record_id: Vec<&'a str>,
    connection_id: Vec<&'a str>,
    source: Vec<&'a str>,
    event_id: Vec<&'a str>,
    modified: Vec<i64>,
    fetched: Vec<i64>,
    deleted: Vec<bool>,
    data: Vec<Option<String>>,
    revision: Vec<i64>,
}

async fn upsert_records(
    tx: &mut Transaction<'_, Postgres>,
    events: Vec<&Event>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut c = RecordColumns::default();
    for e in &events {
        c.company_id.push(&e.company_id);
        c.data_type.push(&e.data_type);
        c.record_id.push(&e.source_record_id);
        c.connection_id.push(&e.connection_id);
        c.source.push(&e.source);
        c.event_id.push(&e.event_id);
        c.modified.push(e.source_modified_at.millis());
        c.fetched.push(e.fetched_at.millis());
        c.deleted.push(e.deleted);
        c.revision.push(e.revision);
        c.data.push(match &e.record {
            Some(r) => {
                Some(serde_json::to_string(r).map_err(|err| sqlx::Error::Encode(Box::new(err)))?)
            }
            None => None,
        });
    }
    // The WHERE guards the version: only a newer one (by modification
    // time, then revision) replaces the row.
    sqlx::query(
        "INSERT INTO records (company_id, data_type, record_id, connection_id, source, event_id, source_modified_at, fetched_at, deleted, data, revision) \
         SELECT company_id, data_type, record_id, connection_id, source, event_id, source_modified_at, fetched_at, deleted, data::jsonb, revision \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bool[], $10::text[], $11::bigint[]) \
           AS u(company_id, data_type, record_id, connection_id, source, event_id, source_modified_at, fetched_at, deleted, data, revision) \
         ON CONFLICT (company_id, data_type, record_id) DO UPDATE SET \
           connection_id = excluded.connection_id, source = excluded.source, event_id = excluded.event_id, \
           source_modified_at = excluded.source_modified_at, fetched_at = excluded.fetched_at, \
           deleted = excluded.deleted, data = excluded.data, revision = excluded.revision, applies = records.applies + 1 \
         WHERE (excluded.source_modified_at, excluded.revision) > (records.source_modified_at, records.revision)",
    )
    .bind(&c.company_id)
    .bind(&c.data_type)
    .bind(&c.record_id)
    .bind(&c.connection_id)
    .bind(&c.source)
    .bind(&c.event_id)
    .bind(&c.modified)
    .bind(&c.fetched)
    .bind(&c.deleted)
    .bind(&c.data)
    .bind(&c.revision)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_sync_run(
    tx: &mut Transaction<'_, Postgres>,
    run: &SyncRunEvent,
) -> Result<(), sqlx::Error> {
    let succeeded = run.status == SyncRunStatus::Succeeded;
    sqlx::query(
        "INSERT INTO sync_status (company_id, data_type, connection_id, source, last_run_id, last_started_at, last_finished_at, \
           last_status, last_error, last_success_at, runs, failed_runs, records_fetched) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Live and deleted counts per data type of company `$1`.
const COUNTS: &str = "SELECT data_type, COUNT(*) FILTER (WHERE NOT deleted) AS records, \
             COUNT(*) FILTER (WHERE deleted) AS deleted, MAX(source_modified_at) AS newest \
             FROM records WHERE company_id = $1 GROUP BY data_type";

tributary_store::impl_read_store!(PostgresStore, counts = COUNTS);

#[async_trait]
impl Projection for PostgresStore {
    fn name(&self) -> &'static str {
        PROJECTION
    }

    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        let rows: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT topic, partition, next_offset FROM checkpoints WHERE projection = $1",
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
