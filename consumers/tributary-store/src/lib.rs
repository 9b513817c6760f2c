//! The store contract: what every store backend (SQLite, PostgreSQL)
//! serves to the API, and the read model it serves.
//!
//! Every backend holds one row per (company, data type, record id) at the
//! newest version seen, deleted records as tombstones, and lists records
//! oldest version first so that following `next_cursor` never skips a record
//! changed meanwhile.

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
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRecord {
    pub company_id: String,
    pub data_type: String,
    pub id: String,
    pub connection_id: String,
    pub source: String,
    pub event_id: String,
    pub source_modified_at: tributary_schemas::Timestamp,
    pub fetched_at: tributary_schemas::Timestamp,
    pub deleted: bool,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataTypeStatus {
    pub data_type: String,
    pub records: i64,
    pub deleted: i64,
    pub last_modified_at: Option<tributary_schemas::Timestamp>,
    pub syncs: Vec<SyncStatus>,
}

/// The latest sync outcome through one connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    pub connection_id: String,
    pub source: String,
    pub last_status: String,
    pub last_started_at: tributary_schemas::Timestamp,
    pub last_finished_at: tributary_schemas::Timestamp,
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

    /// Every live record of one company and data type, by id: for checks
    /// against a source of truth.
    async fn live_records(
        &self,
        company_id: &str,
        data_type: &str,
    ) -> Result<Vec<StoredRecord>, StoreError>;
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

/// One row of per-data-type counts: data type, live, deleted, newest version (ms).
pub type CountRow = (String, i64, i64, Option<i64>);

/// One row of sync status: data type, connection, source, last status,
/// started, finished, last success (ms), last error, runs, failed runs,
/// records fetched. Backends select exactly these columns in this order.
pub type SyncRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    i64,
);

/// The columns, in order, that make a [`SyncRow`] from table `sync_status`.
pub const SYNC_ROW_COLUMNS: &str = "data_type, connection_id, source, last_status, last_started_at, last_finished_at, \
     last_success_at, last_error, runs, failed_runs, records_fetched";

/// Joins count rows and sync rows into one status list, by data type.
pub fn status_from_rows(counts: Vec<CountRow>, syncs: Vec<SyncRow>) -> Vec<DataTypeStatus> {
    let mut out: Vec<DataTypeStatus> = counts
        .into_iter()
        .map(|(data_type, records, deleted, newest)| DataTypeStatus {
            data_type,
            records,
            deleted,
            last_modified_at: newest.map(Timestamp),
            syncs: vec![],
        })
        .collect();
    for (
        data_type,
        connection_id,
        source,
        last_status,
        started,
        finished,
        success,
        last_error,
        runs,
        failed_runs,
        records_fetched,
    ) in syncs
    {
        let status = SyncStatus {
            connection_id,
            source,
            last_status,
            last_started_at: Timestamp(started),
            last_finished_at: Timestamp(finished),
            last_success_at: success.map(Timestamp),
            last_error,
            runs,
            failed_runs,
            records_fetched,
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
