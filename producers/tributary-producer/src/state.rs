//! The workers' durable state: connections, their encrypted credentials,
//! OAuth2 authorizations in progress, the cursor of each (connection, data
//! type), and the sync leases that share connections between workers.
//!
//! Two backends: SQLite in the data directory (one machine), or PostgreSQL
//! (workers on several machines), in its own schema [`POSTGRES_SCHEMA`] so
//! that it can share a database with the store. Every query is written once,
//! in the SQL both speak (`$n` parameters, `ON CONFLICT`, `RETURNING`); only
//! the expression for "now" differs. Leases are timed by the database's
//! clock, so the workers' clocks need not agree.
//!
//! Leases: a connection is synced by one worker at a time. A worker claims a
//! due connection whose lease is free (or expired), renews the lease while
//! it syncs, and releases it with the time the connection is next due. A
//! worker that dies holds its leases until they expire; then others take
//! its connections over, each from its saved cursor. A worker restarting
//! under the same name frees its old leases at once. A cursor is only saved by the lease's holder, so a worker that
//! lost its lease (stalled past the expiry) stops at its next page.
//! Correctness does not rest on the lease: whatever a stalled worker still
//! publishes carries the same deterministic event ids and versions as the
//! new holder's events, and projections ignore repeats.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, SqlitePool};
use tributary_connector_api::{ConnectionInfo, Cursor};
use tributary_schemas::model::Connection;
use tributary_schemas::{ConnectionStatus, DataType, Timestamp};

use crate::ProducerError;
use crate::plan::SyncPlan;
use crate::secrets::Sealed;

mod passes;
mod runs;
mod webhooks;
pub use passes::Seen;
pub use runs::{AlreadyOpen, RunFilter, SyncRun};
pub use webhooks::{
    Attempt, AttemptOutcome, Check, Delivery, NewDelivery, Occurrence, Subscription, message_id,
};

/// Saves a cursor if its owner holds the lease: $1 connection, $2 data
/// type, $3 cursor, $4 time, $5 owner.
const SAVE_CURSOR: &str = "INSERT INTO cursors (connection_id, data_type, cursor, updated_at) \
     SELECT $1, $2, $3, $4 WHERE EXISTS \
     (SELECT 1 FROM sync_leases WHERE connection_id = $1 AND owner = $5) \
     ON CONFLICT (connection_id, data_type) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at";

/// The PostgreSQL schema that holds the workers' state (and its own
/// migration history, apart from the store's).
pub const POSTGRES_SCHEMA: &str = "tributary_state";

/// A connection as stored, with its lifecycle status.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    pub info: ConnectionInfo,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Its sync settings per data type, over the configuration's.
    pub plan: SyncPlan,
}

impl StoredConnection {
    /// The connection as a record of the common data model.
    pub fn to_record(&self) -> Connection {
        Connection {
            id: self.info.connection_id.clone(),
            company_id: self.info.company_id.clone(),
            source: self.info.source.clone(),
            status: self.status,
            status_reason: self.status_reason.clone(),
            created_at: self.created_at,
        }
    }
}

/// Where one connection and data type stands, read at the start of its sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairState {
    pub cursor: Option<Cursor>,
    /// The revision its events carry (0 until its first resync).
    pub revision: i64,
    /// When it last had a full pass.
    pub last_pass: Option<Timestamp>,
    /// When it is next due by schedule (`None`: now).
    pub due: Option<Timestamp>,
}

/// A connection a worker claimed, and why it was due.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub connection: StoredConnection,
    /// Its interval came round (else only a sync was asked for).
    pub scheduled: bool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query text on whichever backend the store has.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}
use on_pool;

/// id, company_id, source, settings, status, status_reason, created_at,
/// updated_at, sync_plan
type ConnectionRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
);

const SELECT_CONNECTIONS: &str = "SELECT id, company_id, source, settings, status, status_reason, created_at, updated_at, sync_plan FROM connections";

#[derive(Clone)]
pub struct StateStore {
    pool: Pool,
}

impl StateStore {
    /// Opens (or creates) a SQLite state store at `path`.
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
        Ok(StateStore {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Connects to a PostgreSQL state store, creating its schema and tables
    /// on first use. Any number of processes may share it.
    pub async fn connect_postgres(url: &str) -> Result<Self, ProducerError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            ProducerError::State(format!(
                "{what} {}: {e}",
                tributary_telemetry::redact_url(url)
            ))
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| err("bad PostgreSQL URL", &e))?
            // Quiet about "already exists, skipping" at every start.
            .options([
                ("search_path", POSTGRES_SCHEMA),
                ("client_min_messages", "warning"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| err("connect to", &e))?;
        // The schema is made under the migrator's lock, so processes that
        // start together do not race to create it.
        let mut migrator = sqlx::migrate!("./migrations_postgres");
        migrator.create_schema(POSTGRES_SCHEMA);
        migrator.run(&pool).await.map_err(|e| err("migrate", &e))?;
        Ok(StateStore {
            pool: Pool::Postgres(pool),
        })
    }

    /// The statement that opens a transaction which reads, then writes:
    /// SQLite must take the write lock at once, or a write committed by
    /// another connection between the two fails it (`SQLITE_BUSY_SNAPSHOT`,
    /// which its busy timeout does not wait out).
    fn begin_write(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "BEGIN IMMEDIATE",
            Pool::Postgres(_) => "BEGIN",
        }
    }

    /// `text` with `{now}` replaced by the database's clock in milliseconds
    /// since the Unix epoch.
    fn sql(&self, text: &str) -> String {
        let now = match self.pool {
            Pool::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Pool::Postgres(_) => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        };
        text.replace("{now}", now)
    }

    /// Adds a connection as `linked`; an existing id is left as it is.
    /// Returns whether it was added.
    pub async fn add_connection(
        &self,
        info: &ConnectionInfo,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        self.add_connection_with_status(info, ConnectionStatus::Linked, now)
            .await
    }

    /// Adds a connection with `status` (`linked`, or `pending_auth` when a
    /// person must grant access first); an existing id is left as it is.
    pub async fn add_connection_with_status(
        &self,
        info: &ConnectionInfo,
        status: ConnectionStatus,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        const SQL: &str = "INSERT INTO connections (id, company_id, source, settings, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING";
        let added = on_pool!(self, p => sqlx::query(SQL)
            .bind(&info.connection_id)
            .bind(&info.company_id)
            .bind(&info.source)
            .bind(info.settings.to_string())
            .bind(status.as_str())
            .bind(now.millis())
            .bind(now.millis())
            .execute(p)
            .await
            .map(|done| done.rows_affected() == 1))
        .map_err(state_err)?;
        Ok(added)
    }

    pub async fn connections(&self) -> Result<Vec<StoredConnection>, ProducerError> {
        let sql = format!("{SELECT_CONNECTIONS} ORDER BY id");
        let rows =
            on_pool!(self, p => sqlx::query_as::<_, ConnectionRow>(AssertSqlSafe(sql.as_str()))
            .fetch_all(p)
            .await)
            .map_err(state_err)?;
        rows.into_iter().map(stored_connection).collect()
    }

    /// The connections no worker syncs: unlinked, or waiting for a person
    /// to grant access.
    pub async fn connections_unsynced(&self) -> Result<Vec<StoredConnection>, ProducerError> {
        let sql = format!(
            "{SELECT_CONNECTIONS} WHERE status IN ('unlinked', 'pending_auth') ORDER BY id"
        );
        let rows =
            on_pool!(self, p => sqlx::query_as::<_, ConnectionRow>(AssertSqlSafe(sql.as_str()))
            .fetch_all(p)
            .await)
            .map_err(state_err)?;
        rows.into_iter().map(stored_connection).collect()
    }

    /// How many connections are in each status, by its name.
    pub async fn connections_by_status(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, ProducerError> {
        let sql = "SELECT status, COUNT(*) FROM connections GROUP BY status";
        let rows = on_pool!(self, p => sqlx::query_as::<_, (String, i64)>(sql)
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows.into_iter().collect())
    }

    /// One connection, if it exists.
    pub async fn connection(&self, id: &str) -> Result<Option<StoredConnection>, ProducerError> {
        let sql = format!("{SELECT_CONNECTIONS} WHERE id = $1");
        let row =
            on_pool!(self, p => sqlx::query_as::<_, ConnectionRow>(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(p)
            .await)
            .map_err(state_err)?;
        row.map(stored_connection).transpose()
    }

    pub async fn set_settings(
        &self,
        connection_id: &str,
        settings: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        const SQL: &str = "UPDATE connections SET settings = $1, updated_at = $2 WHERE id = $3";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(settings.to_string())
            .bind(now.millis())
            .bind(connection_id)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Replaces a connection's sync settings overrides.
    pub async fn set_plan(
        &self,
        connection_id: &str,
        plan: &SyncPlan,
    ) -> Result<(), ProducerError> {
        let text = serde_json::to_string(plan)
            .map_err(|e| ProducerError::State(format!("sync settings: {e}")))?;
        on_pool!(self, p => sqlx::query("UPDATE connections SET sync_plan = $1 WHERE id = $2")
            .bind(text)
            .bind(connection_id)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// When a data type of a connection is next due by schedule (`None`:
    /// never synced by schedule, so due).
    pub async fn type_due(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<Option<Timestamp>, ProducerError> {
        const SQL: &str =
            "SELECT next_sync_at FROM type_schedule WHERE connection_id = $1 AND data_type = $2";
        Ok(self
            .number_of(SQL, connection_id, data_type)
            .await?
            .map(Timestamp))
    }

    /// What a sync of a connection and data type starts from, in one query:
    /// its cursor, revision, last full pass and next due time.
    pub async fn pair(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<PairState, ProducerError> {
        const SQL: &str = "SELECT \
             (SELECT cursor FROM cursors WHERE connection_id = $1 AND data_type = $2), \
             (SELECT revision FROM revisions WHERE connection_id = $1 AND data_type = $2), \
             (SELECT passed_at FROM full_passes WHERE connection_id = $1 AND data_type = $2), \
             (SELECT next_sync_at FROM type_schedule WHERE connection_id = $1 AND data_type = $2)";
        let (cursor, revision, last_pass, due) = on_pool!(self, p => sqlx::query_as::<
            _,
            (Option<String>, Option<i64>, Option<i64>, Option<i64>),
        >(SQL)
            .bind(connection_id)
            .bind(data_type.as_str())
            .fetch_one(p)
            .await)
        .map_err(state_err)?;
        Ok(PairState {
            cursor: cursor.map(Cursor),
            revision: revision.unwrap_or(0),
            last_pass: last_pass.map(Timestamp),
            due: due.map(Timestamp),
        })
    }

    /// Sets when data types of a connection are next due by schedule, in
    /// one statement.
    pub async fn set_types_due(
        &self,
        connection_id: &str,
        due: &[(DataType, Timestamp)],
    ) -> Result<(), ProducerError> {
        if due.is_empty() {
            return Ok(());
        }
        let rows: Vec<String> = (0..due.len())
            .map(|i| format!("(${}, ${}, ${})", i * 3 + 1, i * 3 + 2, i * 3 + 3))
            .collect();
        let sql = format!(
            "INSERT INTO type_schedule (connection_id, data_type, next_sync_at) VALUES {} \
             ON CONFLICT (connection_id, data_type) DO UPDATE SET next_sync_at = excluded.next_sync_at",
            rows.join(", ")
        );
        on_pool!(self, p => {
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
            for (data_type, at) in due {
                q = q.bind(connection_id).bind(data_type.as_str()).bind(at.millis());
            }
            q.execute(p).await.map(drop)
        })
        .map_err(state_err)
    }

    /// The one number `sql` selects for a connection and data type ($1, $2).
    async fn number_of(
        &self,
        sql: &'static str,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<Option<i64>, ProducerError> {
        let row = on_pool!(self, p => sqlx::query_as::<_, (i64,)>(sql)
            .bind(connection_id)
            .bind(data_type.as_str())
            .fetch_optional(p)
            .await)
        .map_err(state_err)?;
        Ok(row.map(|(n,)| n))
    }

    /// Runs `sql` with a connection, a data type and a number ($1, $2, $3).
    async fn set_number_of(
        &self,
        sql: &'static str,
        connection_id: &str,
        data_type: DataType,
        number: i64,
    ) -> Result<(), ProducerError> {
        on_pool!(self, p => sqlx::query(sql)
            .bind(connection_id)
            .bind(data_type.as_str())
            .bind(number)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// The sealed credentials of a connection.
    pub async fn sealed_credentials(
        &self,
        connection_id: &str,
    ) -> Result<Option<Sealed>, ProducerError> {
        const SQL: &str =
            "SELECT key_id, nonce, ciphertext FROM credentials WHERE connection_id = $1";
        let row = on_pool!(self, p => sqlx::query_as::<_, (String, Vec<u8>, Vec<u8>)>(SQL)
            .bind(connection_id)
            .fetch_optional(p)
            .await)
        .map_err(state_err)?;
        Ok(row.map(|(key_id, nonce, ciphertext)| Sealed {
            key_id,
            nonce,
            ciphertext,
        }))
    }

    /// Replaces a connection's sealed credentials; durable at return
    /// (SQLite: synchronous=FULL; PostgreSQL: its commit). Not fenced by
    /// the sync lease: a refreshed token must be kept, whoever refreshed it.
    pub async fn save_sealed_credentials(
        &self,
        connection_id: &str,
        sealed: &Sealed,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        const SQL: &str = "INSERT INTO credentials (connection_id, key_id, nonce, ciphertext, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (connection_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(connection_id)
            .bind(&sealed.key_id)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(now.millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Unlinks a connection: it stops syncing and its credentials are
    /// erased. Its records stay, and its history.
    pub async fn unlink(
        &self,
        connection_id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            for sql in [
                "DELETE FROM credentials WHERE connection_id = $1",
                "DELETE FROM authorizations WHERE connection_id = $1",
            ] {
                sqlx::query(sql).bind(connection_id).execute(&mut *tx).await?;
            }
            sqlx::query(
                "UPDATE connections SET status = 'unlinked', status_reason = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(reason)
            .bind(now.millis())
            .bind(connection_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await)
        .map_err(state_err)
    }

    /// Remembers the OAuth2 `state` sent for a connection's authorization.
    pub async fn start_authorization(
        &self,
        state: &str,
        connection_id: &str,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        const SQL: &str =
            "INSERT INTO authorizations (state, connection_id, created_at) VALUES ($1, $2, $3)";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(state)
            .bind(connection_id)
            .bind(now.millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Consumes an OAuth2 `state`: the connection it was sent for, if it
    /// was issued and is younger than `max_age_ms`. A state works once.
    pub async fn take_authorization(
        &self,
        state: &str,
        now: Timestamp,
        max_age_ms: i64,
    ) -> Result<Option<String>, ProducerError> {
        const SQL: &str =
            "DELETE FROM authorizations WHERE state = $1 RETURNING connection_id, created_at";
        let row = on_pool!(self, p => sqlx::query_as::<_, (String, i64)>(SQL)
            .bind(state)
            .fetch_optional(p)
            .await)
        .map_err(state_err)?;
        Ok(row
            .filter(|(_, created)| now.millis() - created <= max_age_ms)
            .map(|(id, _)| id))
    }

    pub async fn set_status(
        &self,
        connection_id: &str,
        status: ConnectionStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        const SQL: &str = "UPDATE connections SET status = $1, status_reason = $2, updated_at = $3 \
             WHERE id = $4 AND (status <> $1 OR COALESCE(status_reason, '') <> COALESCE($2, ''))";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(status.as_str())
            .bind(reason)
            .bind(now.millis())
            .bind(connection_id)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    pub async fn cursor(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<Option<Cursor>, ProducerError> {
        const SQL: &str = "SELECT cursor FROM cursors WHERE connection_id = $1 AND data_type = $2";
        let row = on_pool!(self, p => sqlx::query_as::<_, (String,)>(SQL)
            .bind(connection_id)
            .bind(data_type.as_str())
            .fetch_optional(p)
            .await)
        .map_err(state_err)?;
        Ok(row.map(|(c,)| Cursor(c)))
    }

    /// Saves a cursor if `owner` holds the connection's sync lease, and
    /// says whether it did.
    pub async fn save_cursor(
        &self,
        connection_id: &str,
        data_type: DataType,
        cursor: &Cursor,
        owner: &str,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        let saved = on_pool!(self, p => sqlx::query(SAVE_CURSOR)
            .bind(connection_id)
            .bind(data_type.as_str())
            .bind(&cursor.0)
            .bind(now.millis())
            .bind(owner)
            .execute(p)
            .await
            .map(|done| done.rows_affected() == 1))
        .map_err(state_err)?;
        Ok(saved)
    }

    /// Claims for `owner`, for `lease`, up to `limit` connections that are
    /// due for a sync and whose lease is free or expired. Most overdue
    /// first. Connections unlinked or waiting for authorization are not
    /// synced.
    pub async fn claim_due(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, ProducerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let candidates = self.sql(
            "SELECT c.id, (l.connection_id IS NULL OR l.next_sync_at <= {now}) AS scheduled \
             FROM connections c LEFT JOIN sync_leases l ON l.connection_id = c.id \
             WHERE c.status NOT IN ('unlinked', 'pending_auth') \
             AND (l.connection_id IS NULL OR ( \
                 (l.owner IS NULL OR l.expires_at <= {now}) \
                 AND (l.next_sync_at <= {now} OR l.requested_at > l.claimed_at))) \
             ORDER BY COALESCE(l.next_sync_at, 0), c.id LIMIT $1",
        );
        // The same test again, atomically per row: of several workers that
        // saw the same candidate, one wins it.
        let claim = self.sql(
            "INSERT INTO sync_leases (connection_id, owner, claimed_at, expires_at, next_sync_at, requested_at) \
             VALUES ($1, $2, {now}, {now} + $3, 0, 0) \
             ON CONFLICT (connection_id) DO UPDATE \
             SET owner = excluded.owner, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at \
             WHERE (sync_leases.owner IS NULL OR sync_leases.expires_at <= {now}) \
             AND (sync_leases.next_sync_at <= {now} OR sync_leases.requested_at > sync_leases.claimed_at) \
             RETURNING connection_id",
        );
        let ids =
            on_pool!(self, p => sqlx::query_as::<_, (String, bool)>(AssertSqlSafe(candidates.as_str()))
            .bind(limit as i64)
            .fetch_all(p)
            .await)
            .map_err(state_err)?;
        let mut claimed = Vec::new();
        for (id, scheduled) in ids {
            let won =
                on_pool!(self, p => sqlx::query_as::<_, (String,)>(AssertSqlSafe(claim.as_str()))
                .bind(&id)
                .bind(owner)
                .bind(millis(lease))
                .fetch_optional(p)
                .await)
                .map_err(state_err)?;
            if won.is_some()
                && let Some(connection) = self.connection(&id).await?
            {
                claimed.push(Claimed {
                    connection,
                    scheduled,
                });
            }
        }
        Ok(claimed)
    }

    /// Extends `owner`'s lease on a connection by `lease` from now; false
    /// when another worker holds it now.
    pub async fn renew_lease(
        &self,
        connection_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, ProducerError> {
        let sql = self.sql(
            "UPDATE sync_leases SET expires_at = {now} + $3 WHERE connection_id = $1 AND owner = $2",
        );
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(connection_id)
            .bind(owner)
            .bind(millis(lease))
            .execute(p)
            .await
            .map(|done| done.rows_affected() == 1))
        .map_err(state_err)
    }

    /// Gives up `owner`'s lease on a connection, which is next due in
    /// `next_sync_in` (sooner if a sync is asked for); `None` keeps the due
    /// time it had (a sync of some data types only, asked for between two
    /// scheduled ones).
    pub async fn release_lease(
        &self,
        connection_id: &str,
        owner: &str,
        next_sync_in: Option<Duration>,
    ) -> Result<(), ProducerError> {
        let sql = self.sql(
            "UPDATE sync_leases SET owner = NULL, expires_at = 0, \
             next_sync_at = CASE WHEN $3 < 0 THEN next_sync_at ELSE {now} + $3 END \
             WHERE connection_id = $1 AND owner = $2",
        );
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(connection_id)
            .bind(owner)
            .bind(next_sync_in.map_or(-1, millis))
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Frees every lease `owner` holds: a restarted worker's leases from
    /// before its restart, which no one else would take until they expire.
    pub async fn release_leases_of(&self, owner: &str) -> Result<u64, ProducerError> {
        const SQL: &str = "UPDATE sync_leases SET owner = NULL, expires_at = 0 WHERE owner = $1";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(owner)
            .execute(p)
            .await
            .map(|done| done.rows_affected()))
        .map_err(state_err)
    }

    /// Makes every connection due now, paused ones included; one being
    /// synced is synced again once its current sync ends.
    pub async fn request_sync(&self) -> Result<(), ProducerError> {
        let sql = self.sql("UPDATE sync_leases SET requested_at = {now}");
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql.as_str())).execute(p).await.map(drop))
            .map_err(state_err)
    }
}

fn stored_connection(row: ConnectionRow) -> Result<StoredConnection, ProducerError> {
    let (id, company_id, source, settings, status, status_reason, created_at, updated_at, plan) =
        row;
    let plan = serde_json::from_str(&plan).map_err(|e| {
        ProducerError::State(format!("connection {id} has unreadable sync settings: {e}"))
    })?;
    let settings = serde_json::from_str(&settings).map_err(|e| {
        ProducerError::State(format!("connection {id} has unreadable settings: {e}"))
    })?;
    let status = status
        .parse()
        .map_err(|e| ProducerError::State(format!("connection {id}: {e}")))?;
    Ok(StoredConnection {
        info: ConnectionInfo {
            connection_id: id,
            company_id,
            source,
            settings,
        },
        status,
        status_reason,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
        plan,
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn state_err(e: sqlx::Error) -> ProducerError {
    ProducerError::Database(e)
}
