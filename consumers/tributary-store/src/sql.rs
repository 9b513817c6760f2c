//! What both SQL backends share: the read queries (one text for SQLite and
//! PostgreSQL: `$n` parameters, `CAST`, `->>`, which both speak) and the
//! rows they return.

use sqlx::FromRow;
use tributary_schemas::Timestamp;

use crate::{ListQuery, RecordPage, StoreError, StoredRecord, cursor_after, parse_cursor};

/// `SELECT <the columns of a RecordRow> FROM records ` followed by `$rest`.
macro_rules! select_records {
    ($rest:literal) => {
        concat!(
            "SELECT company_id, data_type, record_id, connection_id, source, event_id, \
             source_modified_at, fetched_at, deleted, CAST(data AS TEXT) AS data, revision \
             FROM records ",
            $rest
        )
    };
}

/// Live companies, by name.
pub const COMPANIES: &str = select_records!(
    "WHERE data_type = 'companies' AND NOT deleted ORDER BY data->>'name', company_id"
);

/// One record, deleted or not: company, data type, id.
pub const GET: &str =
    select_records!("WHERE company_id = $1 AND data_type = $2 AND record_id = $3");

/// A page of records, oldest version first: company, data type, cursor
/// (version, id), modified since, include deleted, limit (one more than
/// the page, to know whether another follows).
pub const LIST: &str = select_records!(
    "WHERE company_id = $1 AND data_type = $2 \
     AND (source_modified_at, record_id) > ($3, $4) AND source_modified_at >= $5 \
     AND (NOT deleted OR $6) ORDER BY source_modified_at, record_id LIMIT $7"
);

/// The version of every live record of a company and data type.
pub const LIVE: &str = "SELECT record_id, source_modified_at, revision FROM records \
     WHERE company_id = $1 AND data_type = $2 AND NOT deleted";

/// The sync outcomes of one company.
pub const SYNC_ROWS: &str = "SELECT data_type, connection_id, source, last_status, last_started_at, \
     last_finished_at, last_success_at, last_error, runs, failed_runs, records_fetched \
     FROM sync_status WHERE company_id = $1 ORDER BY data_type, connection_id";

/// One row of table `records`, as the queries above select it.
#[derive(Debug, FromRow)]
pub struct RecordRow {
    pub company_id: String,
    pub data_type: String,
    pub record_id: String,
    pub connection_id: String,
    pub source: String,
    pub event_id: String,
    pub source_modified_at: i64,
    pub fetched_at: i64,
    pub deleted: bool,
    pub data: Option<String>,
    pub revision: i64,
}

impl TryFrom<RecordRow> for StoredRecord {
    type Error = StoreError;

    fn try_from(r: RecordRow) -> Result<StoredRecord, StoreError> {
        let data = match r.data {
            Some(text) => {
                serde_json::from_str(&text).map_err(|_| StoreError::Corrupt(r.record_id.clone()))?
            }
            None => serde_json::Value::Null,
        };
        Ok(StoredRecord {
            company_id: r.company_id,
            data_type: r.data_type,
            id: r.record_id,
            connection_id: r.connection_id,
            source: r.source,
            event_id: r.event_id,
            source_modified_at: Timestamp(r.source_modified_at),
            fetched_at: Timestamp(r.fetched_at),
            deleted: r.deleted,
            data,
            revision: r.revision,
        })
    }
}

/// Rows as records.
pub fn records(rows: Vec<RecordRow>) -> Result<Vec<StoredRecord>, StoreError> {
    rows.into_iter().map(StoredRecord::try_from).collect()
}

/// The bounds of a [`LIST`] query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListBounds {
    pub after_modified: i64,
    pub after_id: String,
    pub since: i64,
    /// The page size: the query asks for one more.
    pub limit: i64,
}

impl ListQuery {
    /// Where the page starts and how long it is.
    pub fn bounds(&self) -> ListBounds {
        let (after_modified, after_id) = self
            .cursor
            .as_deref()
            .and_then(parse_cursor)
            .unwrap_or((i64::MIN, String::new()));
        ListBounds {
            after_modified,
            after_id,
            since: self.modified_since.map_or(i64::MIN, |t| t.millis()),
            limit: i64::from(self.limit.clamp(1, 1000)),
        }
    }
}

/// The page of [`LIST`] rows (`limit` + 1 asked): the first `limit`, and a
/// cursor when more follow.
pub fn page(rows: Vec<RecordRow>, limit: i64) -> Result<RecordPage, StoreError> {
    let mut records = records(rows)?;
    let next_cursor = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(cursor_after)
    } else {
        None
    };
    Ok(RecordPage {
        records,
        next_cursor,
    })
}

/// Implements [`ReadStore`](crate::ReadStore) for a backend type with a
/// `pool` field, on the queries above: the backends differ only in their
/// pool's database and in `$counts`, the query that makes a
/// [`CountRow`](crate::CountRow) per data type of company `$1`.
#[macro_export]
macro_rules! impl_read_store {
    ($store:ty, counts = $counts:expr) => {
        #[async_trait::async_trait]
        impl $crate::ReadStore for $store {
            async fn companies(&self) -> Result<Vec<$crate::StoredRecord>, $crate::StoreError> {
                let rows = sqlx::query_as($crate::sql::COMPANIES)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::sql::query_error)?;
                $crate::sql::records(rows)
            }

            async fn get(
                &self,
                company_id: &str,
                data_type: &str,
                id: &str,
            ) -> Result<Option<$crate::StoredRecord>, $crate::StoreError> {
                let row: Option<$crate::sql::RecordRow> = sqlx::query_as($crate::sql::GET)
                    .bind(company_id)
                    .bind(data_type)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::sql::query_error)?;
                row.map($crate::StoredRecord::try_from).transpose()
            }

            async fn list(
                &self,
                company_id: &str,
                data_type: &str,
                query: &$crate::ListQuery,
            ) -> Result<$crate::RecordPage, $crate::StoreError> {
                let b = query.bounds();
                let rows = sqlx::query_as($crate::sql::LIST)
                    .bind(company_id)
                    .bind(data_type)
                    .bind(b.after_modified)
                    .bind(b.after_id)
                    .bind(b.since)
                    .bind(query.include_deleted)
                    .bind(b.limit + 1)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::sql::query_error)?;
                $crate::sql::page(rows, b.limit)
            }

            async fn status(
                &self,
                company_id: &str,
            ) -> Result<Vec<$crate::DataTypeStatus>, $crate::StoreError> {
                let counts: Vec<$crate::CountRow> = sqlx::query_as($counts)
                    .bind(company_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::sql::query_error)?;
                let syncs: Vec<$crate::SyncRow> = sqlx::query_as($crate::sql::SYNC_ROWS)
                    .bind(company_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::sql::query_error)?;
                Ok($crate::status_from_rows(counts, syncs))
            }

            async fn live_versions(
                &self,
                company_id: &str,
                data_type: &str,
            ) -> Result<std::collections::BTreeMap<String, (i64, i64)>, $crate::StoreError> {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as($crate::sql::LIVE)
                    .bind(company_id)
                    .bind(data_type)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::sql::query_error)?;
                Ok(rows
                    .into_iter()
                    .map(|(id, modified, revision)| (id, (modified, revision)))
                    .collect())
            }
        }
    };
}

/// A query that failed.
pub fn query_error(e: sqlx::Error) -> StoreError {
    StoreError::Query(e.to_string())
}
