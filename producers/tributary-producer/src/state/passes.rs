//! Deletion reconciliation and manifests, in the state store.
//!
//! The worker records, per connection and data type, every record it
//! published live: its id, the version published, and when a sync last saw
//! it ([`StateStore::track`]); a tombstone removes it. A full pass (a run
//! that fetched everything the source lists) then finds the records not
//! seen since it began ([`StateStore::vanished`]): the source no longer
//! lists them, so they were deleted there, and the worker publishes a
//! tombstone for each. The same records make the manifest: their count and
//! digest ([`StateStore::live_digest`]).

use sqlx::AssertSqlSafe;
use tributary_connector_api::Cursor;
use tributary_schemas::{DataType, ManifestEvent, Timestamp, manifest_digest};

use super::{Pool, StateStore, on_pool, state_err};
use crate::ProducerError;

/// What a sync saw of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub record_id: String,
    pub modified_at: Timestamp,
    pub revision: i64,
    /// A tombstone: the record is gone.
    pub deleted: bool,
}

/// Rows per statement. Small: SQLite (through sqlx) looks up each of a
/// statement's `$n` parameters among all its parameters, so the cost of one
/// statement grows with the square of its parameters (measured: 500 rows,
/// 3,000 parameters, cost the bulk sync a third of its speed).
const CHUNK: usize = 32;

#[derive(sqlx::FromRow)]
struct ManifestRow {
    connection_id: String,
    data_type: String,
    company_id: String,
    source: String,
    event_id: String,
    run_id: String,
    as_of: i64,
    full_pass: i64,
    live_count: i64,
    digest: String,
}

impl StateStore {
    /// Records what was published outside a page's cursor save (a
    /// reconciliation's pages, a refetch, tombstones, a replay): see
    /// [`StateStore::save_page`].
    pub async fn track(
        &self,
        connection_id: &str,
        data_type: DataType,
        seen: &[Seen],
        seen_at: Timestamp,
    ) -> Result<(), ProducerError> {
        self.save_page(connection_id, data_type, None, seen, seen_at)
            .await
            .map(drop)
    }

    /// After a page was published, in one transaction (one sync to disk):
    /// records what it held (live records with their version, seen at
    /// `seen_at`; tombstones forget theirs) and, with `cursor`, saves the
    /// cursor if its `owner` holds the connection's lease. Says whether
    /// the cursor was saved (nothing is written when it was not).
    pub async fn save_page(
        &self,
        connection_id: &str,
        data_type: DataType,
        cursor: Option<(&Cursor, &str)>,
        seen: &[Seen],
        seen_at: Timestamp,
    ) -> Result<bool, ProducerError> {
        if seen.is_empty() && cursor.is_none() {
            return Ok(true);
        }
        let (gone, live): (Vec<&Seen>, Vec<&Seen>) = seen.iter().partition(|s| s.deleted);
        on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            if let Some((cursor, owner)) = cursor {
                let saved = sqlx::query(super::SAVE_CURSOR)
                    .bind(connection_id)
                    .bind(data_type.as_str())
                    .bind(&cursor.0)
                    .bind(seen_at.millis())
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !saved {
                    return Ok(false);
                }
            }
            for chunk in live.chunks(CHUNK) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let b = i * 6;
                        format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO live_ids (connection_id, data_type, record_id, modified_at, revision, seen_at) \
                     VALUES {} ON CONFLICT (connection_id, data_type, record_id) DO UPDATE SET \
                     modified_at = excluded.modified_at, revision = excluded.revision, seen_at = excluded.seen_at",
                    rows.join(", ")
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for s in chunk {
                    q = q
                        .bind(connection_id)
                        .bind(data_type.as_str())
                        .bind(&s.record_id)
                        .bind(s.modified_at.millis())
                        .bind(s.revision)
                        .bind(seen_at.millis());
                }
                q.execute(&mut *tx).await?;
            }
            for s in gone {
                sqlx::query(
                    "DELETE FROM live_ids WHERE connection_id = $1 AND data_type = $2 AND record_id = $3",
                )
                .bind(connection_id)
                .bind(data_type.as_str())
                .bind(&s.record_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await.map(|()| true)
        }
        .await)
        .map_err(state_err)
    }

    /// The records published live and not seen since `since`, with the
    /// version published: what a full pass that began at `since` found
    /// gone.
    pub async fn vanished(
        &self,
        connection_id: &str,
        data_type: DataType,
        since: Timestamp,
    ) -> Result<Vec<Seen>, ProducerError> {
        const SQL: &str = "SELECT record_id, modified_at, revision FROM live_ids \
             WHERE connection_id = $1 AND data_type = $2 AND seen_at < $3 ORDER BY record_id";
        let rows = on_pool!(self, p => sqlx::query_as::<_, (String, i64, i64)>(SQL)
            .bind(connection_id)
            .bind(data_type.as_str())
            .bind(since.millis())
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows
            .into_iter()
            .map(|(record_id, modified, revision)| Seen {
                record_id,
                modified_at: Timestamp(modified),
                revision,
                deleted: false,
            })
            .collect())
    }

    /// The count and digest ([`manifest_digest`]) of the records a
    /// connection published live of one data type.
    pub async fn live_digest(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<(i64, String), ProducerError> {
        const SQL: &str = "SELECT record_id, modified_at, revision FROM live_ids \
             WHERE connection_id = $1 AND data_type = $2";
        let rows = on_pool!(self, p => sqlx::query_as::<_, (String, i64, i64)>(SQL)
            .bind(connection_id)
            .bind(data_type.as_str())
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        let digest = manifest_digest(
            rows.iter()
                .map(|(id, modified, revision)| (id.as_str(), Timestamp(*modified), *revision)),
        );
        Ok((rows.len() as i64, digest))
    }

    /// When a connection and data type last had a full pass.
    pub async fn last_pass(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<Option<Timestamp>, ProducerError> {
        const SQL: &str =
            "SELECT passed_at FROM full_passes WHERE connection_id = $1 AND data_type = $2";
        Ok(self
            .number_of(SQL, connection_id, data_type)
            .await?
            .map(Timestamp))
    }

    /// Remembers a full pass that began at `at`.
    pub async fn record_pass(
        &self,
        connection_id: &str,
        data_type: DataType,
        at: Timestamp,
    ) -> Result<(), ProducerError> {
        const SQL: &str = "INSERT INTO full_passes (connection_id, data_type, passed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_id, data_type) DO UPDATE SET passed_at = excluded.passed_at";
        self.set_number_of(SQL, connection_id, data_type, at.millis())
            .await
    }

    /// Keeps a manifest as the latest of its connection and data type.
    pub async fn save_manifest(&self, m: &ManifestEvent) -> Result<(), ProducerError> {
        const SQL: &str = "INSERT INTO manifests (connection_id, data_type, company_id, source, event_id, run_id, as_of, full_pass, live_count, digest) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (connection_id, data_type) DO UPDATE SET company_id = excluded.company_id, \
             source = excluded.source, event_id = excluded.event_id, run_id = excluded.run_id, \
             as_of = excluded.as_of, full_pass = excluded.full_pass, live_count = excluded.live_count, \
             digest = excluded.digest";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(&m.connection_id)
            .bind(&m.data_type)
            .bind(&m.company_id)
            .bind(&m.source)
            .bind(&m.event_id)
            .bind(&m.run_id)
            .bind(m.as_of.millis())
            .bind(i64::from(m.full_pass))
            .bind(m.live_count)
            .bind(&m.digest)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// The latest manifest of each of a company's connections and data
    /// types.
    pub async fn manifests(&self, company_id: &str) -> Result<Vec<ManifestEvent>, ProducerError> {
        const SQL: &str = "SELECT connection_id, data_type, company_id, source, event_id, run_id, as_of, \
             full_pass, live_count, digest FROM manifests WHERE company_id = $1 \
             ORDER BY data_type, connection_id";
        let rows = on_pool!(self, p => sqlx::query_as::<_, ManifestRow>(AssertSqlSafe(SQL))
            .bind(company_id)
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows
            .into_iter()
            .map(|r| ManifestEvent {
                event_id: r.event_id,
                company_id: r.company_id,
                connection_id: r.connection_id,
                source: r.source,
                data_type: r.data_type,
                run_id: r.run_id,
                as_of: Timestamp(r.as_of),
                full_pass: r.full_pass != 0,
                live_count: r.live_count,
                digest: r.digest,
            })
            .collect())
    }
}
