//! The store contract: what every store backend (SQLite, PostgreSQL)
//! serves to the API, and the read model it serves; and what a search
//! backend (tantivy) serves, [`Search`].
//!
//! Every backend holds one row per (company, data type, record id) at the
//! newest version seen, deleted records as tombstones, and lists records
//! oldest version first so that following `next_cursor` never skips a record
//! changed meanwhile.

#[cfg(feature = "sqlx")]
pub mod sql;

use async_trait::async_trait;
use serde::Serialize;
use tributary_schemas::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database {path}: {message}")]
    Open { path: String, message: String },
    #[error("store query: {0}")]
    Query(String),
    #[error("stored record {0} is not valid JSON")]
    Corrupt(String),
    #[error("search index")]
    Search(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One stored record: the envelope the API answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredRecord {
    pub company_id: String,
    pub data_type: String,
    pub id: String,
    pub connection_id: String,
    pub source: String,
    pub event_id: String,
    /// When the source last changed it (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub source_modified_at: tributary_schemas::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub fetched_at: tributary_schemas::Timestamp,
    pub deleted: bool,
    /// The record in the common data model (its data type's schema).
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub data: serde_json::Value,
    /// Re-publications of this source version (see the envelope's `revision`).
    pub revision: i64,
}

/// A page of records and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPage {
    pub records: Vec<StoredRecord>,
    pub next_cursor: Option<String>,
}

/// What a list query asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Resume after this cursor (from a previous page).
    pub cursor: Option<String>,
    /// Only versions modified at or after this instant.
    pub modified_since: Option<tributary_schemas::Timestamp>,
    pub include_deleted: bool,
    pub limit: u32,
}

/// Status of one data type of one company.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DataTypeStatus {
    pub data_type: String,
    /// Live records in the store.
    pub records: i64,
    pub deleted: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_modified_at: Option<tributary_schemas::Timestamp>,
    /// The latest sync through each connection.
    pub syncs: Vec<SyncStatus>,
}

/// The latest sync outcome through one connection.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    pub connection_id: String,
    pub source: String,
    /// `succeeded`, `failed` or `paused`.
    pub last_status: String,
    #[schema(value_type = String, format = DateTime)]
    pub last_started_at: tributary_schemas::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_finished_at: tributary_schemas::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<tributary_schemas::Timestamp>,
    pub last_error: Option<String>,
    pub runs: i64,
    pub failed_runs: i64,
    pub records_fetched: i64,
}

/// The read side of a store backend.
#[async_trait]
pub trait ReadStore: Send + Sync {
    /// Companies with a live company record, by name.
    async fn companies(&self) -> Result<Vec<StoredRecord>, StoreError>;

    /// One record, deleted or not.
    async fn get(
        &self,
        company_id: &str,
        data_type: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StoreError>;

    /// A page of one company's records of one data type.
    async fn list(
        &self,
        company_id: &str,
        data_type: &str,
        query: &ListQuery,
    ) -> Result<RecordPage, StoreError>;

    /// Record counts and sync outcomes per data type of one company.
    async fn status(&self, company_id: &str) -> Result<Vec<DataTypeStatus>, StoreError>;

    /// Every live record of one company and data type: its id, version
    /// (ms) and revision, for checks against a source of truth. Versions
    /// only: reading whole records (their JSON parsed) for every status
    /// call was the largest heap use under load (docs/BENCHMARKS.md).
    async fn live_versions(
        &self,
        company_id: &str,
        data_type: &str,
    ) -> Result<std::collections::BTreeMap<String, (i64, i64)>, StoreError>;
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub company_id: String,
    pub data_type: String,
    pub id: String,
    pub title: String,
    pub score: f32,
}

/// What a search asks for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words that must all match.
    pub text: String,
    /// Only these companies' records; `None` for every company.
    pub companies: Option<Vec<String>>,
    pub data_type: Option<String>,
    /// At most this many hits (1 to 100), best first.
    pub limit: usize,
}

/// The read side of a search backend: the API searches through it and
/// knows no search engine.
#[async_trait]
pub trait Search: Send + Sync {
    /// Live records matching the query, best first.
    async fn search(&self, query: &SearchQuery) -> Result<Vec<Hit>, StoreError>;

    /// How many live records of one company and data type it holds: beside
    /// the store's count, it shows whether the index has caught up.
    async fn count(&self, company_id: &str, data_type: &str) -> Result<usize, StoreError>;
}

/// Live record ids of one company and data type with their versions
/// (modification time, revision): what a check against a source of truth,
/// or the conformance suite, compares.
pub async fn live_versions(
    store: &dyn ReadStore,
    company_id: &str,
    data_type: &str,
) -> Result<std::collections::BTreeMap<String, (i64, i64)>, StoreError> {
    store.live_versions(company_id, data_type).await
}

/// What the workers' manifests of one company's data type (one per
/// connection) say is live, against what the store holds: counts and
/// digests (see [`tributary_schemas::manifest_digest`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestCheck {
    pub live_count: i64,
    /// `None` when a manifest's digest is not one.
    pub digest: Option<String>,
    pub stored_count: i64,
    pub stored_digest: String,
}

impl ManifestCheck {
    /// Whether the store holds exactly what the manifests say.
    pub fn store_matches(&self) -> bool {
        self.stored_count == self.live_count && Some(&self.stored_digest) == self.digest.as_ref()
    }
}

/// Checks the store's live records of one company and data type against
/// that data type's manifests.
pub async fn check_manifests(
    store: &dyn ReadStore,
    company_id: &str,
    data_type: &str,
    manifests: &[&tributary_schemas::ManifestEvent],
) -> Result<ManifestCheck, StoreError> {
    let stored = store.live_versions(company_id, data_type).await?;
    let stored_digest =
        tributary_schemas::manifest_digest(stored.iter().map(|(id, (modified, revision))| {
            (
                id.as_str(),
                tributary_schemas::Timestamp(*modified),
                *revision,
            )
        }));
    Ok(ManifestCheck {
        live_count: manifests.iter().map(|m| m.live_count).sum(),
        digest: tributary_schemas::add_digests(manifests.iter().map(|m| m.digest.as_str())),
        stored_count: stored.len() as i64,
        stored_digest,
    })
}

/// The cursor after `record`, for [`RecordPage::next_cursor`].
pub fn cursor_after(record: &StoredRecord) -> String {
    format!("{}:{}", record.source_modified_at.millis(), record.id)
}

/// Reads a cursor made by [`cursor_after`]: (version, id).
pub fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (modified, id) = cursor.split_once(':')?;
    Some((modified.parse().ok()?, id.to_string()))
}

/// Live and deleted counts of one data type, and its newest version (ms):
/// backends select `data_type, records, deleted, newest`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct CountRow {
    pub data_type: String,
    pub records: i64,
    pub deleted: i64,
    pub newest: Option<i64>,
}

/// The latest sync outcome of one data type through one connection, as
/// table `sync_status` holds it (times in ms).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct SyncRow {
    pub data_type: String,
    pub connection_id: String,
    pub source: String,
    pub last_status: String,
    pub last_started_at: i64,
    pub last_finished_at: i64,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub runs: i64,
    pub failed_runs: i64,
    pub records_fetched: i64,
}

/// Joins count rows and sync rows into one status list, by data type.
pub fn status_from_rows(counts: Vec<CountRow>, syncs: Vec<SyncRow>) -> Vec<DataTypeStatus> {
    let mut out: Vec<DataTypeStatus> = counts
        .into_iter()
        .map(|c| DataTypeStatus {
            data_type: c.data_type,
            records: c.records,
            deleted: c.deleted,
            last_modified_at: c.newest.map(Timestamp),
            syncs: vec![],
        })
        .collect();
    for row in syncs {
        let data_type = row.data_type;
        let status = SyncStatus {
            connection_id: row.connection_id,
            source: row.source,
            last_status: row.last_status,
            last_started_at: Timestamp(row.last_started_at),
            last_finished_at: Timestamp(row.last_finished_at),
            last_success_at: row.last_success_at.map(Timestamp),
            last_error: row.last_error,
            runs: row.runs,
            failed_runs: row.failed_runs,
            records_fetched: row.records_fetched,
        };
        match out.iter_mut().find(|s| s.data_type == data_type) {
            Some(entry) => entry.syncs.push(status),
            None => out.push(DataTypeStatus {
                data_type,
                records: 0,
                deleted: 0,
                last_modified_at: None,
                syncs: vec![status],
            }),
        }
    }
    out.sort_by(|a, b| a.data_type.cmp(&b.data_type));
    out
}
